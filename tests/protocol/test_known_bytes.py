"""Hand-written wire bytes, from the specifications' examples, decode to the expected objects and re-encode exactly."""

from __future__ import annotations

import pytest

from mqttchat.protocol import (
    ConnAck,
    Connect,
    Disconnect,
    PingReq,
    PingResp,
    Properties,
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
    decode_packet,
)
from mqttchat.protocol.wire import decode_string, decode_varint, encode_string, encode_varint

# MQTT 5.0 section 1.5.5, Table 1-1: variable byte integer sizes and their boundary encodings.
VARINTS = [
    (0, "00"),
    (127, "7f"),
    (128, "8001"),
    (16_383, "ff7f"),
    (16_384, "808001"),
    (2_097_151, "ffff7f"),
    (2_097_152, "80808001"),
    (268_435_455, "ffffff7f"),
]


@pytest.mark.parametrize(("value", "hex_bytes"), VARINTS)
def test_variable_byte_integer_table(value: int, hex_bytes: str) -> None:
    raw = bytes.fromhex(hex_bytes)
    assert encode_varint(value) == raw
    assert decode_varint(raw, 0, len(raw)) == (value, len(raw))


def test_utf8_string_example() -> None:
    # MQTT 5.0 section 1.5.4, Figure 1-1: "A" followed by U+2A6D4 (CJK ideograph extension B).
    raw = bytes.fromhex("000541f0aa9b94")
    assert decode_string(raw, 0, len(raw)) == ("A\U0002a6d4", 7)
    assert encode_string("A\U0002a6d4") == raw


