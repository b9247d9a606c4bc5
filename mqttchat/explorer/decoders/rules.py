"""Which decoder a topic gets: rules mapping topic filters to a chain of decoders, kept in ``settings.toml`` as
``[[decoders]]`` tables. The first rule whose filter matches the topic wins; a topic no rule matches is decoded
automatically. Choosing a decoder by hand ("decode as…") puts a rule for that filter first.

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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from mqttchat.explorer.decoders.command import DEFAULT_TIMEOUT, MAX_TIMEOUT
from mqttchat.explorer.decoders.registry import DECODERS, OPTION_KEYS, chain_problem, parse_chain
from mqttchat.explorer.decoders.structs import struct_problem
from mqttchat.protocol import matches, topic_filter_problem

__all__ = ["RULE_KEYS", "DecoderRule", "DecoderRules"]

#: Bytes of topics whose rule is remembered (the memo is cleared when it is exceeded).
MEMO_BUDGET = 1024 * 1024
#: Every key of a ``[[decoders]]`` table.
RULE_KEYS: tuple[str, ...] = ("filter", "decoder", *OPTION_KEYS)


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


class DecoderRules:
    """An ordered list of rules; the first whose filter matches a topic wins."""

    def __init__(self, rules: Iterable[DecoderRule] = ()) -> None:
        self._rules: list[DecoderRule] = list(rules)
        #: Changes whenever the rules do (caches of decoded payloads key on it).
        self.version = 0
        self._memo: dict[str, DecoderRule | None] = {}
        self._memo_bytes = 0

    def __iter__(self) -> Iterator[DecoderRule]:
        return iter(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def rule_for(self, topic: str) -> DecoderRule | None:
        """The rule that decides how topic is decoded, or None (decode automatically)."""
        try:
            return self._memo[topic]
        except KeyError:
            pass
        found = next((rule for rule in self._rules if matches(rule.filter, topic)), None)
        self._memo_bytes += len(topic) + 100
        if self._memo_bytes > MEMO_BUDGET:
            self._memo.clear()
            self._memo_bytes = len(topic) + 100
        self._memo[topic] = found
        return found

    def choose(self, rule: DecoderRule) -> None:
        """Put rule first, replacing any rule with the same filter (the user chose it by hand)."""
        self._rules = [rule, *(other for other in self._rules if other.filter != rule.filter)]
        self._changed()

    def forget(self, topic_filter: str) -> bool:
        """Remove the rule for exactly this filter. False if there was none."""
        before = len(self._rules)
        self._rules = [rule for rule in self._rules if rule.filter != topic_filter]
        if len(self._rules) == before:
            return False
        self._changed()
        return True

    def replace_all(self, rules: Iterable[DecoderRule]) -> None:
        self._rules = list(rules)
        self._changed()

    def _changed(self) -> None:
        self.version += 1
        self._memo.clear()
        self._memo_bytes = 0
