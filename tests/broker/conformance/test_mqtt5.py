"""Conformance of the broker process (MQTT 3.1.1 and 5.0, paho-mqtt and raw sockets as peers):
MQTT 5 features."""

from __future__ import annotations

import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes

from tests.helpers.brokers import RunningBroker
from tests.helpers.conformance import (
    V5,
    V311,
    Peers,
    prop,
    props,
)
from tests.helpers.waiting import until_sync


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
