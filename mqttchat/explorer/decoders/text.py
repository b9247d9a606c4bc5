"""JSON, UTF-8 text and hex: the decoders a payload gets when nothing else is known about it."""

from __future__ import annotations

import json

from mqttchat.explorer.decoders.base import DecodeContext, Decoder
from mqttchat.explorer.decoders.result import Decoded, DecodeFailure, leaf, numeric_fields, render_diagnostic
from mqttchat.explorer.decoders.values import Budget, tree_of
from mqttchat.explorer.payload import hexdump

__all__ = ["HexDecoder", "JsonDecoder", "TextDecoder", "decode_json_value"]


def _utf8(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeFailure(f"not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x})") from None
    return text[1:] if text.startswith("\ufeff") else text


def decode_json_value(value: object, ctx: DecodeContext, fmt: str = "json") -> Decoded:
    """The tree, JSON rendering and numeric fields of a parsed JSON value (also used for a command's output)."""
    budget = Budget(ctx.limits.max_nodes, ctx.limits.max_depth)
    root = tree_of(value, budget)

    def text() -> str:
        try:
            return json.dumps(value, indent=2, ensure_ascii=False)
        except (RecursionError, ValueError, TypeError):
            return render_diagnostic(root)

    def summary() -> str:
        try:
            return json.dumps(value, ensure_ascii=False)[:1000]
        except (RecursionError, ValueError, TypeError):
            return " ".join(render_diagnostic(root, 0, 40).split("\n"))

    return Decoded(fmt, root, text, None, budget.notes(), summary)


class JsonDecoder(Decoder):
    """JSON in UTF-8 (a byte order mark is allowed)."""

    name = "json"

    def decode(self, data: bytes, ctx: DecodeContext) -> Decoded:
        text = _utf8(data)
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DecodeFailure(f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
        except RecursionError:
            raise DecodeFailure("JSON nested too deeply") from None
        except ValueError as exc:  # a number too long for Python's integer conversion
            raise DecodeFailure(f"not JSON: {exc}") from None
        return decode_json_value(value, ctx)


class TextDecoder(Decoder):
    """UTF-8 text; chosen by hand, invalid bytes are replaced (and counted) rather than refused."""

    name = "text"

    def decode(self, data: bytes, ctx: DecodeContext) -> Decoded:
        text = data.decode("utf-8", errors="replace")
        notes: tuple[str, ...] = ()
        bad = text.count("\ufffd") - data.count("\ufffd".encode())
        if bad > 0:
            notes = (f"{bad} bytes that are not UTF-8 shown as \ufffd",)
        return Decoded("text", leaf("", text, "text"), text, numeric_fields(leaf("", _number(text))), notes)


def _number(text: str) -> float | None:
    stripped = text.strip()
    if not stripped or len(stripped) > 64:
        return None
    try:
        return float(stripped)
    except ValueError:
        return None


class HexDecoder(Decoder):
    """The bytes as they are: a hex dump."""

    name = "hex"

    def decode(self, data: bytes, ctx: DecodeContext) -> Decoded:
        return Decoded("binary", leaf("", data, "bytes"), lambda: hexdump(data), {}, (), data[:40].hex(" "))
