"""The embedded broker's configuration: a TOML file whose keys follow mosquitto's option names."""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, TypeVar

import platformdirs

from mqttchat.broker.errors import ConfigError
from mqttchat.protocol.constants import MAX_PACKET_SIZE, MAX_VARIABLE_INTEGER

__all__ = [
    "BROKER_KEYS",
    "LISTENER_KEYS",
    "BrokerConfig",
    "ListenerConfig",
    "ListenerProtocol",
    "default_config",
    "default_persistence_file",
    "describe",
    "load_config",
    "parse_config",
    "with_overrides",
]

ListenerProtocol = Literal["mqtt", "websockets"]
PROTOCOLS: tuple[ListenerProtocol, ...] = ("mqtt", "websockets")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 1883
#: The smallest Maximum Packet Size worth announcing (mosquitto ignores smaller values).
MIN_MAX_PACKET_SIZE = 20
MAX_UINT16 = 65_535

_T = TypeVar("_T")
#: Where a value sits in the TOML document: table names, key names and array indices.
_KeyPath = tuple[str | int, ...]


def default_persistence_file() -> Path:
    """Where the broker keeps its state by default: ``<user data dir>/mqttchat/broker.sqlite3``."""
    return platformdirs.user_data_path("mqttchat") / "broker.sqlite3"


@dataclass(frozen=True, slots=True)
class ListenerConfig:
    """One ``[[listener]]``: an address to accept connections on, plain or TLS, TCP or WebSocket."""

    #: 0 picks a free port.
    port: int = DEFAULT_PORT
    #: The address to bind (mosquitto's ``bind_address``): "0.0.0.0" or "::" for every interface.
    host: str = DEFAULT_HOST
    protocol: ListenerProtocol = "mqtt"
    #: The WebSocket path; "" or "/" accepts any path. Unused by mqtt listeners.
    path: str = "/mqtt"
    #: Both ``certfile`` and ``keyfile`` make this a TLS listener (mqtts or wss).
    certfile: Path | None = None
    keyfile: Path | None = None
    #: CA certificates to verify client certificates with.
    cafile: Path | None = None
    #: Refuse clients without a certificate signed by ``cafile``.
    require_certificate: bool = False
    #: -1: unlimited.
    max_connections: int = -1

    @property
    def tls(self) -> bool:
        return self.certfile is not None and self.keyfile is not None

    @property
    def websocket(self) -> bool:
        return self.protocol == "websockets"

    @property
    def scheme(self) -> str:
        if self.websocket:
            return "wss" if self.tls else "ws"
        return "mqtts" if self.tls else "mqtt"

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:1883``, ``mqtts://…``, ``ws://…/mqtt`` or ``wss://…``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        path = (self.path or "/") if self.websocket else ""
        return f"{self.scheme}://{host}:{self.port}{path}"


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """Everything the embedded broker can be told. Field names are the TOML keys (mosquitto's names)."""

    allow_anonymous: bool = True
    #: Relative paths in a file are resolved against the file's directory.
    password_file: Path | None = None
    acl_file: Path | None = None
    #: Per client: messages queued while offline or beyond the in-flight window. 0: no limit.
    max_queued_messages: int = 1000
    #: Per client, payload bytes queued. 0: no limit.
    max_queued_bytes: int = 0
    #: Per client, outgoing QoS 1/2 in flight (further capped by the client's Receive Maximum). 0: 65535.
    max_inflight_messages: int = 20
    #: Announced to MQTT 5 clients: how many incoming QoS 1/2 publishes may be in flight.
    receive_maximum: int = MAX_UINT16
    #: 0: the protocol maximum; otherwise announced as Maximum Packet Size (>= 20).
    max_packet_size: int = 0
    #: The largest payload accepted. 0: no limit.
    message_size_limit: int = 0
    #: Caps the client keepalive; announced as Server Keep Alive to MQTT 5 clients. 0: no cap.
    max_keepalive: int = MAX_UINT16
    #: -1: unlimited.
    max_connections: int = -1
    #: Topic Alias Maximum announced to MQTT 5 clients.
    max_topic_alias: int = 10
    maximum_qos: int = 2
    retain_available: bool = True
    allow_zero_length_clientid: bool = True
    #: Seconds for CONNECT to arrive after the connection opens.
    connect_timeout: float = 5.0
    persistence: bool = False
    persistence_file: Path | None = field(default_factory=default_persistence_file)
    #: Seconds between periodic saves of the persistence file (accepted for mosquitto compatibility); 0: none.
    autosave_interval: int = 0
    #: Seconds between ``$SYS`` publications. 0: off.
    sys_interval: int = 10
    queue_qos0_messages: bool = False
    #: Seconds after which MQTT 3.1.1 persistent sessions of clients gone that long expire. 0: never.
    persistent_client_expiration: int = 0
    log_connections: bool = True
    listeners: tuple[ListenerConfig, ...] = (ListenerConfig(),)
    #: The file this came from; None for built-in defaults or text.
    source: Path | None = None