# (description, version, hex, expected packet)
KNOWN = [
    # MQTT 3.1.1 section 3.1.2.10, Figure 3.6: protocol name, level 4, flags 0xCE (user, password, will QoS 1,
    # will, clean session), keep alive 10; payload added here: client id "cid", will, user name, password.
    (
        "3.1.1 CONNECT (figure 3.6 header)",
        4,
        "10 1f 0004 4d515454 04 ce 000a 0003 636964 0003 772f74 0002 6279 0001 75 0002 7077",
        Connect("cid", True, 10, "u", b"pw", Will("w/t", b"by", 1, False), protocol_version=4),
    ),
    # MQTT 5.0 section 3.1.2.11, Figure 3-8: as above with level 5 and properties: Session Expiry Interval 10.
    (
        "5.0 CONNECT (figure 3-8 header)",
        5,
        "10 26 0004 4d515454 05 ce 000a 05 11 0000000a 0003 636964 00 0003 772f74 0002 6279 0001 75 0002 7077",
        Connect(
            "cid",
            True,
            10,
            "u",
            b"pw",
            Will("w/t", b"by", 1, False),
            Properties(session_expiry_interval=10),
            5,
        ),
    ),
    # The CONNECT mosquitto_pub -V 311 sends for client id "c": clean session, keep alive 60.
    ("3.1.1 minimal CONNECT", 4, "10 0d 0004 4d515454 04 02 003c 0001 63", Connect("c", True, 60, protocol_version=4)),
    # MQTT 3.1 (MQIsdp, level 3) is decoded so that it can be refused cleanly.
    ("3.1 CONNECT", 4, "10 0f 0006 4d5149736470 03 02 003c 0001 63", Connect("c", True, 60, protocol_version=3)),
    ("3.1.1 CONNACK accepted", 4, "20 02 00 00", ConnAck(False, ReasonCode.SUCCESS)),
    ("3.1.1 CONNACK session present", 4, "20 02 01 00", ConnAck(True)),
    ("3.1.1 CONNACK bad user name or password", 4, "20 02 00 04", ConnAck(False, ReasonCode.BAD_USER_NAME_OR_PASSWORD)),
    ("5.0 CONNACK no properties", 5, "20 03 00 00 00", ConnAck()),
    (
        "5.0 CONNACK refusal with reason string",
        5,
        "20 09 00 87 06 1f 0003 6e6f21",
        ConnAck(False, ReasonCode.NOT_AUTHORIZED, Properties(reason_string="no!")),
    ),
    # MQTT 3.1.1 section 3.3.2.3, Figure 3.11: topic "a/b", packet identifier 10.
    ("3.1.1 PUBLISH (figure 3.11)", 4, "32 09 0003 612f62 000a 6869", Publish("a/b", b"hi", 1, packet_id=10)),
    ("3.1.1 PUBLISH QoS 0 retained", 4, "31 05 0003 612f62", Publish("a/b", b"", 0, True)),
    ("5.0 PUBLISH QoS 2 DUP", 5, "3c 08 0003 612f62 0001 00", Publish("a/b", b"", 2, False, True, 1)),
    (
        "5.0 PUBLISH with content type and user property",
        5,
        "30 19 0001 74 13 03 0004 74657874 26 0001 6b 0001 76 23 0005 01 01 6869",
        None,  # checked below, property order matters for re-encoding
    ),
    ("PUBACK 3.1.1", 4, "40 02 0001", PubAck(1)),
    ("PUBACK 5.0 success, short form", 5, "40 02 0001", PubAck(1)),
    ("PUBACK 5.0 reason only", 5, "40 03 0001 10", PubAck(1, ReasonCode.NO_MATCHING_SUBSCRIBERS)),
    (
        "PUBREC 5.0 with reason string",
        5,
        "50 08 0002 87 04 1f 0001 78",
        PubRec(2, ReasonCode.NOT_AUTHORIZED, Properties(reason_string="x")),
    ),
    ("PUBREL", 4, "62 02 0003", PubRel(3)),
    ("PUBREL 5.0 identifier not found", 5, "62 03 0003 92", PubRel(3, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND)),
    ("PUBCOMP", 5, "70 02 ffff", PubComp(65_535)),
    # MQTT 3.1.1 section 3.8.3.1, Figure 3.22: packet id 10, "a/b" QoS 1, "c/d" QoS 2.
    (
        "3.1.1 SUBSCRIBE (figure 3.22)",
        4,
        "82 0e 000a 0003 612f62 01 0003 632f64 02",
        Subscribe(10, (Subscription("a/b", 1), Subscription("c/d", 2))),
    ),
    (
        "5.0 SUBSCRIBE with options and subscription identifier",
        5,
        "82 0b 000a 02 0b 07 0003 612f23 2e",
        Subscribe(
            10,
            (Subscription("a/#", 2, True, True, RetainHandling.DO_NOT_SEND),),
            Properties(subscription_identifier=7),
        ),
    ),
    # MQTT 3.1.1 section 3.9.3, Figure 3.26: Success QoS 0, Success QoS 2, Failure.
    (
        "3.1.1 SUBACK (figure 3.26)",
        4,
        "90 05 000a 00 02 80",
        SubAck(10, (ReasonCode.SUCCESS, ReasonCode.GRANTED_QOS_2, ReasonCode.UNSPECIFIED_ERROR)),
    ),
    (
        "5.0 SUBACK",
        5,
        "90 05 000a 00 01 a2",
        SubAck(10, (ReasonCode.GRANTED_QOS_1, ReasonCode.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED)),
    ),
    # MQTT 3.1.1 section 3.10.3, Figure 3.30: "a/b" and "c/d".
    ("3.1.1 UNSUBSCRIBE (figure 3.30)", 4, "a2 0c 000a 0003 612f62 0003 632f64", Unsubscribe(10, ("a/b", "c/d"))),
    ("3.1.1 UNSUBACK", 4, "b0 02 000a", UnsubAck(10)),
    ("5.0 UNSUBACK", 5, "b0 05 000a 00 00 11", UnsubAck(10, (ReasonCode.SUCCESS, ReasonCode.NO_SUBSCRIPTION_EXISTED))),
    ("PINGREQ", 4, "c0 00", PingReq()),
    ("PINGRESP", 5, "d0 00", PingResp()),
    ("DISCONNECT 3.1.1", 4, "e0 00", Disconnect()),
    ("DISCONNECT 5.0 with will", 5, "e0 01 04", Disconnect(ReasonCode.DISCONNECT_WITH_WILL_MESSAGE)),
    (
        "DISCONNECT 5.0 session expiry",
        5,
        "e0 07 00 05 11 00000e10",
        Disconnect(ReasonCode.SUCCESS, Properties(session_expiry_interval=3600)),
    ),
]


@pytest.mark.parametrize(("description", "version", "hex_bytes", "expected"), KNOWN, ids=[k[0] for k in KNOWN])
def test_known_bytes(description: str, version: int, hex_bytes: str, expected: object) -> None:
    raw = bytes.fromhex(hex_bytes.replace(" ", ""))
    packet = decode_packet(raw, version)
    if expected is not None:
        assert packet == expected
    assert packet.encode(version) == raw


def test_known_publish_with_properties_decodes_every_field() -> None:
    raw = bytes.fromhex("30 19 0001 74 13 03 0004 74657874 26 0001 6b 0001 76 23 0005 01 01 6869".replace(" ", ""))
    # property block (19 bytes): content type "text", user property k=v, topic alias 5, payload format 1
    packet = decode_packet(raw, 5)
    assert isinstance(packet, Publish)
    assert packet.topic == "t"
    assert packet.payload == b"hi"
    assert packet.properties.content_type == "text"
    assert packet.properties.user_property == (("k", "v"),)
    assert packet.properties.topic_alias == 5
    assert packet.properties.payload_format_indicator == 1
