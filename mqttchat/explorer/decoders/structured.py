"""CBOR (with ``cbor2``) and MessagePack (with ``msgpack``), one item or a sequence of items.

Both libraries refuse lengths longer than the payload and nesting deeper than a limit. What they do not guard
against is a map whose keys were chosen to collide in Python's hash tables (integers, arrays as keys), which makes
decoding quadratic: maps are decoded with text and byte-string keys only first, and with other keys only in
payloads up to ``DecodeLimits.max_relaxed_keys_payload`` bytes.
"""

from __future__ import annotations

import io
from typing import Any

from mqttchat.explorer.decoders.base import DecodeContext, Decoder
from mqttchat.explorer.decoders.result import Decoded, DecodeFailure, render_diagnostic
from mqttchat.explorer.decoders.values import Budget, tree_of
from mqttchat.labels import size_label

__all__ = ["CborDecoder", "MsgpackDecoder"]

#: Items of a CBOR or MessagePack sequence decoded at most.
MAX_SEQUENCE = 10_000


def _decoded(fmt: str, items: list[Any], ctx: DecodeContext) -> Decoded:
    budget = Budget(ctx.limits.max_nodes, ctx.limits.max_depth)
    root = tree_of(items[0] if len(items) == 1 else items, budget)
    notes = budget.notes()
    if len(items) > 1:
        notes = (f"a sequence of {len(items)} items", *notes)
    return Decoded(
        fmt,
        root,
        lambda: render_diagnostic(root),
        None,
        notes,
        lambda: " ".join(render_diagnostic(root, 0, 40).split("\n")),
    )


def _relaxed_refused(fmt: str, ctx: DecodeContext, size: int) -> DecodeFailure:
    return DecodeFailure(
        f"{fmt} maps with keys other than text or bytes are decoded only in payloads up to "
        f"{size_label(ctx.limits.max_relaxed_keys_payload)} (this one has {size_label(size)})"
    )


class CborDecoder(Decoder):
    """CBOR (RFC 8949); several items in a row are a CBOR sequence (RFC 8742)."""

    name = "cbor"

    def decode(self, data: bytes, ctx: DecodeContext) -> Decoded:
        import cbor2

        if not data:
            raise DecodeFailure("no CBOR item: the payload is empty")
        try:
            items = self._items(data, ctx, strict=True)
        except cbor2.CBORDecodeError as exc:
            if "must be a text string or byte string" not in str(exc):
                raise DecodeFailure(f"not CBOR: {exc}") from None
            if len(data) > ctx.limits.max_relaxed_keys_payload:
                raise _relaxed_refused("CBOR", ctx, len(data)) from None
            try:
                items = self._items(data, ctx, strict=False)
            except cbor2.CBORDecodeError as exc2:
                raise DecodeFailure(f"not CBOR: {exc2}") from None
        return _decoded("cbor", items, ctx)

    @staticmethod
    def _items(data: bytes, ctx: DecodeContext, *, strict: bool) -> list[Any]:
        import cbor2

        stream = io.BytesIO(data)
        decoder = cbor2.CBORDecoder(stream, strict_hashable_types=strict, max_depth=min(ctx.limits.max_depth, 400))
        items: list[Any] = []
        while stream.tell() < len(data):
            if len(items) >= MAX_SEQUENCE:
                raise DecodeFailure(f"a CBOR sequence of more than {MAX_SEQUENCE} items")
            try:
                items.append(decoder.decode())
            except (ValueError, TypeError, OverflowError, LookupError) as exc:
                # A tag whose content does not fit it (a date out of range, a bad UUID), an unhashable key.
                if isinstance(exc, cbor2.CBORDecodeError):
                    raise
                raise DecodeFailure(f"not CBOR: {exc}") from None
        return items


class MsgpackDecoder(Decoder):
    """MessagePack; several items in a row are shown as a sequence. Text that is not UTF-8 (old MessagePack
    kept bytes in its ``raw`` type) is shown with ``\\x..`` escapes."""

    name = "msgpack"

    def decode(self, data: bytes, ctx: DecodeContext) -> Decoded:
        if not data:
            raise DecodeFailure("no MessagePack item: the payload is empty")
        try:
            items = self._items(data, strict=True)
        except _KeyRefused:
            if len(data) > ctx.limits.max_relaxed_keys_payload:
                raise _relaxed_refused("MessagePack", ctx, len(data)) from None
            items = self._items(data, strict=False)
        return _decoded("msgpack", items, ctx)

    @staticmethod
    def _items(data: bytes, *, strict: bool) -> list[Any]:
        import msgpack

        unpacker = msgpack.Unpacker(
            None,
            raw=False,
            strict_map_key=strict,
            unicode_errors="backslashreplace",
            max_buffer_size=max(len(data), 1),
        )
        unpacker.feed(data)
        items: list[Any] = []
        try:
            for item in unpacker:
                items.append(item)
                if len(items) > MAX_SEQUENCE:
                    raise DecodeFailure(f"a MessagePack sequence of more than {MAX_SEQUENCE} items")
            unpacker.read_bytes(1)
        except ValueError as exc:
            if "map key" in str(exc):
                raise _KeyRefused from None
            if "incomplete" in str(exc):
                raise DecodeFailure("MessagePack data is cut short") from None
            raise DecodeFailure(f"not MessagePack: {str(exc) or type(exc).__name__}") from None
        except TypeError as exc:  # an array or a map as a map key
            raise DecodeFailure(f"not MessagePack that can be shown: {exc}") from None
        except (msgpack.exceptions.UnpackException, OverflowError) as exc:
            raise DecodeFailure(f"not MessagePack: {type(exc).__name__} {exc}".strip()) from None
        if not items:
            raise DecodeFailure("MessagePack data is cut short")
        return items


class _KeyRefused(Exception):
    """A map key other than text or bytes, in strict mode."""
