"""Black-box MQTT 3.1.1 and 5.0 conformance of the broker process, with paho-mqtt and raw sockets as peers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes

from tests.broker.conformance_helpers import (
    CONNACK,
    CONTENT_TYPE,
    DISCONNECT,
    DISCONNECT_PACKET,
    MAXIMUM_PACKET_SIZE,
    PINGREQ_PACKET,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    QUIET,
    RECEIVE_MAXIMUM,
    SESSION_EXPIRY,
    SUBACK,
    SUBSCRIPTION_ID,
    TIMEOUT,
    TOPIC_ALIAS,
    TOPIC_ALIAS_MAXIMUM,
    V5,
    V311,
    Packet,
    Peer,
    Peers,
    RawClient,
    broker_with_sys,
    connect_packet,
    encode_properties,
    packet,
    props,
    publish_packet,
    pubrel_packet,
    subscribe_packet,
    utf8,
    write_security_files,
)
from tests.helpers.brokers import RunningBroker, free_port, run_mqttchat_broker
from tests.helpers.waiting import until_sync

VERSIONS = [pytest.param(V311, id="v311"), pytest.param(V5, id="v5")]
ASSIGNED_CLIENT_ID = 0x12
SERVER_KEEP_ALIVE = 0x13
StartBroker = Callable[..., RunningBroker]


@pytest.fixture
def peers() -> Iterator[Peers]:
    created = Peers()
    yield created
    created.close()


def no_crash(broker: RunningBroker) -> None:
    """The broker logged no traceback (an exception escaping its handlers)."""
    log = broker.log_text()
    assert "Traceback" not in log, log[log.index("Traceback") :][:2000]


@pytest.fixture
def broker(broker_process: StartBroker) -> Iterator[RunningBroker]:
    """A fresh broker with the default configuration, for tests that leave retained messages or sessions."""
    running = broker_process()
    yield running
    no_crash(running)


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    """One default broker for the tests that leave nothing behind (clean sessions, no retained messages)."""
    with run_mqttchat_broker(tmp_path_factory.mktemp("shared-broker")) as running:
        yield running
        no_crash(running)


def prop(message: mqtt.MQTTMessage, name: str, default: Any = None) -> Any:
    """A property of a received message, ``default`` when absent (or for MQTT 3.1.1)."""
    return getattr(message.properties, name, default) if message.properties is not None else default


def persistent(version: int) -> dict[str, Any]:
    """Connection arguments of a persistent session: 3.1.1 clean session 0, 5.0 clean start 0 + expiry 60 s."""
    return {"clean": False, "session_expiry": 60} if version == V5 else {"clean": False}


# ================================================================================================================
# 1. Publish / subscribe
# ================================================================================================================

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
    replies = sorted((_read(raw) for _ in range(3)), key=lambda p: p.type)
    assert [p.type for p in replies] == [PUBLISH, PUBACK, PUBACK]
    assert replies[0].publish_parts(version)[::2] == ("split/echo", b"me")
    assert [(m.topic, m.payload) for m in watcher.expect(2)] == [("split/a", b"x" * 300), ("split/echo", b"me")]


# ================================================================================================================
# 2. Wildcards, $ topics, overlapping subscriptions
# ================================================================================================================

WILDCARD_TOPICS = [
    "sport",
    "sport/",
    "sport/tennis",
    "sport/tennis/player1",
    "sport/tennis/player1/ranking",
    "/sport",
    "sports",
    "sport//player1",
]
WILDCARD_MATCHES = {
    "sport/#": {"sport", "sport/", "sport/tennis", "sport/tennis/player1", "sport/tennis/player1/ranking",
                "sport//player1"},
    "sport/tennis/+": {"sport/tennis/player1"},
    "sport/+": {"sport/", "sport/tennis"},
    "+/+": {"sport/", "sport/tennis", "/sport"},
    "/+": {"/sport"},
    "+": {"sport", "sports"},
    "#": set(WILDCARD_TOPICS),
    "sport/+/player1": {"sport/tennis/player1", "sport//player1"},
}  # fmt: skip


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


# ================================================================================================================
# 3. Retained messages
# ================================================================================================================


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


# ================================================================================================================
# 4. MQTT 5 features
# ================================================================================================================


def test_no_local(shared_broker: RunningBroker, peers: Peers) -> None:
    """[MQTT-3.8.3-3] No Local: the broker does not send a client its own messages on that subscription."""
    me = peers.new(shared_broker, "me", V5)
    other = peers.new(shared_broker, "other", V5)
    me.subscribe("nl/#", options=mqtt.SubscribeOptions(qos=1, noLocal=True))
    other.subscribe("nl/#", 1)
    me.publish("nl/mine", b"mine", 1)
    other.publish("nl/theirs", b"theirs", 1)
    assert [m.payload for m in me.expect(1)] == [b"theirs"]
    assert [m.payload for m in other.expect(2)] == [b"mine", b"theirs"]


def test_shared_subscription_one_member_each(broker: RunningBroker, peers: Peers) -> None:
    """[MQTT-4.8.2] $share/g/topic: each message goes to exactly one member of the group, spread over the members;
    a normal subscription still gets every message; no retained message on joining a share."""
    pub = peers.new(broker, "pub", V5)
    pub.publish("sh/retained", b"old", 1, retain=True)
    members = [peers.new(broker, f"m{n}", V5) for n in range(2)]
    for member in members:
        assert member.subscribe("$share/g/sh/#", 1) == [1]
    normal = peers.new(broker, "normal", V5)
    normal.subscribe("sh/+", 1)
    assert [m.payload for m in normal.expect(1)] == [b"old"]
    sent = [f"m{i}".encode() for i in range(20)]
    for payload in sent:
        pub.publish("sh/t", payload, 1)
    assert [m.payload for m in normal.expect(20)] == sent
    got: list[list[bytes]] = [[], []]

    def collected() -> int:
        for index, member in enumerate(members):
            got[index].extend(m.payload for m in member.drain())
        return sum(len(g) for g in got)

    until_sync(lambda: collected() >= 20)
    time.sleep(0.2)
    collected()
    assert sorted(got[0] + got[1]) == sorted(sent), "each message exactly once across the group"
    assert got[0] and got[1], f"not spread: {len(got[0])} and {len(got[1])}"
    assert b"old" not in got[0] + got[1]


def test_properties_passed_through_unchanged(broker: RunningBroker, peers: Peers) -> None:
    """[MQTT-3.3.2-15/-16/-17/-18/-19/-20] user properties (in order), content type, response topic, correlation
    data and payload format indicator are forwarded unchanged, live and from the retained store; a 3.1.1
    subscriber gets the same message without properties."""
    v5 = peers.new(broker, "v5", V5)
    v311 = peers.new(broker, "v311", V311)
    v5.subscribe("p/#", 1)
    v311.subscribe("p/#", 1)
    user = [("b", "2"), ("a", "1"), ("b", "1"), ("zeta", "")]
    properties = props(PacketTypes.PUBLISH, UserProperty=user, ContentType="text/plain; charset=utf-8",
                       ResponseTopic="p/reply", CorrelationData=b"\x00\xffid", PayloadFormatIndicator=1)  # fmt: skip
    pub = peers.new(broker, "pub", V5)
    pub.publish("p/t", "héllo".encode(), 1, retain=True, properties=properties)
    late = peers.new(broker, "late", V5)
    late.subscribe("p/#", 1)
    for message in (v5.expect_one(), late.expect_one()):
        assert message.payload == "héllo".encode()
        assert prop(message, "UserProperty") == user
        assert prop(message, "ContentType") == "text/plain; charset=utf-8"
        assert prop(message, "ResponseTopic") == "p/reply"
        assert prop(message, "CorrelationData") == b"\x00\xffid"
        assert prop(message, "PayloadFormatIndicator") == 1
    old = v311.expect_one()
    assert (old.topic, old.payload, old.qos) == ("p/t", "héllo".encode(), 1)


def test_topic_alias_from_client(shared_broker: RunningBroker, peers: Peers) -> None:
    """[MQTT-3.3.2-12] topic aliases set by a publisher are resolved by the broker and remapped on reuse; the
    subscribers (which announced no Topic Alias Maximum) get the full topic name and no alias."""
    pub = peers.new(shared_broker, "pub", V5)
    assert pub.connack_properties is not None
    assert getattr(pub.connack_properties, "TopicAliasMaximum", 0) >= 1
    v5 = peers.new(shared_broker, "v5", V5)
    v311 = peers.new(shared_broker, "v311", V311)
    v5.subscribe("ta/#", 1)
    v311.subscribe("ta/#", 1)
    alias, top = props(PacketTypes.PUBLISH, TopicAlias=1), props(PacketTypes.PUBLISH, TopicAlias=10)
    pub.publish("ta/a/long/topic", b"1", 1, properties=alias)
    pub.publish("ta/top", b"2", 1, properties=top)  # the announced maximum (10) is a valid alias
    pub.publish("", b"3", 1, properties=alias)
    pub.publish("ta/other", b"4", 0, properties=alias)
    pub.publish("", b"5", 1, properties=alias)
    pub.publish("", b"6", 1, properties=top)
    expected = [("ta/a/long/topic", b"1"), ("ta/top", b"2"), ("ta/a/long/topic", b"3"), ("ta/other", b"4"),
                ("ta/other", b"5"), ("ta/top", b"6")]  # fmt: skip
    for sub in (v5, v311):
        got = sub.expect(6)
        assert [(m.topic, m.payload) for m in got] == expected
        assert all(prop(m, "TopicAlias") is None for m in got)


def test_subscription_identifiers(broker: RunningBroker, peers: Peers) -> None:
    """[MQTT-3.3.4-3/-4] the Subscription Identifier is sent with matching messages (also retained ones), not with
    those of a subscription without one, and a re-subscribe without it removes it."""
    pub = peers.new(broker, "pub", V5)
    pub.publish("sid/a/r", b"retained", 1, retain=True)
    sub = peers.new(broker, "sub", V5)
    sub.subscribe("sid/a/#", 1, sub_id=268_435_455)  # the largest identifier, a 4-byte variable integer
    retained = sub.expect_one()
    assert retained.retain and prop(retained, "SubscriptionIdentifier") == [268_435_455]
    sub.subscribe("sid/plain", 1)
    pub.publish("sid/a/x", b"with id", 1)
    pub.publish("sid/plain", b"without", 1)
    with_id, without = sub.expect(2)
    assert prop(with_id, "SubscriptionIdentifier") == [268_435_455]
    assert prop(without, "SubscriptionIdentifier") is None
    sub.subscribe("sid/a/#", 1)  # replaced, now without identifier
    pub.publish("sid/a/x", b"again", 1)
    assert prop(sub.expect_one(), "SubscriptionIdentifier") is None


@pytest.mark.parametrize("groups", [("g",), ("a", "b")], ids=["shared-and-normal", "two-groups"])
def test_shared_subscription_copy_independent_of_other_subscriptions(
    shared_broker: RunningBroker, peers: Peers, groups: tuple[str, ...]
) -> None:
    """[MQTT-4.8.2] a shared subscription delivers its own copy: a client that also has a normal subscription (or is
    the only member of two groups) gets one copy per subscription/group ("a second copy ... to this Client")."""
    client = peers.new(shared_broker, "both", V5)
    filters = [f"$share/{group}/sx/t" for group in groups]
    if len(groups) == 1:
        filters.append("sx/t")
    for topic_filter in filters:
        assert client.subscribe(topic_filter, 1) == [1]
    pub = peers.new(shared_broker, "pub", V5)
    pub.publish("sx/t", b"once", 1)
    assert [m.payload for m in client.expect(2, timeout=1)] == [b"once", b"once"]


# ================================================================================================================
# 5. Sessions
# ================================================================================================================


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


def _read(raw: RawClient) -> Packet:
    p = raw.read_packet()
    assert p is not None, "the broker closed the connection"
    return p


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


# ================================================================================================================
# 6. Will messages
# ================================================================================================================


@pytest.mark.parametrize("version", VERSIONS)
def test_will_on_unclean_disconnect(broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.1.2-8/-10] the will is published when the connection drops without DISCONNECT, with its QoS and
    payload; RETAIN=1 in the will stores it as a retained message [MQTT-3.1.2-17]."""
    watcher = peers.new(broker, "watcher", version)
    watcher.subscribe("will/#", 2)
    dying = peers.new(broker, "dying", version, will=("will/dying", b"gone", 2, True))
    dying.kill()
    message = watcher.expect_one()
    assert (message.topic, message.payload, message.qos, message.retain) == ("will/dying", b"gone", 2, False)
    late = peers.new(broker, "late", version)
    late.subscribe("will/#", 1)
    message = late.expect_one()
    assert (message.topic, message.payload, message.retain) == ("will/dying", b"gone", True)


