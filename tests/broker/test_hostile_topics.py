"""Hostile topics against the broker: topics thousands of levels deep, and topics holding control characters."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from mqttchat.broker.retained import RetainedMessage, RetainedStore
from mqttchat.explorer.tree import TopicTree
from mqttchat.protocol import SubscriptionTrie
from mqttchat.protocol.topics import MAX_TOPIC_LEVELS
from tests.helpers.brokers import RunningBroker
from tests.helpers.conformance import (
    DISCONNECT,
    PUBACK,
    PUBLISH,
    SUBACK,
    V5,
    V311,
    RawClient,
    publish_packet,
    subscribe_packet,
    unsubscribe_packet,
)

DEEP = 5000  # far past Python's recursion limit (1000)


def _deep(levels: int, first: str = "d") -> str:
    return "/".join([first, *(f"l{i}" for i in range(levels - 1))])


def test_retained_store_walks_deep_topics_without_recursion() -> None:
    """RetainedStore.match recursed once per level: RecursionError for a 5,000-level topic."""
    store = RetainedStore()
    topic = _deep(DEEP)
    store.set(RetainedMessage(topic, b"deep", 0))
    store.set(RetainedMessage("$SYS/" + topic, b"sys", 0))
    plus_first = "+/" + topic.split("/", 1)[1]
    plus_last = topic.rsplit("/", 1)[0] + "/+"
    for topic_filter in (topic, plus_first, plus_last, "d/#", "#", topic + "/#"):
        assert [m.payload for m in store.match(topic_filter)] == [b"deep"], topic_filter
    assert [m.payload for m in store.match("$SYS/" + plus_first)] == [b"sys"]
    assert store.delete(topic) and list(store.match("#")) == [] and len(store) == 1


def test_subscription_trie_handles_deep_filters() -> None:
    trie: SubscriptionTrie[str, int] = SubscriptionTrie()
    topic = _deep(DEEP)
    trie.add(topic, "exact", 1)
    trie.add("+/" + topic.split("/", 1)[1], "plus", 2)
    trie.add("d/#", "hash", 3)
    assert sorted(trie.match(topic)) == [("exact", 1), ("hash", 3), ("plus", 2)]
    assert [(f, k) for f, k, _ in trie if k == "exact"] == [(topic, "exact")]
    assert trie.remove(topic, "exact") == 1


def test_explorer_tree_takes_deep_topics() -> None:
    """The explorer's tree created a topic's missing ancestors recursively: RecursionError at 1,000 levels (a topic
    from a broker that routes such topics)."""
    tree = TopicTree()
    topic = _deep(DEEP)
    tree.ingest(topic, b"x")
    node = tree.get(topic)
    assert node is not None and node.name == f"l{DEEP - 2}"
    assert tree.get(topic.rsplit("/", 1)[0]) is node.parent
    tree.ingest(_deep(DEEP - 1) + "/other", b"y")
    parent = node.parent
    assert parent is not None and sorted(parent.children) == [f"l{DEEP - 2}", "other"]


@contextlib.contextmanager
def _raw(broker: RunningBroker, client_id: str, version: int = V5) -> Iterator[RawClient]:
    client = RawClient(broker.port)
    try:
        client.connect(client_id, version)
        yield client
    finally:
        client.close()


@pytest.mark.parametrize("version", [V5, V311])
def test_topics_deeper_than_the_limit_are_refused_with_a_reason_code(
    broker_process: Callable[..., RunningBroker], version: int
) -> None:
    """Issue 13, item 8: a retained message 1,200 levels deep and a SUBSCRIBE to it (exact, and with '+'): the
    connection closed without SUBACK and the log got a RecursionError. Now topics deeper than MAX_TOPIC_LEVELS are
    refused (PUBACK 0x90 Topic Name invalid, SUBACK 0x8F Topic Filter invalid; 3.1.1: acknowledged and dropped,
    SUBACK 0x80), the connection goes on, and a topic at the limit works as any other."""
    broker = broker_process()
    deep = _deep(1200)
    at_limit = _deep(MAX_TOPIC_LEVELS)
    plus = "+/" + deep.split("/", 1)[1]
    with _raw(broker, "deep", version) as client:
        client.send(publish_packet(deep, b"too deep", 1, 1, retain=True, version=version))
        ack = client.expect(PUBACK)
        if version == V5:
            assert ack.reason_code() == 0x90
        client.send(publish_packet(at_limit, b"at the limit", 1, 2, retain=True, version=version))
        ack = client.expect(PUBACK)
        if version == V5:
            assert ack.reason_code() in (0x00, 0x10)
        client.send(subscribe_packet(3, [(deep, 1), (plus, 1)], version=version))
        refused = 0x8F if version == V5 else 0x80
        assert client.expect(SUBACK).suback_codes(version) == [refused, refused]
        client.send(subscribe_packet(4, [(at_limit, 1), ("+/" + at_limit.split("/", 1)[1], 0)], version=version))
        assert client.expect(SUBACK).suback_codes(version) == [1, 0]
        topics = {client.expect(PUBLISH).publish_parts(version)[0] for _ in range(2)}
        assert topics == {at_limit}
    log = broker.log_text()
    assert "RecursionError" not in log and "Traceback" not in log
    assert f"more than {MAX_TOPIC_LEVELS} levels" in log


HOSTILE = "t/\x1b]0;TITLE\x1b\\\x1b[2J"


@pytest.mark.parametrize("version", [V5, V311])
def test_topics_with_control_characters_are_refused_as_malformed(
    broker_process: Callable[..., RunningBroker], version: int
) -> None:
    """Issue 13, item 4: the broker routed a topic holding an escape sequence to every '#' subscriber. Now a PUBLISH,
    SUBSCRIBE or UNSUBSCRIBE with a C0/C1 control character in its topic is a malformed packet (MQTT 1.5.4, as
    mosquitto): MQTT 5 gets DISCONNECT 0x81, 3.1.1 is closed; nothing reaches the subscribers."""
    broker = broker_process()
    with _raw(broker, "watcher") as watcher, _raw(broker, "fence") as fence:
        watcher.send(subscribe_packet(1, [("#", 0)]))
        watcher.expect(SUBACK)
        for qos in (0, 1):
            for topic in (HOSTILE, "a/\u0085b"):
                with _raw(broker, "attacker", version) as attacker:
                    attacker.send(publish_packet(topic, b"x", qos, version=version))
                    closing = attacker.read_until_closed()
                    if version == V5:
                        assert [(p.type, p.reason_code()) for p in closing] == [(DISCONNECT, 0x81)]
                    else:
                        assert closing == []
        for packet in (subscribe_packet(2, [(HOSTILE, 0)], version=version), unsubscribe_packet(3, [HOSTILE], version)):
            with _raw(broker, "attacker", version) as attacker:
                attacker.send(packet)
                closing = attacker.read_until_closed()
                assert [p.reason_code() for p in closing] == ([0x81] if version == V5 else [])
        fence.send(publish_packet("fence", b"after"))
        assert watcher.expect(PUBLISH).publish_parts()[0] == "fence"  # the first message it got
    assert "Traceback" not in broker.log_text()
