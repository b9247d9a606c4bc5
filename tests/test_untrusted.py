"""The one rule for text from the network: nothing reaches a screen, a terminal or a log unneutralised."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttchat.untrusted import loggable, printable, printable_bytes, shorten

HOSTILE = [
    "t/\x1b]0;TITLE\x1b\\\x1b[2J",  # retitle the terminal, clear the screen
    "line\nforged: connected",  # a forged log line
    "\x9b31m",  # C1 CSI
    "admin\u202enimda",  # right-to-left override
    "zero\u200bwidth",
    "sep\u2028arator",
    "bell\x07",
    "\x00nul",
    "del\x7f",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_printable_leaves_no_control_or_format_character(text: str) -> None:
    shown = printable(text)
    assert all(ch.isprintable() for ch in shown), shown
    assert "\x1b" not in shown and "\n" not in shown


def test_printable_shows_controls_as_pictures_and_keeps_ordinary_text() -> None:
    assert printable("t/\x1b[2J") == "t/␛[2J"
    assert printable("a\nb") == "a␊b"
    assert printable("a\nb", keep="\n") == "a\nb"
    assert printable("Grüße 温度 🌡") == "Grüße 温度 🌡"
    assert printable("👩\u200d💻") == "👩\u200d💻"  # an emoji sequence stays whole
    assert printable("x\u202ey") == "x\\u202ey"
    assert printable("x\U000e0001y") == "x\\U000e0001y"
    assert printable("abcdef", limit=4) == "abc…"


def test_printable_bytes_shows_invalid_utf8_as_escapes() -> None:
    assert printable_bytes(b"ab\xff\x1bc") == "ab\\xff␛c"


def test_loggable_is_one_ascii_line() -> None:
    assert loggable("cli\nent") == "cli\\nent"
    assert loggable("a\\nb") == "a\\\\nb"  # a literal backslash-n cannot pass for an escaped newline
    assert loggable(b"\xff\x00") == "\\xff\\x00"
    assert loggable(None) == "-"
    assert loggable("é") == "é"
    assert loggable("x" * 300).endswith("…") and len(loggable("x" * 300)) == 200


def test_shorten_marks_the_cut() -> None:
    assert shorten("abc", 3) == "abc"
    assert shorten("abcd", 3) == "ab…"
    assert shorten("abcd", 0) == ""


@given(st.text())
def test_printable_never_lets_a_control_through(text: str) -> None:
    shown = printable(text)
    assert all(ch.isprintable() or unicodedata.category(ch) == "Zs" for ch in shown)


@given(st.text() | st.binary())
def test_loggable_is_always_one_printable_line(value: str | bytes) -> None:
    logged = loggable(value, limit=None)
    assert all(ch.isprintable() for ch in logged)
