"""Where each key of a TOML document is written: the line of every key, table and array item, by path.

tomllib returns plain dictionaries without positions, so the text, once tomllib has accepted it, is scanned a
second time with just enough TOML to tell keys from values: table headers (and [[array]] headers with their
indices), dotted and quoted keys, the four kinds of strings, arrays and inline tables. Values are skipped.

No maintained TOML library for Python gives positions: tomllib and tomli have none, tomlkit keeps comments and
layout but no line numbers (its issue #55 has asked for them since 2019); tomlkit-extras adds them on top of
tomlkit, at the price of two dependencies, a parser many times slower than tomllib on every read, and a young
project. This scanner is small, needs nothing but the standard library, and runs only when an error is found.
"""

from __future__ import annotations

import re
import tomllib
from bisect import bisect_right

from mqttchat.config.toml import BARE_KEY, KeyPath

__all__ = ["key_lines"]


class _ScanError(Exception):
    """The scanner met something it does not follow; the lines found until then are kept."""


_SCALAR = re.compile(r"[^,\]}\r\n#]*")


class _KeyLineScanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.lines: dict[KeyPath, int] = {}
        #: How many [[tables]] each array of tables has so far.
        self.arrays: dict[KeyPath, int] = {}
        self.line_starts = [0] + [match.end() for match in re.finditer("\n", text)]

    def line(self) -> int:
        return bisect_right(self.line_starts, self.pos)

    def at(self, token: str) -> bool:
        return self.text.startswith(token, self.pos)

    def expect(self, token: str) -> None:
        if not self.at(token):
            raise _ScanError(f"expected {token!r} at offset {self.pos}")
        self.pos += len(token)

    def skip(self, *, newlines: bool) -> None:
        """Skip blanks and comments, and line breaks too when newlines is true."""
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t" or (newlines and char in "\r\n"):
                self.pos += 1
            elif char == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            else:
                return

    def note(self, path: KeyPath, line: int, known: int = 0) -> None:
        """Record the line of path and of its prefixes longer than known (the first line seen wins)."""
        for length in range(known + 1, len(path) + 1):
            self.lines.setdefault(path[:length], line)

    def scan(self) -> dict[KeyPath, int]:
        table: KeyPath = ()
        while True:
            self.skip(newlines=True)
            if self.pos >= len(self.text):
                return self.lines
            line = self.line()
            if self.at("["):
                array = self.at("[[")
                self.pos += 2 if array else 1
                keys = self.key()
                self.skip(newlines=False)
                self.expect("]]" if array else "]")
                table = self.header(keys, array=array)
                self.note(table, line)
            else:
                self.pair(table, line)

    def header(self, keys: tuple[str, ...], *, array: bool) -> KeyPath:
        """A header's path: its names, each array of tables followed by the index of its latest table."""
        path: KeyPath = ()
        for key in keys[:-1]:
            path = (*path, key)
            count = self.arrays.get(path)
            if count:
                path = (*path, count - 1)
        path = (*path, keys[-1])
        if array:
            count = self.arrays.get(path, 0)
            self.arrays[path] = count + 1
            path = (*path, count)
        return path

    def pair(self, table: KeyPath, line: int) -> None:
        """``key = value`` inside table."""
        path = table + self.key()
        self.skip(newlines=False)
        self.expect("=")
        self.skip(newlines=False)
        self.note(path, line, len(table))
        self.value(path)

    def key(self) -> tuple[str, ...]:
        """A key, maybe dotted and quoted: ``a``, ``"a b".c``, ``'x' . y``."""
        keys: list[str] = []
        while True:
            self.skip(newlines=False)
            start = self.pos
            if self.at('"'):
                self.basic_string()
                keys.append(tomllib.loads(f"k = {self.text[start : self.pos]}")["k"])
            elif self.at("'"):
                self.literal_string()
                keys.append(self.text[start + 1 : self.pos - 1])
            else:
                match = BARE_KEY.match(self.text, self.pos)
                if match is None:
                    raise _ScanError(f"no key at offset {self.pos}")
                keys.append(match.group())
                self.pos = match.end()
            self.skip(newlines=False)
            if not self.at("."):
                return tuple(keys)
            self.pos += 1

    def basic_string(self) -> None:
        text = self.text
        self.pos += 1
        while text[self.pos] != '"':
            if text[self.pos] in "\r\n":
                raise _ScanError("line break in a string")
            self.pos += 2 if text[self.pos] == "\\" else 1
        self.pos += 1

    def literal_string(self) -> None:
        end = self.text.find("'", self.pos + 1)
        if end < 0:
            raise _ScanError("unterminated string")
        self.pos = end + 1

    def multiline_string(self, quotes: str) -> None:
        text = self.text
        self.pos += 3
        while not self.at(quotes):
            if self.pos >= len(text):
                raise _ScanError("unterminated string")
            self.pos += 2 if quotes == '"""' and text[self.pos] == "\\" else 1
        self.pos += 3
        # Up to two more quotes belong to the string: """a""""" is 'a""'.
        for _ in range(2):
            if self.at(quotes[0]):
                self.pos += 1

    def value(self, path: KeyPath) -> None:
        if self.at('"""') or self.at("'''"):
            self.multiline_string(self.text[self.pos : self.pos + 3])
        elif self.at('"'):
            self.basic_string()
        elif self.at("'"):
            self.literal_string()
        elif self.at("["):
            self.array(path)
        elif self.at("{"):
            self.inline_table(path)
        else:
            match = _SCALAR.match(self.text, self.pos)
            if match is None or match.end() == self.pos:
                raise _ScanError(f"no value at offset {self.pos}")
            self.pos = match.end()

    def array(self, path: KeyPath) -> None:
        self.pos += 1
        index = 0
        while True:
            self.skip(newlines=True)
            if self.at("]"):
                self.pos += 1
                return
            self.note((*path, index), self.line(), len(path))
            self.value((*path, index))
            index += 1
            self.skip(newlines=True)
            if self.at(","):
                self.pos += 1
            elif not self.at("]"):
                raise _ScanError(f"bad array at offset {self.pos}")

    def inline_table(self, path: KeyPath) -> None:
        self.pos += 1
        while True:
            self.skip(newlines=True)
            if self.at("}"):
                self.pos += 1
                return
            self.pair(path, self.line())
            self.skip(newlines=True)
            if self.at(","):
                self.pos += 1
            elif not self.at("}"):
                raise _ScanError(f"bad inline table at offset {self.pos}")


def key_lines(text: str) -> dict[KeyPath, int]:
    """The line where each key, table and array item of a TOML document is first written.

    Paths follow tomllib's nesting, with indices for array items: ``("profiles", "local", "subscriptions", 1)``.
    A document the scanner cannot follow to its end keeps the lines found before that point.
    """
    scanner = _KeyLineScanner(text)
    try:
        return scanner.scan()
    except (_ScanError, IndexError, tomllib.TOMLDecodeError):
        return scanner.lines