@pytest.mark.parametrize("version", VERSIONS)
def test_no_will_on_normal_disconnect(shared_broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.1.2-10, MQTT-3.14.4-3] a normal DISCONNECT (5.0: reason 0x00) deletes the will unpublished."""
    watcher = peers.new(shared_broker, "watcher", version)
    watcher.subscribe("will/#", 1)
    leaving = peers.new(shared_broker, "leaving", version, will=("will/leaving", b"gone", 1, False))
    leaving.disconnect(0)
    watcher.expect_none()


def test_v5_disconnect_with_will_message(shared_broker: RunningBroker, peers: Peers) -> None:
    """[MQTT-3.14.2-1] 5.0 DISCONNECT with reason 0x04 (Disconnect with Will Message) publishes the will."""
    watcher = peers.new(shared_broker, "watcher", V5)
    watcher.subscribe("will/#", 1)
    leaving = peers.new(shared_broker, "leaving", V5, will=("will/leaving", b"bye", 1, False))
    leaving.disconnect(0x04)
    message = watcher.expect_one()
    assert (message.topic, message.payload) == ("will/leaving", b"bye")


def test_v5_disconnect_with_error_reason_publishes_will(shared_broker: RunningBroker, peers: Peers) -> None:
    """[MQTT-3.1.2-8/-10, MQTT-3.14.4-3] only DISCONNECT with reason 0x00 deletes the will: after DISCONNECT 0x80
    (Unspecified error) from the client the will is published."""
    watcher = peers.new(shared_broker, "watcher", V5)
    watcher.subscribe("will/#", 1)
    leaving = peers.new(shared_broker, "leaving", V5, will=("will/error", b"error", 1, False))
    leaving.disconnect(0x80)
    assert watcher.expect_one(timeout=1).payload == b"error"


@pytest.mark.parametrize("version", VERSIONS)
def test_will_on_protocol_error(shared_broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.1.2-8 / 3.1.2.5] the broker closing the connection for a protocol error publishes the will."""
    watcher = peers.new(shared_broker, "watcher", version)
    watcher.subscribe("will/#", 1)
    raw = peers.raw_client(shared_broker)
    raw.connect("faulty", version, will=("will/faulty", b"broke the rules", 1, False))
    raw.send(b"\x00\x00")
    raw.read_until_closed()
    assert watcher.expect_one().payload == b"broke the rules"


# ================================================================================================================
# 7. Session takeover
# ================================================================================================================


