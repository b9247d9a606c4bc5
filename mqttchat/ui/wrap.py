"""Word wrapping in terminal cells: where a text breaks into lines of a given width (pure functions, no widget).

The chat log counts a message's lines with :func:`wrap_breaks` when it lays a room out and breaks the styled text
with the same offsets when it draws it, so a message's height and its drawing always agree.
"""

from __future__ import annotations

import re

from rich.cells import cell_len

__all__ = ["wrap_breaks"]


def wrap_breaks(text: str, width: int) -> list[int]:
    """Where ``text`` breaks into lines of at most ``width`` cells: at spaces (the spaces stay at the end of the
    line, where they are not drawn), at newlines, and inside words longer than a line. Returns the offset of
    each line after the first."""
    if "\n" not in text:
        if text.isascii():
            return [] if len(text) <= width else _ascii_breaks(text, 0, len(text), width)
        return [] if cell_len(text) <= width else _cell_breaks(text, 0, len(text), width)
    breaks: list[int] = []
    start = 0
    for paragraph in text.split("\n"):
        end = start + len(paragraph)
        if start:
            breaks.append(start)
        if paragraph.isascii():
            if len(paragraph) > width:
                breaks.extend(_ascii_breaks(text, start, end, width))
        elif cell_len(paragraph) > width:
            breaks.extend(_cell_breaks(text, start, end, width))
        start = end + 1
    return breaks


def _ascii_breaks(text: str, start: int, end: int, width: int) -> list[int]:
    """Greedy word wrap of ``text[start:end]`` (one cell per character): a few C-level searches per line."""
    breaks: list[int] = []
    find = text.rfind
    line = start
    while end - line > width:
        cut = find(" ", line + 1, line + width + 1)
        if cut <= line:
            line += width  # no space to break at: fold the word
        else:
            line = cut + 1
            while line < end and text[line] == " ":
                line += 1  # the spaces at a break stay on the line before
            if line >= end:
                break
        breaks.append(line)
    return breaks


_WORDS = re.compile(r" +|[^ ]+")


def _cell_breaks(text: str, start: int, end: int, width: int) -> list[int]:
    """Greedy word wrap of ``text[start:end]`` measured in cells (wide characters take two)."""
    breaks: list[int] = []
    column = 0
    for match in _WORDS.finditer(text, start, end):
        token = match.group()
        begin = match.start()
        size = cell_len(token)
        if token[0] == " ":
            column += size  # may pass the edge: trailing spaces are not drawn
            continue
        if column and column + size > width:
            breaks.append(begin)
            column = 0
        if column + size <= width:
            column += size
            continue
        for index, char in enumerate(token):  # a word longer than the line: fold it
            char_size = cell_len(char)
            if column + char_size > width and column:
                breaks.append(begin + index)
                column = 0
            column += char_size
    return breaks
