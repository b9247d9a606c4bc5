"""How payloads are decoded per topic filter, as ``settings.toml`` keeps it: the decoders by name (what each does,
whether it is a transform, which options it takes) and :class:`DecoderRule`, one ``[[decoders]]`` table, with its
checks. The explorer's decoders (:mod:`mqttchat.explorer.decoders`) implement these names and apply the rules;
they live above this module, which imports nothing but the protocol's topic checks.

.. code-block:: toml

    [[decoders]]
    filter = "plant/+/frames"
    decoder = "gzip+json"

    [[decoders]]
    filter = "meters/+/raw"
    decoder = "struct"
    struct = ">IfH"
    fields = ["counter", "watts", "volts"]

    [[decoders]]
    filter = "devices/#"
    decoder = "protobuf"
    descriptor_set = "schemas/devices.pb"     # protoc --descriptor_set_out; relative to settings.toml
    message = "acme.Reading"

    [[decoders]]
    filter = "legacy/#"
    decoder = "command"
    command = ["legacy-decode", "--json"]
    timeout = 2.0
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mqttchat.protocol.topics import topic_filter_problem

__all__ = [
    "AUTO",
    "DECODERS",
    "DEFAULT_TIMEOUT",
    "MAX_STRUCT_SIZE",
    "MAX_TIMEOUT",
    "OPTION_KEYS",
    "RULE_KEYS",
    "DecoderInfo",
    "DecoderRule",
    "chain_problem",
    "parse_chain",
    "struct_problem",
]

#: Choose by the topic, the MQTT 5 content type and the payload's first bytes.
AUTO = "auto"


@dataclass(frozen=True, slots=True)
class DecoderInfo:
    name: str
    description: str
    #: Bytes to bytes: what it returns is decoded by the next step (or by auto-detection).
    transform: bool = False
    #: The rule options it takes (keys of a ``[[decoders]]`` table besides ``filter`` and ``decoder``).
    options: tuple[str, ...] = ()
    #: Options that must be given.
    required: tuple[str, ...] = ()


#: Every decoder, in the order "decode as…" offers them.
DECODERS: dict[str, DecoderInfo] = {
    info.name: info
    for info in (
        DecoderInfo(AUTO, "by topic, content type and magic bytes: Sparkplug B on spBv1.0/, gzip, zlib, JSON, text"),
        DecoderInfo("json", "JSON"),
        DecoderInfo("text", "UTF-8 text"),
        DecoderInfo("hex", "the bytes as a hex dump"),
        DecoderInfo("sparkplug", "Sparkplug B (protobuf) with aliases from the births"),
        DecoderInfo(
            "protobuf",
            "protobuf: raw field numbers, or a message type of a descriptor set",
            options=("descriptor_set", "message"),
        ),
        DecoderInfo("cbor", "CBOR"),
        DecoderInfo("msgpack", "MessagePack"),
        DecoderInfo(
            "struct",
            "a fixed binary struct (a Python struct format such as <hhf)",
            options=("struct", "fields"),
            required=("struct",),
        ),
        DecoderInfo("gzip", "gzip, then the next decoder", transform=True),
        DecoderInfo("zlib", "zlib, then the next decoder", transform=True),
        DecoderInfo("deflate", "raw deflate, then the next decoder", transform=True),
        DecoderInfo("base64", "base64, then the next decoder", transform=True),
        DecoderInfo(
            "command",
            "an external command: the payload on stdin, text or JSON on stdout",
            options=("command", "timeout"),
            required=("command",),
        ),
    )
}

#: Every option key of a rule.
OPTION_KEYS: tuple[str, ...] = ("struct", "fields", "descriptor_set", "message", "command", "timeout")


def parse_chain(text: str) -> tuple[str, ...]:
    """``"gzip+json"`` → ``("gzip", "json")``; blanks around names are ignored."""
    return tuple(part.strip() for part in text.split("+"))


def chain_problem(chain: tuple[str, ...]) -> str | None:
    """What is wrong with a chain of decoder names, or None: unknown names, or a decoder that makes a tree
    (anything but a transform) followed by another step."""
    import difflib

    if not chain or chain == ("",):
        return "no decoder named"
    for index, name in enumerate(chain):
        info = DECODERS.get(name)
        if info is None:
            close = difflib.get_close_matches(name, DECODERS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (the decoders are {', '.join(DECODERS)})"
            return f"unknown decoder {name!r}{hint}"
        if not info.transform and index < len(chain) - 1:
            return f"{name} makes the final value, so it must come last (as in gzip+{name})"
    return None


#: Every key of a ``[[decoders]]`` table.
RULE_KEYS: tuple[str, ...] = ("filter", "decoder", *OPTION_KEYS)
#: Seconds an external command may run by default, and at most.
DEFAULT_TIMEOUT = 2.0
MAX_TIMEOUT = 60.0
#: The largest record a struct format may describe.
MAX_STRUCT_SIZE = 1024 * 1024


def struct_problem(fmt: str, names: Sequence[str] = ()) -> str | None:
    """What is wrong with a struct format and its field names, or None."""
    try:
        compiled = struct.Struct(fmt)
    except (struct.error, ValueError, OverflowError) as exc:
        return f"not a struct format: {exc}"
    if compiled.size == 0:
        return "the format describes no bytes"
    if compiled.size > MAX_STRUCT_SIZE:
        return f"the format describes {compiled.size} bytes (at most {MAX_STRUCT_SIZE})"
    count = len(compiled.unpack(bytes(compiled.size)))
    if names and len(names) != count:
        return f"the format has {count} values but {len(names)} field names are given"
    if len(set(names)) != len(names):
        return "field names must differ"
    if any(not name or "." in name for name in names):
        return "field names must not be empty or contain '.'"
    return None


@dataclass(frozen=True, slots=True)
class DecoderRule:
    """A topic filter and how to decode what arrives on it: ``decoder`` is a chain of decoder names joined with
    ``+`` (``gzip+json``; a chain ending in a transform is finished automatically), with the options the chain's
    decoders take."""

    filter: str
    decoder: str
    #: A Python ``struct`` format (decoder ``struct``).
    struct: str | None = None
    #: Names of the struct's values, in order (optional).
    fields: tuple[str, ...] = ()
    #: A ``protoc --descriptor_set_out`` file and the full name of a message type in it (decoder ``protobuf``).
    descriptor_set: str | None = None
    message: str | None = None
    #: The command and its arguments (decoder ``command``); the payload goes to its stdin.
    command: tuple[str, ...] = ()
    #: Seconds the command may run.
    timeout: float = DEFAULT_TIMEOUT

    @property
    def chain(self) -> tuple[str, ...]:
        return parse_chain(self.decoder)

    def problems(self) -> list[tuple[str, str]]:
        """What is wrong, as (key, problem) pairs; empty when the rule is valid."""
        out: list[tuple[str, str]] = []
        problem = topic_filter_problem(self.filter) if self.filter else "must not be empty"
        if problem is not None:
            out.append(("filter", problem))
        chain = self.chain
        problem = chain_problem(chain)
        if problem is not None:
            out.append(("decoder", problem))
            return out
        used = {option for name in chain for option in DECODERS[name].options}
        given = {key for key in OPTION_KEYS if self._given(key)}
        for key in sorted(given - used, key=OPTION_KEYS.index):
            takers = [name for name, info in DECODERS.items() if key in info.options]
            out.append((key, f"is only used with the {' or '.join(takers)} decoder"))
        for name in chain:
            out.extend((key, f"the {name} decoder needs it") for key in DECODERS[name].required if key not in given)
        if "struct" in chain and self.struct is not None:
            problem = struct_problem(self.struct, self.fields)
            if problem is not None:
                out.append(("fields" if "field names" in problem else "struct", problem))
        if "protobuf" in chain and (self.descriptor_set is None) != (self.message is None):
            missing = "message" if self.message is None else "descriptor_set"
            out.append((missing, "a descriptor set and a message type go together"))
        if self.message is not None and not self.message.strip(". "):
            out.append(("message", "must name a message type, such as acme.Reading"))
        if "command" in chain and self.command and not all(part for part in self.command):
            out.append(("command", "must be a list of non-empty strings"))
        if self._given("timeout") and not (math.isfinite(self.timeout) and 0 < self.timeout <= MAX_TIMEOUT):
            out.append(("timeout", f"must be more than 0 and at most {MAX_TIMEOUT:g} seconds"))
        return out

    def _given(self, key: str) -> bool:
        value = getattr(self, key)
        if key == "timeout":
            return bool(value != DEFAULT_TIMEOUT)
        return bool(value)

    def to_table(self) -> dict[str, Any]:
        """The ``[[decoders]]`` table of this rule (options only when given)."""
        table: dict[str, Any] = {"filter": self.filter, "decoder": self.decoder}
        for key in OPTION_KEYS:
            if self._given(key):
                value = getattr(self, key)
                table[key] = list(value) if isinstance(value, tuple) else value
        return table
