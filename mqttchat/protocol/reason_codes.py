"""MQTT 5.0 reason codes, the packets that may carry each, and the MQTT 3.1.1 return-code mappings."""

from __future__ import annotations

from enum import IntEnum

from mqttchat.protocol.constants import PacketType


class ReasonCode(IntEnum):
    """Every reason code of MQTT 5.0 (section 2.4).

    Some values have several names depending on the packet (0x00 is *Success*, *Normal disconnection* and
    *Granted QoS 0*); the enum carries the first, :func:`reason_name` gives the one that fits a packet type.
    """

    SUCCESS = 0x00
    GRANTED_QOS_1 = 0x01
    GRANTED_QOS_2 = 0x02
    DISCONNECT_WITH_WILL_MESSAGE = 0x04
    NO_MATCHING_SUBSCRIBERS = 0x10
    NO_SUBSCRIPTION_EXISTED = 0x11
    CONTINUE_AUTHENTICATION = 0x18
    RE_AUTHENTICATE = 0x19
    UNSPECIFIED_ERROR = 0x80
    MALFORMED_PACKET = 0x81
    PROTOCOL_ERROR = 0x82
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83
    UNSUPPORTED_PROTOCOL_VERSION = 0x84
    CLIENT_IDENTIFIER_NOT_VALID = 0x85
    BAD_USER_NAME_OR_PASSWORD = 0x86
    NOT_AUTHORIZED = 0x87
    SERVER_UNAVAILABLE = 0x88
    SERVER_BUSY = 0x89
    BANNED = 0x8A
    SERVER_SHUTTING_DOWN = 0x8B
    BAD_AUTHENTICATION_METHOD = 0x8C
    KEEP_ALIVE_TIMEOUT = 0x8D
    SESSION_TAKEN_OVER = 0x8E
    TOPIC_FILTER_INVALID = 0x8F
    TOPIC_NAME_INVALID = 0x90
    PACKET_IDENTIFIER_IN_USE = 0x91
    PACKET_IDENTIFIER_NOT_FOUND = 0x92
    RECEIVE_MAXIMUM_EXCEEDED = 0x93
    TOPIC_ALIAS_INVALID = 0x94
    PACKET_TOO_LARGE = 0x95
    MESSAGE_RATE_TOO_HIGH = 0x96
    QUOTA_EXCEEDED = 0x97
    ADMINISTRATIVE_ACTION = 0x98
    PAYLOAD_FORMAT_INVALID = 0x99
    RETAIN_NOT_SUPPORTED = 0x9A
    QOS_NOT_SUPPORTED = 0x9B
    USE_ANOTHER_SERVER = 0x9C
    SERVER_MOVED = 0x9D
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
    CONNECTION_RATE_EXCEEDED = 0x9F
    MAXIMUM_CONNECT_TIME = 0xA0
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2

    @property
    def is_error(self) -> bool:
        """True for the failure codes (0x80 and above)."""
        return self >= 0x80  # an int comparison: ``.value`` is a slow descriptor on Python 3.11

    @property
    def title(self) -> str:
        """The specification's wording, e.g. ``Topic Name invalid``."""
        return _TITLES[self]

    def __str__(self) -> str:
        return f"0x{self.value:02X} {self.title}"


