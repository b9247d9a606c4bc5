"""Payloads for the publish side: bytes written in hex or base64, read from a file, or JSON sent as CBOR or
MessagePack. (Sparkplug B writes are in :mod:`mqttchat.explorer.decoders.sparkplug`.)"""

from __future__ import annotations

import base64
import binascii
import json
import re
from pathlib import Path
from typing import Any

__all__ = [
    "ENCODINGS",
    "MAX_FILE_PAYLOAD",
    "encode_payload_text",
    "from_base64",
    "from_file",
    "from_hex",
    "json_to_cbor",
    "json_to_msgpack",
]

#: The largest file read as a payload (MQTT's own limit is 256 MiB; brokers allow far less).
MAX_FILE_PAYLOAD = 256 * 1024 * 1024
#: How a publish pane's text can be turned into a payload.
ENCODINGS: dict[str, str] = {
    "text": "the text as UTF-8",
    "hex": "bytes written in hex (blanks, colons and 0x allowed)",
    "base64": "bytes written in base64",
    "cbor": "JSON sent as CBOR",
    "msgpack": "JSON sent as MessagePack",
    "file": "the contents of a file (the text is its path)",
}

_HEX_NOISE = re.compile(r"0x|[\s:,_-]", re.IGNORECASE)


def from_hex(text: str) -> bytes:
    """Bytes from hex: ``01 ff``, ``01:ff``, ``0x01 0xff``, ``01ff``.

    Raises:
        ValueError: not hex, or an odd number of digits (the message says where).
    """
    digits = _HEX_NOISE.sub("", text)
    bad = next((i for i, char in enumerate(digits) if char not in "0123456789abcdefABCDEF"), None)
    if bad is not None:
        raise ValueError(f"not hex: {digits[bad]!r} is not a hex digit")
    if len(digits) % 2:
        raise ValueError(f"not hex: {len(digits)} digits, an odd number (two make a byte)")
    return bytes.fromhex(digits)


def from_base64(text: str) -> bytes:
    """Bytes from base64 (standard or URL-safe, padding optional, blanks ignored).

    Raises:
        ValueError: not base64.
    """
    compact = "".join(text.split()).rstrip("=")
    if len(compact) % 4 == 1:
        raise ValueError("not base64: its length is not possible")
    padded = compact + "=" * (-len(compact) % 4)
    try:
        if "-" in padded or "_" in padded:
            return base64.b64decode(padded, altchars=b"-_", validate=True)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64: {exc}") from None


def from_file(path: str | Path, limit: int = MAX_FILE_PAYLOAD) -> bytes:
    """A file's bytes, at most limit of them.

    Raises:
        ValueError: the file cannot be read or is larger than limit (the message says which).
    """
    file = Path(path).expanduser()
    try:
        with file.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ValueError(f"cannot read {file}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise ValueError(f"{file} is larger than {limit} bytes")
    return data


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise ValueError("not JSON that can be sent: nested too deeply") from None


def json_to_cbor(text: str) -> bytes:
    """JSON text as CBOR (objects become maps with text keys; numbers keep their integer or float type).

    Raises:
        ValueError: not JSON.
    """
    import cbor2

    try:
        return bytes(cbor2.dumps(_json(text)))
    except (cbor2.CBOREncodeError, RecursionError) as exc:
        raise ValueError(f"cannot encode as CBOR: {exc}") from None


def json_to_msgpack(text: str) -> bytes:
    """JSON text as MessagePack.

    Raises:
        ValueError: not JSON, or a number MessagePack cannot hold (beyond 64 bits).
    """
    import msgpack

    try:
        packed = msgpack.packb(_json(text), use_bin_type=True)
    except (OverflowError, ValueError, TypeError) as exc:
        raise ValueError(f"cannot encode as MessagePack: {exc}") from None
    assert isinstance(packed, bytes)
    return packed


def encode_payload_text(text: str, encoding: str) -> bytes:
    """The payload a publish pane's text stands for, by one of :data:`ENCODINGS`.

    Raises:
        ValueError: the text is not of that encoding, or the encoding is unknown.
    """
    if encoding == "text":
        return text.encode()
    if encoding == "hex":
        return from_hex(text)
    if encoding == "base64":
        return from_base64(text)
    if encoding == "cbor":
        return json_to_cbor(text)
    if encoding == "msgpack":
        return json_to_msgpack(text)
    if encoding == "file":
        return from_file(text.strip())
    raise ValueError(f"unknown payload encoding {encoding!r} (one of {', '.join(ENCODINGS)})")
