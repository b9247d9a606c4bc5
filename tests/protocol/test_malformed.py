"""Every violation the decoder must catch, with the reason code the receiver must answer with."""

from __future__ import annotations

import pytest

from mqttchat.protocol import (
    MalformedPacket,
    PacketReader,
    PacketTooLarge,
    ProtocolError,
    ReasonCode,
    RemoteProtocolError,
    UnsupportedProtocolVersion,
    decode_packet,
)

M = ReasonCode.MALFORMED_PACKET
P = ReasonCode.PROTOCOL_ERROR

# (description, version, hex bytes, expected reason code). Where the hex is "first byte | body", the test writes
# the remaining length itself, so a miscounted length can never pass as "malformed".
CASES = [
    ("reserved packet type 0", 5, "00 00", M),
    ("PUBACK with flags", 5, "41 | 0001", M),
    ("PUBREL without its 0b0010 flags", 5, "60 | 0001", M),
    ("SUBSCRIBE with flags 0", 5, "80 | 0001 0001 61 00", M),
    ("UNSUBSCRIBE with flags 0", 4, "a0 | 0001 0001 61", M),
    ("PINGREQ with flags", 4, "c1 00", M),
    ("PINGREQ with a body", 4, "c0 01 00", M),
    ("DISCONNECT 3.1.1 with a body", 4, "e0 01 00", M),
    ("PUBLISH QoS 3", 5, "36 | 0003 612f62 0001", M),
    ("PUBLISH QoS 0 with DUP", 5, "38 | 0003 612f62 00", M),
    ("PUBLISH packet id 0", 5, "32 | 0003 612f62 0000 00", P),
    ("PUBLISH truncated topic", 5, "30 | 0005 61", M),
    ("PUBLISH topic with wildcard +", 4, "30 | 0003 612b62", ReasonCode.TOPIC_NAME_INVALID),
    ("PUBLISH topic with wildcard #", 5, "30 | 0003 612f23 00", ReasonCode.TOPIC_NAME_INVALID),
    ("PUBLISH topic with U+0000", 5, "30 | 0003 610062 00", M),
    ("PUBLISH topic with a surrogate (ill-formed UTF-8)", 5, "30 | 0003 eda080 00", M),
    ("PUBLISH topic with an overlong encoding", 5, "30 | 0002 c0af 00", M),
    ("PUBLISH topic that is not UTF-8", 4, "30 | 0002 ff61", M),
    ("PUBLISH 3.1.1 empty topic", 4, "30 | 0000", ReasonCode.TOPIC_NAME_INVALID),
    ("PUBLISH 5.0 empty topic and no alias", 5, "30 | 0000 00", P),
    ("PUBLISH 5.0 topic alias 0", 5, "30 | 0001 61 03 230000", ReasonCode.TOPIC_ALIAS_INVALID),
    ("PUBLISH property block longer than the packet", 5, "30 | 0001 61 09 01", M),
    ("PUBLISH property truncated", 5, "30 | 0001 61 02 02", M),
    ("PUBLISH unknown property 0x00", 5, "30 | 0001 61 02 0000", M),
    ("PUBLISH unknown property 0x7f", 5, "30 | 0001 61 02 7f00", M),
    ("PUBLISH duplicate content type", 5, "30 | 0001 61 0a 03 0001 78 03 0001 79 01 00", P),
    ("PUBLISH property not allowed (session expiry)", 5, "30 | 0001 61 05 11 00000001", M),
    ("PUBLISH response topic with a wildcard", 5, "30 | 0001 61 06 08 0003 612f23", P),
    ("PUBLISH payload format 2", 5, "30 | 0001 61 02 01 02", P),
    ("PUBLISH subscription identifier 0", 5, "30 | 0001 61 02 0b 00", P),
    ("PUBLISH subscription identifier of 5 bytes", 5, "30 | 0001 61 06 0b 8080808001", M),
    ("PUBLISH property string with U+0000", 5, "30 | 0001 61 05 03 0002 6100", M),
    ("remaining length of 5 bytes", 5, "30 ff ff ff ff 01", M),
    ("remaining length not minimally encoded", 5, "c0 80 00", M),
    ("PUBACK packet id 0", 5, "40 | 0000", P),
    ("PUBACK 3.1.1 with a reason code", 4, "40 | 0001 00", M),
    ("PUBACK 5.0 invalid reason code", 5, "40 | 0001 92", M),
    ("PUBACK 5.0 unknown reason code", 5, "40 | 0001 05", M),
    ("PUBACK 5.0 trailing bytes after properties", 5, "40 | 0001 00 00 ff", M),
    ("PUBACK shorter than two bytes", 5, "40 01 00", M),
    ("PUBREL 5.0 reason code not allowed", 5, "62 | 0001 10", M),
    ("CONNACK reserved flags", 4, "20 | 02 00", M),
    ("CONNACK 3.1.1 reserved return code", 4, "20 | 00 06", M),
    ("CONNACK refusal with session present", 5, "20 | 01 87 00", P),
    ("CONNACK 5.0 property not allowed (topic alias)", 5, "20 | 00 00 03 230001", M),
    ("CONNACK 5.0 maximum QoS 2", 5, "20 | 00 00 02 2402", P),
    ("CONNACK 5.0 receive maximum 0", 5, "20 | 00 00 03 210000", P),
    ("CONNACK 5.0 maximum packet size 0", 5, "20 | 00 00 05 2700000000", P),
    ("SUBSCRIBE packet id 0", 5, "82 | 0000 00 0001 61 00", P),
    ("SUBSCRIBE without topic filters", 5, "82 | 0001 00", P),
    ("SUBSCRIBE filter without options", 4, "82 | 0001 0001 61", M),
    ("SUBSCRIBE QoS 3", 4, "82 | 0001 0001 61 03", M),
    ("SUBSCRIBE 5.0 QoS 3 (a protocol error in 5.0)", 5, "82 | 0001 00 0001 61 03", P),
    ("SUBSCRIBE 3.1.1 reserved option bits", 4, "82 | 0001 0001 61 04", M),
    ("SUBSCRIBE 5.0 reserved option bits", 5, "82 | 0001 00 0001 61 40", M),
    ("SUBSCRIBE retain handling 3", 5, "82 | 0001 00 0001 61 30", P),
    ("SUBSCRIBE # not last", 5, "82 | 0001 00 0003 232f61 00", ReasonCode.TOPIC_FILTER_INVALID),
    ("SUBSCRIBE + inside a level", 5, "82 | 0001 00 0002 612b 00", ReasonCode.TOPIC_FILTER_INVALID),
    ("SUBSCRIBE empty filter", 5, "82 | 0001 00 0000 00", ReasonCode.TOPIC_FILTER_INVALID),
    ("SUBSCRIBE shared without a filter", 5, "82 | 0001 00 0008 2473686172652f67 00", ReasonCode.TOPIC_FILTER_INVALID),
    (
        "SUBSCRIBE shared with a wildcard group",
        5,
        "82 | 0001 00 000a 2473686172652f2b2f61 00",
        ReasonCode.TOPIC_FILTER_INVALID,
    ),
    ("SUBSCRIBE no local on a shared subscription", 5, "82 | 0001 00 000a 2473686172652f672f61 04", P),
    ("SUBSCRIBE two subscription identifiers", 5, "82 | 0001 04 0b01 0b02 0001 61 00", P),
    ("UNSUBSCRIBE without topic filters", 4, "a2 | 0001", P),
    ("UNSUBSCRIBE invalid filter", 4, "a2 | 0001 0002 2361", ReasonCode.TOPIC_FILTER_INVALID),
    ("UNSUBACK 3.1.1 with a body", 4, "b0 | 0001 00", M),
    ("SUBACK 3.1.1 reserved return code", 4, "90 | 0001 03", M),
    ("SUBACK 5.0 invalid reason code", 5, "90 | 0001 00 11", M),
    ("AUTH in 3.1.1", 4, "f0 00", M),
    ("AUTH continue without properties", 5, "f0 | 18", P),
    ("AUTH without authentication method", 5, "f0 | 18 05 16 0002 6869", P),
    ("AUTH invalid reason code", 5, "f0 | 87", M),
    ("DISCONNECT invalid reason code", 5, "e0 | 85", M),
    ("DISCONNECT property not allowed", 5, "e0 | 00 03 230001", M),
]


