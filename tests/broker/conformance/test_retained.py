"""Conformance of the broker process (MQTT 3.1.1 and 5.0, paho-mqtt and raw sockets as peers):
retained messages."""

from __future__ import annotations

import paho.mqtt.client as mqtt
import pytest

from tests.helpers.brokers import RunningBroker
from tests.helpers.conformance import (
    V5,
    VERSIONS,
    WILDCARD_MATCHES,
    WILDCARD_TOPICS,
    Peer,
    Peers,
)


@pytest.mark.parametrize("version", VERSIONS)
def test_retained_stored_replaced_deleted(broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.3.1-5/-6/-10/-11] retained message stored, sent on subscribe with RETAIN=1, replaced by a newer one,
    deleted by an empty payload; live copies to existing subscribers have RETAIN=0 [MQTT-3.3.1-9/-12]."""
    pub = peers.new(broker, "pub", version)
    pub.publish("r/a", b"one", 1, retain=True)
    pub.publish("r/a", b"two", 1, retain=True)
    pub.publish("r/b", b"bee", 2, retain=True)
    pub.publish("r/c", b"cee", 1, retain=True)
    pub.publish("r/c", b"", 1, retain=True)
    pub.publish("r/d e", b"old", 2, retain=True)
    pub.publish("r/d e", b"qos0", 0, retain=True)  # a QoS 0 retained message replaces it too [MQTT-3.3.1-7]
    sub = peers.new(broker, "sub", version)
    assert sub.subscribe("r/#", 1) == [1]
    got = sorted(sub.expect(3), key=lambda m: m.topic)
    assert [(m.topic, m.payload, m.retain, m.qos) for m in got] == [
        ("r/a", b"two", True, 1),
        ("r/b", b"bee", True, 1),  # QoS 2 retained, delivered at the subscription's QoS 1
        ("r/d e", b"qos0", True, 0),
    ]
    pub.publish("r/a", b"three", 1, retain=True)
    pub.publish("r/b", b"", 1, retain=True)  # deletes; sent live as a normal message [MQTT-3.3.1-10]
    live = sub.expect(2)
    assert [(m.topic, m.payload, m.retain) for m in live] == [("r/a", b"three", False), ("r/b", b"", False)]
    late = peers.new(broker, "late", version)
    late.subscribe("r/#", 2)
    kept = sorted(late.expect(2), key=lambda m: m.topic)
    assert [(m.topic, m.payload, m.retain, m.qos) for m in kept] == [
        ("r/a", b"three", True, 1),
        ("r/d e", b"qos0", True, 0),
    ]
    late.expect_none()


def test_retain_handling_0_1_2(broker: RunningBroker, peers: Peers) -> None:
    """[MQTT-3.3.1-9/-10/-11] 5.0 Retain Handling: 0 sends retained on every subscribe, 1 only for a new
    subscription, 2 never."""
    pub = peers.new(broker, "pub", V5)
    pub.publish("rh/t", b"kept", 1, retain=True)

    def first_after_subscribe(peer: Peer, handling: int) -> bytes:
        peer.subscribe("rh/t", options=mqtt.SubscribeOptions(qos=1, retainHandling=handling))
        pub.publish("rh/t", b"fence", 1)  # not retained: the next thing after any retained copy
        first = peer.expect_one()
        if first.payload != b"fence":
            assert peer.expect_one().payload == b"fence"
        return first.payload

    rh0, rh1, rh2 = (peers.new(broker, f"rh{n}", V5) for n in range(3))
    assert first_after_subscribe(rh0, 0) == b"kept"
    assert first_after_subscribe(rh0, 0) == b"kept", "handling 0: sent again on a repeated subscribe"
    assert first_after_subscribe(rh1, 1) == b"kept"
    assert first_after_subscribe(rh1, 1) == b"fence", "handling 1: not sent for an existing subscription"
    assert first_after_subscribe(rh2, 2) == b"fence", "handling 2: never sent"


def test_retain_as_published(broker: RunningBroker, peers: Peers) -> None:
    """[MQTT-3.3.1-12/-13] 5.0 Retain As Published: 1 keeps the RETAIN flag on forwarded messages, 0 clears it."""
    rap = peers.new(broker, "rap", V5)
    plain = peers.new(broker, "plain", V5)
    rap.subscribe("rap/#", options=mqtt.SubscribeOptions(qos=1, retainAsPublished=True))
    plain.subscribe("rap/#", options=mqtt.SubscribeOptions(qos=1, retainAsPublished=False))
    pub = peers.new(broker, "pub", V5)
    pub.publish("rap/x", b"retained", 1, retain=True)
    pub.publish("rap/y", b"normal", 1)
    assert [(m.payload, m.retain) for m in rap.expect(2)] == [(b"retained", True), (b"normal", False)]
    assert [(m.payload, m.retain) for m in plain.expect(2)] == [(b"retained", False), (b"normal", False)]


def test_retained_messages_matched_by_wildcards(broker: RunningBroker, peers: Peers) -> None:
    """[MQTT-3.3.1-6, MQTT-4.7.1-2/-3, MQTT-4.7.2-1] retained messages are found by the same wildcard rules as live
    ones ('#' includes the parent level, '+' one level, no '$' topics for leading wildcards)."""
    pub = peers.new(broker, "pub", V5)
    for topic in [*WILDCARD_TOPICS, "$app/sport"]:
        pub.publish(topic, topic.encode(), 1, retain=True)
    for index, (topic_filter, expected) in enumerate(WILDCARD_MATCHES.items()):
        sub = peers.new(broker, f"rsub{index}", V5)
        sub.subscribe(topic_filter, 1)
        got = sub.expect(len(expected))
        assert sorted(m.topic for m in got) == sorted(expected), topic_filter
        assert all(m.retain and m.payload == m.topic.encode() for m in got)
        sub.subscribe("zz/fence", 0)  # then a live message: any extra retained one would come before it
        pub.publish("zz/fence", b"fence", 0)
        assert sub.expect_one().payload == b"fence", f"{topic_filter} matched too much"
