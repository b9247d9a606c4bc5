"""gzip, zlib, raw deflate and base64: transforms whose output the next step decodes. Decompression stops at
``DecodeLimits.max_output`` bytes, so a decompression bomb costs that much memory at most."""

from __future__ import annotations

import base64
import binascii
import re
import zlib

from mqttchat.explorer.decoders.base import DecodeContext, Decoder
from mqttchat.explorer.decoders.result import DecodeFailure
from mqttchat.labels import size_label

__all__ = [
    "Base64Decoder",
    "DeflateDecoder",
    "GzipDecoder",
    "ZlibDecoder",
    "inflate",
    "is_gzip",
    "is_zlib",
]

GZIP_MAGIC = b"\x1f\x8b\x08"
#: Input fed to the decompressor at a time: small enough that one call cannot overshoot the output cap by much.
_CHUNK = 64 * 1024


def is_gzip(data: bytes) -> bool:
    """Whether data starts as a gzip stream does (magic bytes and the deflate method)."""
    return data.startswith(GZIP_MAGIC)


def is_zlib(data: bytes) -> bool:
    """Whether data starts with a zlib header: deflate with a window of at most 32 KiB, and a valid check value."""
    return len(data) >= 2 and data[0] & 0x0F == 8 and data[0] >> 4 <= 7 and (data[0] << 8 | data[1]) % 31 == 0


def inflate(data: bytes, wbits: int, limit: int, what: str) -> bytes:
    """Decompress data (several concatenated gzip members too) producing at most limit bytes.

    Raises:
        DecodeFailure: the data is not valid, is cut short, or would decompress to more than limit bytes.
    """
    out = bytearray()
    rest = data
    while True:
        decompressor = zlib.decompressobj(wbits)
        pending = memoryview(rest)
        try:
            while True:
                if decompressor.unconsumed_tail:
                    chunk = decompressor.decompress(decompressor.unconsumed_tail, limit - len(out) + 1)
                elif pending:
                    chunk = decompressor.decompress(pending[:_CHUNK], limit - len(out) + 1)
                    pending = pending[_CHUNK:]
                else:
                    break
                out += chunk
                if len(out) > limit:
                    raise DecodeFailure(f"{what} data decompresses to more than {size_label(limit)}: stopped there")
                if decompressor.eof:
                    break
        except zlib.error as exc:
            raise DecodeFailure(f"not {what} data: {exc}") from None
        if not decompressor.eof:
            raise DecodeFailure(f"{what} data is cut short (the stream does not end)")
        rest = bytes(decompressor.unused_data) + bytes(pending)
        if not (wbits > 16 and is_gzip(rest)):
            break
    if rest.strip(b"\x00"):
        raise DecodeFailure(f"{len(rest)} bytes follow the {what} data")
    return bytes(out)


class GzipDecoder(Decoder):
    name = "gzip"
    transform = True

    def decode(self, data: bytes, ctx: DecodeContext) -> bytes:
        if not is_gzip(data):
            raise DecodeFailure("not gzip data (it does not start with 1f 8b 08)")
        return inflate(data, 16 + zlib.MAX_WBITS, ctx.limits.max_output, "gzip")


class ZlibDecoder(Decoder):
    name = "zlib"
    transform = True

    def decode(self, data: bytes, ctx: DecodeContext) -> bytes:
        return inflate(data, zlib.MAX_WBITS, ctx.limits.max_output, "zlib")


class DeflateDecoder(Decoder):
    """Raw deflate (no header), as some devices and WebSocket extensions send it."""

    name = "deflate"
    transform = True

    def decode(self, data: bytes, ctx: DecodeContext) -> bytes:
        return inflate(data, -zlib.MAX_WBITS, ctx.limits.max_output, "deflate")


_BASE64 = re.compile(rb"[A-Za-z0-9+/\-_]*={0,2}")
_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_=")


class Base64Decoder(Decoder):
    """Base64, standard or URL-safe alphabet, padding optional, line breaks and blanks ignored."""

    name = "base64"
    transform = True

    def decode(self, data: bytes, ctx: DecodeContext) -> bytes:
        compact = b"".join(data.split())
        if not _BASE64.fullmatch(compact):
            bad = next((byte for byte in compact if byte not in _ALPHABET), None)
            if bad is None:
                raise DecodeFailure("not base64: '=' padding in the middle")
            raise DecodeFailure(f"not base64: byte {bad:#04x} is not in its alphabet")
        if len(compact) * 3 // 4 > ctx.limits.max_output:
            raise DecodeFailure(f"base64 data decodes to more than {size_label(ctx.limits.max_output)}")
        compact = compact.rstrip(b"=")
        if len(compact) % 4 == 1:
            raise DecodeFailure("not base64: its length is not possible (one character too many or too few)")
        padded = compact + b"=" * (-len(compact) % 4)
        try:
            if b"-" in padded or b"_" in padded:
                return base64.urlsafe_b64decode(padded)
            return base64.b64decode(padded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DecodeFailure(f"not base64: {exc}") from None