def wire(hex_bytes: str) -> bytes:
    """Bytes from hex; "first | body" gets its remaining length written in between."""
    if "|" not in hex_bytes:
        return bytes.fromhex(hex_bytes.replace(" ", ""))
    first, body = (bytes.fromhex(part.replace(" ", "")) for part in hex_bytes.split("|"))
    assert len(body) < 128
    return first + bytes((len(body),)) + body


def test_wire_helper_writes_the_length() -> None:
    assert wire("c0 |") == b"\xc0\x00"
    assert wire("30 | 0001 61") == bytes.fromhex("3003000161")


@pytest.mark.parametrize(("description", "version", "hex_bytes", "reason"), CASES, ids=[c[0] for c in CASES])
def test_violation_is_a_clean_error_with_the_right_reason_code(
    description: str, version: int, hex_bytes: str, reason: ReasonCode
) -> None:
    raw = wire(hex_bytes)
    with pytest.raises(RemoteProtocolError) as info:
        decode_packet(raw, version)
    assert info.value.reason_code == reason, info.value


CONNECT_CASES = [
    ("reserved connect flag", "10 | 0004 4d515454 04 03 003c 0001 63", M),
    ("will QoS without will flag", "10 | 0004 4d515454 04 0a 003c 0001 63", M),
    ("will retain without will flag", "10 | 0004 4d515454 04 22 003c 0001 63", M),
    ("will QoS 3", "10 | 0004 4d515454 04 1e 003c 0001 63 0001 74 0000", M),
    ("3.1.1 password without user name", "10 | 0004 4d515454 04 42 003c 0001 63 0001 70", P),
    ("will topic with a wildcard", "10 | 0004 4d515454 04 06 003c 0001 63 0001 23 0000", ReasonCode.TOPIC_NAME_INVALID),
    ("client id truncated", "10 | 0004 4d515454 04 02 003c 0005 63", M),
    ("trailing bytes", "10 | 0004 4d515454 04 02 003c 0001 63 00", M),
    ("authentication data without method", "10 | 0004 4d515454 05 02 003c 05 16 0002 6869 0001 63", P),
    ("request problem information 2", "10 | 0004 4d515454 05 02 003c 02 1702 0001 63", P),
    (
        "will property not allowed in will (topic alias)",
        "10 | 0004 4d515454 05 06 003c 00 0001 63 03 230001 0001 74 0000",
        M,
    ),
]