@pytest.mark.parametrize("version", VERSIONS)
def test_session_takeover(broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.1.4-2/-3] a second connection with the same client id closes the first (5.0: DISCONNECT 0x8E), whose
    will is published; the session (persistent) passes to the newcomer with session present 1."""
    watcher = peers.new(broker, "watcher", version)
    watcher.subscribe("will/#", 1)
    first = peers.new(broker, "same", version, will=("will/same", b"taken over", 1, False), **persistent(version))
    first.subscribe("to/#", 1)
    second = peers.new(broker, "same", version, **persistent(version))
    assert second.session_present is True
    assert first.disconnected.wait(TIMEOUT), "the first connection stays open"
    if version == V5:
        assert first.disconnect_reason is not None and first.disconnect_reason.value == 0x8E
    assert watcher.expect_one().payload == b"taken over"
    pub = peers.new(broker, "pub", version)
    pub.publish("to/x", b"to the new one", 1)
    assert second.expect_one().payload == b"to the new one"


@pytest.mark.parametrize("version", VERSIONS)
def test_takeover_resends_unacknowledged(broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-4.4.0-1, MQTT-3.1.4-2/-3] a connection taking over a persistent session gets the QoS 1 PUBLISH the old
    connection left unacknowledged again, DUP=1, same packet identifier."""
    expiry = encode_properties((SESSION_EXPIRY, 60)) if version == V5 else b"\x00"
    old = peers.raw_client(broker)
    old.connect("taken", version, clean=False, properties=expiry)
    old.send(subscribe_packet(1, [("tk/#", 1)], version=version))
    old.expect(SUBACK)
    pub = peers.new(broker, "pub", version)
    pub.publish("tk/t", b"unacked", 1)
    first = old.expect(PUBLISH)
    new = peers.raw_client(broker)
    assert new.connect("taken", version, clean=False, properties=expiry).body[0] & 1, "session present"
    resent = new.expect(PUBLISH)
    assert (resent.flags, resent.body) == (0x0A, first.body)
    packets = old.read_until_closed()
    if version == V5:
        assert [(p.type, p.reason_code()) for p in packets] == [(DISCONNECT, 0x8E)]


# ================================================================================================================
# 8. Keepalive: in tests/broker/test_in_memory.py, with the wills, session and message expiry that wait on time
# (our client against the broker in memory, the clock moved by the test instead of a sleep of 1.5-2 s each)
# ================================================================================================================


# ================================================================================================================
# 9. Malformed and illegal input over raw sockets
# ================================================================================================================


@dataclass(frozen=True)
class Bad:
    """One illegal input. ``codes``: the 5.0 DISCONNECT reason codes allowed after a successful CONNECT.
    ``connack``: the CONNACKs allowed before the close, as (format, code): V311 is the 2-byte 3.1.1 CONNACK with a
    return code, V5 the 5.0 one with a reason code; ``connack_required``: one must be sent. Otherwise the
    connection must close without any reply."""

    version: int
    data: bytes
    connected: bool = True
    codes: frozenset[int] | None = None
    connack: frozenset[tuple[int, int]] = frozenset()
    connack_required: bool = False


def _pub(topic: str | bytes, version: int, qos: int = 0, pid: int = 1, properties: bytes = b"\x00") -> bytes:
    return publish_packet(topic, b"x", qos, pid, version=version, properties=properties)


def _sub(options: int, topic_filter: str = "a/b") -> bytes:
    return subscribe_packet(1, [(topic_filter, options)], version=V5)


MALFORMED = frozenset({0x81})
PROTOCOL = frozenset({0x82})
EITHER = frozenset({0x81, 0x82})
BAD_VERSION_V311 = frozenset({(V311, 0x01)})

HTTP_GET = b"GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" + b"X-Pad: y\r\n" * 8  # > its "length"
DUPLICATE_CONTENT_TYPE = encode_properties((CONTENT_TYPE, "a"), (CONTENT_TYPE, "b"))

BAD_INPUT = {
    # after a successful CONNECT
    "reserved-type-0-v311": Bad(V311, b"\x00\x00"),
    "reserved-type-0-v5": Bad(V5, b"\x00\x00", codes=EITHER),
    "reserved-type-15-v311": Bad(V311, b"\xf0\x00"),
    "auth-without-method-v5": Bad(V5, b"\xf0\x00", codes=PROTOCOL),
    "publish-qos3-v311": Bad(V311, bytes((0x36,)) + _pub("a", V311, 1)[1:]),
    "publish-qos3-v5": Bad(V5, bytes((0x36,)) + _pub("a", V5, 1)[1:], codes=MALFORMED),
    "publish-topic-plus-v311": Bad(V311, _pub("a/+", V311)),
    "publish-topic-plus-v5": Bad(V5, _pub("a/+", V5), codes=frozenset({0x81, 0x82, 0x90})),
    "publish-topic-hash-v5": Bad(V5, _pub("a/#", V5, 1), codes=frozenset({0x81, 0x82, 0x90})),
    "publish-empty-topic-v311": Bad(V311, _pub("", V311)),
    "publish-empty-topic-no-alias-v5": Bad(V5, _pub("", V5), codes=PROTOCOL),
    "publish-invalid-utf8-topic-v311": Bad(V311, _pub(b"a/\xff", V311)),
    "publish-invalid-utf8-topic-v5": Bad(V5, _pub(b"a/\xff", V5), codes=MALFORMED),
    "publish-null-in-topic-v5": Bad(V5, _pub(b"a\x00b", V5), codes=MALFORMED),
    "publish-qos1-packet-id-0-v5": Bad(V5, _pub("a", V5, 1, pid=0), codes=EITHER),
    "remaining-length-5-bytes-v311": Bad(V311, b"\x30\xff\xff\xff\xff\x7f"),
    "remaining-length-5-bytes-v5": Bad(V5, b"\x30\xff\xff\xff\xff\x7f", codes=MALFORMED),
    "second-connect-v311": Bad(V311, connect_packet("again", V311)),
    "second-connect-v5": Bad(V5, connect_packet("again", V5), codes=PROTOCOL),
    "subscribe-no-filters-v311": Bad(V311, b"\x82\x02\x00\x01"),
    "subscribe-no-filters-v5": Bad(V5, b"\x82\x03\x00\x01\x00", codes=PROTOCOL),
    "unsubscribe-no-filters-v5": Bad(V5, b"\xa2\x03\x00\x01\x00", codes=PROTOCOL),
    "subscribe-bad-header-flags-v5": Bad(V5, b"\x80" + _sub(1)[1:], codes=MALFORMED),
    "subscribe-qos3-v311": Bad(V311, subscribe_packet(1, [("a", 3)], version=V311)),
    "subscribe-qos3-v5": Bad(V5, _sub(3), codes=PROTOCOL),  # 5.0 3.8.3.1: a Protocol Error
    "subscribe-reserved-bits-v5": Bad(V5, _sub(0xC1), codes=MALFORMED),
    "subscribe-retain-handling-3-v5": Bad(V5, _sub(0x31), codes=PROTOCOL),
    "subscribe-shared-no-local-v5": Bad(V5, _sub(0x05, "$share/g/a"), codes=PROTOCOL),
    "publish-subscription-identifier-v5": Bad(V5, _pub("a", V5, properties=encode_properties((SUBSCRIPTION_ID, 1))),
                                              codes=PROTOCOL),
    "topic-alias-0-v5": Bad(V5, _pub("a", V5, properties=encode_properties((TOPIC_ALIAS, 0))),
                            codes=frozenset({0x94})),
    "topic-alias-above-maximum-v5": Bad(V5, _pub("a", V5, properties=encode_properties((TOPIC_ALIAS, 11))),
                                        codes=frozenset({0x94})),
    "topic-alias-unknown-v5": Bad(V5, _pub("", V5, properties=encode_properties((TOPIC_ALIAS, 3))),
                                  codes=frozenset({0x82, 0x94})),
    "disconnect-sets-expiry-after-0-v5": Bad(V5, packet(0xE0, b"\x00" + encode_properties((SESSION_EXPIRY, 9))),
                                             codes=PROTOCOL),
    "subscribe-subscription-id-0-v5": Bad(V5, subscribe_packet(1, [("a", 1)], properties=encode_properties(
                                          (SUBSCRIPTION_ID, 0))), codes=EITHER),
    "publish-duplicate-property-v5": Bad(V5, _pub("a", V5, properties=DUPLICATE_CONTENT_TYPE), codes=PROTOCOL),
    # instead of, or in, the CONNECT
    "packet-before-connect": Bad(V5, PINGREQ_PACKET, connected=False),
    "publish-before-connect": Bad(V311, _pub("a", V311), connected=False),
    "garbage-http": Bad(V5, HTTP_GET, connected=False),
    "garbage-connect": Bad(V5, b"\x10\x05garbage", connected=False),
    "connect-reserved-flag-v311": Bad(V311, connect_packet("r", V311, reserved_flag=True), connected=False),
    "connect-reserved-flag-v5": Bad(V5, connect_packet("r", V5, reserved_flag=True), connected=False,
                                    connack=frozenset({(V5, 0x81)})),
    "connect-will-qos3-v311": Bad(V311, connect_packet("r", V311, will=("w", b"x", 3, False)), connected=False),
    "connect-password-without-user-v311": Bad(V311, connect_packet("r", V311, password="pw"), connected=False),
    "connect-will-topic-wildcard-v311": Bad(V311, connect_packet("r", V311, will=("w/#", b"x", 0, False)),
                                            connected=False),
    "connect-will-topic-wildcard-v5": Bad(V5, connect_packet("r", V5, will=("w/#", b"x", 0, False)), connected=False,
                                          connack=frozenset({(V5, 0x81), (V5, 0x82), (V5, 0x90)})),
    "connect-invalid-utf8-client-id-v311": Bad(V311, connect_packet("r\udcff", V311), connected=False),
    "connect-duplicate-property-v5": Bad(V5, connect_packet("r", V5, properties=encode_properties(
                                         (SESSION_EXPIRY, 1), (SESSION_EXPIRY, 2))), connected=False,
                                         connack=frozenset({(V5, 0x81), (V5, 0x82)})),
    "connect-receive-maximum-0-v5": Bad(V5, connect_packet("r", V5, properties=encode_properties((RECEIVE_MAXIMUM, 0))),
                                        connected=False, connack=frozenset({(V5, 0x81), (V5, 0x82)})),
    "connect-maximum-packet-size-0-v5": Bad(V5, connect_packet("r", V5, properties=encode_properties(
                                            (MAXIMUM_PACKET_SIZE, 0))), connected=False,
                                            connack=frozenset({(V5, 0x81), (V5, 0x82)})),
    "connect-auth-method-v5": Bad(V5, connect_packet("r", V5, properties=encode_properties((0x15, "SCRAM-SHA-1"))),
                                  connected=False, connack=frozenset({(V5, 0x8C), (V5, 0x87)}), connack_required=True),
    "connect-mqtt-level-3": Bad(V311, connect_packet("r", V311, level=3), connected=False,
                                connack=BAD_VERSION_V311, connack_required=True),
    "connect-mqtt-level-6": Bad(V311, connect_packet("r", V311, level=6), connected=False,
                                connack=frozenset({(V311, 0x01), (V5, 0x84)}), connack_required=True),
    "connect-mqisdp-level-3": Bad(V311, connect_packet("r", V311, protocol_name=b"MQIsdp", level=3), connected=False,
                                  connack=BAD_VERSION_V311, connack_required=True),
}  # fmt: skip


