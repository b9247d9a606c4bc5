"""Conformance of the broker process (MQTT 3.1.1 and 5.0, paho-mqtt and raw sockets as peers):
sessions."""

from __future__ import annotations

import pytest
from paho.mqtt.packettypes import PacketTypes

from tests.helpers.brokers import RunningBroker
from tests.helpers.conformance import (
    DISCONNECT,
    DISCONNECT_PACKET,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SESSION_EXPIRY,
    SUBACK,
    TOPIC_ALIAS,
    V5,
    VERSIONS,
    Peers,
    encode_properties,
    packet,
    persistent,
    props,
    publish_packet,
    pubrel_packet,
    subscribe_packet,
)


@pytest.mark.parametrize("version", VERSIONS)
def test_clean_session_discards_subscriptions(shared_broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.1.2-4/-6, MQTT-3.2.2-1] a clean session/clean start discards the previous session (session
    present 0) and its subscriptions."""
    first = peers.new(shared_broker, "cs", version, **persistent(version))
    assert first.session_present is False
    first.subscribe("cs/old", 1)
    first.disconnect()
    clean = peers.new(shared_broker, "cs", version, clean=True)
    assert clean.session_present is False
    clean.subscribe("cs/new", 1)
    pub = peers.new(shared_broker, "pub", version)
    pub.publish("cs/old", b"old subscription", 1)
    pub.publish("cs/new", b"fence", 1)
    assert [m.payload for m in clean.expect(1)] == [b"fence"]


@pytest.mark.parametrize("version", VERSIONS)
def test_persistent_session_gets_offline_messages_in_order(broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.1.2-4/-5, MQTT-3.2.2-2, MQTT-3.3.1-9] a persistent session keeps its subscriptions and receives the
    QoS 1 and 2 messages published while it was offline (50: more than the in-flight window), in order, at their
    QoS, RETAIN 0 even for a retained one; CONNACK session present is 0 then 1."""
    sub = peers.new(broker, "ps", version, **persistent(version))
    assert sub.session_present is False
    sub.subscribe("ps/#", 2)
    sub.disconnect()
    pub = peers.new(broker, "pub", version)
    sent = [(1 + i % 2, f"{1 + i % 2}-{i}".encode()) for i in range(50)]
    for qos, payload in sent:
        pub.publish("ps/t", payload, qos)
    pub.publish("ps/r", b"retained", 1, retain=True)
    back = peers.new(broker, "ps", version, **persistent(version))
    assert back.session_present is True
    got = back.expect(51)
    for qos in (1, 2):
        assert [m.payload for m in got if m.qos == qos and m.topic == "ps/t"] == [p for q, p in sent if q == qos]
    assert [(m.topic, m.payload, m.retain) for m in got if m.topic == "ps/r"] == [("ps/r", b"retained", False)]
    pub.publish("ps/live", b"live", 1)
    assert back.expect_one().payload == b"live"


@pytest.mark.parametrize("version", VERSIONS)
def test_unacknowledged_qos1_resent_with_dup(broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-4.4.0-1, MQTT-3.3.1-1] an unacknowledged QoS 1 PUBLISH is sent again, DUP=1, same packet identifier,
    when the persistent session reconnects; a QoS 2 flow resumes with PUBREL after PUBREC."""
    expiry = encode_properties((SESSION_EXPIRY, 60)) if version == V5 else b"\x00"
    raw = peers.raw_client(broker)
    raw.connect("dup", version, clean=False, properties=expiry)
    raw.send(subscribe_packet(1, [("dup/#", 2)], version=version))
    assert raw.expect(SUBACK).suback_codes(version) == [2]
    pub = peers.new(broker, "pub", version)
    pub.publish("dup/1", b"q1", 1)
    first = raw.expect(PUBLISH)
    assert first.flags == 0x02 and first.publish_parts(version)[:3] == ("dup/1", 1, b"q1")
    pub.publish("dup/2", b"q2", 2)
    q2 = raw.expect(PUBLISH)
    q2_id = q2.body[len("dup/2") + 2 : len("dup/2") + 4]
    raw.send(packet(0x50, q2_id))  # PUBREC, then the connection drops before PUBREL arrives and is answered
    assert raw.expect(PUBREL).body[:2] == q2_id
    raw.close()
    again = peers.raw_client(broker)
    connack = again.connect("dup", version, clean=False, properties=expiry)
    assert connack.body[0] & 1, "session present"
    resent = again.expect(PUBLISH)
    assert resent.flags == 0x0A, "QoS 1 with DUP"
    assert resent.body == first.body, "same packet identifier, topic, payload"
    assert again.expect(PUBREL).body[:2] == q2_id


def test_session_expiry_zero_ends_session_at_disconnect(shared_broker: RunningBroker, peers: Peers) -> None:
    """[MQTT-3.1.2-11] 5.0 clean start 0 without a Session Expiry Interval: the session ends with the connection."""
    first = peers.new(shared_broker, "se0", V5, clean=False)
    first.subscribe("se0/#", 1)
    first.disconnect()
    again = peers.new(shared_broker, "se0", V5, clean=False)
    assert again.session_present is False


@pytest.mark.parametrize("version", VERSIONS)
def test_qos2_duplicate_delivered_once(broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-4.3.3-2/-3, MQTT-4.4.0-1] a QoS 2 PUBLISH re-sent (DUP) before PUBREL, on the same connection or after
    the persistent session reconnects, is delivered once; after PUBCOMP the packet identifier starts a new message."""
    sub = peers.new(broker, "sub", version)
    sub.subscribe("q2/#", 2)
    expiry = encode_properties((SESSION_EXPIRY, 60)) if version == V5 else b"\x00"
    raw = peers.raw_client(broker)
    raw.connect("q2pub", version, clean=False, properties=expiry)
    raw.send(publish_packet("q2/t", b"once", 2, 7, version=version))
    assert raw.expect(PUBREC).body[:2] == b"\x00\x07"
    raw.send(publish_packet("q2/t", b"once", 2, 7, dup=True, version=version))
    assert raw.expect(PUBREC).body[:2] == b"\x00\x07"
    raw.close()
    again = peers.raw_client(broker)
    assert again.connect("q2pub", version, clean=False, properties=expiry).body[0] & 1, "session present"
    again.send(publish_packet("q2/t", b"once", 2, 7, dup=True, version=version))
    assert again.expect(PUBREC).body[:2] == b"\x00\x07"
    again.send(pubrel_packet(7))
    assert again.expect(PUBCOMP).body[:2] == b"\x00\x07"
    again.send(publish_packet("q2/t", b"new", 2, 7, version=version))
    again.expect(PUBREC)
    again.send(pubrel_packet(7))
    again.expect(PUBCOMP)
    assert [m.payload for m in sub.expect(2)] == [b"once", b"new"]
    sub.expect_none(0.2)