@pytest.mark.parametrize(("description", "hex_bytes", "reason"), CONNECT_CASES, ids=[c[0] for c in CONNECT_CASES])
def test_connect_violations(description: str, hex_bytes: str, reason: ReasonCode) -> None:
    raw = wire(hex_bytes)
    with pytest.raises(RemoteProtocolError) as info:
        PacketReader().read(raw)
    assert info.value.reason_code == reason, info.value


@pytest.mark.parametrize(
    ("name_hex", "level"),
    [("4d515454", 6), ("4d515454", 3), ("4d5149736470", 4), ("58595a5a", 4), ("4d515454", 0)],
)
def test_unsupported_protocol_is_refused_with_its_level(name_hex: str, level: int) -> None:
    name = bytes.fromhex(name_hex)
    body = len(name).to_bytes(2, "big") + name + bytes((level, 2)) + b"\x00\x3c\x00\x01c"
    raw = bytes((0x10, len(body))) + body
    with pytest.raises(UnsupportedProtocolVersion) as info:
        PacketReader().read(raw)
    assert info.value.protocol_level == level
    assert info.value.reason_code == ReasonCode.UNSUPPORTED_PROTOCOL_VERSION


def test_first_packet_must_be_connect() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        PacketReader().read(bytes.fromhex("c000"))
    assert info.value.reason_code == P


def test_second_connect_is_a_protocol_error() -> None:
    connect = bytes.fromhex("100d00044d5154540402003c000163")
    reader = PacketReader()
    reader.read(connect)
    with pytest.raises(RemoteProtocolError) as info:
        reader.read(connect)
    assert info.value.reason_code == P


def test_packet_too_large_is_refused_from_the_header_alone() -> None:
    reader = PacketReader(5, max_packet_size=1024)
    # A header announcing 200 MB: refused before a single body byte arrives or is buffered.
    with pytest.raises(PacketTooLarge) as info:
        reader.read(bytes.fromhex("30 80 80 80 60".replace(" ", "")))
    assert info.value.reason_code == ReasonCode.PACKET_TOO_LARGE
    assert reader.buffered == 0


def test_maximum_packet_size_counts_the_fixed_header() -> None:
    packet = bytes.fromhex("30 06 0001 61 00 7878".replace(" ", ""))  # 8 bytes in all
    assert PacketReader(5, max_packet_size=8).read(packet)
    with pytest.raises(PacketTooLarge):
        PacketReader(5, max_packet_size=7).read(packet)


