"""The embedded broker's configuration: a TOML file whose keys follow mosquitto's option names."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import platformdirs

from mqttchat.config.toml import (
    ConfigError,
    Invalid,
    KeyPath,
    TomlReader,
    as_boolean,
    as_string,
    did_you_mean,
    integer_in,
    parse_toml,
    read_text,
    show,
)
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
    #: Overload protection (see mqttchat.broker.overload): when this many messages are queued for a connected
    #: subscriber, the publishers feeding it are paused (not read) until its queue is back down to
    #: ``overload_low_water``; one that does not get there within ``overload_stall_timeout`` seconds is declared
    #: stalled and its messages beyond max_queued_messages dropped, as without protection.
    overload_protection: bool = True
    overload_high_water: int = 100
    overload_low_water: int = 50
    overload_stall_timeout: float = 1.0
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
    "overload_protection",
    "overload_high_water",
    "overload_low_water",
    "overload_stall_timeout",
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
    text = read_text(file, name=path)
    config = parse_config(text, path, base_dir=file.absolute().parent)
    return replace(config, source=file.absolute())


def parse_config(text: str, file: str | Path = "<config>", base_dir: Path | None = None) -> BrokerConfig:
    """Check a broker configuration given as TOML text.

    ``file`` names the text in errors; ``base_dir`` is what relative paths are relative to (the current
    directory when None). ``source`` is ``file`` when it is a :class:`~pathlib.Path`.

    Raises:
        ConfigError: the text is not TOML, or has a wrong key or value.
    """
    data = parse_toml(text, file)
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
        (
            "overload_protection",
            "true (slow subscribers pause their publishers)"
            if c.overload_protection
            else "false (a slow subscriber's messages beyond its queue are dropped)",
        ),
        ("overload_high_water", f"{c.overload_high_water} messages queued for a subscriber: its publishers pause"),
        ("overload_low_water", f"{c.overload_low_water} messages queued: they resume"),
        ("overload_stall_timeout", f"{c.overload_stall_timeout:g} seconds: then the subscriber is stalled"),
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


def _connections(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and (value == -1 or value >= 1):
        return value
    raise Invalid(f"must be -1 (unlimited) or an integer >= 1, not {show(value)}")


def _packet_size(value: object) -> int:
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and (value == 0 or MIN_MAX_PACKET_SIZE <= value <= MAX_PACKET_SIZE)
    ):
        return value
    raise Invalid(
        f"must be 0 (the protocol maximum) or an integer between {MIN_MAX_PACKET_SIZE} and {MAX_PACKET_SIZE}, "
        f"not {show(value)}"
    )


def _seconds(value: object) -> float:
    """A positive, finite number of seconds (an integer or a float)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise Invalid(f"must be a number of seconds > 0, not {show(value)}")
    return float(value)


def _host(value: object) -> str:
    text = as_string(value)
    if not text.strip():
        raise Invalid('must not be empty: use "0.0.0.0" or "::" for every interface')
    return text


def _protocol(value: object) -> ListenerProtocol:
    for protocol in PROTOCOLS:
        if value == protocol:
            return protocol
    raise Invalid(f"must be 'mqtt' or 'websockets', not {show(value)}")


def _ws_path(value: object) -> str:
    text = as_string(value)
    if text and not text.startswith("/"):
        raise Invalid(f"must start with '/' (or be '' for any path), not {show(text)}")
    return text


def _path(base_dir: Path, *, must_exist: bool = False) -> Callable[[object], Path]:
    """A file name; relative names are relative to base_dir."""

    def convert(value: object) -> Path:
        if not isinstance(value, str):
            raise Invalid(f"must be a file name (a string), not {show(value)}")
        if not value.strip():
            raise Invalid("must not be empty")
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = base_dir / path
        if must_exist and not path.is_file():
            raise Invalid(f"not a file: {path}" if path.exists() else f"file not found: {path}")
        return path

    return convert


# --------------------------------------------------------------------------------------------------------------
# Reading the parsed document


