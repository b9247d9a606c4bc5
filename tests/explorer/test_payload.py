"""Payload decoding for display."""

from __future__ import annotations

import pytest

from mqttchat.explorer.payload import PayloadKind, decode, diff, hexdump, number, numeric_fields, pretty, preview


@pytest.mark.parametrize(
    ("payload", "kind"),
    [(b"", PayloadKind.EMPTY), (b'{"a": 1}', PayloadKind.JSON), (b"[1, 2]", PayloadKind.JSON),
     (b"21.5", PayloadKind.JSON), (b"true", PayloadKind.JSON), (b"hello world", PayloadKind.TEXT),
     (b"{not json", PayloadKind.TEXT),
     (b"\x00\x01\xff", PayloadKind.BINARY), (b"ab\x00cd", PayloadKind.BINARY), ("ünï".encode(), PayloadKind.TEXT)],
)  # fmt: skip
def test_decode(payload: bytes, kind: PayloadKind) -> None:
    assert decode(payload).kind is kind


def test_preview() -> None:
    assert preview(b"line1\nline2") == "line1⏎line2"
    assert preview(b"x" * 100, 10) == "x" * 9 + "…"
    assert preview(b"\x00\x01\x02") == "00 01 02"
    assert preview(bytes(100), 30).endswith("…")
    assert preview("é".encode() * 200, 20).endswith("…")


def test_pretty_and_hexdump() -> None:
    kind, text = pretty(b'{"b":[1,2],"a":"x"}')
    assert kind is PayloadKind.JSON and text.splitlines()[1] == '  "b": ['
    assert pretty(b"\x00\xffAB")[1] == hexdump(b"\x00\xffAB")
    assert hexdump(bytes(range(20))).splitlines()[1].startswith("00000010  10 11 12 13")
    assert "|....|" in hexdump(b"\x00\x01\x02\x03")


def test_numbers() -> None:
    assert number(b"21.5") == 21.5
    assert number(b" -3 ") == -3.0
    assert number(b"true") == 1.0
    assert number(b"nan") is None and number(b"abc") is None
    payload = b'{"env": {"temp": 21.5, "flags": [true, 7]}, "name": "x", "s": "42"}'
    assert number(payload, "env.temp") == 21.5
    assert number(payload, "env.flags.1") == 7.0
    assert number(payload, "env.flags.0") == 1.0
    assert number(payload, "s") == 42.0
    assert number(payload, "name") is None and number(payload, "missing") is None
    assert numeric_fields(payload) == ["env.temp", "env.flags.1"]


def test_diff_shows_changed_lines() -> None:
    before = b'{"temp": 21.5, "hum": 40}'
    after = b'{"temp": 22.0, "hum": 40}'
    lines = diff(before, after)
    assert '-  "temp": 21.5,' in lines and '+  "temp": 22.0,' in lines
    assert diff(before, before) == []


def test_json_nested_deeper_than_the_parser_goes_is_text_not_a_crash() -> None:
    """``json.loads`` raises RecursionError (not ValueError) for very deep nesting: a hostile payload of brackets
    must not crash the message view, the history plot or the diff."""
    payload = b"[" * 100_000
    assert decode(payload).kind is PayloadKind.TEXT
    assert pretty(payload)[0] is PayloadKind.TEXT
    assert number(payload, "a") is None
    assert numeric_fields(payload) == []
    assert diff(payload, b"[]")