#: Every top-level key (``listener`` is the array of ``[[listener]]`` tables).
BROKER_KEYS: tuple[str, ...] = (
    "allow_anonymous",
    "password_file",
    "acl_file",
    "max_queued_messages",
    "max_queued_bytes",
    "max_inflight_messages",
    "receive_maximum",
    "max_packet_size",
    "message_size_limit",
    "max_keepalive",
    "max_connections",
    "max_topic_alias",
    "maximum_qos",
    "retain_available",
    "allow_zero_length_clientid",
    "connect_timeout",
    "persistence",
    "persistence_file",
    "autosave_interval",
    "sys_interval",
    "queue_qos0_messages",
    "persistent_client_expiration",
    "log_connections",
    "listener",
)
#: Every key of a ``[[listener]]`` table (``bind_address`` is mosquitto's name for ``host``).
LISTENER_KEYS: tuple[str, ...] = (
    "port",
    "host",
    "bind_address",
    "protocol",
    "path",
    "certfile",
    "keyfile",
    "cafile",
    "require_certificate",
    "max_connections",
)


# --------------------------------------------------------------------------------------------------------------
# Public functions


def default_config() -> BrokerConfig:
    """The built-in configuration: one plain listener on 127.0.0.1:1883, anonymous access, no persistence."""
    return BrokerConfig()


