"""The TOML layer shared by every configuration file (the app's profiles, settings and templates, the broker's
TOML file, and the password and ACL files where it fits): reading text, parsing TOML, converting values, errors
that name the file, the line and the key (with "did you mean"), and atomic writes.

tomllib parses (it gives no positions); :mod:`mqttchat.config.keylines` finds the line of each key when an error
is to be reported. Nothing here knows a particular file: readers of each file subclass :class:`TomlReader`. This
module imports no other part of mqttchat, so the broker and the app can both use it.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import secrets
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

__all__ = [
    "BARE_KEY",
    "ConfigError",
    "Invalid",
    "KeyPath",
    "TomlReader",
    "as_boolean",
    "as_integer",
    "as_optional_string",
    "as_string",
    "as_strings",
    "did_you_mean",
    "dotted",
    "file_name",
    "integer_in",
    "parse_toml",
    "portable_path",
    "read_document",
    "read_text",
    "show",
    "write_atomically",
]

_T = TypeVar("_T")
#: Where a value sits in a TOML document: table names, key names and array indices.
KeyPath = tuple[str | int, ...]
#: A key that needs no quotes.
BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class ConfigError(Exception):
    """A configuration file is wrong. The message names the file, the line (when known) and the key.

    ``str(error)`` reads like ``broker.toml:12: max_queued_messages: must be an integer >= 0, not 'many'``.
    """

    def __init__(self, file: str | Path | None, line: int | None, key: str | None, message: str) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.key = key
        self.detail = message
        where = self.file or "<config>"
        if line is not None:
            where += f":{line}"
        text = f"{where}: {key}: {message}" if key else f"{where}: {message}"
        super().__init__(text)


# --------------------------------------------------------------------------------------------------------------
# Files


@overload
def read_text(
    path: Path,
    *,
    what: str = ...,
    name: str | Path | None = ...,
    missing_ok: Literal[False] = ...,
    strip_bom: bool = ...,
) -> str: ...
@overload
def read_text(
    path: Path, *, what: str = ..., name: str | Path | None = ..., missing_ok: Literal[True], strip_bom: bool = ...
) -> str | None: ...
def read_text(
    path: Path, *, what: str = "file", name: str | Path | None = None, missing_ok: bool = False, strip_bom: bool = False
) -> str | None:
    """A configuration file's text, decoded as UTF-8.

    Args:
        what: what the file is, for the error when it cannot be read ("cannot read the password file: …").
        name: how errors name the file (as the user wrote it, say); the path when None.
        missing_ok: None for a file that does not exist, instead of an error.
        strip_bom: drop a byte order mark at the start (editors on Windows write one; read as part of the first
            line it would, in a password file, quietly rename the file's first user).

    Raises:
        ConfigError: the file cannot be read (with the system's reason), or is not UTF-8 (with the line).
    """
    shown = path if name is None else name
    try:
        data = path.read_bytes()
    except OSError as exc:
        if missing_ok and isinstance(exc, FileNotFoundError):
            return None
        raise ConfigError(shown, None, None, f"cannot read the {what}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(shown, line, None, f"not UTF-8 text (byte {exc.start})") from None
    return text.removeprefix("\ufeff") if strip_bom else text


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def parse_toml(text: str, file: str | Path) -> dict[str, Any]:
    """The document, as tomllib reads it.

    Raises:
        ConfigError: the text is not TOML (with the line, and the column in the message).
    """
    import tomllib  # here: a command that reads no TOML file does not pay for the parser

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        line: int | None = None
        match = _TOML_POSITION.search(message)
        if match:
            line = int(match.group(1))
            message = f"{message[: match.start()]} (column {match.group(2)})"
        elif message.endswith("(at end of document)"):
            line = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
        raise ConfigError(file, line, None, f"invalid TOML: {message}") from None


def read_document(path: Path) -> tuple[str, dict[str, Any]] | None:
    """A TOML file's text (for the lines of errors) and its document, or None when the file does not exist.

    Raises:
        ConfigError: the file cannot be read, is not UTF-8 or is not TOML.
    """
    text = read_text(path, missing_ok=True)
    if text is None:
        return None
    return text, parse_toml(text, path)


def write_atomically(path: Path, data: str | bytes, *, private: bool, make_parents: bool = True) -> None:
    """Replace the file's contents at once: write a temporary file beside it, then rename it over the file.

    ``data``: text is written as UTF-8. ``private``: the file gets mode 0600 (readable by its owner only, from the
    first byte written). Otherwise an existing file keeps its mode and a new one gets the umask's. A symbolic link
    is followed, so the file it points to is replaced. When replacing a file owned by someone else (root editing
    another user's file), the owner is kept where the system allows it. ``make_parents``: create missing
    directories (otherwise a missing directory is an error, as for any file written there).

    Raises:
        OSError: the file or its directory cannot be written (no temporary file is left behind).
    """
    content = data.encode("utf-8") if isinstance(data, str) else data
    target = Path(os.path.realpath(path))
    if make_parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    mode: int | None
    owner: tuple[int, int] | None
    try:
        existing = target.stat()
    except FileNotFoundError:
        mode, owner = None, None
    else:
        mode, owner = stat.S_IMODE(existing.st_mode), (existing.st_uid, existing.st_gid)
    if private:
        mode = 0o600
    temp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(
        temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666 if mode is None else mode
    )
    try:
        with os.fdopen(fd, "wb") as file:
            if mode is not None:
                os.chmod(temp, mode)
            if owner is not None and hasattr(os, "fchown"):
                with contextlib.suppress(OSError):
                    os.fchown(file.fileno(), *owner)
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    try:
        directory = os.open(target.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(directory)
    except OSError:
        pass
    finally:
        os.close(directory)


# --------------------------------------------------------------------------------------------------------------
# Converting values
#
# A converter takes a value as tomllib gives it and returns it in the type the file's reader wants, or raises
# Invalid saying what the value should be; the reader adds the file, line and key.


class Invalid(Exception):
    """A value is wrong; the message says how. The reader adds the file, line and key."""


def show(value: object) -> str:
    """A value as the user wrote it, roughly, for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    text = repr(value) if isinstance(value, str | int | float) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def as_string(value: object) -> str:
    if not isinstance(value, str):
        raise Invalid(f"must be a string, not {show(value)}")
    return value


def as_optional_string(value: object) -> str | None:
    """A string where "" means not set."""
    return as_string(value) or None


def as_integer(value: object) -> int:
    """Any integer (the caller checks its range)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"must be an integer, not {show(value)}")
    return value


def integer_in(low: int, high: int | None = None, what: str | None = None) -> Callable[[object], int]:
    """A converter to an integer in low..high (no upper bound when high is None); ``what`` replaces the range in
    the message."""
    if what is None:
        what = f"an integer >= {low}" if high is None else f"an integer between {low} and {high}"

    def convert(value: object) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
            raise Invalid(f"must be {what}, not {show(value)}")
        return value

    return convert


def as_boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"must be true or false, not {show(value)}")
    return value


def as_strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Invalid(f'must be an array of strings, like ["a", "b"], not {show(value)}')
    return tuple(value)


def file_name(base_dir: Path) -> Callable[[object], str | None]:
    """A converter to a file name, relative names made relative to base_dir; "" means not set."""

    def convert(value: object) -> str | None:
        text = as_string(value)
        if not text:
            return None
        path = Path(text).expanduser()
        return str(path if path.is_absolute() else base_dir / path)

    return convert


def portable_path(value: str, base_dir: Path) -> str:
    """A file name inside base_dir as a name relative to it (as :func:`file_name` would read it back), others
    unchanged: a file written so still works when the directory moves."""
    path = Path(value)
    if path.is_absolute():
        try:
            return path.relative_to(base_dir).as_posix()
        except ValueError:
            return value
    return value


# --------------------------------------------------------------------------------------------------------------
# Reading a parsed document


def dotted(path: KeyPath) -> str:
    """A key path as it would be written: ``profiles."my broker".tls.ca_file``, ``…subscriptions[1]``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = part if BARE_KEY.fullmatch(part) else json.dumps(part, ensure_ascii=False)
            text += f".{key}" if text else key
    return text


def did_you_mean(word: str, known: tuple[str, ...]) -> str | None:
    """The known word closest to a misspelt one, if one is close enough."""
    close = difflib.get_close_matches(word, known, n=1)
    return close[0] if close else None


class TomlReader:
    """Turns tomllib's dictionaries into a file's objects, collecting errors with their lines.

    A subclass reads one kind of file with :meth:`get` (a key through a converter), :meth:`table` and
    :meth:`unknown_keys`, and records what else is wrong with :meth:`error`; :meth:`raise_first` then raises the
    error that comes first in the file. Errors name keys by their dotted path (``profiles.local.tls.ca_file``);
    a file whose keys are few and flat can name them by their last key instead (:meth:`key_name`).
    """

    def __init__(self, file: str | Path, text: str) -> None:
        self.file = file
        self.text = text
        self.errors: list[ConfigError] = []
        self._lines: dict[KeyPath, int] | None = None

    def line(self, path: KeyPath) -> int | None:
        """The line of the key at path, or of the nearest enclosing key or table the scanner found."""
        if self._lines is None:
            from mqttchat.config.keylines import key_lines  # only needed once an error is found

            self._lines = key_lines(self.text)
        for length in range(len(path), 0, -1):
            line = self._lines.get(path[:length])
            if line is not None:
                return line
        return None

    def key_name(self, path: KeyPath) -> str:
        """How errors name the key at path: its dotted path."""
        return dotted(path)

    def error(self, path: KeyPath, message: str) -> None:
        self.errors.append(ConfigError(self.file, self.line(path), self.key_name(path), message))

    def raise_first(self) -> None:
        """Raise the error that comes first in the file, if any."""
        if self.errors:
            raise min(self.errors, key=lambda e: (e.line is None, e.line or 0))

    def get(
        self, table: Mapping[str, object], prefix: KeyPath, key: str, convert: Callable[[object], _T], default: _T
    ) -> _T:
        """The value of key in table (at prefix) through convert; default when it is missing or wrong (an error
        is recorded then)."""
        if key not in table:
            return default
        try:
            return convert(table[key])
        except Invalid as exc:
            self.error((*prefix, key), str(exc))
            return default

    def table(self, value: object, path: KeyPath, what: str) -> Mapping[str, object]:
        if isinstance(value, dict):
            return value
        self.error(path, f"must be a table ({what}), not {show(value)}")
        return {}

    def unknown_keys(
        self, table: Mapping[str, object], prefix: KeyPath, known: tuple[str, ...], hint: str = ""
    ) -> None:
        """Record an error for each key of table that is not known: ``unknown key 'x'{hint}`` and advice."""
        for key in table:
            if key not in known:
                advice = self.unknown_key_advice(key, prefix, known)
                self.error((*prefix, key), f"unknown key {key!r}{hint}{advice}")

    def unknown_key_advice(self, key: str, prefix: KeyPath, known: tuple[str, ...]) -> str:
        """What follows "unknown key 'x'": the known key it is closest to, or the list of keys at the top level."""
        close = did_you_mean(key, known)
        if close is not None:
            return f"; did you mean {close!r}?"
        if not prefix:
            return f" (the keys are {', '.join(known)})"
        return ""
