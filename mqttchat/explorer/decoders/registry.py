"""The decoders by name: what each does, whether it is a transform, and which rule options it takes."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AUTO", "DECODERS", "OPTION_KEYS", "DecoderInfo", "chain_problem", "parse_chain"]

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
