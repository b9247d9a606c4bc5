"""Sample packets for the protocol tests: every packet type, with every property each may carry."""

from __future__ import annotations

from typing import Any

from mqttchat.protocol import (
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    Properties,
    PropertyId,
    PropertyType,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    ReasonCode,
    RetainHandling,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
    Will,
)
from mqttchat.protocol.constants import PacketType
from mqttchat.protocol.properties import PROPERTY_SPECS, WILL_PROPERTIES


def _sample_value(pid: PropertyId) -> Any:
    spec = PROPERTY_SPECS[pid]
    if pid is PropertyId.USER_PROPERTY:
        return (("name", "value"), ("name", "second value"), ("ключ", ""))
    if pid is PropertyId.SUBSCRIPTION_IDENTIFIER:
        return (268_435_455,)
    if spec.value_range == (0, 1):
        return 1
    return {
        PropertyType.BYTE: 1,
        PropertyType.TWO_BYTE_INTEGER: 513,
        PropertyType.FOUR_BYTE_INTEGER: 70_000,
        PropertyType.VARIABLE_BYTE_INTEGER: 16_384,
        PropertyType.UTF8_STRING: f"{spec.name} ünïcode/✓",
        PropertyType.BINARY_DATA: b"\x00\xff" + spec.name.encode(),
    }[spec.type]


def all_properties(context: int) -> Properties:
    """Every property allowed in ``context``, with a value exercising its type."""
    return Properties({pid: _sample_value(pid) for pid, spec in PROPERTY_SPECS.items() if context in spec.contexts})


def v5_packets() -> list[Packet]:
    """One packet of each type (several for some), each carrying every property its type allows."""
    will = Will("last/will", b"\x00gone", 2, True, all_properties(WILL_PROPERTIES))
    publish_props = all_properties(PacketType.PUBLISH).replace(subscription_identifier=(1, 127, 268_435_455))
    return [
        Connect(
            "client-✓",
            False,
            65_535,
            "user",
            b"\x00secret",
            will,
            all_properties(PacketType.CONNECT),
            5,
        ),
        Connect(),
        Connect("", True, 0, None, b"password without user name is fine in v5", None),
        ConnAck(True, ReasonCode.SUCCESS, all_properties(PacketType.CONNACK)),
        ConnAck(False, ReasonCode.BAD_USER_NAME_OR_PASSWORD, Properties(reason_string="no")),
        Publish("a/b", b"payload", 0),
        Publish("a/b", b"", 1, True, True, 1),
        Publish("sensors/ü/temp", bytes(range(256)), 2, False, False, 65_535, publish_props),
        Publish("", b"aliased", 1, packet_id=9, properties=Properties(topic_alias=3)),
        PubAck(1),
        PubAck(2, ReasonCode.NO_MATCHING_SUBSCRIBERS),
        PubAck(3, ReasonCode.NOT_AUTHORIZED, all_properties(PacketType.PUBACK)),
        PubRec(4, ReasonCode.SUCCESS, all_properties(PacketType.PUBREC)),
        PubRec(5, ReasonCode.QUOTA_EXCEEDED),
        PubRel(6),
        PubRel(7, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND, all_properties(PacketType.PUBREL)),
        PubComp(8, ReasonCode.SUCCESS, all_properties(PacketType.PUBCOMP)),
        Subscribe(
            10,
            (
                Subscription("a/+/c", 0),
                Subscription("sport/#", 1, True, True, RetainHandling.SEND_IF_NEW_SUBSCRIPTION),
                Subscription("$share/group/x/y", 2, False, True, RetainHandling.DO_NOT_SEND),
                Subscription("#", 2),
            ),
            all_properties(PacketType.SUBSCRIBE),
        ),
        SubAck(
            10,
            (ReasonCode.SUCCESS, ReasonCode.GRANTED_QOS_1, ReasonCode.GRANTED_QOS_2, ReasonCode.NOT_AUTHORIZED),
            all_properties(PacketType.SUBACK),
        ),
        Unsubscribe(11, ("a/+/c", "sport/#"), all_properties(PacketType.UNSUBSCRIBE)),
        UnsubAck(11, (ReasonCode.SUCCESS, ReasonCode.NO_SUBSCRIPTION_EXISTED), all_properties(PacketType.UNSUBACK)),
        PingReq(),
        PingResp(),
        Disconnect(),
        Disconnect(ReasonCode.DISCONNECT_WITH_WILL_MESSAGE),
        Disconnect(ReasonCode.SERVER_MOVED, all_properties(PacketType.DISCONNECT)),
        Auth(),
        Auth(ReasonCode.CONTINUE_AUTHENTICATION, all_properties(PacketType.AUTH)),
        Auth(ReasonCode.RE_AUTHENTICATE, Properties(authentication_method="SCRAM-SHA-256")),
    ]


def v311_packets() -> list[Packet]:
    """One packet of each MQTT 3.1.1 type, with only what 3.1.1 can carry."""
    return [
        Connect("client", False, 30, "user", b"pw", Will("will/topic", b"bye", 1, True), protocol_version=4),
        Connect("", True, 0, protocol_version=4),
        Connect("legacy", True, 10, protocol_version=3),
        ConnAck(True),
        ConnAck(False, ReasonCode.NOT_AUTHORIZED),
        Publish("a/b", b"x", 0, True),
        Publish("a/b", b"x" * 300, 1, False, True, 1),
        Publish("a/b", b"", 2, False, False, 65_535),
        PubAck(1),
        PubRec(2),
        PubRel(3),
        PubComp(4),
        Subscribe(5, (Subscription("a/#", 0), Subscription("+/b", 2))),
        SubAck(5, (ReasonCode.SUCCESS, ReasonCode.GRANTED_QOS_2, ReasonCode.UNSPECIFIED_ERROR)),
        Unsubscribe(6, ("a/#",)),
        UnsubAck(6),
        PingReq(),
        PingResp(),
        Disconnect(),
    ]