def load_config(path: str | Path) -> BrokerConfig:
    """Read and check a broker TOML file.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or has a wrong key or value (with file, line and key).
    """
    file = Path(path).expanduser()
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigError(path, None, None, f"cannot read the file: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(path, line, None, f"not UTF-8 text (byte {exc.start})") from None
    config = parse_config(text, path, base_dir=file.absolute().parent)
    return replace(config, source=file.absolute())


def parse_config(text: str, file: str | Path = "<config>", base_dir: Path | None = None) -> BrokerConfig:
    """Check a broker configuration given as TOML text.

    ``file`` names the text in errors; ``base_dir`` is what relative paths are relative to (the current
    directory when None). ``source`` is ``file`` when it is a :class:`~pathlib.Path`.

    Raises:
        ConfigError: the text is not TOML, or has a wrong key or value.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(text, file, exc) from None
    base = base_dir if base_dir is not None else Path.cwd()
    reader = _Reader(file, text, base)
    config = reader.broker(data)
    reader.raise_first()
    return replace(config, source=file) if isinstance(file, Path) else config


def with_overrides(config: BrokerConfig, *, port: int | None = None, host: str | None = None) -> BrokerConfig:
    """Apply the command line's ``-p PORT`` / ``--host ADDR``: one plain mqtt listener on host:port.

    With neither given the configuration is returned unchanged. The missing one defaults to 127.0.0.1 or 1883.

    Raises:
        ConfigError: a port outside 0..65535 or an empty host.
    """
    if port is None and host is None:
        return config
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= MAX_UINT16):
        raise ConfigError("<command line>", None, "--port", f"must be an integer between 0 and 65535, not {port!r}")
    if host is not None and not host:
        raise ConfigError("<command line>", None, "--host", "must not be empty (use 0.0.0.0 or :: for every interface)")
    listener = ListenerConfig(
        port=DEFAULT_PORT if port is None else port,
        host=DEFAULT_HOST if host is None else host,
    )
    return replace(config, listeners=(listener,))


def describe(config: BrokerConfig) -> list[str]:
    """The effective settings as human-readable lines (for ``mqttchat broker -v``)."""
    rows: list[tuple[str, str]] = [("config", str(config.source) if config.source else "built-in defaults")]
    rows.extend(("listener", _describe_listener(listener)) for listener in config.listeners)

    def limit(value: int, unit: str, zero: str) -> str:
        return f"{value} ({zero})" if value == 0 else f"{value} {unit}"

    def flag(value: bool) -> str:
        return "true" if value else "false"

    def path(value: Path | None, none: str) -> str:
        return str(value) if value is not None else f"none ({none})"

    c = config
    persistence_note = "" if c.persistence else " (unused: persistence is off)"
    rows += [
        ("allow_anonymous", flag(c.allow_anonymous)),
        ("password_file", path(c.password_file, "no passwords are checked")),
        ("acl_file", path(c.acl_file, "every client may publish and subscribe to every topic")),
        ("max_queued_messages", limit(c.max_queued_messages, "per client", "no limit")),
        ("max_queued_bytes", limit(c.max_queued_bytes, "bytes per client", "no limit")),
        ("max_inflight_messages", limit(c.max_inflight_messages, "per client", "65535")),
        ("receive_maximum", str(c.receive_maximum)),
        ("max_packet_size", limit(c.max_packet_size, "bytes", f"the protocol maximum, {MAX_PACKET_SIZE} bytes")),
        ("message_size_limit", limit(c.message_size_limit, "bytes", "no limit")),
        ("max_keepalive", limit(c.max_keepalive, "seconds", "no cap")),
        ("max_connections", _describe_connections(c.max_connections)),
        ("max_topic_alias", limit(c.max_topic_alias, "aliases per client", "no topic aliases")),
        ("maximum_qos", str(c.maximum_qos)),
        ("retain_available", flag(c.retain_available)),
        ("allow_zero_length_clientid", flag(c.allow_zero_length_clientid)),
        ("connect_timeout", f"{c.connect_timeout:g} seconds"),
        ("persistence", flag(c.persistence)),
        ("persistence_file", path(c.persistence_file, "not set") + persistence_note),
        ("autosave_interval", limit(c.autosave_interval, "seconds", "off")),
        ("sys_interval", limit(c.sys_interval, "seconds", "no $SYS topics")),
        ("queue_qos0_messages", flag(c.queue_qos0_messages)),
        ("persistent_client_expiration", limit(c.persistent_client_expiration, "seconds", "never")),
        ("log_connections", flag(c.log_connections)),
    ]
    width = max(len(name) for name, _ in rows)
    return [f"{name:<{width}}  {value}" for name, value in rows]


# --------------------------------------------------------------------------------------------------------------
# Describing


def _describe_connections(value: int) -> str:
    return "-1 (unlimited)" if value < 0 else str(value)


def _describe_listener(listener: ListenerConfig) -> str:
    notes: list[str] = []
    if listener.websocket and listener.path in {"", "/"}:
        notes.append("any path")
    if listener.tls:
        notes.append(f"certfile {listener.certfile}, keyfile {listener.keyfile}")
    if listener.cafile is not None:
        notes.append(f"cafile {listener.cafile}")
    if listener.require_certificate:
        notes.append("client certificate required")
    if listener.max_connections >= 0:
        notes.append(f"max_connections {listener.max_connections}")
    return listener.url + (f" ({'; '.join(notes)})" if notes else "")


# --------------------------------------------------------------------------------------------------------------
# Checking values


class _Invalid(Exception):
    """A value is wrong; the message says how. The reader adds the file, line and key."""


def _show(value: object) -> str:
    """A value as the user wrote it, roughly, for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    text = repr(value) if isinstance(value, str | int | float) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _integer(low: int, high: int | None = None, what: str | None = None) -> Callable[[object], int]:
    """An integer in low..high (no upper bound when high is None)."""
    if what is None:
        what = f"an integer >= {low}" if high is None else f"an integer between {low} and {high}"

    def convert(value: object) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
            raise _Invalid(f"must be {what}, not {_show(value)}")
        return value

    return convert


def _connections(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and (value == -1 or value >= 1):
        return value
    raise _Invalid(f"must be -1 (unlimited) or an integer >= 1, not {_show(value)}")


def _packet_size(value: object) -> int:
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and (value == 0 or MIN_MAX_PACKET_SIZE <= value <= MAX_PACKET_SIZE)
    ):
        return value
    raise _Invalid(
        f"must be 0 (the protocol maximum) or an integer between {MIN_MAX_PACKET_SIZE} and {MAX_PACKET_SIZE}, "
        f"not {_show(value)}"
    )


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"must be true or false, not {_show(value)}")
    return value