@pytest.fixture
def healthy(shared_broker: RunningBroker, peers: Peers) -> Callable[[], None]:
    """A well-behaved paho pair; the returned check proves both still work and were not disconnected."""
    watcher = peers.new(shared_broker, "healthy-watcher", V5)
    sender = peers.new(shared_broker, "healthy-sender", V311)
    watcher.subscribe("alive/#", 1)
    count = 0

    def check() -> None:
        nonlocal count
        count += 1
        sender.publish(f"alive/{count}", b"ok", 1)
        assert watcher.expect_one().topic == f"alive/{count}"
        assert not watcher.disconnected.is_set() and not sender.disconnected.is_set()

    check()
    return check


@pytest.mark.parametrize("case", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_illegal_input_closes_only_that_connection(
    shared_broker: RunningBroker, peers: Peers, healthy: Callable[[], None], case: Bad
) -> None:
    """[MQTT-4.8.0-1 (3.1.1), MQTT-4.13.1-1 (5.0), MQTT-3.1.4-1, MQTT-3.1.2-2] a malformed packet or protocol
    error closes that connection (5.0: after DISCONNECT with the right reason code, or CONNACK for CONNECT
    errors), while other clients keep working."""
    log_start = len(shared_broker.log_text())
    raw = peers.raw_client(shared_broker)
    if case.connected:
        raw.connect("bad", case.version)
    raw.send(case.data)
    packets = raw.read_until_closed()
    if case.connected and case.version == V5:
        assert case.codes is not None
        assert len(packets) == 1 and packets[0].type == DISCONNECT, f"expected one DISCONNECT, got {packets}"
        code = packets[0].reason_code()
        assert code in case.codes, f"DISCONNECT reason {code:#x}, expected one of {sorted(map(hex, case.codes))}"
    elif packets or case.connack_required:
        assert len(packets) == 1 and packets[0].type == CONNACK, f"expected one CONNACK, got {packets}"
        body = packets[0].body
        sent = (V311 if len(body) == 2 else V5, body[1])
        assert sent in case.connack, f"CONNACK {body.hex(' ')}, expected one of {sorted(case.connack)}"
    else:
        assert packets == [], f"expected the connection closed without a reply, got {packets}"
    healthy()
    assert "Traceback" not in shared_broker.log_text()[log_start:]


def test_receive_maximum_exceeded(broker_process: StartBroker, peers: Peers) -> None:
    """[MQTT-3.3.4-9] 5.0 more unacknowledged QoS 2 PUBLISHes than the announced Receive Maximum (2):
    DISCONNECT 0x93."""
    broker = broker_process("receive_maximum = 2")
    raw = peers.raw_client(broker)
    connack = raw.connect("flood", V5)
    assert connack.properties().get(RECEIVE_MAXIMUM) == [2]
    for pid in (1, 2, 3):
        raw.send(_pub("rm/t", V5, 2, pid))
    packets = raw.read_until_closed()
    assert [p.type for p in packets] == [PUBREC, PUBREC, DISCONNECT], packets
    assert packets[2].reason_code() == 0x93


def test_receive_maximum_counts_only_unacknowledged(broker_process: StartBroker, peers: Peers) -> None:
    """[MQTT-3.3.4-9] 5.0 QoS 2 flows completed with PUBREL/PUBCOMP free their place in the Receive Maximum."""
    broker = broker_process("receive_maximum = 2")
    raw = peers.raw_client(broker)
    raw.connect("steady", V5)
    for pid in range(1, 8):
        raw.send(_pub("rm/t", V5, 2, pid))
        assert raw.expect(PUBREC).body[:2] == pid.to_bytes(2, "big")
        raw.send(pubrel_packet(pid))
        assert raw.expect(7).body[:2] == pid.to_bytes(2, "big")  # PUBCOMP


@pytest.mark.parametrize("version", VERSIONS)
def test_packet_larger_than_maximum_packet_size(broker_process: StartBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.2.2-15 / 4.13] a packet above the broker's Maximum Packet Size (100, announced to 5.0 clients) closes
    the connection (5.0: DISCONNECT 0x95); a packet of exactly 100 bytes is accepted."""
    broker = broker_process("max_packet_size = 100")
    raw = peers.raw_client(broker)
    connack = raw.connect("big", version)
    if version == V5:
        assert connack.properties().get(MAXIMUM_PACKET_SIZE) == [100]
    overhead = len(_pub("mp/t", version, 1)) - 1  # the packet without its 1-byte payload
    fits = publish_packet("mp/t", b"x" * (100 - overhead), 1, 1, version=version)
    assert len(fits) == 100
    raw.send(fits)
    assert raw.expect(PUBACK).body[:2] == b"\x00\x01"
    raw.send(publish_packet("mp/t", b"x" * 200, 1, 2, version=version))
    packets = raw.read_until_closed()
    if version == V5:
        assert [(p.type, p.reason_code()) for p in packets] == [(DISCONNECT, 0x95)]
    else:
        assert packets == []


def test_no_connect_within_connect_timeout(broker_process: StartBroker, peers: Peers) -> None:
    """[MQTT-3.1.4 / 4.2] a connection that sends no CONNECT is closed after connect_timeout (1 s)."""
    broker = broker_process("connect_timeout = 1")
    raw = peers.raw_client(broker)
    start = time.monotonic()
    assert raw.read_until_closed(timeout=4) == []
    assert 0.8 <= time.monotonic() - start <= 2.0


@pytest.mark.parametrize("version", VERSIONS)
def test_empty_client_id(shared_broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.1.3-6/-8, MQTT-3.2.2-16] an empty client id: 5.0 gets an Assigned Client Identifier; 3.1.1 is
    accepted with clean session 1 and refused (return code 2) with clean session 0."""
    raw = peers.raw_client(shared_broker)
    connack = raw.connect("", version)
    if version == V5:
        assigned = connack.properties().get(ASSIGNED_CLIENT_ID)
        assert assigned and assigned[0], "no Assigned Client Identifier"
        return
    refused = peers.raw_client(shared_broker)
    refused.send(connect_packet("", V311, clean=False))
    assert [(p.type, p.body) for p in refused.read_until_closed()] == [(CONNACK, b"\x00\x02")]


INVALID_FILTERS = [
    pytest.param(V311, "a/b#", id="v311-hash-not-alone"),
    pytest.param(V311, "a+/b", id="v311-plus-not-alone"),
    pytest.param(V311, "#/a", id="v311-hash-not-last"),
    pytest.param(V311, "", id="v311-empty"),
    pytest.param(V5, "a/b#", id="v5-hash-not-alone"),
    pytest.param(V5, "a/+b", id="v5-plus-not-alone"),
    pytest.param(V5, "a/#/b", id="v5-hash-not-last"),
    pytest.param(V5, "", id="v5-empty"),
    pytest.param(V5, "$share/g", id="v5-share-without-filter"),
    pytest.param(V5, "$share//a", id="v5-share-empty-name"),
    pytest.param(V5, "$share/g+/a", id="v5-share-name-wildcard"),
]


@pytest.mark.parametrize(("version", "topic_filter"), INVALID_FILTERS)
def test_invalid_topic_filter(shared_broker: RunningBroker, peers: Peers, version: int, topic_filter: str) -> None:
    """[MQTT-4.7.1-1/-2, MQTT-4.7.3-1, MQTT-4.8.2-1/-2] an invalid topic filter is refused: a SUBACK failure code
    (3.1.1 0x80, 5.0 >= 0x80) or closing the connection (5.0: after DISCONNECT 0x81/0x82/0x8F)."""
    raw = peers.raw_client(shared_broker)
    raw.connect("filters", version)
    raw.send(subscribe_packet(1, [(topic_filter, 1)], version=version))
    reply = raw.read_packet()
    if reply is not None and reply.type == SUBACK:
        codes = reply.suback_codes(version)
        assert len(codes) == 1 and codes[0] >= 0x80, f"{topic_filter!r} granted: {codes}"
        return
    packets = ([reply] if reply is not None else []) + raw.read_until_closed()
    if version == V5:
        assert [p.type for p in packets] == [DISCONNECT], packets
        assert packets[0].reason_code() in (0x81, 0x82, 0x8F)
    else:
        assert packets == []


@pytest.mark.parametrize("version", VERSIONS)
def test_pipelined_packets_during_password_check(
    broker_process: StartBroker, security: str, peers: Peers, version: int
) -> None:
    """[MQTT-3.1.4 "Clients need not wait for a CONNACK"] CONNECT with a password, SUBSCRIBE and PUBLISH sent at once:
    the packets that arrive while the password is checked are processed, in order, after the CONNACK."""
    broker = broker_process(security)
    raw = peers.raw_client(broker)
    raw.send(connect_packet("pipe", version, username="alice", password="wonderland")
             + subscribe_packet(1, [("home/pipe", 1)], version=version)
             + publish_packet("home/pipe", b"pipelined", 1, 2, version=version))  # fmt: skip
    assert raw.expect(CONNACK).reason_code(version) == 0
    assert raw.expect(SUBACK).suback_codes(version) == [1]
    replies = sorted((_read(raw), _read(raw)), key=lambda p: p.type)
    assert [p.type for p in replies] == [PUBLISH, PUBACK]
    assert replies[0].publish_parts(version)[2] == b"pipelined"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", ["connect", "connect-password", "publish-qos1"])
def test_replies_not_dropped_by_a_following_disconnect(
    broker_process: StartBroker, security: str, peers: Peers, version: int, case: str
) -> None:
    """[MQTT-3.1.4-4, MQTT-4.3.2-2] a CONNECT (or QoS 1 PUBLISH) followed at once by DISCONNECT still gets its
    CONNACK (PUBACK) before the broker closes the connection, and the message is forwarded."""
    auth = case == "connect-password"
    broker = broker_process(security if auth else "")
    credentials = {"username": "alice", "password": "wonderland"} if auth else {}
    watcher = peers.new(broker, "watcher", version, **credentials)
    watcher.subscribe("home/pipe", 1)
    raw = peers.raw_client(broker)
    if case == "publish-qos1":
        raw.connect("pipe", version)
        raw.send(publish_packet("home/pipe", b"pipelined", 1, 5, version=version) + DISCONNECT_PACKET)
        expected = [(PUBACK, b"\x00\x05")]
    else:
        raw.send(connect_packet("pipe", version, **credentials)
                 + publish_packet("home/pipe", b"pipelined", 0, version=version) + DISCONNECT_PACKET)  # fmt: skip
        expected = [(CONNACK, b"\x00\x00")]
    assert watcher.expect_one().payload == b"pipelined"
    packets = raw.read_until_closed(timeout=2)
    assert [(p.type, p.body[:2]) for p in packets] == expected


@pytest.mark.parametrize("stage", ["connack", "disconnect"])
def test_reason_string_respects_client_maximum_packet_size(
    broker_process: StartBroker, security: str, peers: Peers, stage: str
) -> None:
    """[MQTT-3.2.2-19, MQTT-3.14.2-3, MQTT-3.1.2-24] the broker leaves out a Reason String that would make a CONNACK
    or DISCONNECT larger than the client's Maximum Packet Size (20 bytes)."""
    broker = broker_process(security if stage == "connack" else "")
    small = encode_properties((MAXIMUM_PACKET_SIZE, 20))
    raw = peers.raw_client(broker)
    if stage == "connack":
        raw.send(connect_packet("small", V5, properties=small))  # anonymous: refused with a reason
    else:
        raw.connect("small", V5, properties=small)
        raw.send(_pub("a/+", V5))  # a protocol error: DISCONNECT
    packets = raw.read_until_closed()
    assert packets and packets[-1].type in (CONNACK, DISCONNECT)
    sizes = [len(p.body) + 2 for p in packets]
    assert max(sizes) <= 20, f"packets of {sizes} bytes sent to a client with Maximum Packet Size 20"


# ================================================================================================================
# 10. Limits
# ================================================================================================================


@pytest.mark.parametrize("version", VERSIONS)
def test_max_connections(broker_process: StartBroker, peers: Peers, version: int) -> None:
    """max_connections = 2: a third client is refused (5.0: CONNACK 0x89 Server busy; 3.1.1: return code 3
    Server unavailable), and accepted again once one left."""
    broker = broker_process("max_connections = 2")
    first = peers.new(broker, "one", version)
    peers.new(broker, "two", version)
    raw = peers.raw_client(broker)
    raw.send(connect_packet("three", version))
    packets = raw.read_until_closed()
    assert len(packets) == 1 and packets[0].type == CONNACK
    assert packets[0].reason_code(version) == (0x89 if version == V5 else 3)
    first.disconnect()
    until_sync(lambda: _connects(broker, version))


def _connects(broker: RunningBroker, version: int) -> bool:
    raw = RawClient(broker.port)
    try:
        raw.send(connect_packet("later", version))
        connack = raw.read_packet()
        return connack is not None and connack.reason_code(version) == 0
    finally:
        raw.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_max_queued_messages(tmp_path: Path, peers: Peers, version: int) -> None:
    """max_queued_messages = 5: an offline persistent session gets at most 5 of 10 messages, in order; the drops
    are counted in $SYS/broker/messages/dropped."""
    with broker_with_sys(tmp_path / "b", "max_queued_messages = 5") as broker:
        sub = peers.new(broker, "queued", version, **persistent(version))
        sub.subscribe("q/#", 1)
        sub.disconnect()
        pub = peers.new(broker, "pub", version)
        for i in range(10):
            pub.publish("q/t", f"{i}".encode(), 1)
        back = peers.new(broker, "queued", version, **persistent(version))
        got = [int(m.payload) for m in back.expect(5)]
        assert got == sorted(got)
        back.expect_none(0.3)
        monitor = peers.new(broker, "monitor", version)
        monitor.subscribe("$SYS/broker/messages/dropped", 0)
        values: list[bytes] = []
        deadline = time.monotonic() + 3
        while b"5" not in values and time.monotonic() < deadline:
            values.append(monitor.expect_one(timeout=3).payload)
        assert values[-1] == b"5", values


@pytest.mark.parametrize("version", VERSIONS)
def test_message_size_limit(broker_process: StartBroker, peers: Peers, version: int) -> None:
    """message_size_limit = 16: a larger payload is not forwarded (5.0 QoS 1: PUBACK with an error reason code);
    one of exactly 16 bytes is."""
    broker = broker_process("message_size_limit = 16")
    sub = peers.new(broker, "sub", version)
    sub.subscribe("sz/#", 1)
    pub = peers.new(broker, "pub", version)
    assert pub.publish("sz/ok", b"x" * 16, 1) == 0
    rc = pub.publish("sz/big", b"x" * 17, 1)
    if version == V5:
        assert rc >= 0x80
    pub.publish("sz/big0", b"x" * 17, 0)
    pub.publish("sz/fence", b"fence", 1)
    assert [m.topic for m in sub.expect(2)] == ["sz/ok", "sz/fence"]


def test_maximum_qos_1_announced_and_enforced(broker_process: StartBroker, peers: Peers) -> None:
    """[MQTT-3.2.2-9/-10/-11] maximum_qos = 1: announced in CONNACK, subscriptions granted at most QoS 1 (also
    to 3.1.1), and a QoS 2 PUBLISH from a 5.0 client gets DISCONNECT 0x9B."""
    broker = broker_process("maximum_qos = 1")
    v5 = peers.new(broker, "v5", V5)
    assert v5.connack_properties is not None and getattr(v5.connack_properties, "MaximumQoS", None) == 1
    assert v5.subscribe("mq/#", 2) == [1]
    v311 = peers.new(broker, "v311", V311)
    assert v311.subscribe("mq/#", 2) == [1]
    raw = peers.raw_client(broker)
    raw.connect("qos2", V5)
    raw.send(_pub("mq/t", V5, 2))
    packets = raw.read_until_closed()
    assert [(p.type, p.reason_code()) for p in packets] == [(DISCONNECT, 0x9B)]
    v5.publish("mq/fence", b"fence", 1)
    assert [m.topic for m in v5.expect(1)] == ["mq/fence"]
    assert [(m.topic, m.qos) for m in v311.expect(1)] == [("mq/fence", 1)]


def test_retain_not_available_announced_and_enforced(broker_process: StartBroker, peers: Peers) -> None:
    """[MQTT-3.2.2-13/-14] retain_available = false: CONNACK Retain Available 0, a retained PUBLISH gets
    DISCONNECT 0x9A and is not forwarded."""
    broker = broker_process("retain_available = false")
    sub = peers.new(broker, "sub", V5)
    assert sub.connack_properties is not None and getattr(sub.connack_properties, "RetainAvailable", None) == 0
    sub.subscribe("ra/#", 1)
    raw = peers.raw_client(broker)
    raw.connect("retainer", V5)
    raw.send(publish_packet("ra/t", b"keep", 1, retain=True))
    packets = raw.read_until_closed()
    assert [(p.type, p.reason_code()) for p in packets] == [(DISCONNECT, 0x9A)]
    sub.publish("ra/fence", b"fence", 1)
    assert [m.topic for m in sub.expect(1)] == ["ra/fence"]


@pytest.mark.parametrize("version", VERSIONS)
def test_listener_max_connections(broker_process: StartBroker, peers: Peers, version: int) -> None:
    """[[listener]] max_connections = 1: a second client on that listener is refused (5.0: CONNACK 0x89, 3.1.1:
    return code 3), while another listener still accepts clients."""
    port = free_port()
    broker = broker_process(f"[[listener]]\nport = {port}\nhost = '127.0.0.1'\nmax_connections = 1\n")
    peers.new(port, "first", version)
    peers.new(broker, "other-listener", version)
    raw = peers.raw_client(port)
    raw.send(connect_packet("second", version))
    packets = raw.read_until_closed(timeout=1)
    assert [(p.type, p.reason_code(version)) for p in packets] == [(CONNACK, 0x89 if version == V5 else 3)]


@pytest.mark.parametrize(("config", "will", "code"), [
    pytest.param("maximum_qos = 1", ("w/q", b"x", 2, False), 0x9B, id="will-qos-2-with-maximum-qos-1"),
    pytest.param("retain_available = false", ("w/r", b"x", 0, True), 0x9A, id="will-retain-without-retain"),
])  # fmt: skip
def test_will_beyond_capabilities_refused(
    broker_process: StartBroker, peers: Peers, config: str, will: tuple[str, bytes, int, bool], code: int
) -> None:
    """[MQTT-3.2.2-12, MQTT-3.2.2-13] a 5.0 CONNECT whose will needs a QoS or retain the broker announced it lacks is
    refused (CONNACK 0x9B QoS not supported / 0x9A Retain not supported)."""
    broker = broker_process(config)
    raw = peers.raw_client(broker)
    raw.send(connect_packet("willing", V5, will=will))
    packets = raw.read_until_closed(timeout=1)
    assert [(p.type, p.reason_code()) for p in packets] == [(CONNACK, code)]


def test_v311_keepalive_not_lowered_below_the_clients(broker_process: StartBroker, peers: Peers) -> None:
    """[MQTT-3.1.2-24 (3.1.1)] a 3.1.1 client may stay silent for its whole Keep Alive (60 s); 3.1.1 has no Server
    Keep Alive, so max_keepalive = 1 must not get it disconnected after 1.5 s."""
    broker = broker_process("max_keepalive = 1")
    raw = peers.raw_client(broker)
    raw.connect("patient", V311, keepalive=60)
    with pytest.raises(TimeoutError):
        raw.read_packet(timeout=2.2)


def test_client_receive_maximum_respected(shared_broker: RunningBroker, peers: Peers) -> None:
    """[MQTT-3.3.4-7/-8] the broker sends a 5.0 client no more unacknowledged QoS 1 PUBLISHes than its Receive
    Maximum (2), and sends the next one when a PUBACK frees a place."""
    raw = peers.raw_client(shared_broker)
    raw.connect("slow", V5, properties=encode_properties((RECEIVE_MAXIMUM, 2)))
    raw.send(subscribe_packet(1, [("rx/#", 1)]))
    raw.expect(SUBACK)
    pub = peers.new(shared_broker, "pub", V5)
    for i in range(4):
        pub.publish("rx/t", f"{i}".encode(), 1)
    first, second = raw.expect(PUBLISH), raw.expect(PUBLISH)
    with pytest.raises(TimeoutError):
        raw.read_packet(timeout=QUIET)
    raw.send(packet(0x40, first.body[6:8]))  # PUBACK for the first ("rx/t" is 6 bytes with its length)
    third = raw.expect(PUBLISH)
    assert [p.publish_parts()[2] for p in (first, second, third)] == [b"0", b"1", b"2"]
    assert third.body[6:8] != second.body[6:8], "a packet identifier still in use was reused [MQTT-2.2.1-3]"


def test_client_receive_maximum_counts_qos2_until_pubcomp(shared_broker: RunningBroker, peers: Peers) -> None:
    """[MQTT-3.3.4-7/-8] with the client's Receive Maximum 1, a QoS 2 delivery holds the only place until PUBCOMP
    (not PUBREC); a PUBREC with a failure reason code (0x80) frees it at once."""
    raw = peers.raw_client(shared_broker)
    raw.connect("one-at-a-time", V5, properties=encode_properties((RECEIVE_MAXIMUM, 1)))
    raw.send(subscribe_packet(1, [("rq/#", 2)]))
    raw.expect(SUBACK)
    pub = peers.new(shared_broker, "pub", V5)
    for payload in (b"a", b"b", b"c"):
        pub.publish("rq/t", payload, 2)
    first = raw.expect(PUBLISH)
    raw.send(packet(0x50, first.body[6:8]))  # PUBREC
    assert raw.expect(PUBREL).body[:2] == first.body[6:8]
    with pytest.raises(TimeoutError):
        raw.read_packet(timeout=QUIET)  # nothing more before PUBCOMP
    raw.send(packet(0x70, first.body[6:8]))  # PUBCOMP
    second = raw.expect(PUBLISH)
    raw.send(packet(0x50, second.body[6:8] + b"\x80\x00"))  # PUBREC 0x80: the flow ends here
    third = raw.expect(PUBLISH)
    assert [p.publish_parts()[2] for p in (first, second, third)] == [b"a", b"b", b"c"]


def test_topic_aliases_off(broker_process: StartBroker, peers: Peers) -> None:
    """[MQTT-3.2.2-17/-18, MQTT-3.3.2-9] max_topic_alias = 0: no Topic Alias Maximum in CONNACK, and a PUBLISH with
    a Topic Alias gets DISCONNECT 0x94."""
    broker = broker_process("max_topic_alias = 0")
    raw = peers.raw_client(broker)
    assert TOPIC_ALIAS_MAXIMUM not in raw.connect("aliaser", V5).properties()
    raw.send(_pub("a", V5, properties=encode_properties((TOPIC_ALIAS, 1))))
    assert [(p.type, p.reason_code()) for p in raw.read_until_closed()] == [(DISCONNECT, 0x94)]


def test_client_maximum_packet_size_respected(shared_broker: RunningBroker, peers: Peers) -> None:
    """[MQTT-3.1.2-24/-25] the broker never sends a 5.0 client a packet above its Maximum Packet Size (64): the
    message is dropped for that client, smaller ones still arrive."""
    raw = peers.raw_client(shared_broker)
    raw.connect("small", V5, properties=encode_properties((MAXIMUM_PACKET_SIZE, 64)))
    raw.send(subscribe_packet(1, [("mx/#", 1)]))
    raw.expect(SUBACK)
    pub = peers.new(shared_broker, "pub", V5)
    pub.publish("mx/big", b"x" * 100, 1)
    pub.publish("mx/small", b"y", 1)
    message = raw.expect(PUBLISH)
    assert message.publish_parts()[0] == "mx/small"


def test_server_keep_alive(broker_process: StartBroker, peers: Peers) -> None:
    """[MQTT-3.2.2-21] max_keepalive = 5: a 5.0 client asking for 60 s (or 0) is told Server Keep Alive 5."""
    broker = broker_process("max_keepalive = 5")
    for keepalive in (60, 0):
        raw = peers.raw_client(broker)
        assert raw.connect(f"ka{keepalive}", V5, keepalive=keepalive).properties().get(SERVER_KEEP_ALIVE) == [5]
    paho = peers.new(broker, "paho", V5, keepalive=60)
    assert paho.connack_properties is not None and getattr(paho.connack_properties, "ServerKeepAlive", None) == 5


@pytest.mark.parametrize("version", VERSIONS)
def test_zero_length_client_id_refused_when_disallowed(broker_process: StartBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.1.3-9 (3.1.1) / 3.1.3-8 (5.0)] allow_zero_length_clientid = false: an empty client id gets CONNACK
    0x85 Client Identifier not valid (3.1.1: return code 2)."""
    broker = broker_process("allow_zero_length_clientid = false")
    raw = peers.raw_client(broker)
    raw.send(connect_packet("", version))
    packets = raw.read_until_closed()
    assert [(p.type, p.reason_code(version)) for p in packets] == [(CONNACK, 0x85 if version == V5 else 2)]


@pytest.mark.parametrize("version", VERSIONS)
def test_broker_shutdown_disconnects_clients(broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-4.13 / 3.14] the broker stopping closes every connection; 5.0 clients get DISCONNECT 0x8B."""
    client = peers.new(broker, "client", version)
    broker.stop()
    assert client.disconnected.wait(TIMEOUT)
    if version == V5:
        assert client.disconnect_reason is not None and client.disconnect_reason.value == 0x8B


# ================================================================================================================
# 11. Security: password file and ACL
# ================================================================================================================


@pytest.fixture(scope="module")
def security(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The TOML keys of a password file (alice, bob) and an ACL, created once."""
    return write_security_files(tmp_path_factory.mktemp("security"))


@pytest.fixture(scope="module")
def secure_broker(security: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    """One broker with the password file and ACL, for the tests that leave nothing behind."""
    with run_mqttchat_broker(tmp_path_factory.mktemp("secure-broker"), security) as running:
        yield running
        no_crash(running)


def _raw_connack(broker: RunningBroker, version: int, client_id: str = "auth", **kwargs: Any) -> int:
    raw = RawClient(broker.port)
    try:
        raw.send(connect_packet(client_id, version, **kwargs))
        packets = raw.read_until_closed()
    finally:
        raw.close()
    assert len(packets) == 1 and packets[0].type == CONNACK, packets
    assert packets[0].body[0] == 0, "a refusing CONNACK has session present 0 [MQTT-3.2.2-4/-6]"
    return packets[0].reason_code(version)


@pytest.mark.parametrize("version", VERSIONS)
def test_wrong_password_and_anonymous_refused(secure_broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.1.4-2 / 3.2.2.2] a wrong password or unknown user is refused (5.0: 0x86, 3.1.1: 4 or 5), an anonymous
    client with allow_anonymous = false too (5.0: 0x86/0x87); the right password is accepted."""
    bad_credentials = {0x86} if version == V5 else {4, 5}
    not_authorized = {0x86, 0x87} if version == V5 else {4, 5}
    assert _raw_connack(secure_broker, version, username="alice", password="wrong") in bad_credentials
    assert _raw_connack(secure_broker, version, username="mallory", password="wonderland") in bad_credentials
    assert _raw_connack(secure_broker, version) in not_authorized
    alice = peers.new(secure_broker, "alice", version, username="alice", password="wonderland")
    assert alice.connack_reason is not None and alice.connack_reason.value == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_client_id_of_another_users_session_refused(secure_broker: RunningBroker, peers: Peers, version: int) -> None:
    """With passwords, a client id whose session belongs to another user is refused (5.0: 0x87, 3.1.1: 5), whether
    its owner is connected or away: no one can close someone's connection or discard their queued messages by
    taking their client id. The owner still resumes, and takes over its own older connection."""
    refused = 0x87 if version == V5 else 5
    bob = peers.new(secure_broker, f"bobs-device-{version}", version, username="bob", password="builder",
                    **persistent(version))  # fmt: skip
    bob.subscribe("home/#", 1)
    args = {"username": "alice", "password": "wonderland"}
    assert _raw_connack(secure_broker, version, client_id=f"bobs-device-{version}", **args) == refused
    assert _raw_connack(secure_broker, version, client_id=f"bobs-device-{version}", clean=False, **args) == refused
    alice = peers.new(secure_broker, "alice-pub", version, username="alice", password="wonderland")
    assert alice.publish("home/alice/x", b"still here", 1) == 0
    assert [m.payload for m in bob.expect(1)] == [b"still here"]  # bob was not disconnected
    bob.disconnect()
    assert alice.publish("home/alice/x", b"queued for bob", 1) == 0
    assert _raw_connack(secure_broker, version, client_id=f"bobs-device-{version}", **args) == refused
    again = peers.new(secure_broker, f"bobs-device-{version}", version, username="bob", password="builder",
                      **persistent(version))  # fmt: skip
    assert again.session_present
    assert [m.payload for m in again.expect(1)] == [b"queued for bob"]


@pytest.mark.parametrize("version", VERSIONS)
def test_acl_subscribe_refused(secure_broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.9.3 / 3.2.2] a SUBSCRIBE the ACL forbids gets a failure in SUBACK (5.0: 0x87, 3.1.1: 0x80); allowed
    filters in the same session are granted."""
    bob = peers.new(secure_broker, "bob", version, username="bob", password="builder")
    refused = 0x87 if version == V5 else 0x80
    assert bob.subscribe("home/#", 1) == [1]
    assert bob.subscribe("secret/#", 1) == [refused]
    assert bob.subscribe("home/+/temp", 2) == [2]


@pytest.mark.parametrize("version", VERSIONS)
def test_acl_wide_filter_granted_and_filtered(secure_broker: RunningBroker, peers: Peers, version: int) -> None:
    """A filter wider than the user's rights is granted (as mosquitto does) and thinned per message: bob (read
    home/#, chat/#) subscribed to `#` gets what alice publishes to home/... but not to vault/ (write-only for
    her), live or retained."""
    admin = peers.new(secure_broker, "alice-wide", version, username="alice", password="wonderland")
    assert admin.publish("vault/retained", b"retained secret", 1, retain=True) in (0, 0x10)
    assert admin.publish("home/retained", b"retained home", 1, retain=True) in (0, 0x10)
    bob = peers.new(secure_broker, "bob-wide", version, username="bob", password="builder")
    assert bob.subscribe("#", 1) == [1]
    assert [(m.topic, m.payload) for m in bob.expect(1)] == [("home/retained", b"retained home")]
    assert admin.publish("vault/x", b"secret", 1) in (0, 0x10)  # 0x10: no subscriber may read it
    assert admin.publish("home/x", b"home", 1) == 0
    assert [(m.topic, m.payload) for m in bob.expect(1)] == [("home/x", b"home")]
    bob.expect_none()
    for topic in ("vault/retained", "home/retained"):
        admin.publish(topic, b"", 1, retain=True)


@pytest.mark.parametrize("version", VERSIONS)
def test_suback_and_unsuback_codes_in_order(secure_broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.9.3-1, MQTT-3.11.3-1] a SUBSCRIBE with three filters gets one SUBACK code per filter, in order (granted
    QoS or a failure); UNSUBSCRIBE with two filters gets an UNSUBACK (5.0: 0x00 and 0x11 No subscription existed)."""
    raw = peers.raw_client(secure_broker)
    raw.connect("multi", version, username="bob", password="builder")
    raw.send(subscribe_packet(7, [("home/#", 1), ("secret/#", 2), ("home/x", 2)], version=version))
    suback = raw.expect(SUBACK)
    assert suback.body[:2] == b"\x00\x07"
    assert suback.suback_codes(version) == [1, 0x87 if version == V5 else 0x80, 2]
    raw.send(packet(0xA2, b"\x00\x08" + (b"\x00" if version == V5 else b"") + utf8("home/#") + utf8("none/#")))
    unsuback = raw.expect(11)
    assert unsuback.body[:2] == b"\x00\x08"
    if version == V5:
        assert unsuback.body[3:] == b"\x00\x11"
    else:
        assert unsuback.body == b"\x00\x08"


@pytest.mark.parametrize("version", VERSIONS)
def test_acl_publish_not_forwarded(secure_broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.3.5-2] a PUBLISH the ACL forbids is not forwarded (5.0 QoS 1: PUBACK 0x87; 3.1.1: acknowledged
    normally), an allowed one is."""
    alice = peers.new(secure_broker, "alice", version, username="alice", password="wonderland")
    alice.subscribe("home/#", 1)
    bob = peers.new(secure_broker, "bob", version, username="bob", password="builder")
    assert bob.publish("home/kitchen", b"forbidden", 1) == (0x87 if version == V5 else 0)
    assert bob.publish("home/bob/desk", b"allowed", 1) == 0
    assert [(m.topic, m.payload) for m in alice.expect(1)] == [("home/bob/desk", b"allowed")]


@pytest.mark.parametrize("version", VERSIONS)
def test_acl_username_pattern(secure_broker: RunningBroker, peers: Peers, version: int) -> None:
    """ACL `pattern write chat/%u/#`: alice may publish to chat/alice/x but not to chat/bob/x."""
    bob = peers.new(secure_broker, "bob", version, username="bob", password="builder")
    assert bob.subscribe("chat/#", 1) == [1]
    alice = peers.new(secure_broker, "alice", version, username="alice", password="wonderland")
    assert alice.publish("chat/bob/x", b"impostor", 1) == (0x87 if version == V5 else 0)
    assert alice.publish("chat/alice/x", b"hello", 1) == 0
    assert [(m.topic, m.payload) for m in bob.expect(1)] == [("chat/alice/x", b"hello")]


@pytest.mark.parametrize("version", VERSIONS)
def test_acl_applies_to_wills(secure_broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.1.2-8 / 5.4.2] a will is published with its client's rights: bob's will on home/kitchen (no write
    access) is dropped, his will on home/bob/gone (write access) reaches alice."""
    alice = peers.new(secure_broker, "alice", version, username="alice", password="wonderland")
    alice.subscribe("home/#", 1)
    forbidden = peers.new(secure_broker, "bob1", version, username="bob", password="builder",
                          will=("home/kitchen", b"forbidden will", 1, False))  # fmt: skip
    forbidden.kill()
    alice.expect_none()
    allowed = peers.new(secure_broker, "bob2", version, username="bob", password="builder",
                        will=("home/bob/gone", b"allowed will", 1, False))  # fmt: skip
    allowed.kill()
    assert [(m.topic, m.payload) for m in alice.expect(1)] == [("home/bob/gone", b"allowed will")]


@pytest.mark.parametrize("version", VERSIONS)
def test_acl_sys_access(tmp_path: Path, security: str, peers: Peers, version: int) -> None:
    """ACL `topic read $SYS/#` lets alice subscribe to and receive $SYS topics; bob (no rule) is refused."""
    with broker_with_sys(tmp_path / "b", security) as broker:
        alice = peers.new(broker, "alice", version, username="alice", password="wonderland")
        bob = peers.new(broker, "bob", version, username="bob", password="builder")
        assert alice.subscribe("$SYS/broker/version", 0) == [0]
        assert bob.subscribe("$SYS/#", 0) == [0x87 if version == V5 else 0x80]
        message = alice.expect_one()
        assert message.topic == "$SYS/broker/version" and message.payload.startswith(b"mqttchat")
