"""Whether the broker admits a CONNECT, and on what terms: pure decisions, no connection, no clock, no I/O.

A connection (:mod:`mqttchat.broker.connection`) asks, in this order, and refuses at the first :class:`Refusal`:

1. :func:`check_request`: what the CONNECT asks that this broker does not do (MQTT 3.1, a will it cannot take,
   an authentication method);
2. :func:`check_capacity`: connection limits, counted before any password is checked (connections being
   authenticated count);
3. :func:`check_credentials`: anonymous access, or a user name and password to check (the check itself runs in
   :mod:`mqttchat.broker.logins`; :func:`login_refusal` words its verdict);
4. :func:`check_owner`: with passwords, a client id whose session belongs to another user is refused;
5. :func:`negotiate`: the terms of the accepted connection (Server Keep Alive, the in-flight window, topic
   aliases both ways, the session's expiry) and the CONNACK announcing them within the client's Maximum Packet
   Size, or None when no CONNACK fits.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from mqttchat.broker.logins import Verdict
from mqttchat.broker.session import NEVER_EXPIRES
from mqttchat.protocol import EMPTY_PROPERTIES, ConnAck, Connect, Properties, PropertyId, ReasonCode
from mqttchat.protocol.constants import DEFAULT_RECEIVE_MAXIMUM
from mqttchat.untrusted import loggable

if TYPE_CHECKING:
    from mqttchat.broker.config import BrokerConfig

V5 = 5
#: Topic aliases the broker uses towards one client at most (fewer if its CONNECT allows fewer), and the bytes of
#: topic names it remembers for them: the least recently used topic gives its alias up to a new one.
OUTBOUND_ALIASES = 64
OUTBOUND_ALIAS_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class Refusal:
    """A CONNECT refused: the CONNACK's reason code (MQTT 5), why (its reason string and the log's words), the
    3.1.1 return code when the usual translation says too little, and whether the log leaves it out (a flood's
    refusals are summed up by the login checks instead)."""

    reason: ReasonCode
    why: str
    v311_code: int | None = None
    quiet: bool = False


class Credentials(Enum):
    """What :func:`check_credentials` says when it refuses nothing."""

    #: Admitted as it is (anonymous, or a user name nobody checks without a password file).
    ADMITTED = "admitted"
    #: The password must be checked against the password file.
    CHECK_PASSWORD = "check password"


def check_request(connect: Connect, config: BrokerConfig, methods: Collection[str] = ()) -> Refusal | None:
    """What ``connect`` asks that this broker does not do, or None. ``methods``: the enhanced authentication
    methods it takes (SCRAM with a password file)."""
    if connect.protocol_version == 3:
        return Refusal(ReasonCode.UNSUPPORTED_PROTOCOL_VERSION, "MQTT 3.1 is not supported; use 3.1.1 or 5")
    will = connect.will
    if will is not None:
        if will.qos > config.maximum_qos:
            return Refusal(ReasonCode.QOS_NOT_SUPPORTED, f"the will's QoS is above {config.maximum_qos}")
        if will.retain and not config.retain_available:
            return Refusal(ReasonCode.RETAIN_NOT_SUPPORTED, "retained wills are not available")
        if config.message_size_limit and len(will.payload) > config.message_size_limit:
            # As mosquitto does: 0x95 (5.0), Not authorized (3.1.1, which has no better word).
            return Refusal(ReasonCode.PACKET_TOO_LARGE,
                           f"the will's payload of {len(will.payload)} bytes exceeds message_size_limit",
                           v311_code=0x05)  # fmt: skip
    method = connect.properties.authentication_method
    if method is not None and method not in methods:
        return Refusal(ReasonCode.BAD_AUTHENTICATION_METHOD, f"authentication method {method!r} is not supported")
    return None


def check_capacity(config: BrokerConfig, admitted: int, on_listener: int, listener: str, limit: int) -> Refusal | None:
    """Connection limits: ``admitted`` connections (logged in or being authenticated) in all, ``on_listener`` of
    them on this ``listener``, whose own limit is ``limit`` (-1: none)."""
    if config.max_connections >= 0 and admitted >= config.max_connections:
        return Refusal(ReasonCode.SERVER_BUSY, "too many connections")
    if limit >= 0 and on_listener >= limit:
        return Refusal(ReasonCode.SERVER_BUSY, f"too many connections on listener {listener}")
    return None


def check_credentials(connect: Connect, config: BrokerConfig, passwords: Any) -> Refusal | Credentials:
    """Anonymous access, or a user name and password to check (``passwords``: the password file, or None)."""
    if connect.username is None and connect.password is None:
        if not config.allow_anonymous:
            return Refusal(ReasonCode.NOT_AUTHORIZED, "anonymous access is not allowed")
        return Credentials.ADMITTED
    if passwords is not None:
        if connect.username is None or connect.password is None:
            return Refusal(ReasonCode.BAD_USER_NAME_OR_PASSWORD, "bad user name or password")
        return Credentials.CHECK_PASSWORD
    if not config.allow_anonymous:
        return Refusal(ReasonCode.NOT_AUTHORIZED, "no password file: only anonymous access exists")
    return Credentials.ADMITTED


def login_refusal(verdict: Verdict) -> Refusal:
    """The refusal for a login the checks did not accept."""
    if verdict is Verdict.BUSY:
        return Refusal(ReasonCode.SERVER_BUSY, "too many logins are being checked", quiet=True)
    if verdict is Verdict.RATE_LIMITED:
        return Refusal(ReasonCode.CONNECTION_RATE_EXCEEDED, "too many failed logins from this address", quiet=True)
    return Refusal(ReasonCode.BAD_USER_NAME_OR_PASSWORD, "bad user name or password")


def check_owner(owner: Any, username: str | None, passwords: Any) -> Refusal | None:
    """With passwords, a client id whose session (``owner``: connected, or kept for later) belongs to another user
    (one who logged in with a password) is refused: taking it over would end the owner's connection and discard
    what is queued for them. Without passwords, user names are unchecked claims: the session is taken over but
    starts afresh (see BrokerCore.take_session)."""
    if owner is not None and owner.authenticated and passwords is not None and owner.username != username:
        return Refusal(ReasonCode.NOT_AUTHORIZED, "this client identifier belongs to another user's session")
    return None


def who(username: str | None) -> str:
    """A user for the log: ``user 'name'`` (escaped) or ``an anonymous client``."""
    return "an anonymous client" if username is None else f"user '{loggable(username)}'"


@dataclass(frozen=True, slots=True)
class Terms:
    """What the broker grants a client it accepts, announced in its CONNACK."""

    connack_properties: Properties
    #: Seconds of silence after which (times 1.5) the connection is closed; 0: none.
    keepalive: int
    #: QoS 1/2 messages in flight towards the client at most: min(max_inflight_messages, its Receive Maximum).
    window: int
    #: The client's Maximum Packet Size (0: the protocol's).
    max_packet_size: int
    #: Topic aliases the client may use towards the broker.
    aliases_in: int
    #: Topic aliases the broker uses towards the client (0: none).
    aliases_out: int
    #: The session's expiry interval (NEVER_EXPIRES: never).
    expiry: int


def negotiate(connect: Connect, config: BrokerConfig, assigned: str | None) -> Terms | None:
    """The terms for an accepted ``connect`` (``assigned``: the client identifier the broker chose, if it did).

    The CONNACK announces truthfully what this broker does, within the client's Maximum Packet Size
    [MQTT-3.1.2-24]: without the topic alias maximum if need be (the client then uses none); when even that does
    not fit, there are no terms (None): the connection closes without a CONNACK, as mosquitto's does.
    """
    version = connect.protocol_version
    props = connect.properties
    keepalive = connect.keep_alive
    server_keep_alive = None
    if version == V5 and config.max_keepalive and (keepalive == 0 or keepalive > config.max_keepalive):
        # Announced as Server Keep Alive. A 3.1.1 client cannot be told, so its own keepalive stands.
        keepalive = server_keep_alive = config.max_keepalive
    limit = (props.maximum_packet_size or 0) if version == V5 else 0
    alias_maximum = config.max_topic_alias if version == V5 else 0
    ack_props = EMPTY_PROPERTIES
    if version == V5:
        receive_maximum = config.receive_maximum
        values: dict[str, object] = {
            "assigned_client_identifier": assigned,
            "server_keep_alive": server_keep_alive,
            "receive_maximum": None if receive_maximum == DEFAULT_RECEIVE_MAXIMUM else receive_maximum,
            "maximum_qos": config.maximum_qos if config.maximum_qos < 2 else None,
            "retain_available": None if config.retain_available else 0,
            "maximum_packet_size": config.max_packet_size or None,
            "topic_alias_maximum": alias_maximum or None,
        }
        ack_props = Properties(**values)
        if limit and len(ConnAck(False, ReasonCode.SUCCESS, ack_props).encode(V5)) > limit and alias_maximum:
            alias_maximum = 0
            ack_props = ack_props.without(PropertyId.TOPIC_ALIAS_MAXIMUM)
        if limit and len(ConnAck(False, ReasonCode.SUCCESS, ack_props).encode(V5)) > limit:
            return None
        expiry = props.session_expiry_interval or 0
    else:
        expiry = 0 if connect.clean_start else (config.persistent_client_expiration or NEVER_EXPIRES)
    window = config.max_inflight_messages or DEFAULT_RECEIVE_MAXIMUM
    if version == V5 and props.receive_maximum:
        window = min(window, props.receive_maximum)
    client_aliases = (props.topic_alias_maximum or 0) if version == V5 else 0
    return Terms(
        connack_properties=ack_props,
        keepalive=keepalive,
        window=window,
        max_packet_size=limit,
        aliases_in=alias_maximum,
        aliases_out=min(client_aliases, OUTBOUND_ALIASES),
        expiry=expiry,
    )