def test_reader_stays_failed_after_an_error() -> None:
    reader = PacketReader(5)
    with pytest.raises(MalformedPacket):
        reader.read(bytes.fromhex("0000"))
    with pytest.raises(MalformedPacket):
        reader.read(bytes.fromhex("c000"))


def test_packets_before_a_bad_one_are_returned_first() -> None:
    reader = PacketReader(5)
    reader.feed(bytes.fromhex("c000 d000 0000".replace(" ", "")))
    assert reader.next_packet() is not None
    assert reader.next_packet() is not None
    with pytest.raises(MalformedPacket):
        reader.next_packet()


def test_strict_mode_refuses_control_characters() -> None:
    raw = bytes.fromhex("30 05 0003 610762".replace(" ", ""))  # topic "a\x07b"
    assert decode_packet(raw, 4)
    with pytest.raises(MalformedPacket):
        PacketReader(4, strict=True).read(raw)
    noncharacter = "a\ufffe".encode()
    raw = bytes((0x30, 2 + len(noncharacter))) + len(noncharacter).to_bytes(2, "big") + noncharacter
    with pytest.raises(MalformedPacket):
        PacketReader(4, strict=True).read(raw)


def test_errors_form_one_family_split_local_and_remote() -> None:
    from mqttchat.protocol import LocalProtocolError, MQTTError

    assert issubclass(RemoteProtocolError, ProtocolError)
    assert issubclass(LocalProtocolError, ProtocolError)
    assert issubclass(ProtocolError, MQTTError)
    assert not issubclass(LocalProtocolError, RemoteProtocolError)


def test_connect_errors_carry_the_protocol_level() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        PacketReader().read(wire("10 | 0004 4d515454 05 03 003c 00 0001 63"))
    assert info.value.protocol_level == 5
    with pytest.raises(RemoteProtocolError) as info:
        PacketReader().read(wire("10 | 0004 4d515454 04 03 003c 0001 63"))
    assert info.value.protocol_level == 4


HOSTILE_TOPICS = ["t/\x1b]0;TITLE\x1b\\\x1b[2J", "a\x07b", "a\nb", "a\x7fb", "a\x85b", "a\u009b2Jb"]


def _string(text: str) -> bytes:
    return len(text.encode()).to_bytes(2, "big") + text.encode()


def _packet(first: int, body: bytes) -> bytes:
    assert len(body) < 128
    return bytes((first, len(body))) + body


@pytest.mark.parametrize("topic", HOSTILE_TOPICS)
def test_a_server_refuses_topics_with_control_characters(topic: str) -> None:
    """Issue 13, item 4: a server reading what a client sends refuses topic names and filters holding C0/C1 control
    characters as malformed (mosquitto does; MQTT 1.5.4 allows it), where a client keeps taking them (from brokers
    that route them: the screen neutralises them)."""
    from mqttchat.protocol import Publish

    publish = _packet(0x30, _string(topic) + b"\x00p")  # MQTT 5, QoS 0, no properties
    for _ in range(2):  # the second time from the decoder's cache, were it cached
        packet = PacketReader(5).read(publish)[0]
        assert isinstance(packet, Publish) and packet.topic == topic
    with pytest.raises(MalformedPacket, match="control character") as info:
        PacketReader(5, server=True).read(publish)
    assert info.value.reason_code == M
    assert PacketReader().server and not PacketReader(5).server

    connect = _packet(0x10, _string("MQTT") + b"\x05\x02\x00\x3c\x00" + _string("c"))
    for first, body in [
        (0x82, b"\x00\x01\x00" + _string(topic) + b"\x00"),  # SUBSCRIBE
        (0x82, b"\x00\x01\x00" + _string("$share/g/" + topic) + b"\x00"),
        (0xA2, b"\x00\x01\x00" + _string(topic)),  # UNSUBSCRIBE
    ]:
        reader = PacketReader()
        reader.read(connect)
        with pytest.raises(MalformedPacket, match="control character"):
            reader.read(_packet(first, body))
    with_will = _string("MQTT") + b"\x05\x06\x00\x3c\x00" + _string("c") + b"\x00" + _string(topic) + _string("x")
    with pytest.raises(MalformedPacket, match="control character"):
        PacketReader().read(_packet(0x10, with_will))
