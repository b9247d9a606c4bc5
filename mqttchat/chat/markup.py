"""Inline formatting of chat text, without a screen: ``**bold**``, ``*italic*``/``_italic_``, ```code```, links
and mentions become (text, kind) pieces that the chat view styles.

The markers are the ones people already type in chat apps; anything that does not pair up stays as typed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

#: Kinds of pieces: "" (plain), "bold", "italic", "code", "link", "mention".
Piece = tuple[str, str]

_TOKENS = re.compile(
    r"(?P<code>`[^`\n]+`)"
    r"|(?P<bold>\*\*(?=\S)[^*\n]+?(?<=\S)\*\*)"
    # The look-behinds come after the first character, so that every marker alternative starts with a literal
    # and the regex engine can skip to the next marker character quickly.
    r"|(?P<star>\*(?<![\w*]\*)(?=[^\s*])[^*\n]*?(?<=[^\s*])\*(?![\w*]))"
    r"|(?P<under>_(?<![\w_]_)(?=[^\s_])[^_\n]*?(?<=[^\s_])_(?![\w_]))"
    # A URL ends at a space, quote, angle bracket or square bracket (an IPv6 host's brackets come right after
    # "://"), so that "[link=URL]text[/link]" typed by someone links no more than the URL that is shown.
    r"|(?P<link>\b(?:https?|mqtts?|wss?)://(?:\[[0-9A-Fa-f:.]+\][^\s<>\"'\[\]]*|[^\s<>\"'\[\]]+))"
)
#: The same markers without links: every alternative starts with a marker character, so scanning is quick.
_MARKERS = re.compile(_TOKENS.pattern.rsplit("|(?P<link>", 1)[0])
#: Trailing characters that end a sentence rather than a URL.
_URL_TRAILERS = ".,;:!?)]}'\""


@lru_cache(maxsize=64)
def _mention_pattern(names: tuple[str, ...]) -> re.Pattern[str] | None:
    words = [re.escape(n) for n in names if n]
    if not words:
        return None
    return re.compile(r"(?<![\w@])@?(?:" + "|".join(words) + r")(?![\w])", re.IGNORECASE)


def mentions(text: str, names: Iterable[str]) -> bool:
    """Whether ``text`` names any of ``names`` as a whole word (``alice`` or ``@alice``, any case)."""
    pattern = _mention_pattern(tuple(sorted(set(names))))
    return pattern is not None and pattern.search(text) is not None


def _split_mentions(text: str, pattern: re.Pattern[str] | None) -> list[Piece]:
    if pattern is None or not text:
        return [(text, "")] if text else []
    pieces: list[Piece] = []
    at = 0
    for match in pattern.finditer(text):
        if match.start() > at:
            pieces.append((text[at : match.start()], ""))
        pieces.append((match.group(), "mention"))
        at = match.end()
    if at < len(text):
        pieces.append((text[at:], ""))
    return pieces


def _unmark(match: re.Match[str]) -> str:
    token = match.group()
    return token[2:-2] if match.lastgroup == "bold" else token[1:-1]


def plain(text: str) -> str:
    """The text :func:`inline` shows, without its markers (the same as joining its pieces, only faster)."""
    if "*" not in text and "_" not in text and "`" not in text:
        return text
    if "://" in text:  # a link's characters are never markers: let inline() decide
        return "".join(piece for piece, _ in inline(text))
    return _MARKERS.sub(_unmark, text)


def inline(text: str, names: Iterable[str] = ()) -> list[Piece]:
    """Split ``text`` into styled pieces; ``names`` (your nick, your identity) are marked as mentions."""
    pattern = _mention_pattern(tuple(sorted(set(names))))
    pieces: list[Piece] = []
    at = 0
    for match in _TOKENS.finditer(text):
        kind = match.lastgroup
        token = match.group()
        end = match.end()
        if kind == "link":
            stripped = token.rstrip(_URL_TRAILERS)
            if token.endswith(")") and "(" in stripped:  # a URL with parentheses, as on Wikipedia
                stripped += ")"
            end = match.start() + len(stripped)
            token = stripped
        pieces.extend(_split_mentions(text[at : match.start()], pattern))
        if kind == "code":
            pieces.append((token[1:-1], "code"))
        elif kind == "bold":
            pieces.append((token[2:-2], "bold"))
        elif kind in ("star", "under"):
            pieces.append((token[1:-1], "italic"))
        else:
            pieces.append((token, "link"))
        at = end
    pieces.extend(_split_mentions(text[at:], pattern))
    return pieces
