"""The Properties type, the property table and the reason-code tables."""

from __future__ import annotations

import pytest

from mqttchat.protocol import PROPERTY_SPECS, PacketType, Properties, PropertyId, ReasonCode, reason_name
from mqttchat.protocol.properties import WILL_PROPERTIES
from mqttchat.protocol.reason_codes import VALID_REASON_CODES, connack_code_v311, suback_code_v311


def test_properties_are_an_immutable_mapping_with_attributes() -> None:
    p = Properties(content_type="a", user_property=[("k", "v")], subscription_identifier=5)
    assert p.content_type == "a"
    assert p.user_property == (("k", "v"),)
    assert p.subscription_identifier == (5,)
    assert p.topic_alias is None
    assert Properties().user_property == ()
    assert p[PropertyId.CONTENT_TYPE] == "a"
    assert len(p) == 3
    assert p == Properties({PropertyId.CONTENT_TYPE: "a", PropertyId.USER_PROPERTY: [("k", "v")],
                            PropertyId.SUBSCRIPTION_IDENTIFIER: [5]})  # fmt: skip
    assert hash(p) == hash(Properties(content_type="a", user_property={"k": "v"}, subscription_identifier=[5]))
    with pytest.raises(AttributeError):
        p.content_type = "b"  # type: ignore[misc]
    q = p.replace(content_type=None, response_topic="r")
    assert q.content_type is None and q.response_topic == "r" and p.content_type == "a"
    assert p.without(PropertyId.CONTENT_TYPE).content_type is None
    assert p.as_dict()["content_type"] == "a"
    assert "content_type='a'" in repr(p)
    assert not Properties()


def test_property_table_matches_the_specification() -> None:
    # MQTT 5.0 section 2.2.2.2: 27 properties; spot-check identifiers, types and where they may appear.
    assert len(PROPERTY_SPECS) == 27
    assert PROPERTY_SPECS[PropertyId.SUBSCRIPTION_IDENTIFIER].contexts == {PacketType.PUBLISH, PacketType.SUBSCRIBE}
    assert PROPERTY_SPECS[PropertyId.WILL_DELAY_INTERVAL].contexts == {WILL_PROPERTIES}
    assert PROPERTY_SPECS[PropertyId.REASON_STRING].contexts == {
        PacketType.CONNACK, PacketType.PUBACK, PacketType.PUBREC, PacketType.PUBREL, PacketType.PUBCOMP,
        PacketType.SUBACK, PacketType.UNSUBACK, PacketType.DISCONNECT, PacketType.AUTH,
    }  # fmt: skip
    assert PROPERTY_SPECS[PropertyId.USER_PROPERTY].repeatable
    assert PROPERTY_SPECS[PropertyId.SUBSCRIPTION_IDENTIFIER].repeatable
    assert sum(spec.repeatable for spec in PROPERTY_SPECS.values()) == 2
    assert [int(p) for p in PropertyId] == [
        0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x11, 0x12, 0x13, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1C, 0x1F,
        0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A,
    ]  # fmt: skip


def test_reason_codes_have_names() -> None:
    assert len(ReasonCode) == 43
    assert all(rc.title for rc in ReasonCode)
    assert str(ReasonCode.NOT_AUTHORIZED) == "0x87 Not authorized"
    assert reason_name(0, PacketType.DISCONNECT) == "Normal disconnection"
    assert reason_name(0, PacketType.SUBACK) == "Granted QoS 0"
    assert reason_name(0, PacketType.PUBACK) == "Success"
    assert reason_name(0x99) == "Payload format invalid"
    assert "unknown" in reason_name(0x7F)
    assert ReasonCode.QUOTA_EXCEEDED.is_error and not ReasonCode.NO_MATCHING_SUBSCRIBERS.is_error


def test_reason_codes_per_packet() -> None:
    assert ReasonCode.SESSION_TAKEN_OVER in VALID_REASON_CODES[PacketType.DISCONNECT]
    assert ReasonCode.SESSION_TAKEN_OVER not in VALID_REASON_CODES[PacketType.CONNACK]
    assert VALID_REASON_CODES[PacketType.PUBREC] == VALID_REASON_CODES[PacketType.PUBACK]
    assert VALID_REASON_CODES[PacketType.AUTH] == {0x00, 0x18, 0x19}


def test_v311_mappings() -> None:
    assert connack_code_v311(ReasonCode.UNSUPPORTED_PROTOCOL_VERSION) == 1
    assert connack_code_v311(ReasonCode.CLIENT_IDENTIFIER_NOT_VALID) == 2
    assert connack_code_v311(ReasonCode.BAD_USER_NAME_OR_PASSWORD) == 4
    assert connack_code_v311(ReasonCode.MALFORMED_PACKET) == 3
    assert suback_code_v311(ReasonCode.GRANTED_QOS_2) == 2
    assert suback_code_v311(ReasonCode.TOPIC_FILTER_INVALID) == 0x80
