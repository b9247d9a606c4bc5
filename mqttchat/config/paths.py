"""Where the user's files live: the config and data directories (platformdirs), the files in them, and the
installation's identifier."""

from __future__ import annotations

import contextlib
import re
import secrets
from pathlib import Path

import platformdirs

from mqttchat.config.toml import write_atomically

__all__ = [
    "APP_NAME",
    "INSTALL_ID_FILE",
    "PROFILES_FILE",
    "SETTINGS_FILE",
    "TEMPLATES_FILE",
    "config_dir",
    "data_dir",
    "install_id",
    "profiles_path",
    "settings_path",
    "templates_path",
]

APP_NAME = "mqttchat"
PROFILES_FILE = "profiles.toml"
SETTINGS_FILE = "settings.toml"
TEMPLATES_FILE = "templates.toml"
INSTALL_ID_FILE = "install-id"


def config_dir() -> Path:
    """The user's mqttchat configuration directory (e.g. ``~/.config/mqttchat``), created if missing."""
    path = platformdirs.user_config_path(APP_NAME)
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """The user's mqttchat data directory (e.g. ``~/.local/share/mqttchat``), created if missing."""
    path = platformdirs.user_data_path(APP_NAME)
    path.mkdir(parents=True, exist_ok=True)
    return path


_INSTALL_ID = re.compile(r"[0-9a-f]{12}")


def install_id(directory: Path | None = None) -> str:
    """A random identifier of this installation (12 hex digits), made on first use and kept in the data directory.

    The chat's client id ends with it: stable from one run to the next (so the broker's persistent session
    carries over), different on each machine (so one person's laptop and desktop do not take each other's session
    over), and unguessable (so another user cannot take over, or end, someone's chat session by client id).
    A damaged file is replaced; when the directory cannot be written, the identifier lasts for this run only.
    """
    path = (directory or platformdirs.user_data_path(APP_NAME)) / INSTALL_ID_FILE
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        text = ""
    if _INSTALL_ID.fullmatch(text):
        return text
    value = secrets.token_hex(6)
    with contextlib.suppress(OSError):
        write_atomically(path, value + "\n", private=False)
    return value


def settings_path() -> Path:
    """Where :func:`load_settings` and :func:`save_settings` look by default (the directory is not created)."""
    return platformdirs.user_config_path(APP_NAME) / SETTINGS_FILE


def templates_path() -> Path:
    """Where :func:`load_templates` and :func:`save_template` look by default (the directory is not created)."""
    return platformdirs.user_config_path(APP_NAME) / TEMPLATES_FILE


def profiles_path() -> Path:
    """Where :class:`~mqttchat.config.profiles.ProfileStore` looks by default (the directory is not created)."""
    return platformdirs.user_config_path(APP_NAME) / PROFILES_FILE
