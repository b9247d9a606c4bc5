"""Running a chain of decoders over a payload, and choosing decoders automatically where that is safe.

Automatic choices, in order: Sparkplug B on a ``spBv1.0/`` topic of an edge node's or a command's message type;
the decoder an MQTT 5 content type names (``application/cbor``, ``application/json``...); gzip and zlib by their
first bytes (then the same choice again on what they hold, a few times at most); JSON; UTF-8 text; otherwise a hex
dump. CBOR, MessagePack, protobuf and structs are never guessed from bytes alone (almost any bytes are valid
CBOR): they are chosen by hand or by content type.

No exception leaves :meth:`Pipeline.run`: a failing step gives a result that says why, with a hex dump.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from mqttchat.config.decoder_rules import AUTO, DecoderRule
from mqttchat.explorer.decoders.base import DecodeContext, Decoder
from mqttchat.explorer.decoders.compression import (
    Base64Decoder,
    DeflateDecoder,
    GzipDecoder,
    ZlibDecoder,
    is_gzip,
    is_zlib,
)
from mqttchat.explorer.decoders.result import (
    Decoded,
    DecodeFailure,
    DecodeResult,
    failure,
    leaf,
)
from mqttchat.explorer.decoders.structured import CborDecoder, MsgpackDecoder
from mqttchat.explorer.decoders.text import HexDecoder, JsonDecoder, TextDecoder, decode_json_value
from mqttchat.explorer.payload import PayloadKind, hexdump
from mqttchat.explorer.payload import decode as classify

__all__ = ["Pipeline", "content_type_decoder", "create_decoder"]

_CONTENT_TYPES = {
    "application/json": "json",
    "text/json": "json",
    "application/cbor": "cbor",
    "application/msgpack": "msgpack",
    "application/x-msgpack": "msgpack",
    "application/vnd.msgpack": "msgpack",
    "application/gzip": "gzip",
    "application/x-gzip": "gzip",
    "application/zlib": "zlib",
    "application/protobuf": "protobuf",
    "application/x-protobuf": "protobuf",
    "application/x-google-protobuf": "protobuf",
    "application/vnd.google.protobuf": "protobuf",
}


def content_type_decoder(content_type: str | None) -> str | None:
    """The decoder an MQTT 5 content type names (``application/cbor``, ``application/ld+json``, ``text/*``)."""
    if not content_type:
        return None
    media = content_type.split(";", 1)[0].strip().lower()
    found = _CONTENT_TYPES.get(media)
    if found is not None:
        return found
    if media.endswith("+json"):
        return "json"
    if media.endswith("+cbor"):
        return "cbor"
    if media.startswith("text/"):
        return "text"
    return None


def create_decoder(name: str, rule: DecoderRule | None = None) -> Decoder:
    """A decoder by name, configured with the rule's options.

    Raises:
        ValueError: the options do not work (a struct format, an unreadable descriptor set): the reason.
    """
    simple: dict[str, type[Decoder]] = {
        "json": JsonDecoder, "text": TextDecoder, "hex": HexDecoder, "cbor": CborDecoder, "msgpack": MsgpackDecoder,
        "gzip": GzipDecoder, "zlib": ZlibDecoder, "deflate": DeflateDecoder, "base64": Base64Decoder,
    }  # fmt: skip
    if name in simple:
        return simple[name]()
    if name == "sparkplug":
        from mqttchat.explorer.decoders.sparkplug import SparkplugDecoder

        return SparkplugDecoder()
    if name == "protobuf":
        from mqttchat.explorer.decoders.protobuf import ProtobufDecoder

        if rule is not None and rule.descriptor_set and rule.message:
            return ProtobufDecoder(rule.descriptor_set, rule.message)
        return ProtobufDecoder()
    if name == "struct":
        from mqttchat.explorer.decoders.structs import StructDecoder

        if rule is None or rule.struct is None:
            raise ValueError("the struct decoder needs a struct format")
        return StructDecoder(rule.struct, rule.fields)
    if name == "command":
        from mqttchat.explorer.decoders.command import CommandDecoder

        if rule is None or not rule.command:
            raise ValueError("the command decoder needs a command")
        return CommandDecoder(rule.command, rule.timeout)
    raise ValueError(f"unknown decoder {name!r}")


class Pipeline:
    """The decoders of one rule (or none: automatic), ready to run. Building it loads what the options name (a
    descriptor set); when that fails, every run says why."""

    def __init__(self, rule: DecoderRule | None = None) -> None:
        self.rule = rule
        self.label = rule.decoder if rule is not None else AUTO
        self.steps: list[Decoder] = []
        self.error: str | None = None
        #: Whether the chain ends in a transform or in "auto": auto-detection finishes it.
        self.detect = True
        if rule is None:
            return
        try:
            for name in rule.chain:
                if name == AUTO:
                    break
                self.steps.append(create_decoder(name, rule))
        except (ValueError, OSError) as exc:
            self.error = str(exc)
        self.detect = not self.steps or self.steps[-1].transform

    @property
    def external(self) -> bool:
        """Whether a step runs outside the process (use :meth:`run_async`)."""
        return any(step.external for step in self.steps)

    def run(self, data: bytes, ctx: DecodeContext) -> DecodeResult:
        """Decode data. An external command is not run here: the result is ``pending`` (see :meth:`run_async`)."""
        coroutine = self._execute(data, ctx, external=False)
        return _drive(coroutine)

    async def run_async(self, data: bytes, ctx: DecodeContext) -> DecodeResult:
        """Decode data, running an external command if the chain has one."""
        return await self._execute(data, ctx, external=True)

    async def _execute(self, data: bytes, ctx: DecodeContext, *, external: bool) -> DecodeResult:
        if self.error is not None:
            return failure(self.label, f"{self.label}: {self.error}", data)
        names: list[str] = []
        current = data
        for step in self.steps:
            names.append(step.name)
            try:
                if step.external:
                    if not external:
                        return DecodeResult("+".join(names), "pending", None, f"{step.name}: decoding…", pending=True)
                    out = await step.decode_async(current, ctx)
                else:
                    out = step.decode(current, ctx)
            except DecodeFailure as exc:
                return failure("+".join(names), f"{step.name}: {exc}", current)
            except Exception as exc:  # a library raising what it does not document: still a failure, not a crash
                return failure("+".join(names), f"{step.name}: {_describe(exc)}", current)
            if isinstance(out, bytes):
                current = out
                continue
            return _finished("+".join(names), out, auto=False)
        return detect(current, ctx, names, top=not self.steps)


def _drive(coroutine: Coroutine[Any, Any, DecodeResult]) -> DecodeResult:
    """Run a coroutine that never waits (no external step is awaited on this path) to its result."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        result: DecodeResult = stop.value
        return result
    coroutine.close()  # pragma: no cover - the synchronous path awaits nothing that suspends
    raise RuntimeError("a synchronous decode waited")  # pragma: no cover


def _describe(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, MemoryError):
        return "too large to decode"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _finished(decoder: str, decoded: Decoded, *, auto: bool, notes: tuple[str, ...] = ()) -> DecodeResult:
    return DecodeResult(decoder, decoded.format, decoded.root, decoded.text, decoded.fields, None,
                        (*notes, *decoded.notes), auto=auto, summary=decoded.summary)  # fmt: skip


def _try(decoder: Decoder, data: bytes, ctx: DecodeContext) -> bytes | Decoded | str:
    """What a decoder makes of data, or the reason it failed (a string)."""
    try:
        return decoder.decode(data, ctx)
    except DecodeFailure as exc:
        return str(exc)
    except Exception as exc:
        return _describe(exc)


def detect(data: bytes, ctx: DecodeContext, names: list[str], *, top: bool) -> DecodeResult:
    """Decode data with automatically chosen decoders; names holds the steps taken before (it grows)."""
    notes: list[str] = []
    if top:
        from mqttchat.explorer.decoders.sparkplug.topic import MessageType, parse_topic

        topic = parse_topic(ctx.topic)
        if topic is not None and topic.message_type is not MessageType.STATE:
            decoder = create_decoder("sparkplug")
            out = _try(decoder, data, ctx)
            if isinstance(out, Decoded):
                return _finished("sparkplug", out, auto=True)
            reason = f"sparkplug: {out!s}"
            sparkplug_failure = failure("sparkplug", reason, data)
            generic = _generic(data, ctx, [], [reason])
            return generic if generic.format not in ("binary", "empty") else sparkplug_failure
        hinted = content_type_decoder(ctx.content_type)
        if hinted is not None:
            out = _try(create_decoder(hinted), data, ctx)
            if isinstance(out, Decoded):
                return _finished(hinted, out, auto=True)
            if isinstance(out, bytes):
                names.append(hinted)
                data = out
            else:
                notes.append(f"content type {ctx.content_type}, but {hinted}: {out}")
    return _generic(data, ctx, names, notes)


def _generic(data: bytes, ctx: DecodeContext, names: list[str], notes: list[str]) -> DecodeResult:
    for _ in range(ctx.limits.max_auto_steps):
        if is_gzip(data):
            names.append("gzip")
            out = _try(GzipDecoder(), data, ctx)
            if not isinstance(out, bytes):
                return failure("+".join(names), f"gzip: {out}", data, tuple(notes))
            data = out
        elif is_zlib(data) and isinstance(out := _try(ZlibDecoder(), data, ctx), bytes):
            names.append("zlib")
            data = out
        else:
            break
    prefix = "+".join(names)
    decoded = _plain(data, ctx)
    label = f"{prefix}+{decoded.format}" if prefix else decoded.format
    return _finished(label, decoded, auto=True, notes=tuple(notes))


def _plain(data: bytes, ctx: DecodeContext) -> Decoded:
    """JSON, text, or a hex dump, as the explorer has always shown payloads."""
    classified = classify(data)
    if classified.kind is PayloadKind.EMPTY:
        return Decoded("empty", leaf("", "", "empty"), "", {})
    if classified.kind is PayloadKind.JSON:
        return decode_json_value(classified.value, ctx)
    if classified.kind is PayloadKind.TEXT:
        text = classified.text or ""
        decoded = TextDecoder().decode(data, ctx)
        return Decoded("text", decoded.root, text, decoded.fields)
    return Decoded("binary", leaf("", data, "bytes"), lambda: hexdump(data), {}, (), data[:40].hex(" "))
