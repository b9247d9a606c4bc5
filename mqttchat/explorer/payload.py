"""Payload decoding for display: JSON, text or binary; previews, hex dumps, numbers for plots, diffs."""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any


class PayloadKind(Enum):
    EMPTY = "empty"
    JSON = "json"
    TEXT = "text"
    BINARY = "binary"


_JSON_START = frozenset(b'{["-0123456789tfn')
_NUMBER = re.compile(rb"\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*\Z")


@dataclass(frozen=True, slots=True)
class Decoded:
    kind: PayloadKind
    #: The parsed JSON value (kind JSON), the text (TEXT), or None.
    value: Any
    text: str | None


def decode(payload: bytes) -> Decoded:
    """What a payload is: JSON (objects, arrays, numbers, ...), UTF-8 text, or binary."""
    if not payload:
        return Decoded(PayloadKind.EMPTY, None, "")
    try:
        text = payload.decode()
    except UnicodeDecodeError:
        return Decoded(PayloadKind.BINARY, None, None)
    stripped = payload.lstrip()
    if stripped and stripped[0] in _JSON_START:
        try:
            return Decoded(PayloadKind.JSON, json.loads(text), text)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            pass
    if not _printable(text):
        return Decoded(PayloadKind.BINARY, None, None)
    return Decoded(PayloadKind.TEXT, text, text)


def _printable(text: str) -> bool:
    return all(c.isprintable() or c in "\n\r\t" for c in text)


def preview(payload: bytes, width: int = 60) -> str:
    """One line for a table cell: text (newlines as ⏎), compact JSON, or hex for binary; ``…`` when cut."""
    if not payload:
        return ""
    head = payload[: width * 4]
    try:
        text = head.decode()
    except UnicodeDecodeError:
        try:
            text = head[:-3].decode() if len(payload) > len(head) else None  # type: ignore[assignment]
        except UnicodeDecodeError:
            text = None
    if text is None or not _printable(text):
        shown = payload[: width // 3].hex(" ")
        return shown + (" …" if len(payload) > width // 3 else "")
    one_line = text.replace("\r", "").replace("\n", "⏎").replace("\t", " ")
    if len(one_line) > width or len(payload) > len(head):
        return one_line[: width - 1] + "…"
    return one_line


def pretty(payload: bytes) -> tuple[PayloadKind, str]:
    """The full rendering of a payload: indented JSON, the text itself, or a hex dump."""
    decoded = decode(payload)
    if decoded.kind is PayloadKind.JSON:
        return decoded.kind, json.dumps(decoded.value, indent=2, ensure_ascii=False)
    if decoded.kind is PayloadKind.BINARY:
        return decoded.kind, hexdump(payload)
    return decoded.kind, decoded.text or ""


def hexdump(data: bytes, width: int = 16) -> str:
    """``offset  hex bytes  |ascii|`` lines."""
    lines = []
    for offset in range(0, len(data), width):
        chunk = data[offset : offset + width]
        hex_part = " ".join(f"{b:02x}" for b in chunk)
        ascii_part = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:08x}  {hex_part:<{width * 3 - 1}}  |{ascii_part}|")
    return "\n".join(lines)


def number(payload: bytes, field: str | None = None) -> float | None:
    """A number from the payload: the payload itself, or ``field`` of a JSON object (``a.b.0`` paths)."""
    if field is None:
        if len(payload) <= 64 and _NUMBER.match(payload):
            parsed = float(payload)
            return parsed if math.isfinite(parsed) else None
        if payload[:1] in (b"t", b"f") and payload.strip() in (b"true", b"false"):
            return 1.0 if payload.strip() == b"true" else 0.0
        return None
    decoded = decode(payload)
    if decoded.kind is not PayloadKind.JSON:
        return None
    value: Any = decoded.value
    for part in field.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        return number(value.encode())
    return None


def numeric_fields(payload: bytes, limit: int = 50) -> list[str]:
    """Paths of the numeric fields of a JSON payload (for choosing what to plot)."""
    decoded = decode(payload)
    if decoded.kind is not PayloadKind.JSON:
        return []
    out: list[str] = []

    def walk(value: Any, path: str) -> None:
        if len(out) >= limit:
            return
        if isinstance(value, bool):
            return
        if isinstance(value, int | float):
            out.append(path)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{key}" if path else str(key))
        elif isinstance(value, list):
            for i, item in enumerate(value[:20]):
                walk(item, f"{path}.{i}" if path else str(i))

    walk(decoded.value, "")
    return out


def diff(previous: bytes, current: bytes, context: int = 1) -> list[str]:
    """A unified diff of two payloads' renderings (JSON pretty-printed first, so field changes show per line)."""
    _, a = pretty(previous)
    _, b = pretty(current)
    if a == b:
        return []
    return [
        line.rstrip("\n")
        for line in difflib.unified_diff(a.splitlines(), b.splitlines(), "previous", "current", n=context, lineterm="")
    ][2:]
