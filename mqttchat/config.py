"""Connection profiles (``profiles.toml``), UI preferences (``settings.toml``) and saved publish templates
(``templates.toml``) in the user's config directory."""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import secrets
import stat
import tomllib
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import platformdirs
import tomli_w

from mqttchat.broker.errors import ConfigError
from mqttchat.client.options import DEFAULT_URL, ClientOptions, TLSOptions, parse_url
from mqttchat.explorer.decoders.command import DEFAULT_TIMEOUT
from mqttchat.explorer.decoders.rules import RULE_KEYS, DecoderRule
from mqttchat.protocol import ProtocolVersion, Will, topic_filter_problem, topic_name_problem
from mqttchat.protocol.constants import MAX_STRING_LENGTH

__all__ = [
    "DEFAULT_PROFILE",
    "INSTALL_ID_FILE",
    "PROFILES_FILE",
    "PROFILE_KEYS",
    "SETTINGS_FILE",
    "SETTINGS_KEYS",
    "TEMPLATES_FILE",
    "TEMPLATE_KEYS",
    "TLS_KEYS",
    "WILL_KEYS",
    "AppSettings",
    "ConfigError",
    "Profile",
    "ProfileError",
    "ProfileStore",
    "PublishTemplate",
    "config_dir",
    "data_dir",
    "delete_template",
    "expand_env",
    "install_id",
    "load_settings",
    "load_templates",
    "save_settings",
    "save_template",
    "settings_path",
    "template_name_problem",
    "templates_path",
]

APP_NAME = "mqttchat"
PROFILES_FILE = "profiles.toml"
SETTINGS_FILE = "settings.toml"
TEMPLATES_FILE = "templates.toml"
INSTALL_ID_FILE = "install-id"

MAX_UINT16 = 65_535
MAX_UINT32 = 4_294_967_295
#: The values of ``version``: MQTT 5 and MQTT 3.1.1.
VERSIONS: dict[int, ProtocolVersion] = {5: ProtocolVersion.MQTT_5, 311: ProtocolVersion.MQTT_3_1_1}
MAX_PROFILE_NAME = 64
MAX_NICK = 64

#: Every key of a ``[profiles.NAME]`` table (``tls`` and ``will`` are sub-tables).
PROFILE_KEYS: tuple[str, ...] = (
    "url",
    "version",
    "client_id",
    "username",
    "password",
    "keepalive",
    "clean_start",
    "session_expiry",
    "subscriptions",
    "tls",
    "will",
)
TLS_KEYS: tuple[str, ...] = ("ca_file", "cert_file", "key_file", "insecure", "server_hostname")
WILL_KEYS: tuple[str, ...] = ("topic", "payload", "qos", "retain")
SUBSCRIPTION_KEYS: tuple[str, ...] = ("filter", "qos")
SETTINGS_KEYS: tuple[str, ...] = (
    "theme",
    "history_per_topic",
    "history_budget_mb",
    "history_payload_limit_kb",
    "flush_hz",
    "chat_nick",
    "max_packet_size_kb",
    "decoders",
)
#: Every key of a ``[templates.NAME]`` table.
TEMPLATE_KEYS: tuple[str, ...] = (
    "topic",
    "payload",
    "qos",
    "retain",
    "content_type",
    "user_properties",
    "message_expiry_interval",
    "response_topic",
    "correlation_data",
)
MAX_TEMPLATE_NAME = 64

#: Where each Profile field lives inside its ``[profiles.NAME]`` table.
_FIELD_KEYS: dict[str, tuple[str, ...]] = {
    "url": ("url",),
    "version": ("version",),
    "client_id": ("client_id",),
    "username": ("username",),
    "password": ("password",),
    "keepalive": ("keepalive",),
    "clean_start": ("clean_start",),
    "session_expiry": ("session_expiry",),
    "subscriptions": ("subscriptions",),
    "ca_file": ("tls", "ca_file"),
    "cert_file": ("tls", "cert_file"),
    "key_file": ("tls", "key_file"),
    "insecure": ("tls", "insecure"),
    "server_hostname": ("tls", "server_hostname"),
    "will_topic": ("will", "topic"),
    "will_payload": ("will", "payload"),
    "will_qos": ("will", "qos"),
    "will_retain": ("will", "retain"),
}
_TLS_FIELDS = ("ca_file", "cert_file", "key_file", "server_hostname")

_T = TypeVar("_T")
#: Where a value sits in a TOML document: table names, key names and array indices.
_KeyPath = tuple[str | int, ...]


# --------------------------------------------------------------------------------------------------------------
# Directories


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
        _write_atomically(path, value + "\n", private=False)
    return value


def settings_path() -> Path:
    """Where :func:`load_settings` and :func:`save_settings` look by default (the directory is not created)."""
    return platformdirs.user_config_path(APP_NAME) / SETTINGS_FILE


def templates_path() -> Path:
    """Where :func:`load_templates` and :func:`save_template` look by default (the directory is not created)."""
    return platformdirs.user_config_path(APP_NAME) / TEMPLATES_FILE


def _profiles_path() -> Path:
    return platformdirs.user_config_path(APP_NAME) / PROFILES_FILE


# --------------------------------------------------------------------------------------------------------------
# Environment-variable references


_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
#: ``$${`` (an escaped, literal ``${``), a ``${NAME}`` reference, or a ``${`` that starts neither.
_REFERENCE = re.compile(rf"\$\$\{{|\$\{{({_NAME})\}}|\$\{{")
_ONLY_REFERENCES = re.compile(rf"(?:\$\{{{_NAME}\}})+")


def _reference_problem(value: str) -> str | None:
    for match in _REFERENCE.finditer(value):
        if match.group() == "${":
            return "a '${' must start an environment-variable reference like ${NAME} (write $${ for a literal ${)"
    return None


def _is_reference(value: str | None) -> bool:
    """Whether value is made only of ``${NAME}`` references (so no secret is written by writing it)."""
    return value is not None and _ONLY_REFERENCES.fullmatch(value) is not None