_TITLES: dict[ReasonCode, str] = {
    ReasonCode.SUCCESS: "Success",
    ReasonCode.GRANTED_QOS_1: "Granted QoS 1",
    ReasonCode.GRANTED_QOS_2: "Granted QoS 2",
    ReasonCode.DISCONNECT_WITH_WILL_MESSAGE: "Disconnect with Will Message",
    ReasonCode.NO_MATCHING_SUBSCRIBERS: "No matching subscribers",
    ReasonCode.NO_SUBSCRIPTION_EXISTED: "No subscription existed",
    ReasonCode.CONTINUE_AUTHENTICATION: "Continue authentication",
    ReasonCode.RE_AUTHENTICATE: "Re-authenticate",
    ReasonCode.UNSPECIFIED_ERROR: "Unspecified error",
    ReasonCode.MALFORMED_PACKET: "Malformed Packet",
    ReasonCode.PROTOCOL_ERROR: "Protocol Error",
    ReasonCode.IMPLEMENTATION_SPECIFIC_ERROR: "Implementation specific error",
    ReasonCode.UNSUPPORTED_PROTOCOL_VERSION: "Unsupported Protocol Version",
    ReasonCode.CLIENT_IDENTIFIER_NOT_VALID: "Client Identifier not valid",
    ReasonCode.BAD_USER_NAME_OR_PASSWORD: "Bad User Name or Password",
    ReasonCode.NOT_AUTHORIZED: "Not authorized",
    ReasonCode.SERVER_UNAVAILABLE: "Server unavailable",
    ReasonCode.SERVER_BUSY: "Server busy",
    ReasonCode.BANNED: "Banned",
    ReasonCode.SERVER_SHUTTING_DOWN: "Server shutting down",
    ReasonCode.BAD_AUTHENTICATION_METHOD: "Bad authentication method",
    ReasonCode.KEEP_ALIVE_TIMEOUT: "Keep Alive timeout",
    ReasonCode.SESSION_TAKEN_OVER: "Session taken over",
    ReasonCode.TOPIC_FILTER_INVALID: "Topic Filter invalid",
    ReasonCode.TOPIC_NAME_INVALID: "Topic Name invalid",
    ReasonCode.PACKET_IDENTIFIER_IN_USE: "Packet Identifier in use",
    ReasonCode.PACKET_IDENTIFIER_NOT_FOUND: "Packet Identifier not found",
    ReasonCode.RECEIVE_MAXIMUM_EXCEEDED: "Receive Maximum exceeded",
    ReasonCode.TOPIC_ALIAS_INVALID: "Topic Alias invalid",
    ReasonCode.PACKET_TOO_LARGE: "Packet too large",
    ReasonCode.MESSAGE_RATE_TOO_HIGH: "Message rate too high",
    ReasonCode.QUOTA_EXCEEDED: "Quota exceeded",
    ReasonCode.ADMINISTRATIVE_ACTION: "Administrative action",
    ReasonCode.PAYLOAD_FORMAT_INVALID: "Payload format invalid",
    ReasonCode.RETAIN_NOT_SUPPORTED: "Retain not supported",
    ReasonCode.QOS_NOT_SUPPORTED: "QoS not supported",
    ReasonCode.USE_ANOTHER_SERVER: "Use another server",
    ReasonCode.SERVER_MOVED: "Server moved",
    ReasonCode.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED: "Shared Subscriptions not supported",
    ReasonCode.CONNECTION_RATE_EXCEEDED: "Connection rate exceeded",
    ReasonCode.MAXIMUM_CONNECT_TIME: "Maximum connect time",
    ReasonCode.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED: "Subscription Identifiers not supported",
    ReasonCode.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED: "Wildcard Subscriptions not supported",
}

R = ReasonCode

#: The reason codes each packet type may carry in MQTT 5.0 (tables of sections 3.2.2.2 to 3.15.2.1).
VALID_REASON_CODES: dict[PacketType, frozenset[ReasonCode]] = {
    PacketType.CONNACK: frozenset(
        {
            R.SUCCESS,
            R.UNSPECIFIED_ERROR,
            R.MALFORMED_PACKET,
            R.PROTOCOL_ERROR,
            R.IMPLEMENTATION_SPECIFIC_ERROR,
            R.UNSUPPORTED_PROTOCOL_VERSION,
            R.CLIENT_IDENTIFIER_NOT_VALID,
            R.BAD_USER_NAME_OR_PASSWORD,
            R.NOT_AUTHORIZED,
            R.SERVER_UNAVAILABLE,
            R.SERVER_BUSY,
            R.BANNED,
            R.BAD_AUTHENTICATION_METHOD,
            R.TOPIC_NAME_INVALID,
            R.PACKET_TOO_LARGE,
            R.QUOTA_EXCEEDED,
            R.PAYLOAD_FORMAT_INVALID,
            R.RETAIN_NOT_SUPPORTED,
            R.QOS_NOT_SUPPORTED,
            R.USE_ANOTHER_SERVER,
            R.SERVER_MOVED,
            R.CONNECTION_RATE_EXCEEDED,
        }
    ),
    PacketType.PUBACK: frozenset(
        {
            R.SUCCESS,
            R.NO_MATCHING_SUBSCRIBERS,
            R.UNSPECIFIED_ERROR,
            R.IMPLEMENTATION_SPECIFIC_ERROR,
            R.NOT_AUTHORIZED,
            R.TOPIC_NAME_INVALID,
            R.PACKET_IDENTIFIER_IN_USE,
            R.QUOTA_EXCEEDED,
            R.PAYLOAD_FORMAT_INVALID,
        }
    ),
    PacketType.PUBREL: frozenset({R.SUCCESS, R.PACKET_IDENTIFIER_NOT_FOUND}),
    PacketType.SUBACK: frozenset(
        {
            R.SUCCESS,
            R.GRANTED_QOS_1,
            R.GRANTED_QOS_2,
            R.UNSPECIFIED_ERROR,
            R.IMPLEMENTATION_SPECIFIC_ERROR,
            R.NOT_AUTHORIZED,
            R.TOPIC_FILTER_INVALID,
            R.PACKET_IDENTIFIER_IN_USE,
            R.QUOTA_EXCEEDED,
            R.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
            R.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
            R.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
        }
    ),
    PacketType.UNSUBACK: frozenset(
        {
            R.SUCCESS,
            R.NO_SUBSCRIPTION_EXISTED,
            R.UNSPECIFIED_ERROR,
            R.IMPLEMENTATION_SPECIFIC_ERROR,
            R.NOT_AUTHORIZED,
            R.TOPIC_FILTER_INVALID,
            R.PACKET_IDENTIFIER_IN_USE,
        }
    ),
    PacketType.DISCONNECT: frozenset(
        {
            R.SUCCESS,
            R.DISCONNECT_WITH_WILL_MESSAGE,
            R.UNSPECIFIED_ERROR,
            R.MALFORMED_PACKET,
            R.PROTOCOL_ERROR,
            R.IMPLEMENTATION_SPECIFIC_ERROR,
            R.NOT_AUTHORIZED,
            R.SERVER_BUSY,
            R.SERVER_SHUTTING_DOWN,
            R.KEEP_ALIVE_TIMEOUT,
            R.SESSION_TAKEN_OVER,
            R.TOPIC_FILTER_INVALID,
            R.TOPIC_NAME_INVALID,
            R.RECEIVE_MAXIMUM_EXCEEDED,
            R.TOPIC_ALIAS_INVALID,
            R.PACKET_TOO_LARGE,
            R.MESSAGE_RATE_TOO_HIGH,
            R.QUOTA_EXCEEDED,
            R.ADMINISTRATIVE_ACTION,
            R.PAYLOAD_FORMAT_INVALID,
            R.RETAIN_NOT_SUPPORTED,
            R.QOS_NOT_SUPPORTED,
            R.USE_ANOTHER_SERVER,
            R.SERVER_MOVED,
            R.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
            R.CONNECTION_RATE_EXCEEDED,
            R.MAXIMUM_CONNECT_TIME,
            R.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
            R.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
        }
    ),
    PacketType.AUTH: frozenset({R.SUCCESS, R.CONTINUE_AUTHENTICATION, R.RE_AUTHENTICATE}),
}
VALID_REASON_CODES[PacketType.PUBREC] = VALID_REASON_CODES[PacketType.PUBACK]
VALID_REASON_CODES[PacketType.PUBCOMP] = VALID_REASON_CODES[PacketType.PUBREL]