def _seconds(value: object) -> float:
    """A positive, finite number of seconds (an integer or a float)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise _Invalid(f"must be a number of seconds > 0, not {_show(value)}")
    return float(value)


def _host(value: object) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"must be a string, not {_show(value)}")
    if not value.strip():
        raise _Invalid('must not be empty: use "0.0.0.0" or "::" for every interface')
    return value


def _protocol(value: object) -> ListenerProtocol:
    for protocol in PROTOCOLS:
        if value == protocol:
            return protocol
    raise _Invalid(f"must be 'mqtt' or 'websockets', not {_show(value)}")


def _ws_path(value: object) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"must be a string, not {_show(value)}")
    if value and not value.startswith("/"):
        raise _Invalid(f"must start with '/' (or be '' for any path), not {_show(value)}")
    return value


def _path(base_dir: Path, *, must_exist: bool = False) -> Callable[[object], Path]:
    """A file name; relative names are relative to base_dir."""

    def convert(value: object) -> Path:
        if not isinstance(value, str):
            raise _Invalid(f"must be a file name (a string), not {_show(value)}")
        if not value.strip():
            raise _Invalid("must not be empty")
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = base_dir / path
        if must_exist and not path.is_file():
            raise _Invalid(f"not a file: {path}" if path.exists() else f"file not found: {path}")
        return path

    return convert


# --------------------------------------------------------------------------------------------------------------
# Reading the parsed document


class _Reader:
    """Turns tomllib's dictionary into a BrokerConfig, collecting errors with their lines."""

    def __init__(self, file: str | Path, text: str, base_dir: Path) -> None:
        self.file = file
        self.text = text
        self.base_dir = base_dir
        self.errors: list[ConfigError] = []
        self._lines: dict[_KeyPath, int] | None = None

    def line(self, path: _KeyPath) -> int | None:
        """The line where the key (or table) at path is first written, if the scanner can tell."""
        if self._lines is None:
            self._lines = _key_lines(self.text)
        return self._lines.get(path)

    def error(self, path: _KeyPath, key: str | None, message: str) -> None:
        self.errors.append(ConfigError(self.file, self.line(path), key, message))

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
            self.error((*prefix, key), key, str(exc))
            return default

    def unknown_keys(self, table: Mapping[str, object], prefix: _KeyPath, known: tuple[str, ...], hint: str) -> None:
        for key in table:
            if key in known:
                continue
            message = f"unknown key {key!r}{hint}"
            close = difflib.get_close_matches(key, known, n=1)
            if not prefix and key in LISTENER_KEYS:
                message += "; listener settings go in a [[listener]] table"
            elif prefix and key in BROKER_KEYS:
                message += "; top-level keys must come before the first [[listener]] table"
            elif close:
                message += f"; did you mean {close[0]!r}?"
            self.error((*prefix, key), key, message)

    def broker(self, data: Mapping[str, object]) -> BrokerConfig:
        self.unknown_keys(data, (), BROKER_KEYS, "")
        d = BrokerConfig()
        base = self.base_dir
        unsigned = _integer(0)
        uint16 = _integer(0, MAX_UINT16)
        return BrokerConfig(
            allow_anonymous=self.get(data, (), "allow_anonymous", _boolean, d.allow_anonymous),
            password_file=self.get(data, (), "password_file", _path(base), d.password_file),
            acl_file=self.get(data, (), "acl_file", _path(base), d.acl_file),
            max_queued_messages=self.get(data, (), "max_queued_messages", unsigned, d.max_queued_messages),
            max_queued_bytes=self.get(data, (), "max_queued_bytes", unsigned, d.max_queued_bytes),
            max_inflight_messages=self.get(data, (), "max_inflight_messages", uint16, d.max_inflight_messages),
            receive_maximum=self.get(data, (), "receive_maximum", _integer(1, MAX_UINT16), d.receive_maximum),
            max_packet_size=self.get(data, (), "max_packet_size", _packet_size, d.max_packet_size),
            message_size_limit=self.get(
                data, (), "message_size_limit", _integer(0, MAX_VARIABLE_INTEGER), d.message_size_limit
            ),
            max_keepalive=self.get(data, (), "max_keepalive", uint16, d.max_keepalive),
            max_connections=self.get(data, (), "max_connections", _connections, d.max_connections),
            max_topic_alias=self.get(data, (), "max_topic_alias", uint16, d.max_topic_alias),
            maximum_qos=self.get(data, (), "maximum_qos", _integer(0, 2), d.maximum_qos),
            retain_available=self.get(data, (), "retain_available", _boolean, d.retain_available),
            allow_zero_length_clientid=self.get(
                data, (), "allow_zero_length_clientid", _boolean, d.allow_zero_length_clientid
            ),
            connect_timeout=self.get(data, (), "connect_timeout", _seconds, d.connect_timeout),
            persistence=self.get(data, (), "persistence", _boolean, d.persistence),
            persistence_file=self.get(data, (), "persistence_file", _path(base), d.persistence_file),
            autosave_interval=self.get(data, (), "autosave_interval", unsigned, d.autosave_interval),
            sys_interval=self.get(data, (), "sys_interval", unsigned, d.sys_interval),
            queue_qos0_messages=self.get(data, (), "queue_qos0_messages", _boolean, d.queue_qos0_messages),
            persistent_client_expiration=self.get(
                data, (), "persistent_client_expiration", unsigned, d.persistent_client_expiration
            ),
            log_connections=self.get(data, (), "log_connections", _boolean, d.log_connections),
            listeners=self.listeners(data.get("listener")),
        )

    def listeners(self, value: object) -> tuple[ListenerConfig, ...]:
        if value is None or value == []:
            return (ListenerConfig(),)
        if isinstance(value, dict):
            self.error(("listener",), "listener", "must be an array of tables: write [[listener]], not [listener]")
            return (ListenerConfig(),)
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            self.error(("listener",), "listener", f"must be an array of [[listener]] tables, not {_show(value)}")
            return (ListenerConfig(),)
        listeners = tuple(self.listener(table, index) for index, table in enumerate(value))
        if not self.errors:
            self.check_duplicates(value, listeners)
        return listeners

    def listener(self, table: Mapping[str, object], index: int) -> ListenerConfig:
        prefix: _KeyPath = ("listener", index)
        errors_before = len(self.errors)
        self.unknown_keys(table, prefix, LISTENER_KEYS, " in [[listener]]")
        d = ListenerConfig()
        base = self.base_dir
        host = self.get(table, prefix, "host", _host, d.host)
        if "bind_address" in table:
            if "host" in table:
                self.error((*prefix, "bind_address"), "bind_address", "give either host or bind_address, not both")
            host = self.get(table, prefix, "bind_address", _host, d.host)
        listener = ListenerConfig(
            port=self.get(table, prefix, "port", _integer(0, MAX_UINT16), d.port),
            host=host,
            protocol=self.get(table, prefix, "protocol", _protocol, d.protocol),
            path=self.get(table, prefix, "path", _ws_path, d.path),
            certfile=self.get(table, prefix, "certfile", _path(base, must_exist=True), d.certfile),
            keyfile=self.get(table, prefix, "keyfile", _path(base, must_exist=True), d.keyfile),
            cafile=self.get(table, prefix, "cafile", _path(base, must_exist=True), d.cafile),
            require_certificate=self.get(table, prefix, "require_certificate", _boolean, d.require_certificate),
            max_connections=self.get(table, prefix, "max_connections", _connections, d.max_connections),
        )
        if len(self.errors) > errors_before:
            return listener  # the checks below could only add noise
        if "path" in table and not listener.websocket:
            self.error((*prefix, "path"), "path", 'only applies to protocol = "websockets"')
        if listener.certfile is not None and listener.keyfile is None:
            self.error((*prefix, "certfile"), "certfile", "needs keyfile too (TLS needs both)")
        if listener.keyfile is not None and listener.certfile is None:
            self.error((*prefix, "keyfile"), "keyfile", "needs certfile too (TLS needs both)")
        if listener.cafile is not None and listener.certfile is None and listener.keyfile is None:
            self.error((*prefix, "cafile"), "cafile", "needs certfile and keyfile (client certificates need TLS)")
        if listener.require_certificate and listener.cafile is None:
            self.error((*prefix, "require_certificate"), "require_certificate", "needs cafile to verify them with")
        return listener

    def check_duplicates(self, tables: list[dict[str, object]], listeners: tuple[ListenerConfig, ...]) -> None:
        seen: dict[tuple[str, int], int] = {}
        for index, listener in enumerate(listeners):
            if listener.port == 0:
                continue
            address = (listener.host.lower(), listener.port)
            if address not in seen:
                seen[address] = index
                continue
            first = seen[address]
            first_line = self.line(("listener", first, "port")) or self.line(("listener", first))
            where = f" (line {first_line})" if first_line is not None else ""
            key = "port" if "port" in tables[index] else "listener"
            path: _KeyPath = ("listener", index, "port") if key == "port" else ("listener", index)
            self.error(
                path,
                key,
                f"listener {index + 1} uses {listener.host}:{listener.port}, like listener {first + 1}{where}",
            )


