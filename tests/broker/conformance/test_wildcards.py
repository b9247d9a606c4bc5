"""Conformance of the broker process (MQTT 3.1.1 and 5.0, paho-mqtt and raw sockets as peers):
wildcards, ``$`` topics and overlapping subscriptions."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.helpers.brokers import RunningBroker
from tests.helpers.conformance import (
    QUIET,
    V5,
    VERSIONS,
    WILDCARD_MATCHES,
    WILDCARD_TOPICS,
    Peer,
    Peers,
    broker_with_sys,
    prop,
)


@pytest.mark.parametrize("version", VERSIONS)
def test_wildcards(shared_broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-4.7.1-2/-3] '#' matches its parent level and any number of levels, '+' exactly one (even empty)."""
    subs: dict[str, Peer] = {}
    for index, topic_filter in enumerate(WILDCARD_MATCHES):
        subs[topic_filter] = peers.new(shared_broker, f"sub{index}", version)
        assert subs[topic_filter].subscribe(topic_filter, 1) == [1]
    pub = peers.new(shared_broker, "pub", version)
    for topic in WILDCARD_TOPICS:
        pub.publish(topic, topic.encode(), 1)
    for topic_filter, expected in WILDCARD_MATCHES.items():
        got = subs[topic_filter].expect(len(expected))
        assert sorted(m.topic for m in got) == sorted(expected), topic_filter
        assert all(m.payload == m.topic.encode() for m in got)
    time.sleep(QUIET)
    for topic_filter, sub in subs.items():
        assert sub.drain() == [], f"{topic_filter} matched too much"


@pytest.mark.parametrize("version", VERSIONS)
def test_dollar_topics_not_matched_by_leading_wildcards(
    shared_broker: RunningBroker, peers: Peers, version: int
) -> None:
    """[MQTT-4.7.2-1] a filter starting with '#' or '+' does not match a topic starting with '$' (published by a
    client here; whether such a message reaches '$app/+' is the broker's choice: 4.7.2 says SHOULD prevent it)."""
    hash_sub = peers.new(shared_broker, "hash", version)
    plus_sub = peers.new(shared_broker, "plus", version)
    assert hash_sub.subscribe("#", 1) == [1]
    assert plus_sub.subscribe("+/x", 1) == [1]
    pub = peers.new(shared_broker, "pub", version)
    pub.publish("$app/x", b"dollar", 1)
    pub.publish("fence/x", b"fence", 1)
    assert [m.topic for m in hash_sub.expect(1)] == ["fence/x"]
    assert [m.topic for m in plus_sub.expect(1)] == ["fence/x"]


@pytest.mark.parametrize("version", VERSIONS)
def test_sys_topics_not_matched_by_hash(tmp_path: Path, peers: Peers, version: int) -> None:
    """[MQTT-4.7.2-1] $SYS/... (published by the broker) reaches '$SYS/#' but neither '#' nor '+/broker/#'."""
    with broker_with_sys(tmp_path / "sys") as broker:
        hash_sub = peers.new(broker, "hash", version)
        plus_sub = peers.new(broker, "plus", version)
        sys_sub = peers.new(broker, "sys", version)
        hash_sub.subscribe("#", 0)
        plus_sub.subscribe("+/broker/#", 0)
        sys_sub.subscribe("$SYS/broker/uptime", 0)
        first = sys_sub.expect_one()
        assert first.topic == "$SYS/broker/uptime" and first.retain
        live = sys_sub.expect_one(timeout=3)  # the next periodic publication, after every subscription
        assert live.topic == "$SYS/broker/uptime" and not live.retain
        pub = peers.new(broker, "pub", version)
        pub.publish("x/broker/fence", b"fence", 1)
        assert [m.topic for m in hash_sub.expect(1)] == ["x/broker/fence"]
        assert [m.topic for m in plus_sub.expect(1)] == ["x/broker/fence"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    "how",
    ["publish", "will"],
)
def test_clients_cannot_forge_sys_topics(tmp_path: Path, peers: Peers, version: int, how: str) -> None:
    """[4.7.2] $SYS topics belong to the broker ("SHOULD prevent Clients from using such Topic Names to exchange
    messages"): neither a client's retained PUBLISH nor its retained will on $SYS/broker/version reaches a
    subscriber or replaces the broker's retained value."""
    with broker_with_sys(tmp_path / "sys", sys_interval=60) as broker:
        watcher = peers.new(broker, "watcher", version)
        watcher.subscribe("$SYS/broker/version", 1)
        assert watcher.expect_one().payload.startswith(b"mqttchat")
        if how == "publish":
            peers.new(broker, "forger", version).publish("$SYS/broker/version", b"forged", 1, retain=True)
        else:
            peers.new(broker, "forger", version, will=("$SYS/broker/version", b"forged", 1, True)).kill()
        watcher.expect_none()
        reader = peers.new(broker, "reader", version)
        reader.subscribe("$SYS/broker/version", 1)
        assert reader.expect_one().payload.startswith(b"mqttchat")


@pytest.mark.parametrize("version", VERSIONS)
def test_overlapping_subscriptions_one_copy_at_highest_qos(
    shared_broker: RunningBroker, peers: Peers, version: int
) -> None:
    """[MQTT-3.3.4-2/-3] overlapping subscriptions: one copy per client at the highest granted QoS; 5.0 carries
    every matching Subscription Identifier [MQTT-3.3.4-4/-5]."""
    sub = peers.new(shared_broker, "sub", version)
    ids = {"ov/#": 1, "ov/+": 2, "ov/x": 300} if version == V5 else {"ov/#": None, "ov/+": None, "ov/x": None}
    for topic_filter, qos in (("ov/#", 0), ("ov/+", 2), ("ov/x", 1)):
        assert sub.subscribe(topic_filter, qos, sub_id=ids[topic_filter]) == [qos]
    pub = peers.new(shared_broker, "pub", version)
    pub.publish("ov/x", b"all three", 2)
    pub.publish("ov/x/z", b"hash only", 2)
    pub.publish("ov/y", b"hash and plus", 1)
    got = sorted(sub.expect(3), key=lambda m: m.topic)
    assert [(m.topic, m.payload, m.qos) for m in got] == [
        ("ov/x", b"all three", 2),
        ("ov/x/z", b"hash only", 0),
        ("ov/y", b"hash and plus", 1),
    ]
    if version == V5:
        assert sorted(prop(got[0], "SubscriptionIdentifier", [])) == [1, 2, 300]
        assert prop(got[1], "SubscriptionIdentifier") == [1]
        assert sorted(prop(got[2], "SubscriptionIdentifier", [])) == [1, 2]
    sub.expect_none()