def expand_env(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace each ``${NAME}`` in value by the environment variable NAME; ``$${`` stands for a literal ``${``.

    Any other ``$`` is kept as it is.

    Raises:
        ValueError: a variable is not set (the message names it), or a ``${`` starts no valid reference.
    """
    env = os.environ if environ is None else environ
    problem = _reference_problem(value)
    if problem is not None:
        raise ValueError(problem)

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "${"
        if name not in env:
            raise ValueError(f"environment variable {name} is not set")
        return env[name]

    return _REFERENCE.sub(substitute, value)


# --------------------------------------------------------------------------------------------------------------
# Profiles


class ProfileError(ValueError):
    """A profile is not valid. ``problems`` maps field names to what is wrong with them."""

    def __init__(self, name: str, problems: Mapping[str, str]) -> None:
        self.name = name
        self.problems = dict(problems)
        detail = "; ".join(f"{key}: {problem}" for key, problem in self.problems.items())
        super().__init__(f"profile {name!r}: {detail}")


def _unset(value: str | None) -> bool:
    return value is None or value == ""


def _int_problem(value: object, low: int, high: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return f"must be an integer between {low} and {high}, not {value!r}"
    return None


def _string_problem(value: str) -> str | None:
    if "\x00" in value:
        return "must not contain U+0000"
    if len(value) > MAX_STRING_LENGTH // 4 and len(value.encode(errors="surrogatepass")) > MAX_STRING_LENGTH:
        return f"is too long (at most {MAX_STRING_LENGTH} bytes of UTF-8)"
    return None


@dataclass(frozen=True, slots=True)
class Profile:
    """A named way to connect: a broker URL, the session's settings, TLS files, a will and initial subscriptions.

    Empty strings in the optional text fields (``username``, ``password``, the TLS files, ``server_hostname``,
    ``will_topic``) mean "not set", as an empty field in a form does. ``username`` and ``password`` may contain
    ``${NAME}`` environment-variable references, expanded by :meth:`to_client_options`.
    """

    name: str
    url: str = DEFAULT_URL
    #: 5 (MQTT 5) or 311 (MQTT 3.1.1).
    version: int = 5
    #: Empty: the broker assigns one (MQTT 5), or one is generated for each connection (MQTT 3.1.1).
    client_id: str = ""
    username: str | None = None
    #: May hold ``${NAME}`` references, which are always saved; a literal password only with ``save_password``.
    password: str | None = None
    #: Write a literal password (in the profile or in the URL) to the profiles file, in clear text.
    save_password: bool = False
    keepalive: int = 60
    clean_start: bool = True
    #: MQTT 5 Session Expiry Interval in seconds; 4294967295 never expires.
    session_expiry: int = 0
    #: Subscribed on connecting: (topic filter, QoS).
    subscriptions: tuple[tuple[str, int], ...] = (("#", 0),)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False
    server_hostname: str | None = None
    will_topic: str | None = None
    will_payload: str = ""
    will_qos: int = 0
    will_retain: bool = False

    @property
    def has_will(self) -> bool:
        return not _unset(self.will_topic)

    def validate(self, *, check_files: bool = False) -> dict[str, str]:
        """What is wrong, as field name → problem (the first problem of each field); empty when all is well.

        With ``check_files`` the TLS files must exist too (relative names are relative to the current directory).
        """
        result: dict[str, str] = {}
        for name, _index, problem in self._problems(check_files=check_files):
            result.setdefault(name, problem)
        return result

    def _problems(self, *, check_files: bool = False) -> list[tuple[str, int | None, str]]:
        """Every problem as (field name, index of the subscription or None, message)."""
        problems: list[tuple[str, int | None, str]] = []

        def add(name: str, problem: str | None, index: int | None = None) -> None:
            if problem is not None:
                problems.append((name, index, problem))

        add("name", _profile_name_problem(self.name))
        target = None
        try:
            target = parse_url(self.url)
        except ValueError as exc:
            add("url", str(exc))
        if target is not None:
            for value in (target.username, target.password):
                if value:
                    add("url", _reference_problem(value))
        v311 = self.version == 311
        if self.version not in VERSIONS:
            add("version", f"must be 5 (MQTT 5) or 311 (MQTT 3.1.1), not {self.version!r}")
        add("client_id", _string_problem(self.client_id))
        if v311 and not self.client_id and not self.clean_start:
            add("client_id", "a persistent MQTT 3.1.1 session (clean_start = false) needs a fixed client id")
        for name in ("username", "password"):
            value = getattr(self, name)
            if not _unset(value):
                add(name, _string_problem(value) or _reference_problem(value))
        if v311 and not _unset(self.password) and _unset(self.username) and (target is None or not target.username):
            add("password", "MQTT 3.1.1 sends a password only with a username")
        add("keepalive", _int_problem(self.keepalive, 0, MAX_UINT16))
        add("session_expiry", _int_problem(self.session_expiry, 0, MAX_UINT32))
        if v311 and self.session_expiry:
            add("session_expiry", "MQTT 3.1.1 has no session expiry (use clean_start = false to keep the session)")
        seen: set[str] = set()
        for index, (topic_filter, qos) in enumerate(self.subscriptions):
            if topic_filter in seen:
                add("subscriptions", f"{topic_filter!r} is subscribed twice", index)
            seen.add(topic_filter)
            add("subscriptions", topic_filter_problem(topic_filter), index)
            if _int_problem(qos, 0, 2) is not None:
                add("subscriptions", f"the QoS of {topic_filter!r} must be 0, 1 or 2, not {qos!r}", index)
        has_cert, has_key = not _unset(self.cert_file), not _unset(self.key_file)
        if has_cert and not has_key:
            add("key_file", "a client certificate (cert_file) needs its key_file")
        if has_key and not has_cert:
            add("cert_file", "a key_file needs its client certificate (cert_file)")
        if target is not None and not target.tls:
            for name in _TLS_FIELDS:
                if not _unset(getattr(self, name)):
                    add(name, f"only used with TLS: the URL must be mqtts:// or wss://, not {target.scheme}://")
            if self.insecure:
                add("insecure", f"only used with TLS: the URL must be mqtts:// or wss://, not {target.scheme}://")
        if check_files:
            for name in ("ca_file", "cert_file", "key_file"):
                value = getattr(self, name)
                if not _unset(value) and not Path(value).expanduser().is_file():
                    add(name, f"file not found: {value}")
        if not _unset(self.server_hostname) and self.server_hostname != (self.server_hostname or "").strip():
            add("server_hostname", "must not start or end with blanks")
        if self.has_will:
            add("will_topic", topic_name_problem(self.will_topic or ""))
        elif self.will_payload or self.will_qos or self.will_retain:
            add("will_topic", "a will needs a topic")
        if len(self.will_payload.encode(errors="surrogatepass")) > MAX_UINT16:
            add("will_payload", f"is too long (at most {MAX_UINT16} bytes)")
        if _int_problem(self.will_qos, 0, 2) is not None:
            add("will_qos", f"must be 0, 1 or 2, not {self.will_qos!r}")
        return problems

    def to_client_options(self, environ: Mapping[str, str] | None = None) -> ClientOptions:
        """The client options to connect with (the subscriptions are not part of them: see ``subscriptions``).

        ``${NAME}`` references in the username and password, also those given in the URL, are expanded from
        environ (``os.environ`` when None). The URL's credentials are used when ``username``/``password`` are unset.
        TLS options are given for mqtts:// and wss:// URLs. With MQTT 3.1.1 an empty client id is replaced by a
        generated one, ``mqttchat-`` and 8 hex digits.

        Raises:
            ProfileError: the profile is not valid (see :meth:`validate`).
            ValueError: a referenced environment variable is not set (the message names it).
        """
        problems = self.validate()
        if problems:
            raise ProfileError(self.name, problems)
        target = parse_url(self.url)

        def expand(value: str | None, what: str) -> str | None:
            if _unset(value):
                return None
            assert value is not None
            try:
                return expand_env(value, environ)
            except ValueError as exc:
                raise ValueError(f"profile {self.name!r}, {what}: {exc}") from None

        target = replace(
            target,
            username=expand(target.username, "username in the URL"),
            password=expand(target.password, "password in the URL"),
        )
        tls = None
        if target.tls:  # validate() refuses TLS files with a plain URL, which the transport would ignore
            tls = TLSOptions(
                ca_file=self.ca_file or None,
                cert_file=self.cert_file or None,
                key_file=self.key_file or None,
                insecure=self.insecure,
                server_hostname=self.server_hostname or None,
            )
        will = None
        if self.has_will:
            assert self.will_topic is not None
            will = Will(self.will_topic, self.will_payload.encode(), self.will_qos, self.will_retain)
        version = VERSIONS[self.version]
        client_id = self.client_id
        if version == ProtocolVersion.MQTT_3_1_1 and not client_id:
            client_id = f"mqttchat-{secrets.token_hex(4)}"
        return ClientOptions(
            target=target,
            version=version,
            # A profile that says MQTT 5 still reaches a 3.1.1-only broker; the app then saves 311 in it.
            version_fallback=version == ProtocolVersion.MQTT_5,
            client_id=client_id,
            clean_start=self.clean_start,
            session_expiry=(self.session_expiry or None) if version == ProtocolVersion.MQTT_5 else None,
            keepalive=self.keepalive,
            username=expand(self.username, "username"),
            password=expand(self.password, "password"),
            will=will,
            tls=tls,
        )


DEFAULT_PROFILE = Profile(name="local", url=DEFAULT_URL)


def _profile_name_problem(name: object) -> str | None:
    if not isinstance(name, str) or not name.strip():
        return "a profile needs a name"
    if name != name.strip():
        return "must not start or end with blanks"
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        return "must not contain control characters"
    if len(name) > MAX_PROFILE_NAME:
        return f"is too long (at most {MAX_PROFILE_NAME} characters)"
    return None


def _url_password(url: str) -> str | None:
    """The password in a URL's user info, or None (also for URLs that do not parse)."""
    try:
        return parse_url(url).password
    except ValueError:
        return None


def _without_url_password(url: str) -> str:
    """The URL with the password removed from its user info (``mqtt://u:pw@h`` → ``mqtt://u@h``)."""
    text = url if "://" in url else "mqtt://" + url
    parts = urlsplit(text)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return parts._replace(netloc=f"{user}@{hostport}" if user else hostport).geturl()


def _stored_form(profile: Profile) -> Profile:
    """The profile as it will be written: literal passwords dropped unless ``save_password``."""
    if profile.save_password:
        return profile
    if not _is_reference(profile.password):
        profile = replace(profile, password=None)
    url_password = _url_password(profile.url)
    if url_password is not None and not _is_reference(url_password):
        profile = replace(profile, url=_without_url_password(profile.url))
    return profile


def _stores_password(profile: Profile) -> bool:
    return not _unset(profile.password) or _url_password(profile.url) is not None


def _portable_path(value: str, base_dir: Path) -> str:
    """A file name inside base_dir as a name relative to it (as the file would be read), others unchanged."""
    path = Path(value)
    if path.is_absolute():
        try:
            return path.relative_to(base_dir).as_posix()
        except ValueError:
            return value
    return value


def _profile_table(profile: Profile, base_dir: Path) -> dict[str, Any]:
    """The ``[profiles.NAME]`` table of a profile in its stored form."""
    table: dict[str, Any] = {"url": profile.url, "version": profile.version, "client_id": profile.client_id}
    if not _unset(profile.username):
        table["username"] = profile.username
    if not _unset(profile.password):
        table["password"] = profile.password
    table["keepalive"] = profile.keepalive
    table["clean_start"] = profile.clean_start
    table["session_expiry"] = profile.session_expiry
    table["subscriptions"] = [
        topic_filter if qos == 0 else {"filter": topic_filter, "qos": qos}
        for topic_filter, qos in profile.subscriptions
    ]
    tls: dict[str, Any] = {}
    for name in ("ca_file", "cert_file", "key_file"):
        value = getattr(profile, name)
        if not _unset(value):
            tls[name] = _portable_path(value, base_dir)
    if profile.insecure:
        tls["insecure"] = True
    if not _unset(profile.server_hostname):
        tls["server_hostname"] = profile.server_hostname
    if tls:
        table["tls"] = tls
    if profile.has_will:
        table["will"] = {
            "topic": profile.will_topic,
            "payload": profile.will_payload,
            "qos": profile.will_qos,
            "retain": profile.will_retain,
        }
    return table


class ProfileStore:
    """The connection profiles in ``profiles.toml``.

    Call :meth:`load` to read the file. Every change (:meth:`save_profile`, :meth:`delete_profile`,
    :meth:`set_default`) reads the file again first, so edits made to it meanwhile by hand are kept (not its
    comments or layout, which rewriting loses), and leaves the store holding what is now in the file.
    """

    def __init__(self, path: Path | None = None) -> None:
        """``path``: the profiles file; ``profiles.toml`` in the user's config directory when None."""
        self.path = path if path is not None else _profiles_path()
        self._profiles: dict[str, Profile] = {}
        #: The tables as read, written back unchanged for profiles that are not being saved.
        self._tables: dict[str, dict[str, Any]] = {}
        self._default: str | None = None

    @property
    def default_name(self) -> str | None:
        """The ``default`` key: the profile used when none is named, or None."""
        return self._default

    @property
    def base_dir(self) -> Path:
        """What relative file names in the profiles file are relative to: the file's directory."""
        return self.path.absolute().parent

    def load(self) -> None:
        """Read the profiles file. A missing file means no profiles.

        Raises:
            ConfigError: the file cannot be read, is not TOML, or has a wrong key or value (with file, line, key).
        """
        text = _read_text(self.path)
        if text is None:
            self._profiles, self._tables, self._default = {}, {}, None
            return
        data = _parse_toml(text, self.path)
        reader = _Reader(self.path, text)
        default, profiles, tables = reader.profiles_document(data, self.base_dir)
        reader.raise_first()
        self._profiles, self._tables, self._default = profiles, tables, default

    def profiles(self) -> list[Profile]:
        """The profiles in file order."""
        return list(self._profiles.values())

    def names(self) -> list[str]:
        return list(self._profiles)

    def get(self, name: str) -> Profile | None:
        return self._profiles.get(name)

    def default_profile(self) -> Profile:
        """The profile named by ``default``; else one named "local"; else :data:`DEFAULT_PROFILE`."""
        if self._default is not None and self._default in self._profiles:
            return self._profiles[self._default]
        return self._profiles.get(DEFAULT_PROFILE.name, DEFAULT_PROFILE)

    def save_profile(self, profile: Profile, make_default: bool = False) -> None:
        """Add the profile, or replace the one with its name, and write the file.

        The password is written only if it is made of ``${NAME}`` references, or if ``profile.save_password`` is
        true: then a literal password (in ``password`` or in the URL) is stored **in clear text**, readable by
        anyone who can read the file (which is then given mode 0600). Without ``save_password`` a literal password
        is left out (of the URL too), and the stored profile has none. The file is replaced atomically.

        Raises:
            ProfileError: the profile is not valid (see :meth:`Profile.validate`).
            ConfigError: the file as it is now cannot be read (it is not overwritten then).
            OSError: the file cannot be written.
        """
        problems = profile.validate()
        if problems:
            raise ProfileError(profile.name, problems)
        self.load()
        tables = dict(self._tables)
        tables[profile.name] = _profile_table(_stored_form(profile), self.base_dir)
        self._write(self._default if not make_default else profile.name, tables)

    def delete_profile(self, name: str) -> bool:
        """Remove a profile (and the ``default`` key if it named it). False if there was no such profile.

        Raises:
            ConfigError: the file as it is now cannot be read.
            OSError: the file cannot be written.
        """
        self.load()
        if name not in self._tables:
            return False
        tables = {key: table for key, table in self._tables.items() if key != name}
        self._write(None if self._default == name else self._default, tables)
        return True

    def set_default(self, name: str | None) -> None:
        """Make the named profile the default (None: no default).

        Raises:
            KeyError: there is no such profile.
            ConfigError: the file as it is now cannot be read.
            OSError: the file cannot be written.
        """
        self.load()
        if name is not None and name not in self._tables:
            raise KeyError(name)
        self._write(name, dict(self._tables))

    def _write(self, default: str | None, tables: dict[str, dict[str, Any]]) -> None:
        document: dict[str, Any] = {}
        if default is not None:
            document["default"] = default
        if tables:
            document["profiles"] = tables
        private = any(
            "password" in table or _url_password(table.get("url", "")) is not None for table in tables.values()
        )
        _write_atomically(self.path, tomli_w.dumps(document), private=private)
        self.load()


# --------------------------------------------------------------------------------------------------------------
# App settings


@dataclass(frozen=True, slots=True)
class AppSettings:
    """UI preferences, in ``settings.toml``."""

    theme: str = "textual-dark"
    #: Messages kept per topic in the explorer's history.
    history_per_topic: int = 100
    #: All history together, in MiB.
    history_budget_mb: int = 64
    #: Longer payloads are truncated in the history, in KiB.
    history_payload_limit_kb: int = 64
    #: How often the UI applies incoming messages, per second.
    flush_hz: int = 15
    #: The chat nickname; None: the client id or user name.
    chat_nick: str | None = None
    #: The largest packet the app accepts from a broker, in KiB (announced as the MQTT 5 Maximum Packet Size and
    #: checked from each packet's header; ``--max-packet-size`` overrides it); 0: the protocol's limit, 256 MiB.
    max_packet_size_kb: int = 16 * 1024
    #: How payloads are decoded per topic filter (``[[decoders]]`` tables; the first matching rule wins).
    decoders: tuple[DecoderRule, ...] = ()

    def validate(self) -> dict[str, str]:
        """What is wrong, as field name → problem; empty when all is well."""
        problems: dict[str, str] = {}
        if not isinstance(self.theme, str) or not self.theme.strip():
            problems["theme"] = "must be a theme name"
        limits = {
            "history_per_topic": (1, 1_000_000),
            "history_budget_mb": (1, 1_048_576),
            "history_payload_limit_kb": (1, 1_048_576),
            "flush_hz": (1, 120),
            "max_packet_size_kb": (0, 256 * 1024),
        }
        for name, (low, high) in limits.items():
            problem = _int_problem(getattr(self, name), low, high)
            if problem is not None:
                problems[name] = problem
        if (
            "history_payload_limit_kb" not in problems
            and "history_budget_mb" not in problems
            and self.history_payload_limit_kb > self.history_budget_mb * 1024
        ):
            problems["history_payload_limit_kb"] = "must not exceed history_budget_mb (in KiB)"
        if self.chat_nick is not None:
            problem = _nick_problem(self.chat_nick)
            if problem is not None:
                problems["chat_nick"] = problem
        for index, rule in enumerate(self.decoders):
            for key, problem in rule.problems():
                problems.setdefault("decoders", f"[{index}].{key}: {problem}")
        return problems


def _nick_problem(nick: str) -> str | None:
    if not nick.strip():
        return "must not be empty (leave it out to use the default)"
    if nick != nick.strip():
        return "must not start or end with blanks"
    if len(nick) > MAX_NICK:
        return f"is too long (at most {MAX_NICK} characters)"
    if any(char in "/+#" or ord(char) < 32 or ord(char) == 127 for char in nick):
        return "must not contain '/', '+', '#' or control characters"
    return None


def load_settings(path: Path | None = None) -> AppSettings:
    """Read ``settings.toml`` (the default file when path is None); a missing file gives the defaults.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or has a wrong key or value (with file, line, key).
    """
    file = path if path is not None else settings_path()
    text = _read_text(file)
    if text is None:
        return AppSettings()
    data = _parse_toml(text, file)
    reader = _Reader(file, text)
    settings = reader.settings(data)
    reader.raise_first()
    return settings


def save_settings(settings: AppSettings, path: Path | None = None) -> None:
    """Write ``settings.toml`` (the default file when path is None) atomically.

    Raises:
        ValueError: the settings are not valid (see :meth:`AppSettings.validate`).
        OSError: the file cannot be written.
    """
    problems = settings.validate()
    if problems:
        raise ValueError("; ".join(f"{key}: {problem}" for key, problem in problems.items()))
    file = path if path is not None else settings_path()
    document = {
        f.name: getattr(settings, f.name)
        for f in fields(settings)
        if getattr(settings, f.name) is not None and f.name != "decoders"
    }
    if settings.decoders:
        document["decoders"] = [_decoder_table(rule, file.absolute().parent) for rule in settings.decoders]
    _write_atomically(file, tomli_w.dumps(document), private=False)


def _decoder_table(rule: DecoderRule, base_dir: Path) -> dict[str, Any]:
    """A ``[[decoders]]`` table; a descriptor set beside the settings file is written relative to it."""
    table = rule.to_table()
    if "descriptor_set" in table:
        table["descriptor_set"] = _portable_path(table["descriptor_set"], base_dir)
    return table


# --------------------------------------------------------------------------------------------------------------
# Publish templates


def template_name_problem(name: object) -> str | None:
    """What is wrong with a template name, or None."""
    if not isinstance(name, str) or not name.strip():
        return "a template needs a name"
    if name != name.strip():
        return "must not start or end with blanks"
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        return "must not contain control characters"
    if len(name) > MAX_TEMPLATE_NAME:
        return f"is too long (at most {MAX_TEMPLATE_NAME} characters)"
    return None


@dataclass(frozen=True, slots=True)
class PublishTemplate:
    """A saved publish form: topic, payload, QoS, retain and the MQTT 5 properties, in ``templates.toml``.

    Empty strings mean "not set", as an empty field in the form does. The payload keeps its ``{{uuid}}``,
    ``{{timestamp}}`` and ``{{counter}}`` placeholders: they are replaced when the message is sent.
    """

    name: str
    topic: str = ""
    payload: str = ""
    qos: int = 0
    retain: bool = False
    content_type: str = ""
    #: (name, value) pairs; a name may repeat.
    user_properties: tuple[tuple[str, str], ...] = ()
    #: Seconds; None: the message does not expire.
    message_expiry_interval: int | None = None
    response_topic: str = ""
    #: Sent as its UTF-8 bytes.
    correlation_data: str = ""

    def validate(self) -> dict[str, str]:
        """What is wrong, as key name (``name`` or a key of :data:`TEMPLATE_KEYS`) → problem; empty when all is well.

        The topic may be empty (a template can leave it to be filled in), and may not hold wildcards.
        """
        problems: dict[str, str] = {}

        def add(key: str, problem: str | None) -> None:
            if problem is not None:
                problems.setdefault(key, problem)

        add("name", template_name_problem(self.name))
        if self.topic:
            add("topic", topic_name_problem(self.topic))
        if _int_problem(self.qos, 0, 2) is not None:
            add("qos", f"must be 0, 1 or 2, not {self.qos!r}")
        for key in ("content_type", "correlation_data"):
            add(key, _string_problem(getattr(self, key)))
        if self.response_topic:
            add("response_topic", topic_name_problem(self.response_topic))
        for name, value in self.user_properties:
            if not name:
                add("user_properties", "a user property needs a name")
            add("user_properties", _string_problem(name) or _string_problem(value))
        if self.message_expiry_interval is not None:
            add("message_expiry_interval", _int_problem(self.message_expiry_interval, 0, MAX_UINT32))
        return problems


def _template_table(template: PublishTemplate) -> dict[str, Any]:
    """The ``[templates.NAME]`` table of a template: the four basic keys always, the properties when set."""
    table: dict[str, Any] = {
        "topic": template.topic,
        "payload": template.payload,
        "qos": template.qos,
        "retain": template.retain,
    }
    if template.content_type:
        table["content_type"] = template.content_type
    if template.user_properties:
        table["user_properties"] = [[name, value] for name, value in template.user_properties]
    if template.message_expiry_interval is not None:
        table["message_expiry_interval"] = template.message_expiry_interval
    if template.response_topic:
        table["response_topic"] = template.response_topic
    if template.correlation_data:
        table["correlation_data"] = template.correlation_data
    return table


def load_templates(path: Path | None = None) -> dict[str, PublishTemplate]:
    """Read ``templates.toml`` (the default file when path is None): name → template, in file order.

    A missing file means no templates.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or has a wrong key or value (with file, line, key).
    """
    file = path if path is not None else templates_path()
    text = _read_text(file)
    if text is None:
        return {}
    data = _parse_toml(text, file)
    reader = _Reader(file, text)
    templates = reader.templates_document(data)
    reader.raise_first()
    return templates


def _write_templates(templates: Mapping[str, PublishTemplate], file: Path) -> None:
    document: dict[str, Any] = {}
    if templates:
        document["templates"] = {name: _template_table(template) for name, template in templates.items()}
    _write_atomically(file, tomli_w.dumps(document, multiline_strings=True), private=False)


def save_template(template: PublishTemplate, path: Path | None = None) -> None:
    """Add the template, or replace the one with its name (keeping its place), and write the file atomically.

    The file is read again first, so templates saved meanwhile (by another window, or by hand) are kept; its
    comments and layout are not.

    Raises:
        ValueError: the template is not valid (see :meth:`PublishTemplate.validate`).
        ConfigError: the file as it is now cannot be read (it is not overwritten then).
        OSError: the file cannot be written.
    """
    problems = template.validate()
    if problems:
        detail = "; ".join(f"{key}: {problem}" for key, problem in problems.items())
        raise ValueError(f"template {template.name!r}: {detail}")
    file = path if path is not None else templates_path()
    templates = load_templates(file)
    templates[template.name] = template
    _write_templates(templates, file)


def delete_template(name: str, path: Path | None = None) -> bool:
    """Remove the named template from the file. False if there was no such template (the file is left alone).

    Raises:
        ConfigError: the file as it is now cannot be read.
        OSError: the file cannot be written.
    """
    file = path if path is not None else templates_path()
    templates = load_templates(file)
    if name not in templates:
        return False
    del templates[name]
    _write_templates(templates, file)
    return True


# --------------------------------------------------------------------------------------------------------------
# Files


def _read_text(path: Path) -> str | None:
    """The file's text, or None when it does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(path, None, None, f"cannot read the file: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(path, line, None, f"not UTF-8 text (byte {exc.start})") from None


def _parse_toml(text: str, file: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        line: int | None = None
        match = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
        if match:
            line = int(match.group(1))
            message = f"{message[: match.start()]} (column {match.group(2)})"
        elif message.endswith("(at end of document)"):
            line = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
        raise ConfigError(file, line, None, f"invalid TOML: {message}") from None


def _write_atomically(path: Path, text: str, *, private: bool) -> None:
    """Replace the file's contents at once: write a temporary file beside it, then rename it over the file.

    ``private``: the file gets mode 0600. Otherwise an existing file keeps its mode and a new one gets the
    umask's. A symbolic link is followed, so the file it points to is replaced.
    """
    target = Path(os.path.realpath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    mode: int | None
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = None
    if private:
        mode = 0o600
    temp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(
        temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666 if mode is None else mode
    )
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(text.encode("utf-8"))
            file.flush()
            os.fsync(file.fileno())
        if mode is not None:
            os.chmod(temp, mode)
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
# Reading the parsed documents


class _Invalid(Exception):
    """A value has the wrong type; the message says what it should be. The reader adds file, line and key."""


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    text = repr(value) if isinstance(value, str | int | float) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"must be a string, not {_show(value)}")
    return value


def _integer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"must be an integer, not {_show(value)}")
    return value


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"must be true or false, not {_show(value)}")
    return value


def _user_properties(value: object) -> tuple[tuple[str, str], ...]:
    """``[["name", "value"], ...]``: MQTT 5 user properties, in order (a name may repeat)."""
    shape = 'must be an array of [name, value] pairs, like [["source", "bench"]]'
    if not isinstance(value, list):
        raise _Invalid(f"{shape}, not {_show(value)}")
    pairs: list[tuple[str, str]] = []
    for index, item in enumerate(value):
        if not (isinstance(item, list) and len(item) == 2 and all(isinstance(part, str) for part in item)):
            shown = _show(item) if not isinstance(item, list) else _show(json.dumps(item, ensure_ascii=False))
            raise _Invalid(f"{shape}; item {index} is {shown}")
        pairs.append((item[0], item[1]))
    return tuple(pairs)


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _Invalid(f'must be an array of strings, like ["a", "b"], not {_show(value)}')
    return tuple(value)


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(f"must be a number of seconds, not {_show(value)}")
    return float(value)


def _optional_string(value: object) -> str | None:
    """A string where "" means not set."""
    return _string(value) or None


def _file_name(base_dir: Path) -> Callable[[object], str | None]:
    def convert(value: object) -> str | None:
        text = _string(value)
        if not text:
            return None
        path = Path(text).expanduser()
        return str(path if path.is_absolute() else base_dir / path)

    return convert


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _dotted(path: _KeyPath) -> str:
    """A key path as it would be written: ``profiles."my broker".tls.ca_file``, ``…subscriptions[1]``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = part if _BARE_KEY.fullmatch(part) else json.dumps(part, ensure_ascii=False)
            text += f".{key}" if text else key
    return text


class _Reader:
    """Turns tomllib's dictionaries into profiles or settings, collecting errors with their lines."""

    def __init__(self, file: Path, text: str) -> None:
        self.file = file
        self.text = text
        self.errors: list[ConfigError] = []
        self._lines: dict[_KeyPath, int] | None = None

    def line(self, path: _KeyPath) -> int | None:
        """The line of the key at path, or of the nearest enclosing key or table the scanner found."""
        if self._lines is None:
            self._lines = _key_lines(self.text)
        for length in range(len(path), 0, -1):
            line = self._lines.get(path[:length])
            if line is not None:
                return line
        return None

    def error(self, path: _KeyPath, message: str) -> None:
        self.errors.append(ConfigError(self.file, self.line(path), _dotted(path), message))

    def raise_first(self) -> None:
        """Raise the error that comes first in the file, if any."""
        if self.errors:
            raise min(self.errors, key=lambda e: (e.line is None, e.line or 0))

    def get(
        self, table: Mapping[str, object], prefix: _KeyPath, key: str, convert: Callable[[object], _T], default: _T
    ) -> _T:
        if key not in table:
            return default
        try:
            return convert(table[key])
        except _Invalid as exc:
            self.error((*prefix, key), str(exc))
            return default

    def table(self, value: object, path: _KeyPath, what: str) -> Mapping[str, object]:
        if isinstance(value, dict):
            return value
        self.error(path, f"must be a table ({what}), not {_show(value)}")
        return {}

    def unknown_keys(self, table: Mapping[str, object], prefix: _KeyPath, known: tuple[str, ...]) -> None:
        for key in table:
            if key in known:
                continue
            message = f"unknown key {key!r}"
            close = difflib.get_close_matches(key, known, n=1)
            if close:
                message += f"; did you mean {close[0]!r}?"
            elif not prefix:
                message += f" (the keys are {', '.join(known)})"
            self.error((*prefix, key), message)

    # ---------------------------------------------------------------------------------------------- profiles

    def profiles_document(
        self, data: Mapping[str, object], base_dir: Path
    ) -> tuple[str | None, dict[str, Profile], dict[str, dict[str, Any]]]:
        self.unknown_keys(data, (), ("default", "profiles"))
        default = self.get(data, (), "default", _string, None)
        profiles: dict[str, Profile] = {}
        tables: dict[str, dict[str, Any]] = {}
        section = self.table(data.get("profiles", {}), ("profiles",), "of [profiles.NAME] tables")
        for name, value in section.items():
            path: _KeyPath = ("profiles", name)
            if not isinstance(value, dict):
                self.error(path, f"must be a table: write [profiles.{_dotted((name,))}], not {_show(value)}")
                continue
            profile = self.profile(name, value, base_dir)
            if profile is not None:
                profiles[name] = profile
                tables[name] = value
        if default is not None and not self.errors and default not in profiles:
            known = ", ".join(repr(name) for name in profiles) or "none"
            self.error(("default",), f"there is no profile {default!r} (the profiles: {known})")
        return default, profiles, tables

    def profile(self, name: str, table: Mapping[str, object], base_dir: Path) -> Profile | None:
        """The profile of a [profiles.NAME] table, or None when it has errors (which are recorded)."""
        prefix: _KeyPath = ("profiles", name)
        errors_before = len(self.errors)
        self.unknown_keys(table, prefix, PROFILE_KEYS)
        d = Profile(name)
        tls = self.table(table.get("tls", {}), (*prefix, "tls"), "[profiles.NAME.tls]")
        will = self.table(table.get("will", {}), (*prefix, "will"), "[profiles.NAME.will]")
        self.unknown_keys(tls, (*prefix, "tls"), TLS_KEYS)
        self.unknown_keys(will, (*prefix, "will"), WILL_KEYS)
        tls_prefix: _KeyPath = (*prefix, "tls")
        will_prefix: _KeyPath = (*prefix, "will")
        file_name = _file_name(base_dir)
        password = self.get(table, prefix, "password", _optional_string, d.password)
        url = self.get(table, prefix, "url", _string, d.url)
        will_topic = self.get(will, will_prefix, "topic", _string, None)
        if will and "topic" not in will:
            self.error(will_prefix, "a will needs a topic")
        url_password = _url_password(url)
        profile = Profile(
            name=name,
            url=url,
            version=self.get(table, prefix, "version", _integer, d.version),
            client_id=self.get(table, prefix, "client_id", _string, d.client_id),
            username=self.get(table, prefix, "username", _optional_string, d.username),
            password=password,
            # A literal password in the file was saved on purpose: saving the profile again keeps it.
            save_password=any(value is not None and not _is_reference(value) for value in (password, url_password)),
            keepalive=self.get(table, prefix, "keepalive", _integer, d.keepalive),
            clean_start=self.get(table, prefix, "clean_start", _boolean, d.clean_start),
            session_expiry=self.get(table, prefix, "session_expiry", _integer, d.session_expiry),
            subscriptions=self.subscriptions(table, prefix, d.subscriptions),
            ca_file=self.get(tls, tls_prefix, "ca_file", file_name, d.ca_file),
            cert_file=self.get(tls, tls_prefix, "cert_file", file_name, d.cert_file),
            key_file=self.get(tls, tls_prefix, "key_file", file_name, d.key_file),
            insecure=self.get(tls, tls_prefix, "insecure", _boolean, d.insecure),
            server_hostname=self.get(tls, tls_prefix, "server_hostname", _optional_string, d.server_hostname),
            will_topic=will_topic,
            will_payload=self.get(will, will_prefix, "payload", _string, d.will_payload),
            will_qos=self.get(will, will_prefix, "qos", _integer, d.will_qos),
            will_retain=self.get(will, will_prefix, "retain", _boolean, d.will_retain),
        )
        if len(self.errors) > errors_before:
            return None
        if will_topic == "":
            self.error((*will_prefix, "topic"), "must not be empty (leave out [will] for no will)")
        for field_name, index, problem in profile._problems():
            if field_name == "name":
                self.error(prefix, f"bad profile name: {problem}")
                continue
            path: _KeyPath = (*prefix, *_FIELD_KEYS[field_name])
            if index is not None:
                path = (*path, index)
            self.error(path, problem)
        return profile if len(self.errors) == errors_before else None

    def subscriptions(
        self, table: Mapping[str, object], prefix: _KeyPath, default: tuple[tuple[str, int], ...]
    ) -> tuple[tuple[str, int], ...]:
        path: _KeyPath = (*prefix, "subscriptions")
        if "subscriptions" not in table:
            return default
        value = table["subscriptions"]
        if not isinstance(value, list):
            self.error(path, f"must be an array of topic filters, not {_show(value)}")
            return default
        result: list[tuple[str, int]] = []
        for index, item in enumerate(value):
            item_path: _KeyPath = (*path, index)
            if isinstance(item, str):
                result.append((item, 0))
            elif isinstance(item, dict):
                self.unknown_keys(item, item_path, SUBSCRIPTION_KEYS)
                if "filter" not in item:
                    self.error(item_path, 'needs a filter: { filter = "a/#", qos = 1 }')
                    continue
                topic_filter = self.get(item, item_path, "filter", _string, "")
                result.append((topic_filter, self.get(item, item_path, "qos", _integer, 0)))
            else:
                self.error(item_path, f'must be a topic filter or {{ filter = "a/#", qos = 1 }}, not {_show(item)}')
        return tuple(result)

    # ---------------------------------------------------------------------------------------------- settings

    def settings(self, data: Mapping[str, object]) -> AppSettings:
        self.unknown_keys(data, (), SETTINGS_KEYS)
        d = AppSettings()
        settings = AppSettings(
            theme=self.get(data, (), "theme", _string, d.theme),
            history_per_topic=self.get(data, (), "history_per_topic", _integer, d.history_per_topic),
            history_budget_mb=self.get(data, (), "history_budget_mb", _integer, d.history_budget_mb),
            history_payload_limit_kb=self.get(
                data, (), "history_payload_limit_kb", _integer, d.history_payload_limit_kb
            ),
            flush_hz=self.get(data, (), "flush_hz", _integer, d.flush_hz),
            chat_nick=self.get(data, (), "chat_nick", _string, d.chat_nick),
            max_packet_size_kb=self.get(data, (), "max_packet_size_kb", _integer, d.max_packet_size_kb),
            decoders=self.decoder_rules(data),
        )
        if not self.errors:
            for key, problem in settings.validate().items():
                self.error((key,), problem)
        return settings

    def decoder_rules(self, data: Mapping[str, object]) -> tuple[DecoderRule, ...]:
        """The ``[[decoders]]`` tables: a topic filter, a decoder (chain) and its options each."""
        if "decoders" not in data:
            return ()
        value = data["decoders"]
        if not isinstance(value, list):
            self.error(
                ("decoders",), f'must be [[decoders]] tables (filter = "a/#", decoder = "json"), not {_show(value)}'
            )
            return ()
        file_name = _file_name(self.file.absolute().parent)
        rules: list[DecoderRule] = []
        for index, item in enumerate(value):
            path: _KeyPath = ("decoders", index)
            if not isinstance(item, dict):
                self.error(path, f'must be a table (filter = "a/#", decoder = "json"), not {_show(item)}')
                continue
            errors_before = len(self.errors)
            self.unknown_keys(item, path, RULE_KEYS)
            for key in ("filter", "decoder"):
                if key not in item:
                    self.error(path, f'needs a {key}: [[decoders]] filter = "a/#", decoder = "json"')
            rule = DecoderRule(
                filter=self.get(item, path, "filter", _string, ""),
                decoder=self.get(item, path, "decoder", _string, ""),
                struct=self.get(item, path, "struct", _string, None),
                fields=self.get(item, path, "fields", _strings, ()),
                descriptor_set=self.get(item, path, "descriptor_set", file_name, None),
                message=self.get(item, path, "message", _string, None),
                command=self.get(item, path, "command", _strings, ()),
                timeout=self.get(item, path, "timeout", _seconds, DEFAULT_TIMEOUT),
            )
            if len(self.errors) > errors_before:
                continue
            for key, problem in rule.problems():
                self.error((*path, key), problem)
            if len(self.errors) == errors_before:
                rules.append(rule)
        return tuple(rules)

    # --------------------------------------------------------------------------------------------- templates

    def templates_document(self, data: Mapping[str, object]) -> dict[str, PublishTemplate]:
        self.unknown_keys(data, (), ("templates",))
        templates: dict[str, PublishTemplate] = {}
        section = self.table(data.get("templates", {}), ("templates",), "of [templates.NAME] tables")
        for name, value in section.items():
            path: _KeyPath = ("templates", name)
            if not isinstance(value, dict):
                self.error(path, f"must be a table: write [templates.{_dotted((name,))}], not {_show(value)}")
                continue
            template = self.template(name, value)
            if template is not None:
                templates[name] = template
        return templates

    def template(self, name: str, table: Mapping[str, object]) -> PublishTemplate | None:
        """The template of a [templates.NAME] table, or None when it has errors (which are recorded)."""
        prefix: _KeyPath = ("templates", name)
        errors_before = len(self.errors)
        self.unknown_keys(table, prefix, TEMPLATE_KEYS)
        d = PublishTemplate(name)
        template = PublishTemplate(
            name=name,
            topic=self.get(table, prefix, "topic", _string, d.topic),
            payload=self.get(table, prefix, "payload", _string, d.payload),
            qos=self.get(table, prefix, "qos", _integer, d.qos),
            retain=self.get(table, prefix, "retain", _boolean, d.retain),
            content_type=self.get(table, prefix, "content_type", _string, d.content_type),
            user_properties=self.get(table, prefix, "user_properties", _user_properties, d.user_properties),
            message_expiry_interval=self.get(
                table, prefix, "message_expiry_interval", _integer, d.message_expiry_interval
            ),
            response_topic=self.get(table, prefix, "response_topic", _string, d.response_topic),
            correlation_data=self.get(table, prefix, "correlation_data", _string, d.correlation_data),
        )
        if len(self.errors) > errors_before:
            return None
        for key, problem in template.validate().items():
            if key == "name":
                self.error(prefix, f"bad template name: {problem}")
            else:
                self.error((*prefix, key), problem)
        return template if len(self.errors) == errors_before else None


# --------------------------------------------------------------------------------------------------------------
# Finding the lines of keys
#
# tomllib returns plain dictionaries without positions, so the text, once tomllib has accepted it, is scanned a
# second time with just enough TOML to tell keys from values: table headers (and [[array]] headers with their
# indices), dotted and quoted keys, the four kinds of strings, arrays and inline tables. Values are skipped.


class _ScanError(Exception):
    """The scanner met something it does not follow; the lines found until then are kept."""


_SCALAR = re.compile(r"[^,\]}\r\n#]*")


class _KeyLineScanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.lines: dict[_KeyPath, int] = {}
        #: How many [[tables]] each array of tables has so far.
        self.arrays: dict[_KeyPath, int] = {}
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

    def note(self, path: _KeyPath, line: int, known: int = 0) -> None:
        """Record the line of path and of its prefixes longer than known (the first line seen wins)."""
        for length in range(known + 1, len(path) + 1):
            self.lines.setdefault(path[:length], line)

    def scan(self) -> dict[_KeyPath, int]:
        table: _KeyPath = ()
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

    def header(self, keys: tuple[str, ...], *, array: bool) -> _KeyPath:
        """A header's path: its names, each array of tables followed by the index of its latest table."""
        path: _KeyPath = ()
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

    def pair(self, table: _KeyPath, line: int) -> None:
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
                match = _BARE_KEY.match(self.text, self.pos)
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

    def value(self, path: _KeyPath) -> None:
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

    def array(self, path: _KeyPath) -> None:
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

    def inline_table(self, path: _KeyPath) -> None:
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


def _key_lines(text: str) -> dict[_KeyPath, int]:
    """The line where each key, table and array item of a TOML document is first written.

    Paths follow tomllib's nesting, with indices for array items: ``("profiles", "local", "subscriptions", 1)``.
    A document the scanner cannot follow to its end keeps the lines found before that point.
    """
    scanner = _KeyLineScanner(text)
    try:
        return scanner.scan()
    except (_ScanError, IndexError, tomllib.TOMLDecodeError):
        return scanner.lines
