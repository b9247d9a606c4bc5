"""Packet types, protocol versions and the fixed limits of the MQTT wire format."""

from __future__ import annotations

from enum import IntEnum


class PacketType(IntEnum):
    """The control packet type, the high nibble of the first byte."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15


class ProtocolVersion(IntEnum):
    """The protocol level byte of CONNECT."""

    MQTT_3_1 = 3
    MQTT_3_1_1 = 4
    MQTT_5 = 5

    @property
    def label(self) -> str:
        return {3: "3.1", 4: "3.1.1", 5: "5.0"}[self.value]


class QoS(IntEnum):
    AT_MOST_ONCE = 0
    AT_LEAST_ONCE = 1
    EXACTLY_ONCE = 2


class RetainHandling(IntEnum):
    """Subscription option: when retained messages are sent on subscribe (MQTT 5.0, 3.8.3.1)."""

    SEND_ON_SUBSCRIBE = 0
    SEND_IF_NEW_SUBSCRIPTION = 1
    DO_NOT_SEND = 2


#: Largest value a variable byte integer of at most four bytes can hold.
MAX_VARIABLE_INTEGER = 268_435_455
#: Largest possible control packet: one type byte, four length bytes and the largest remaining length.
MAX_PACKET_SIZE = 1 + 4 + MAX_VARIABLE_INTEGER
MAX_PACKET_ID = 65_535
MAX_STRING_LENGTH = 65_535
MAX_TOPIC_ALIAS = 65_535
#: MQTT 5.0 default for Receive Maximum when the property is absent.
DEFAULT_RECEIVE_MAXIMUM = 65_535