_CONTEXT_NAMES: dict[tuple[PacketType, ReasonCode], str] = {
    (PacketType.DISCONNECT, R.SUCCESS): "Normal disconnection",
    (PacketType.SUBACK, R.SUCCESS): "Granted QoS 0",
}


def reason_name(code: int, packet_type: PacketType | None = None) -> str:
    """The specification's name of ``code`` as it reads in a packet of ``packet_type``."""
    try:
        rc = ReasonCode(code)
    except ValueError:
        return f"0x{code:02X} (unknown reason code)"
    if packet_type is not None:
        special = _CONTEXT_NAMES.get((packet_type, rc))
        if special is not None:
            return special
    return rc.title


# MQTT 3.1.1 CONNACK return codes (section 3.2.2.3) and their MQTT 5.0 equivalents.
CONNACK_V311_TO_V5: dict[int, ReasonCode] = {
    0x00: R.SUCCESS,
    0x01: R.UNSUPPORTED_PROTOCOL_VERSION,
    0x02: R.CLIENT_IDENTIFIER_NOT_VALID,
    0x03: R.SERVER_UNAVAILABLE,
    0x04: R.BAD_USER_NAME_OR_PASSWORD,
    0x05: R.NOT_AUTHORIZED,
}
_CONNACK_V5_TO_V311: dict[ReasonCode, int] = {v: k for k, v in CONNACK_V311_TO_V5.items()}
_CONNACK_V5_TO_V311.update(
    {
        R.BAD_AUTHENTICATION_METHOD: 0x04,
        R.BANNED: 0x05,
        R.SERVER_BUSY: 0x03,
        R.USE_ANOTHER_SERVER: 0x03,
        R.SERVER_MOVED: 0x03,
        R.CONNECTION_RATE_EXCEEDED: 0x03,
        R.QUOTA_EXCEEDED: 0x03,
    }
)


def connack_code_v311(code: ReasonCode) -> int:
    """The MQTT 3.1.1 CONNACK return code closest to an MQTT 5.0 reason code.

    Codes with no 3.1.1 counterpart (malformed packet, protocol error, ...) become 0x03 *Server unavailable*:
    3.1.1 has no better word for "refused for a reason you cannot be told".
    """
    return _CONNACK_V5_TO_V311.get(code, 0x03)


def suback_code_v311(code: ReasonCode) -> int:
    """The MQTT 3.1.1 SUBACK return code: the granted QoS, or 0x80 for every failure."""
    return int(code) if code <= 2 else 0x80
