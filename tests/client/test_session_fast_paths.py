"""ClientSession's fast paths (plain publishes encoded directly, plain acknowledgements settled in bulk) against
its general way (taken whenever a packet trace watches), and what an unsendable publish leaves behind."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mqttchat.client import ClientOptions, PublishError, parse_url
from mqttchat.client.session import ClientSession
from mqttchat.protocol import (
    ConnAck,
    LocalProtocolError,
    Packet,
    PacketReader,
    Properties,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    ReasonCode,
)


def connected(version: int = 5, topic_alias_maximum: int = 0, traced: bool = False) -> ClientSession:
    session = ClientSession(ClientOptions(parse_url("mqtt://broker"), version=version))
    if traced:
        session.trace = lambda direction, packet, size: None
    session.start_connection()
    session.data_to_send()
    props = Properties(topic_alias_maximum=topic_alias_maximum) if topic_alias_maximum else Properties()
    session.receive_data(ConnAck(properties=props).encode(version))
    assert session.connected
    return session


def sent(session: ClientSession) -> list[Packet]:
    return PacketReader(session.version).read(session.data_to_send())


@pytest.mark.parametrize("version", [5, 4])
@pytest.mark.parametrize("aliases", [0, 2])
def test_plain_publishes_are_the_bytes_of_the_general_way(version: int, aliases: int) -> None:
    fast, plain = connected(version, aliases), connected(version, aliases)
    general = connected(version, aliases, traced=True)
    topics = ["t", "abc", "long/topic/one", "long/topic/two", "long/topic/three", "long/topic/one", "ü/ñ/€"]
    for n, topic in enumerate(topics * 2):
        for qos in (0, 1, 2):
            for retain in (False, True):
                payload = bytes(range(256))[: (n * 37 + qos) % 300] * (1 + n % 2)
                for session in (fast, general):
                    session.publish(Publish(topic, payload, qos, retain), token=(n, qos, retain))
                plain.publish_plain(topic, payload, qos, retain, token=(n, qos, retain))
    data = fast.data_to_send()
    assert data == general.data_to_send() == plain.data_to_send()
    for session in (fast, plain):
        assert (session.messages_out, session.bytes_out, session.outgoing.inflight) == (
            general.messages_out, general.bytes_out, general.outgoing.inflight)  # fmt: skip
    if version == 5 and aliases:
        assert any(p.topic == "" for p in PacketReader(5).read(data))  # type: ignore[attr-defined]


@pytest.mark.parametrize("version", [5, 4])
def test_plain_acknowledgements_settle_flows_as_the_general_way(version: int) -> None:
    fast, general = connected(version), connected(version, traced=True)
    for session in (fast, general):
        for i in range(8):
            session.publish(Publish("a/b", b"%d" % i, 1 + i % 2), token=i)
        session.data_to_send()
    # In one read: PUBACKs and PUBRECs, a duplicate PUBACK, a PUBREC for an unknown identifier (PUBREL 0x92),
    # a QoS 2 message answered with PUBACK (a downgrade), then the PUBCOMPs and a late duplicate PUBCOMP.
    acks: list[Packet] = [PubAck(1), PubRec(2), PubAck(3), PubAck(1), PubRec(4), PubRec(999), PubAck(6)]
    acks += [PubComp(2), PubAck(5), PubRec(8), PubAck(7), PubComp(4), PubComp(8), PubComp(2)]
    data = b"".join(packet.encode(version) for packet in acks)
    assert fast.receive_data(data) == general.receive_data(data)
    replies = fast.data_to_send()
    assert replies == general.data_to_send()
    not_found = ReasonCode.PACKET_IDENTIFIER_NOT_FOUND if version == 5 else ReasonCode.SUCCESS  # 3.1.1: no codes
    assert PacketReader(version).read(replies) == [PubRel(2), PubRel(4), PubRel(999, not_found), PubRel(8)]
    assert (fast.bytes_out, len(fast.outgoing), len(fast.packet_ids)) == (general.bytes_out, 0, 0)


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_an_unsendable_publish_leaves_nothing_behind(qos: int) -> None:
    """A publish refused with LocalProtocolError takes no packet identifier, stays in no flow and maps no topic
    alias: the next publish to a topic whose refused publish had mapped an alias must carry the topic name, or
    the broker gets an alias it never learned."""
    session = connected(5, topic_alias_maximum=10)
    with pytest.raises(LocalProtocolError):
        session.publish(Publish("a/+/b", b"x", qos), token="bad topic")
    with pytest.raises(LocalProtocolError):
        session.publish(Publish("good/topic", b"x", qos, properties=Properties(receive_maximum=5)), token="bad prop")
    assert (session.data_to_send(), len(session.outgoing), len(session.packet_ids)) == (b"", 0, 0)
    session.publish(Publish("good/topic", b"y", qos), token="good")
    (packet,) = sent(session)
    assert isinstance(packet, Publish)
    assert (packet.topic, packet.properties.topic_alias, packet.payload) == ("good/topic", 1, b"y")
    assert len(session.outgoing) == (1 if qos else 0)


def test_publish_plain_refuses_what_publish_refuses() -> None:
    session = connected(5)
    with pytest.raises(PublishError, match="not QoS 3"):
        session.publish_plain("a/b", b"x", 3)
    with pytest.raises(LocalProtocolError):
        session.publish_plain("a/#", b"x", 1)
    session.capabilities = replace(session.capabilities, maximum_qos=1, retain_available=False)  # type: ignore[arg-type]
    with pytest.raises(PublishError, match="at most QoS 1"):
        session.publish_plain("a/b", b"x", 2)
    with pytest.raises(PublishError, match="retained"):
        session.publish_plain("a/b", b"x", 0, retain=True)
    assert (session.data_to_send(), len(session.outgoing), len(session.packet_ids)) == (b"", 0, 0)
    session.connection_lost()
    session.publish_plain("a/b", b"later", 1, token="t")  # waits for the connection, as publish() does
    assert session.data_to_send() == b"" and len(session._offline) == 1
