"""The one place text from the network passes through on its way to a screen, a terminal or a log.

Topics, payload previews, nicks, chat text, reason strings, client ids and user properties are hostile: an
escape sequence in a topic could retitle or clear the user's terminal, a newline in a client id could forge a log
line, a bidirectional override could make one name look like another. Everything that shows such text calls one
of these functions first; Textual widgets then wrap the result in a ``rich.text.Text`` or ``Content`` (never in a
markup string), see ``mqttchat.ui.safe``.

* ``printable(text)`` for a screen or a terminal: each C0/C1 control character becomes its visible picture
  (``ESC`` → ``␛``, newline → ``␊``) and invisible format characters (bidirectional overrides, zero-width
  characters, separators) become a ``\\u…`` escape; nothing else changes, so ordinary text in any script is kept.
* ``loggable(text)`` for a log line: ASCII-safe backslash escapes, one line, backslashes doubled, so that a log
  line can neither be forged nor hide what was received.
* ``shorten(text, limit)`` cuts with a visible ``…`` mark.

This module imports nothing outside the standard library: the protocol layer, the broker, the CLI and the UI all
use it.
"""

from __future__ import annotations

import unicodedata

__all__ = ["ELLIPSIS", "loggable", "prepare", "printable", "printable_bytes", "shorten"]

ELLIPSIS = "…"

#: Unicode categories that are never shown as themselves: controls (Cc), format characters such as bidi overrides
#: and zero-width joiners (Cf), line/paragraph separators (Zl, Zp), surrogates (Cs, from surrogateescape), private
#: use (Co) and unassigned (Cn) code points, which a terminal may draw at any width or not at all.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def _picture(char: str, keep: str) -> str:
    code = ord(char)
    if char in keep:
        return char
    if code < 0x20:
        return chr(0x2400 + code)  # the Control Pictures block: ␀ … ␟
    if code == 0x7F:
        return "␡"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _escape(char: str) -> str:
    """A backslash escape for one character (an undecodable byte as the byte it was)."""
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    return char.encode("unicode_escape").decode("ascii")


#: The zero-width joiner stays: emoji sequences (👩‍💻) are built with it, and it cannot move or hide text.
_ZWJ = "\u200d"

#: The hidden code points below U+10000 (about 10,000), found once: asking each code point's category is what
#: costs (tens of milliseconds); each ``keep`` then makes its table from this list.
_HIDDEN: list[int] = []
_TABLES: dict[str, dict[int, str]] = {}


def _build_table(keep: str) -> dict[int, str]:
    """Translation table for every hidden code point below U+10000 (the rest is checked per character)."""
    if not _HIDDEN:
        category = unicodedata.category
        _HIDDEN.extend(
            code for code in range(0x10000) if category(chr(code)) in _HIDDEN_CATEGORIES and chr(code) != _ZWJ
        )
    return {code: _picture(chr(code), keep) for code in _HIDDEN if chr(code) not in keep}


def _table(keep: str) -> dict[int, str]:
    table = _TABLES.get(keep)
    if table is None:
        table = _TABLES[keep] = _build_table(keep)
    return table


def prepare(*keeps: str) -> None:
    """Make the translation tables for these ``keep`` arguments (and none) now, rather than at the first text
    that needs one: an application calls it at start-up, where the few tens of milliseconds it takes go unseen,
    instead of in the middle of a flood."""
    for keep in ("", *keeps):
        _table(keep)


def _is_clean(text: str) -> bool:
    # Fast path: printable ASCII, the common case for topics, client ids and JSON payloads.
    return text.isascii() and text.isprintable()


def printable(text: str, *, keep: str = "", limit: int | None = None) -> str:
    """``text`` made safe to show: control and invisible format characters replaced by visible stand-ins.

    Args:
        text: text that came from the network (or from a file someone else wrote).
        keep: characters to keep as they are, for example ``"\\n"`` where a multi-line view wants line breaks
            (the caller then owns what a newline does) or ``"\\t"``.
        limit: cut to at most this many characters, marking the cut with ``…``.
    """
    if not _is_clean(text):
        text = text.translate(_table(keep))
        if not text.isascii() and any(ord(c) > 0xFFFF for c in text):
            text = "".join(
                _picture(c, keep) if ord(c) > 0xFFFF and unicodedata.category(c) in _HIDDEN_CATEGORIES else c
                for c in text
            )
    if limit is not None:
        text = shorten(text, limit)
    return text


def printable_bytes(data: bytes, *, keep: str = "", limit: int | None = None) -> str:
    """Bytes from the network shown as text: UTF-8 where valid (``\\xNN`` otherwise), then ``printable``."""
    return printable(data.decode("utf-8", "surrogateescape"), keep=keep, limit=limit)


def loggable(text: str | bytes | None, *, limit: int | None = 200) -> str:
    """``text`` as one ASCII-safe log field: non-printable characters and backslashes escaped.

    ``None`` becomes ``-``; bytes are decoded as UTF-8 with ``\\xNN`` for invalid bytes. ``limit`` cuts long
    fields (a client id may be 65,535 bytes) with ``…``.
    """
    if text is None:
        return "-"
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    if not _is_clean(text):
        text = "".join(
            c if c.isprintable() and unicodedata.category(c) not in _HIDDEN_CATEGORIES else _escape(c) for c in text
        )
    if limit is not None:
        text = shorten(text, limit)
    return text


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, the last of them ``…`` when anything was cut."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    return text[: limit - 1] + ELLIPSIS