def _syntax_error(text: str, file: str | Path, exc: tomllib.TOMLDecodeError) -> ConfigError:
    message = str(exc)
    line: int | None = None
    match = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if match:
        line = int(match.group(1))
        message = f"{message[: match.start()]} (column {match.group(2)})"
    elif message.endswith("(at end of document)"):
        line = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
    return ConfigError(file, line, None, f"invalid TOML: {message}")


# --------------------------------------------------------------------------------------------------------------
# Finding the lines of keys
#
# tomllib returns plain dictionaries without positions, so the text is scanned a second time, after tomllib
# accepted it. The scanner knows just enough TOML to find keys: table headers (with the index of each
# [[array]] table), dotted and quoted keys, strings of the four kinds (so that text inside them is not taken
# for keys), arrays and inline tables (whose keys get paths with array indices too). Values are skipped.


class _ScanError(Exception):
    """The scanner met something it does not understand; it keeps the lines found so far."""


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR = re.compile(r"[^,\]}\r\n#]*")


class _KeyLineScanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.lines: dict[_KeyPath, int] = {}
        #: How many [[tables]] each array of tables has so far.
        self.arrays: dict[_KeyPath, int] = {}
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_at(self, pos: int) -> int:
        return bisect_right(self.line_starts, pos)

    def peek(self, length: int = 1) -> str:
        return self.text[self.pos : self.pos + length]

    def expect(self, token: str) -> None:
        if not self.text.startswith(token, self.pos):
            raise _ScanError(f"expected {token!r} at {self.pos}")
        self.pos += len(token)

    def skip_space(self, *, newlines: bool) -> None:
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
                break

    def record(self, path: _KeyPath, start: int, line: int) -> None:
        """Remember the line of every prefix of path longer than start (the first occurrence wins)."""
        for length in range(start + 1, len(path) + 1):
            self.lines.setdefault(path[:length], line)

    def scan(self) -> dict[_KeyPath, int]:
        table: _KeyPath = ()
        while True:
            self.skip_space(newlines=True)
            if self.pos >= len(self.text):
                return self.lines
            line = self.line_at(self.pos)
            if self.peek() == "[":
                array = self.peek(2) == "[["
                self.pos += 2 if array else 1
                keys = self.key()
                self.skip_space(newlines=False)
                self.expect("]]" if array else "]")
                table = self.header(keys, array=array)
                self.record(table, 0, line)
            else:
                keys = self.key()
                self.assignment(table, keys, line)

    def header(self, keys: tuple[str, ...], *, array: bool) -> _KeyPath:
        """The path of a table header: names, with the current index after each array of tables."""
        path: list[str | int] = []
        for key in keys[:-1]:
            path.append(key)
            count = self.arrays.get(tuple(path))
            if count:
                path.append(count - 1)
        path.append(keys[-1])
        if array:
            count = self.arrays.get(tuple(path), 0)
            self.arrays[tuple(path)] = count + 1
            path.append(count)
        return tuple(path)

    def assignment(self, table: _KeyPath, keys: tuple[str, ...], line: int) -> None:
        """``keys = value`` in table, with the position after the keys."""
        self.skip_space(newlines=False)
        self.expect("=")
        self.skip_space(newlines=False)
        path = table + keys
        self.record(path, len(table), line)
        self.value(path)

    def key(self) -> tuple[str, ...]:
        """A key, maybe dotted and quoted: ``a``, ``"a b".c``, ``'x' . y``."""
        keys: list[str] = []
        while True:
            self.skip_space(newlines=False)
            char = self.peek()
            start = self.pos
            if char == '"':
                self.basic_string()
                keys.append(tomllib.loads(f"k = {self.text[start : self.pos]}")["k"])
            elif char == "'":
                self.literal_string()
                keys.append(self.text[start + 1 : self.pos - 1])
            else:
                match = _BARE_KEY.match(self.text, self.pos)
                if match is None:
                    raise _ScanError(f"no key at {self.pos}")
                keys.append(match.group())
                self.pos = match.end()
            self.skip_space(newlines=False)
            if self.peek() != ".":
                return tuple(keys)
            self.pos += 1

    def basic_string(self) -> None:
        text = self.text
        self.pos += 1
        while text[self.pos] != '"':
            if text[self.pos] in "\r\n":
                raise _ScanError("newline in a string")
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
        while not text.startswith(quotes, self.pos):
            if self.pos >= len(text):
                raise _ScanError("unterminated string")
            self.pos += 2 if quotes == '"""' and text[self.pos] == "\\" else 1
        self.pos += 3
        # Up to two quotes right before the closing ones belong to the string: """a""""" is 'a""'.
        for _ in range(2):
            if self.peek() == quotes[0]:
                self.pos += 1

    def value(self, path: _KeyPath) -> None:
        three = self.peek(3)
        char = three[:1]
        if three in {'"""', "'''"}:
            self.multiline_string(three)
        elif char == '"':
            self.basic_string()
        elif char == "'":
            self.literal_string()
        elif char == "[":
            self.array(path)
        elif char == "{":
            self.inline_table(path)
        else:
            match = _SCALAR.match(self.text, self.pos)
            if match is None or match.end() == self.pos:
                raise _ScanError(f"no value at {self.pos}")
            self.pos = match.end()

    def array(self, path: _KeyPath) -> None:
        self.pos += 1
        index = 0
        while True:
            self.skip_space(newlines=True)
            if self.peek() == "]":
                self.pos += 1
                return
            self.value((*path, index))
            index += 1
            self.skip_space(newlines=True)
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != "]":
                raise _ScanError(f"bad array at {self.pos}")

    def inline_table(self, path: _KeyPath) -> None:
        self.pos += 1
        while True:
            self.skip_space(newlines=True)
            if self.peek() == "}":
                self.pos += 1
                return
            line = self.line_at(self.pos)
            keys = self.key()
            self.assignment(path, keys, line)
            self.skip_space(newlines=True)
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != "}":
                raise _ScanError(f"bad inline table at {self.pos}")


def _key_lines(text: str) -> dict[_KeyPath, int]:
    """Map the path of every key and table in a TOML document to the line it is first written on.

    Paths are like tomllib's nesting, with list indices: ``("listener", 1, "port")`` is the port of the second
    ``[[listener]]``. A document the scanner cannot follow to the end keeps the lines found before that point.
    """
    scanner = _KeyLineScanner(text)
    try:
        return scanner.scan()
    except (_ScanError, IndexError, tomllib.TOMLDecodeError):
        return scanner.lines
