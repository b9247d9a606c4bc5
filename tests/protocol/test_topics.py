"""Topic names, topic filters, shared subscriptions, matches() and the SubscriptionTrie."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mqttchat.protocol import (
    LocalProtocolError,
    SharedSubscription,
    SubscriptionTrie,
    matches,
    parse_shared_subscription,
    topic_filter_problem,
    topic_name_problem,
    validate_topic_filter,
    validate_topic_name,
)

# (filter, topic, expected) — the examples of MQTT 5.0 section 4.7, and the edge cases around them.
MATCHES = [
    ("sport/tennis/player1/#", "sport/tennis/player1", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
    ("sport/#", "sport", True),
    ("#", "sport/tennis", True),
    ("#", "/", True),
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player1/ranking", False),
    ("sport/+", "sport", False),
    ("sport/+", "sport/", True),
    ("+/+", "/finance", True),
    ("/+", "/finance", True),
    ("+", "/finance", False),
    ("+/tennis/#", "sport/tennis/x", True),
    ("a/b", "a/b", True),
    ("a/b", "A/b", False),
    ("a/b", "a/b/", False),
    ("a//b", "a//b", True),
    ("a/+/b", "a//b", True),
    ("#", "$SYS/broker", False),
    ("+/monitor/Clients", "$SYS/monitor/Clients", False),
    ("$SYS/#", "$SYS/monitor/Clients", True),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    ("$SYS/#", "$SYS", True),
    ("a/#", "$a/b", False),
]


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), MATCHES)
def test_matches(topic_filter: str, topic: str, expected: bool) -> None:
    assert matches(topic_filter, topic) is expected


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), MATCHES)
def test_trie_agrees_with_matches(topic_filter: str, topic: str, expected: bool) -> None:
    trie: SubscriptionTrie[str, int] = SubscriptionTrie()
    trie.add(topic_filter, "client", 1)
    assert bool(trie.match(topic)) is expected


@pytest.mark.parametrize(
    ("name", "valid"),
    [("a", True), ("/", True), ("a/b/c", True), ("ü/✓", True), (" ", True), ("$SYS/x", True),
     ("", False), ("a/+", False), ("#", False), ("a#", False), ("a\x00b", False)],
)  # fmt: skip
def test_topic_names(name: str, valid: bool) -> None:
    assert (topic_name_problem(name) is None) is valid
    if not valid:
        with pytest.raises(LocalProtocolError):
            validate_topic_name(name)


@pytest.mark.parametrize(
    ("topic_filter", "valid"),
    [("#", True), ("+", True), ("+/+", True), ("a/+/b/#", True), ("/#", True), ("a//+", True),
     ("$share/g/a/#", True), ("$share/g/#", True), ("$SYS/#", True),
     ("", False), ("a/#/b", False), ("a#", False), ("a/b#", False), ("a+/b", False), ("+a", False),
     ("##", False), ("$share/g", False), ("$share//a", False), ("$share/g+/a", False), ("$share/g/", False),
     ("$share/g/a/#/b", False)],
)  # fmt: skip
def test_topic_filters(topic_filter: str, valid: bool) -> None:
    assert (topic_filter_problem(topic_filter) is None) is valid
    if not valid:
        with pytest.raises(LocalProtocolError):
            validate_topic_filter(topic_filter)


def test_shared_subscription_parsing() -> None:
    assert parse_shared_subscription("$share/grp/a/+/c") == SharedSubscription("grp", "a/+/c")
    assert str(SharedSubscription("grp", "a/#")) == "$share/grp/a/#"
    assert parse_shared_subscription("a/b") is None
    assert parse_shared_subscription("$sharex/g/a") is None
    with pytest.raises(ValueError, match="empty share name"):
        parse_shared_subscription("$share//a")


def test_trie_add_remove_and_prune() -> None:
    trie: SubscriptionTrie[str, int] = SubscriptionTrie()
    assert trie.add("a/+/c", "one", 1)
    assert trie.add("a/#", "one", 1)
    assert trie.add("a/b/c", "two", 2)
    assert not trie.add("a/b/c", "two", 3)  # replaced, not added
    assert len(trie) == 3
    assert sorted(trie.match("a/b/c")) == [("one", 1), ("one", 1), ("two", 3)]
    assert trie.get("a/b/c", "two") == 3
    assert trie.remove("a/b/c", "two") == 3
    assert trie.remove("a/b/c", "two") is None
    assert trie.remove("x/y", "two") is None
    assert sorted(trie) == [("a/#", "one", 1), ("a/+/c", "one", 1)]
    trie.remove("a/+/c", "one")
    trie.remove("a/#", "one")
    assert len(trie) == 0
    assert trie._root.children == {}  # every node pruned


level = st.sampled_from(["a", "b", "", "$x", "ü"])
topic_st = st.lists(level, min_size=1, max_size=5).map("/".join).filter(bool)
filter_level = st.sampled_from(["a", "b", "", "+", "$x", "ü"])
filter_st = st.tuples(st.lists(filter_level, min_size=1, max_size=5), st.booleans()).map(
    lambda t: "/".join([*t[0], "#"] if t[1] else t[0])
)


@settings(max_examples=300, deadline=None)
@given(filters=st.lists(filter_st, min_size=1, max_size=20), topics=st.lists(topic_st, min_size=1, max_size=10))
def test_trie_matches_exactly_what_matches_says(filters: list[str], topics: list[str]) -> None:
    trie: SubscriptionTrie[int, str] = SubscriptionTrie()
    for i, f in enumerate(filters):
        trie.add(f, i, f)
    for topic in topics:
        expected = sorted(i for i, f in enumerate(filters) if matches(f, topic))
        assert sorted(k for k, _ in trie.match(topic)) == expected
    for i, f in enumerate(filters):
        trie.remove(f, i)
    assert len(trie) == 0
    assert trie._root.children == {}