class _Reader(TomlReader):
    """Turns tomllib's dictionary into a BrokerConfig, collecting errors with their lines.

    Errors name a key by itself (``port``, not ``listener[1].port``), as mosquitto's options are named.
    """

    def __init__(self, file: str | Path, text: str, base_dir: Path) -> None:
        super().__init__(file, text)
        self.base_dir = base_dir

    def key_name(self, path: KeyPath) -> str:
        return next(str(part) for part in reversed(path) if isinstance(part, str))

    def unknown_key_advice(self, key: str, prefix: KeyPath, known: tuple[str, ...]) -> str:
        if not prefix and key in LISTENER_KEYS:
            return "; listener settings go in a [[listener]] table"
        if prefix and key in BROKER_KEYS:
            return "; top-level keys must come before the first [[listener]] table"
        close = did_you_mean(key, known)
        return f"; did you mean {close!r}?" if close is not None else ""

    def broker(self, data: Mapping[str, object]) -> BrokerConfig:
        self.unknown_keys(data, (), BROKER_KEYS)
        d = BrokerConfig()
        base = self.base_dir
        unsigned = integer_in(0)
        uint16 = integer_in(0, MAX_UINT16)
        config = BrokerConfig(
            allow_anonymous=self.get(data, (), "allow_anonymous", as_boolean, d.allow_anonymous),
            password_file=self.get(data, (), "password_file", _path(base), d.password_file),
            acl_file=self.get(data, (), "acl_file", _path(base), d.acl_file),
            max_queued_messages=self.get(data, (), "max_queued_messages", unsigned, d.max_queued_messages),
            max_queued_bytes=self.get(data, (), "max_queued_bytes", unsigned, d.max_queued_bytes),
            max_inflight_messages=self.get(data, (), "max_inflight_messages", uint16, d.max_inflight_messages),
            receive_maximum=self.get(data, (), "receive_maximum", integer_in(1, MAX_UINT16), d.receive_maximum),
            max_packet_size=self.get(data, (), "max_packet_size", _packet_size, d.max_packet_size),
            message_size_limit=self.get(
                data, (), "message_size_limit", integer_in(0, MAX_VARIABLE_INTEGER), d.message_size_limit
            ),
            max_keepalive=self.get(data, (), "max_keepalive", uint16, d.max_keepalive),
            max_connections=self.get(data, (), "max_connections", _connections, d.max_connections),
            max_topic_alias=self.get(data, (), "max_topic_alias", uint16, d.max_topic_alias),
            maximum_qos=self.get(data, (), "maximum_qos", integer_in(0, 2), d.maximum_qos),
            retain_available=self.get(data, (), "retain_available", as_boolean, d.retain_available),
            allow_zero_length_clientid=self.get(
                data, (), "allow_zero_length_clientid", as_boolean, d.allow_zero_length_clientid
            ),
            connect_timeout=self.get(data, (), "connect_timeout", _seconds, d.connect_timeout),
            persistence=self.get(data, (), "persistence", as_boolean, d.persistence),
            persistence_file=self.get(data, (), "persistence_file", _path(base), d.persistence_file),
            autosave_interval=self.get(data, (), "autosave_interval", unsigned, d.autosave_interval),
            sys_interval=self.get(data, (), "sys_interval", unsigned, d.sys_interval),
            queue_qos0_messages=self.get(data, (), "queue_qos0_messages", as_boolean, d.queue_qos0_messages),
            persistent_client_expiration=self.get(
                data, (), "persistent_client_expiration", unsigned, d.persistent_client_expiration
            ),
            log_connections=self.get(data, (), "log_connections", as_boolean, d.log_connections),
            overload_protection=self.get(data, (), "overload_protection", as_boolean, d.overload_protection),
            overload_high_water=self.get(data, (), "overload_high_water", integer_in(1), d.overload_high_water),
            overload_low_water=self.get(data, (), "overload_low_water", unsigned, d.overload_low_water),
            overload_stall_timeout=self.get(data, (), "overload_stall_timeout", _seconds, d.overload_stall_timeout),
            listeners=self.listeners(data.get("listener")),
        )
        if not self.errors:
            self.check_overload(data, config)
        return config

    def check_overload(self, data: Mapping[str, object], config: BrokerConfig) -> None:
        """The water marks in order, below the queue limit. Marks left at their defaults follow a smaller
        max_queued_messages (see mqttchat.broker.overload.water_marks); marks given must fit it."""
        high, low, queue_limit = config.overload_high_water, config.overload_low_water, config.max_queued_messages
        if "overload_high_water" in data and queue_limit and high >= queue_limit:
            self.error(
                ("overload_high_water",),
                f"must be below max_queued_messages ({queue_limit}): publishers are paused before the queue is "
                "full, not after its messages were dropped",
            )
        elif "overload_low_water" in data and low >= high:
            self.error(("overload_low_water",), f"must be below overload_high_water ({high})")

    def listeners(self, value: object) -> tuple[ListenerConfig, ...]:
        if value is None or value == []:
            return (ListenerConfig(),)
        if isinstance(value, dict):
            self.error(("listener",), "must be an array of tables: write [[listener]], not [listener]")
            return (ListenerConfig(),)
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            self.error(("listener",), f"must be an array of [[listener]] tables, not {show(value)}")
            return (ListenerConfig(),)
        listeners = tuple(self.listener(table, index) for index, table in enumerate(value))
        if not self.errors:
            self.check_duplicates(value, listeners)
        return listeners

    def listener(self, table: Mapping[str, object], index: int) -> ListenerConfig:
        prefix: KeyPath = ("listener", index)
        errors_before = len(self.errors)
        self.unknown_keys(table, prefix, LISTENER_KEYS, " in [[listener]]")
        d = ListenerConfig()
        base = self.base_dir
        host = self.get(table, prefix, "host", _host, d.host)
        if "bind_address" in table:
            if "host" in table:
                self.error((*prefix, "bind_address"), "give either host or bind_address, not both")
            host = self.get(table, prefix, "bind_address", _host, d.host)
        listener = ListenerConfig(
            port=self.get(table, prefix, "port", integer_in(0, MAX_UINT16), d.port),
            host=host,
            protocol=self.get(table, prefix, "protocol", _protocol, d.protocol),
            path=self.get(table, prefix, "path", _ws_path, d.path),
            certfile=self.get(table, prefix, "certfile", _path(base, must_exist=True), d.certfile),
            keyfile=self.get(table, prefix, "keyfile", _path(base, must_exist=True), d.keyfile),
            cafile=self.get(table, prefix, "cafile", _path(base, must_exist=True), d.cafile),
            require_certificate=self.get(table, prefix, "require_certificate", as_boolean, d.require_certificate),
            max_connections=self.get(table, prefix, "max_connections", _connections, d.max_connections),
        )
        if len(self.errors) > errors_before:
            return listener  # the checks below could only add noise
        if "path" in table and not listener.websocket:
            self.error((*prefix, "path"), 'only applies to protocol = "websockets"')
        if listener.certfile is not None and listener.keyfile is None:
            self.error((*prefix, "certfile"), "needs keyfile too (TLS needs both)")
        if listener.keyfile is not None and listener.certfile is None:
            self.error((*prefix, "keyfile"), "needs certfile too (TLS needs both)")
        if listener.cafile is not None and listener.certfile is None and listener.keyfile is None:
            self.error((*prefix, "cafile"), "needs certfile and keyfile (client certificates need TLS)")
        if listener.require_certificate and listener.cafile is None:
            self.error((*prefix, "require_certificate"), "needs cafile to verify them with")
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
            first_line = self.line(("listener", first, "port"))  # or the line of its [[listener]] when it has none
            where = f" (line {first_line})" if first_line is not None else ""
            path: KeyPath = ("listener", index, "port") if "port" in tables[index] else ("listener", index)
            self.error(
                path, f"listener {index + 1} uses {listener.host}:{listener.port}, like listener {first + 1}{where}"
            )
