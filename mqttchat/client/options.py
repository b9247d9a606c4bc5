"""Connection targets (``mqtt://``, ``mqtts://``, ``ws://``, ``wss://`` URLs) and client options."""

from __future__ import annotations

from dataclasses import field, replace
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote, urlsplit

from mqttchat.client.credentials import CredentialSource
from mqttchat.protocol import ProtocolVersion, Will
from mqttchat.protocol.fastinit import dataclass

if TYPE_CHECKING:
    from mqttchat.client.proxy import ProxyOptions
    from mqttchat.client.session import AuthMethod

#: URL schemes and what they mean: (TLS, WebSocket, default port).
SCHEMES: dict[str, tuple[bool, bool, int]] = {
    "mqtt": (False, False, 1883),
    "tcp": (False, False, 1883),
    "mqtts": (True, False, 8883),
    "ssl": (True, False, 8883),
    "tls": (True, False, 8883),
    "ws": (False, True, 80),
    "wss": (True, True, 443),
}
DEFAULT_URL = "mqtt://127.0.0.1:1883"

#: The Maximum Packet Size the command-line tools and the app announce and enforce unless told otherwise: a
#: broker (or something pretending to be one) cannot make them buffer a 200 MB packet. The library's own default
#: is the protocol's limit (``ClientOptions.maximum_packet_size`` None).
DEFAULT_MAX_PACKET_SIZE = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Target:
    """Where to connect and how."""

    host: str = "127.0.0.1"
    port: int = 1883
    tls: bool = False
    websocket: bool = False
    path: str = "/mqtt"
    username: str | None = None
    password: str | None = None

    @property
    def scheme(self) -> str:
        if self.websocket:
            return "wss" if self.tls else "ws"
        return "mqtts" if self.tls else "mqtt"

    @property
    def url(self) -> str:
        """The target as a URL, without credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        path = self.path if self.websocket else ""
        return f"{self.scheme}://{host}:{self.port}{path}"

    def __str__(self) -> str:
        return self.url


def parse_url(url: str) -> Target:
    """Parse ``scheme://[user[:password]@]host[:port][/path]``.

    Raises:
        ValueError: an unknown scheme, a missing host or a bad port, explained.
    """
    if "://" not in url:
        url = "mqtt://" + url
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        raise ValueError(f"unknown URL scheme {parts.scheme!r} in {url!r}: use one of {known}")
    tls, websocket, default_port = SCHEMES[scheme]
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"bad port in {url!r}: it must be a number from 1 to 65535") from None
    host = parts.hostname
    if not host:
        raise ValueError(f"no host in {url!r}")
    path = parts.path or "/mqtt"
    if parts.query:
        path += "?" + parts.query
    return Target(
        host=host,
        port=port or default_port,
        tls=tls,
        websocket=websocket,
        path=path,
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


@dataclass(frozen=True, slots=True)
class TLSOptions:
    """TLS settings. With no ``ca_file`` the system trust store is used."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    key_password: str | None = None
    #: Skip certificate and host name verification (for a test broker you trust by other means).
    insecure: bool = False
    #: The name sent for SNI and checked against the certificate; the target host when None.
    server_hostname: str | None = None
    alpn: tuple[str, ...] = ()


OverflowPolicy = Literal["drop_oldest", "drop_newest"]


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """Everything that shapes a client's connection and session.

    Only ``target`` is usually given: ``ClientOptions(parse_url("mqtts://user:pw@broker:8883"))``. Credentials in
    the URL are used when ``username``/``password`` are not set.
    """

    target: Target = field(default_factory=Target)
    version: int = ProtocolVersion.MQTT_5
    #: With ``version`` 5: when the first connection's MQTT 5 CONNECT is refused as an unsupported version, closed
    #: before CONNACK, or answered with something that is not a 5.0 CONNACK, connect again with MQTT 3.1.1 and
    #: keep it (:attr:`MQTTClient.version_fallback` says why). The app, the chat and the CLI (without ``-V``)
    #: turn it on; a library client speaks the version it was given.
    version_fallback: bool = False
    client_id: str = ""
    clean_start: bool = True
    #: MQTT 5 Session Expiry Interval in seconds (None: not sent, which means 0). 0xFFFFFFFF never expires.
    session_expiry: int | None = None
    keepalive: int = 60
    username: str | None = None
    password: str | None = None
    will: Will | None = None
    #: How many QoS 1/2 messages the broker may send us unacknowledged (MQTT 5 Receive Maximum).
    receive_maximum: int | None = None
    #: The largest packet we accept, fixed header included: announced as the MQTT 5 Maximum Packet Size, and with
    #: both versions checked from a packet's header, before its body is buffered (a bigger one closes the
    #: connection, 0x95 Packet too large). None: the protocol's limit, 256 MiB.
    maximum_packet_size: int | None = None
    #: How many topic aliases the broker may use towards us (MQTT 5).
    topic_alias_maximum: int = 0
    #: Use topic aliases on outgoing publishes when the broker allows them (MQTT 5).
    use_topic_aliases: bool = True
    request_response_information: bool = False
    request_problem_information: bool = True
    user_properties: tuple[tuple[str, str], ...] = ()
    #: The most QoS 1/2 publishes in flight at once. None: the broker's Receive Maximum (MQTT 5), or 20 for
    #: MQTT 3.1.1, which has no way to announce one (20 is mosquitto's default max_inflight_messages).
    max_inflight: int | None = None
    tls: TLSOptions | None = None
    #: Reach the broker through this SOCKS5 or HTTP CONNECT proxy (None: directly). The library reads no
    #: environment variables: :func:`mqttchat.client.proxy.proxy_from_environment` does, for the CLI and the app.
    proxy: ProxyOptions | None = None
    #: Asked for the user name, password and WebSocket path of every connection (tokens, signed URLs): what it
    #: gives replaces ``username``/``password``/``target.path``. Credentials that expire are renewed before
    #: then by connecting again (see :mod:`mqttchat.cloud`).
    credentials: CredentialSource | None = None
    #: MQTT 5 enhanced authentication (SCRAM, OAUTH2-JWT …: :mod:`mqttchat.client.auth`); MQTTClient's ``auth``
    #: argument wins over it.
    auth: AuthMethod | None = None
    #: Split a subscribe() of more filters into SUBSCRIBE packets of this many (AWS IoT Core takes at most 8).
    max_filters_per_subscribe: int | None = None
    connect_timeout: float = 10.0
    #: Reconnect automatically after a connection, once established, is lost.
    reconnect: bool = True
    reconnect_min_delay: float = 0.5
    reconnect_max_delay: float = 30.0
    #: Publishes that may wait while disconnected; more raise QueueFull.
    max_queued_publishes: int = 10_000
    #: Messages buffered for each message stream before the overflow policy applies.
    message_buffer: int = 100_000
    overflow: OverflowPolicy = "drop_oldest"

    @classmethod
    def from_url(cls, url: str, **kwargs: object) -> ClientOptions:
        return cls(parse_url(url), **kwargs)  # type: ignore[arg-type]

    @property
    def effective_username(self) -> str | None:
        return self.username if self.username is not None else self.target.username

    @property
    def effective_password(self) -> str | None:
        return self.password if self.password is not None else self.target.password

    def with_target(self, target: Target) -> ClientOptions:
        return replace(self, target=target)