@pytest.mark.parametrize("version", VERSIONS)
def test_pubrel_for_unknown_packet_id(shared_broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-4.3.3 / 3.7.2.1] a PUBREL for a packet identifier the broker does not know is answered with PUBCOMP
    (5.0: reason 0x92 Packet Identifier not found, or 0x00)."""
    raw = peers.raw_client(shared_broker)
    raw.connect("pubrel", version)
    raw.send(pubrel_packet(99))
    comp = raw.expect(PUBCOMP)
    assert comp.body[:2] == b"\x00\x63"
    if version == V5:
        assert comp.reason_code() in (0x00, 0x92)


def test_disconnect_can_shorten_session_expiry(shared_broker: RunningBroker, peers: Peers) -> None:
    """[MQTT-3.14.2.2.2] 5.0 DISCONNECT with Session Expiry Interval 0 ends a session that had 60 s."""
    first = peers.new(shared_broker, "dse", V5, clean=False, session_expiry=60)
    first.subscribe("dse/#", 1)
    first.disconnect(0, properties=props(PacketTypes.DISCONNECT, SessionExpiryInterval=0))
    again = peers.new(shared_broker, "dse", V5, clean=False, session_expiry=60)
    assert again.session_present is False


def test_topic_alias_not_kept_across_connections(broker: RunningBroker, peers: Peers) -> None:
    """[MQTT-3.3.2-7] topic alias mappings last one network connection: reusing one after reconnecting (session
    resumed) is a Protocol Error, DISCONNECT 0x82."""
    expiry = encode_properties((SESSION_EXPIRY, 60))
    alias = encode_properties((TOPIC_ALIAS, 1))
    raw = peers.raw_client(broker)
    raw.connect("alias", V5, clean=False, properties=expiry)
    raw.send(publish_packet("ta2/t", b"1", 1, 1, properties=alias))
    raw.expect(PUBACK)
    raw.send(publish_packet("", b"2", 1, 2, properties=alias))
    raw.expect(PUBACK)
    raw.send(DISCONNECT_PACKET)
    assert raw.read_until_closed() == []
    again = peers.raw_client(broker)
    again.connect("alias", V5, clean=False, properties=expiry)
    again.send(publish_packet("", b"3", 1, 3, properties=alias))
    assert [(p.type, p.reason_code()) for p in again.read_until_closed()] == [(DISCONNECT, 0x82)]


@pytest.mark.parametrize("version", VERSIONS)
def test_outgoing_qos2_flow_and_refused_pubrec(shared_broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-4.3.3-1, MQTT-4.3.3-?] broker-to-client QoS 2: PUBLISH, PUBREC -> PUBREL, PUBCOMP; a 5.0 PUBREC with
    a failure reason ends the flow without PUBREL, and later messages still flow."""
    raw = peers.raw_client(shared_broker)
    raw.connect("q2sub", version)
    raw.send(subscribe_packet(1, [("oq/#", 2)], version=version))
    raw.expect(SUBACK)
    pub = peers.new(shared_broker, "pub", version)
    pub.publish("oq/t", b"a", 2)
    first = raw.expect(PUBLISH)
    pid = first.body[6:8]
    assert first.flags == 0x04 and pid != b"\x00\x00"
    raw.send(packet(0x50, pid))
    assert raw.expect(PUBREL).body[:2] == pid
    raw.send(packet(0x70, pid))
    if version == V5:
        pub.publish("oq/t", b"b", 2)
        second = raw.expect(PUBLISH)
        raw.send(packet(0x50, second.body[6:8] + b"\x80\x00"))  # PUBREC, reason 0x80 Unspecified error
    pub.publish("oq/t", b"c", 1)
    last = raw.expect(PUBLISH)
    assert last.publish_parts(version)[2] == b"c", f"expected the next PUBLISH, got {last}"
