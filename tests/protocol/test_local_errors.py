"""Asking to send something the specification forbids raises LocalProtocolError and sends nothing."""

from __future__ import annotations

import pytest

from mqttchat.protocol import (
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    LocalProtocolError,
    Properties,
    PubAck,
    Publish,
    PubRel,
    ReasonCode,
    SubAck,
    Subscribe,
    Subscription,
    Unsubscribe,
    Will,
)
from mqttchat.protocol.wire import encode_varint

CASES = [
    ("QoS 3", Publish("a", b"", 3, packet_id=1), 5),
    ("QoS 1 without packet id", Publish("a", b"", 1), 5),
    ("packet id 0", Publish("a", b"", 1, packet_id=0), 5),
    ("packet id 65536", Publish("a", b"", 2, packet_id=65_536), 4),
    ("DUP on QoS 0", Publish("a", b"", 0, dup=True), 5),
    ("wildcard topic", Publish("a/+", b""), 5),
    ("hash topic", Publish("#", b""), 4),
    ("empty topic in 3.1.1", Publish("", b""), 4),
    ("empty topic without alias", Publish("", b""), 5),
    ("topic with U+0000", Publish("a\x00", b""), 5),
    ("topic with a lone surrogate", Publish("a\ud800", b""), 5),
    ("topic over 65535 bytes", Publish("a" * 65_536, b""), 5),
    ("property not allowed in PUBLISH", Publish("a", b"", properties=Properties(session_expiry_interval=1)), 5),
    ("property of the wrong type", Publish("a", b"", properties=Properties(content_type=5)), 5),
    ("property out of range", Publish("a", b"", properties=Properties(payload_format_indicator=2)), 5),
    ("subscription identifier 0", Publish("a", b"", properties=Properties(subscription_identifier=0)), 5),
    ("user property not pairs", Publish("a", b"", properties=Properties(user_property=[("a", 1)])), 5),
    ("binary property not bytes", Publish("a", b"", properties=Properties(correlation_data="text")), 5),
    ("reason code not allowed in PUBACK", PubAck(1, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND), 5),
    ("reason code not allowed in PUBREL", PubRel(1, ReasonCode.NOT_AUTHORIZED), 5),
    ("ack without packet id", PubAck(0), 5),
    ("SUBSCRIBE without filters", Subscribe(1, ()), 5),
    ("SUBSCRIBE invalid filter", Subscribe(1, (Subscription("a/#/b"),)), 5),
    ("SUBSCRIBE QoS 3", Subscribe(1, (Subscription("a", 3),)), 5),
    ("SUBSCRIBE no local on shared", Subscribe(1, (Subscription("$share/g/a", 0, True),)), 5),
    (
        "SUBSCRIBE two subscription ids",
        Subscribe(1, (Subscription("a"),), Properties(subscription_identifier=[1, 2])),
        5,
    ),
    ("SUBACK reason code not allowed", SubAck(1, (ReasonCode.NO_MATCHING_SUBSCRIBERS,)), 5),
    ("UNSUBSCRIBE without filters", Unsubscribe(1, ()), 5),
    ("CONNACK refusal with session present", ConnAck(True, ReasonCode.NOT_AUTHORIZED), 5),
    ("CONNECT 3.1.1 password without user", Connect(password=b"x", protocol_version=4), 4),
    ("CONNECT keep alive out of range", Connect(keep_alive=70_000), 5),
    ("CONNECT will QoS 3", Connect(will=Will("t", b"", 3)), 5),
    ("CONNECT will topic with wildcard", Connect(will=Will("t/#")), 5),
    ("CONNECT client id with U+0000", Connect("a\x00"), 5),
    ("CONNECT auth data without method", Connect(properties=Properties(authentication_data=b"x")), 5),
    ("CONNECT protocol level 6", Connect(protocol_version=6), 5),
    ("DISCONNECT reason not allowed", Disconnect(ReasonCode.GRANTED_QOS_1), 5),
    ("AUTH in 3.1.1", Auth(), 4),
    ("AUTH continue without a method", Auth(ReasonCode.CONTINUE_AUTHENTICATION), 5),
    ("ack with no packet id", PubAck(None), 5),  # type: ignore[arg-type]
    ("CONNECT 3.1.1 empty client id without clean session", Connect("", False, protocol_version=4), 4),
    ("response topic with a wildcard", Publish("a", b"", properties=Properties(response_topic="r/+")), 5),
]


@pytest.mark.parametrize(("description", "packet", "version"), CASES, ids=[c[0] for c in CASES])
def test_invalid_packets_are_refused_locally(description: str, packet: object, version: int) -> None:
    with pytest.raises(LocalProtocolError):
        packet.encode(version)  # type: ignore[attr-defined]


def test_variable_byte_integer_limits() -> None:
    with pytest.raises(LocalProtocolError):
        encode_varint(268_435_456)
    with pytest.raises(LocalProtocolError):
        encode_varint(-1)


def test_unknown_property_name_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        Properties(no_such_property=1)
