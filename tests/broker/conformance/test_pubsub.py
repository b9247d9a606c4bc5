"""Conformance of the broker process (MQTT 3.1.1 and 5.0, paho-mqtt and raw sockets as peers):
publish and subscribe."""

from __future__ import annotations

import pytest

from tests.helpers.brokers import RunningBroker
from tests.helpers.conformance import (
    CONNACK,
    PUBACK,
    PUBLISH,
    SUBACK,
    V5,
    V311,
    VERSIONS,
    Peers,
    connect_packet,
    next_packet,
    publish_packet,
    subscribe_packet,
)

VERSION_PAIRS = [
    pytest.param(V311, V311, id="v311-to-v311"),
    pytest.param(V5, V5, id="v5-to-v5"),
    pytest.param(V311, V5, id="v311-to-v5"),
    pytest.param(V5, V311, id="v5-to-v311"),
]


@pytest.mark.parametrize(("pub_version", "sub_version"), VERSION_PAIRS)
@pytest.mark.parametrize("sub_qos", [0, 1, 2])
def test_every_qos_combination_downgraded_and_ordered(
    shared_broker: RunningBroker, peers: Peers, pub_version: int, sub_version: int, sub_qos: int
) -> None:
    """[MQTT-3.8.4-6] messages at QoS 0/1/2 reach a QoS 0/1/2 subscription at min(pub, sub) QoS,
    in the publisher's order per QoS [MQTT-4.6.0-6], across 3.1.1 and 5.0 clients."""
    sub = peers.new(shared_broker, "sub", sub_version)
    assert sub.subscribe("qos/t", sub_qos) == [sub_qos]
    pub = peers.new(shared_broker, "pub", pub_version)
    sent = [(i % 3, f"{i % 3}-{i}".encode()) for i in range(30)]
    for qos, payload in sent:
        pub.publish("qos/t", payload, qos)
    got = sub.expect(30)
    for qos in (0, 1, 2):
        mine = [m for m in got if m.payload.startswith(f"{qos}-".encode())]
        assert [m.payload for m in mine] == [p for q, p in sent if q == qos], f"order of QoS {qos} messages"
        assert {m.qos for m in mine} == {min(qos, sub_qos)}
        assert not any(m.retain or m.dup for m in mine)
    assert {m.topic for m in got} == {"qos/t"}
    sub.expect_none(0.1)


@pytest.mark.parametrize("version", VERSIONS)
def test_unsubscribe_stops_delivery(shared_broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.10.4-1/-2] after UNSUBACK the broker sends no more messages for the filter (5.0: 0x11 when unknown)."""
    sub = peers.new(shared_broker, "sub", version)
    sub.subscribe("u/a", 1)
    sub.subscribe("u/b", 1)
    assert sub.unsubscribe("u/a") == ([0] if version == V5 else [])  # 3.1.1 UNSUBACK has no codes
    if version == V5:
        assert sub.unsubscribe("u/none") == [0x11]
    pub = peers.new(shared_broker, "pub", version)
    pub.publish("u/a", b"gone", 1)
    pub.publish("u/b", b"fence", 1)
    assert [(m.topic, m.payload) for m in sub.expect(1)] == [("u/b", b"fence")]


@pytest.mark.parametrize("version", VERSIONS)
def test_resubscribe_replaces_subscription(shared_broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.8.4-3] a SUBSCRIBE to a filter the session already has replaces it (new QoS), one copy per message."""
    sub = peers.new(shared_broker, "sub", version)
    assert sub.subscribe("rs/t", 0) == [0]
    assert sub.subscribe("rs/t", 2) == [2]
    pub = peers.new(shared_broker, "pub", version)
    pub.publish("rs/t", b"one", 2)
    pub.publish("rs/t", b"two", 1)
    # sorted: paho hands a QoS 2 message to on_message only at PUBREL, so "two" may overtake "one"
    assert sorted((m.payload, m.qos) for m in sub.expect(2)) == [(b"one", 2), (b"two", 1)]
    sub.expect_none(0.2)


@pytest.mark.parametrize("version", VERSIONS)
def test_large_empty_and_utf8(shared_broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-2.2.3, MQTT-4.7.3-4, MQTT-1.5.3] a 2 MiB payload (4-byte Remaining Length), an empty payload and
    multi-byte UTF-8 topic names arrive intact; topic names are case sensitive."""
    sub = peers.new(shared_broker, "sub", version)
    sub.subscribe("température/+", 1)
    pub = peers.new(shared_broker, "pub", version)
    big = bytes(range(256)) * 8192
    pub.publish("température/°C", big, 1)
    pub.publish("Température/°C", b"other case", 1)
    pub.publish("température/vide", b"", 1)
    pub.publish("température/日本", "ünïcödé ✓".encode(), 1)
    got = sub.expect(3, timeout=10)
    assert [m.topic for m in got] == ["température/°C", "température/vide", "température/日本"]
    assert got[0].payload == big
    assert [m.payload for m in got[1:]] == [b"", "ünïcödé ✓".encode()]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("split", [True, False], ids=["byte-by-byte", "coalesced"])
def test_packets_split_or_coalesced(shared_broker: RunningBroker, peers: Peers, version: int, split: bool) -> None:
    """[MQTT-2.1 / 4.2] packets arriving one byte per TCP segment, or several in one segment, are all decoded."""
    watcher = peers.new(shared_broker, "watcher", version)
    watcher.subscribe("split/#", 1)
    data = (
        connect_packet("splitter", version)
        + subscribe_packet(1, [("split/echo", 1)], version=version)
        + publish_packet("split/a", b"x" * 300, 1, 2, version=version)
        + publish_packet("split/echo", b"me", 1, 3, version=version)
    )
    raw = peers.raw_client(shared_broker)
    if split:
        for byte in data:
            raw.send(bytes((byte,)))
    else:
        raw.send(data)
    assert raw.expect(CONNACK).reason_code(version) == 0
    assert raw.expect(SUBACK).suback_codes(version) == [1]
    replies = sorted((next_packet(raw) for _ in range(3)), key=lambda p: p.type)
    assert [p.type for p in replies] == [PUBLISH, PUBACK, PUBACK]
    assert replies[0].publish_parts(version)[::2] == ("split/echo", b"me")
    assert [(m.topic, m.payload) for m in watcher.expect(2)] == [("split/a", b"x" * 300), ("split/echo", b"me")]
