"""Errors of the broker's configuration files (broker TOML, password file, ACL file)."""

from __future__ import annotations

from pathlib import Path


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
