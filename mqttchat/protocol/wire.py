"""The data representations of MQTT section 1.5: integers, variable byte integers, UTF-8 strings, binary data.

Decoders take ``(buf, pos, end)`` and return ``(value, new_pos)``; they never read past ``end`` and raise
:class:`MalformedPacket` on any violation. Encoders take the error class to raise so the same code serves
"we were asked to send something invalid" (:class:`LocalProtocolError`).
"""

from __future__ import annotations

import re

from mqttchat.protocol.constants import MAX_STRING_LENGTH, MAX_VARIABLE_INTEGER
from mqttchat.protocol.errors import LocalProtocolError, MalformedPacket, ProtocolError

# Code points the specification says SHOULD NOT appear (1.5.4): C0 and C1 control characters and the Unicode
# non-characters. A receiver MAY treat them as malformed; mqttchat does so only in strict mode. Compiled when strict
# mode first needs it: the class of 34 characters beyond the BMP takes the regular expression compiler about 5 ms,
# a twentieth of ``mqttchat pub``'s whole start.
_discouraged_pattern: re.Pattern[str] | None = None


def _has_discouraged(text: str) -> bool:
    global _discouraged_pattern
    if _discouraged_pattern is None:
        _discouraged_pattern = re.compile(
            "[\x01-\x1f\x7f-\x9f\ufdd0-\ufdef"
            + "".join(f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(17))
            + "]"
        )
    return _discouraged_pattern.search(text) is not None


#: C0 and C1 control characters (U+0001..U+001F, U+007F..U+009F). A server refuses topic names and filters holding
#: one (as mosquitto does): routed on, they would reach every subscriber's terminal and log.
_CONTROL = re.compile("[\x01-\x1f\x7f-\x9f]")


def has_control_character(text: str) -> bool:
    """Whether ``text`` holds a C0 or C1 control character other than U+0000 (which no string may hold)."""
    return _CONTROL.search(text) is not None


_VARINT_1 = [bytes((i,)) for i in range(128)]


def encode_varint(value: int) -> bytes:
    """Encode a variable byte integer (at most four bytes, 0..268,435,455)."""
    if value < 128:
        if value < 0:
            raise LocalProtocolError(f"variable byte integer {value} is negative")
        return _VARINT_1[value]
    if value > MAX_VARIABLE_INTEGER:
        raise LocalProtocolError(f"variable byte integer {value} exceeds {MAX_VARIABLE_INTEGER}")
    out = bytearray()
    while True:
        digit = value & 0x7F
        value >>= 7
        if value:
            out.append(digit | 0x80)
        else:
            out.append(digit)
            return bytes(out)


def decode_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Decode a variable byte integer; it must use at most four bytes and the minimum number of them."""
    value = 0
    shift = 0
    for i in range(4):
        if pos + i >= end:
            raise MalformedPacket("variable byte integer is truncated")
        byte = buf[pos + i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if byte == 0 and i > 0:
                raise MalformedPacket("variable byte integer is not minimally encoded")
            return value, pos + i + 1
        shift += 7
    raise MalformedPacket("variable byte integer is longer than four bytes")


def check_text(text: str, strict: bool = False) -> str | None:
    """Why ``text`` may not be an MQTT UTF-8 string, or None when it may."""
    if "\x00" in text:
        return "contains U+0000"
    if strict and _has_discouraged(text):
        return "contains a control character or a Unicode non-character"
    return None


def encode_string(text: str, error: type[ProtocolError] = LocalProtocolError) -> bytes:
    """Encode a UTF-8 string with its two-byte length prefix."""
    try:
        raw = text.encode()
    except UnicodeEncodeError:
        raise error(f"string {text[:40]!r} is not valid UTF-8 (it contains a surrogate)") from None
    if len(raw) > MAX_STRING_LENGTH:
        raise error(f"string of {len(raw)} bytes exceeds {MAX_STRING_LENGTH}")
    if b"\x00" in raw:
        raise error(f"string {text[:40]!r} contains U+0000")
    return len(raw).to_bytes(2, "big") + raw


def decode_string(buf: bytes, pos: int, end: int, strict: bool = False) -> tuple[str, int]:
    """Decode a length-prefixed UTF-8 string (well-formed, no U+0000; in strict mode no control characters)."""
    if pos + 2 > end:
        raise MalformedPacket("string length is truncated")
    stop = pos + 2 + ((buf[pos] << 8) | buf[pos + 1])
    if stop > end:
        raise MalformedPacket("string is longer than the packet")
    raw = buf[pos + 2 : stop]
    if b"\x00" in raw:
        raise MalformedPacket("string contains U+0000")
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise MalformedPacket(f"string is not well-formed UTF-8 ({exc.reason})") from None
    if strict and _has_discouraged(text):
        raise MalformedPacket("string contains a control character or a Unicode non-character")
    return text, stop


def encode_binary(data: bytes | bytearray, error: type[ProtocolError] = LocalProtocolError) -> bytes:
    """Encode binary data with its two-byte length prefix."""
    if len(data) > MAX_STRING_LENGTH:
        raise error(f"binary data of {len(data)} bytes exceeds {MAX_STRING_LENGTH}")
    return len(data).to_bytes(2, "big") + bytes(data)


def decode_binary(buf: bytes, pos: int, end: int) -> tuple[bytes, int]:
    if pos + 2 > end:
        raise MalformedPacket("binary data length is truncated")
    stop = pos + 2 + ((buf[pos] << 8) | buf[pos + 1])
    if stop > end:
        raise MalformedPacket("binary data is longer than the packet")
    return bytes(buf[pos + 2 : stop]), stop


def decode_u16(buf: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    if pos + 2 > end:
        raise MalformedPacket(f"{what} is truncated")
    return (buf[pos] << 8) | buf[pos + 1], pos + 2
