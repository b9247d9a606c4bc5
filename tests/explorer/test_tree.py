"""The topic tree model: counts, rates, retained markers, history rings and the byte budget, filters, sorting."""

from __future__ import annotations

import gc
import weakref

import pytest

from mqttchat.explorer.tree import HISTORY_ENTRY_OVERHEAD, FilterKind, SortOrder, TopicFilter, TopicTree
from mqttchat.protocol import Properties


def test_counts_and_structure() -> None:
    tree = TopicTree()
    tree.ingest("home/kitchen/temp", b"21", received_at=10.0)
    tree.ingest("home/kitchen/temp", b"22", received_at=11.0)
    tree.ingest("home/hall/light", b"on", received_at=12.0)
    tree.ingest("home", b"root level message", received_at=13.0)
    home = tree.get("home")
    assert home is not None
    assert home.messages == 1 and home.subtree_messages == 4
    assert home.topics_below == 2  # kitchen/temp and hall/light; "kitchen" alone has no messages
    assert tree.get("home/kitchen").topics_below == 1  # type: ignore[union-attr]
    assert tree.get("home/kitchen").messages == 0  # type: ignore[union-attr]
    assert len(tree) == 3
    assert tree.stats.messages == 4
    assert home.changed_at == 13.0
    assert [n.name for n in tree.sorted_children(home, SortOrder.NAME)] == ["hall", "kitchen"]
    assert [n.name for n in tree.sorted_children(home, SortOrder.COUNT)] == ["kitchen", "hall"]
    assert [n.name for n in tree.sorted_children(home, SortOrder.RECENCY)] == ["hall", "kitchen"]


def test_empty_levels_and_leading_slash() -> None:
    tree = TopicTree()
    tree.ingest("/a//b", b"x")
    assert tree.get("/a//b") is not None
    assert [n.topic for n in tree.root.walk()][1:] == ["", "/a", "/a/", "/a//b"]


def test_rates_over_the_last_whole_second() -> None:
    tree = TopicTree()
    for i in range(50):
        tree.ingest("s/a", b"1", received_at=100.0 + i * 0.02)  # 50 in second 100
    for i in range(20):
        tree.ingest("s/a", b"1", received_at=101.0 + i * 0.05)  # 20 in second 101
    node = tree.get("s/a")
    parent = tree.get("s")
    assert node is not None and parent is not None
    assert node.rate(101.5) == 50.0  # the last whole second
    assert node.rate(102.2) == 20.0
    assert node.rate(104.0) == 0.0
    assert parent.rate(101.5) == 50.0


def test_rate_order_sorts_by_the_last_second_and_keeps_names_when_quiet() -> None:
    tree = TopicTree()
    for name, count in (("a", 1), ("b", 5), ("c", 3)):
        for i in range(count):
            tree.ingest(f"s/{name}", b"1", received_at=100.0 + i / 10)
    tree.ingest("s/d", b"1", received_at=98.0)
    parent = tree.get("s")
    assert parent is not None
    by_rate = [n.name for n in tree.sorted_children(parent, SortOrder.RATE, 101.5)]
    assert by_rate == ["b", "c", "a", "d"]  # d was quiet that second: 0, after the others
    # Two seconds later nothing below s moved: every rate is 0 and the name order stays.
    assert [n.name for n in tree.sorted_children(parent, SortOrder.RATE, 102.5)] == ["a", "b", "c", "d"]
    assert tree.sorted_children(parent, SortOrder.RATE, 102.5) is tree.sorted_children(parent, SortOrder.NAME)


def test_branches_count_the_children_with_children() -> None:
    tree = TopicTree()
    tree.ingest("p/a/x", b"1")
    tree.ingest("p/b", b"1")
    tree.ingest("p/a/y", b"1")
    tree.ingest("p/b/z/deep", b"1")  # b gets a child: a branch now, as z under it
    p, a, b = tree.get("p"), tree.get("p/a"), tree.get("p/b")
    assert p is not None and a is not None and b is not None
    assert (tree.root.branches, p.branches, a.branches, b.branches) == (1, 2, 0, 1)


def test_retained_marker_follows_retained_messages_only() -> None:
    tree = TopicTree()
    tree.ingest("dev/1/state", b"on", retain=True)
    node = tree.get("dev/1/state")
    assert node is not None and node.retained and tree.stats.retained_topics == 1
    tree.ingest("dev/1/state", b"live", retain=False)  # a live message does not change the broker's retained value
    assert node.retained and node.retained_entry.payload == b"on"  # type: ignore[union-attr]
    tree.ingest("dev/1/state", b"", retain=True)  # deleted
    assert not node.retained and tree.stats.retained_topics == 0
    assert [n.topic for n in tree.retained_nodes()] == []


def test_history_ring_and_latest_message() -> None:
    tree = TopicTree(history_per_topic=3)
    for i in range(5):
        tree.ingest("t", str(i).encode(), received_at=float(i))
    node = tree.get("t")
    assert node is not None
    assert [e.payload for e in node.history_newest_first()] == [b"4", b"3", b"2"]
    assert node.last is not None and node.last.payload == b"4"
    assert tree.stats.history_entries == 3 and tree.stats.history_bytes == 3 * (1 + HISTORY_ENTRY_OVERHEAD)


def test_byte_budget_evicts_oldest_first_but_keeps_latest_in_full() -> None:
    tree = TopicTree(history_per_topic=10, history_budget=1000 + 10 * HISTORY_ENTRY_OVERHEAD,
                     history_payload_limit=300)  # fmt: skip
    tree.ingest("big", b"B" * 5000, received_at=0.0)
    node_big = tree.get("big")
    assert node_big is not None and node_big.last is not None
    assert len(node_big.last.payload) == 5000  # latest: in full
    assert node_big.history and node_big.history[0].truncated and len(node_big.history[0].payload) == 300
    assert tree.stats.truncated == 1
    for i in range(20):
        tree.ingest(f"t/{i}", bytes(100), received_at=1.0 + i)
    assert tree.stats.history_bytes <= 1000 + 10 * HISTORY_ENTRY_OVERHEAD
    assert tree.stats.evicted_entries > 0 and tree.stats.evicted_bytes >= 300 + HISTORY_ENTRY_OVERHEAD
    assert not node_big.history  # the oldest went first
    assert len(node_big.last.payload) == 5000  # still in full
    for i in range(20):
        node = tree.get(f"t/{i}")
        assert node is not None and node.last is not None and len(node.last.payload) == 100


def test_small_messages_are_bounded_by_what_they_cost() -> None:
    """A flood of tiny payloads: the budget counts each entry's objects, so it bounds their number too."""
    budget = 1000 * (8 + HISTORY_ENTRY_OVERHEAD)
    tree = TopicTree(history_per_topic=100, history_budget=budget)
    for i in range(50_000):
        tree.ingest(f"t/{i % 500}", b"%08d" % i, received_at=float(i))
    assert tree.stats.history_entries <= 1000
    assert tree.stats.history_bytes <= budget
    assert tree.stats.evicted_entries == 50_000 - tree.stats.history_entries  # 100 a topic: no ring overflowed
    assert all(node.last is not None for node in (tree.get(f"t/{i}") for i in range(500)))  # type: ignore[union-attr]


def test_what_a_full_ring_drops_is_freed_before_the_budget_is_reached() -> None:
    """A busy topic with a full ring drops its oldest entry for each new one, and nothing else keeps the dropped
    one (the eviction order kept them all, with their payloads, until the byte budget was exceeded: a few topics
    at 20,000 messages a second grew by 200 MB in half a minute, within a budget never reached)."""

    class Marker:  # stands for what an entry holds (its payload, its observation), which can be watched
        pass

    tree = TopicTree(history_per_topic=5)
    markers = [Marker() for _ in range(50)]
    watched = [weakref.ref(marker) for marker in markers]
    for i, marker in enumerate(markers):
        tree.ingest("busy/topic", b"%d" % i, received_at=float(i), observation=marker)  # type: ignore[arg-type]
    del markers, marker
    gc.collect()
    assert sum(ref() is not None for ref in watched) == 5  # the ring's five, the latest among them
    assert tree.stats.history_entries == 5 and tree.stats.evicted_entries == 0
    budget = 3 * (1 + HISTORY_ENTRY_OVERHEAD)  # then the budget: oldest first, across topics
    small = TopicTree(history_per_topic=5, history_budget=budget)
    for i in range(4):
        small.ingest(f"t/{i}", b"x", received_at=float(i))
    assert [entry.received_at for node in small.nodes.values() for entry in node.history or ()] == [1.0, 2.0, 3.0]


def test_dirty_nodes_include_ancestors_once() -> None:
    tree = TopicTree()
    tree.ingest("a/b/c", b"1")
    tree.ingest("a/b/d", b"1")
    assert {n.topic for n in tree.take_dirty()} == {"a", "a/b", "a/b/c", "a/b/d"}
    assert tree.take_dirty() == set()


@pytest.mark.parametrize(
    ("text", "kind", "payloads", "expected"),
    [
        ("kitchen", FilterKind.SUBSTRING, True, {"home/kitchen/temp"}),
        ("KITCHEN", FilterKind.SUBSTRING, True, {"home/kitchen/temp"}),
        ("on", FilterKind.SUBSTRING, True, {"home/hall/light"}),  # matched in the payload
        ("on", FilterKind.SUBSTRING, False, set()),
        ("home/+/temp", FilterKind.WILDCARD, True, {"home/kitchen/temp", "home/hall/temp"}),
        (r"hall/(light|temp)$", FilterKind.REGEX, True, {"home/hall/light", "home/hall/temp"}),
    ],
)
def test_filters(text: str, kind: FilterKind, payloads: bool, expected: set[str]) -> None:
    tree = TopicTree()
    tree.ingest("home/kitchen/temp", b"21")
    tree.ingest("home/hall/temp", b"19")
    tree.ingest("home/hall/light", b"on")
    visible = tree.visible(TopicFilter(text, kind, payloads))
    assert visible is not None
    assert {n.topic for n in visible if n.messages} == expected
    for node in visible:  # ancestors are included so the tree can show the path
        if node.parent is not None and node.parent is not tree.root:
            assert node.parent in visible


def test_invalid_filters_explain_themselves() -> None:
    with pytest.raises(ValueError, match="'#' must be the last level"):
        TopicFilter("a/#/b", FilterKind.WILDCARD).predicate()
    with pytest.raises(ValueError, match="invalid regular expression"):
        TopicFilter("(", FilterKind.REGEX).predicate()
    assert TopicTree().visible(TopicFilter("")) is None


def test_properties_are_kept() -> None:
    tree = TopicTree()
    props = Properties(content_type="application/json", user_property=[("k", "v")])
    tree.ingest("p", b"{}", 1, False, True, props, 5.0)
    node = tree.get("p")
    assert node is not None and node.last is not None
    assert (node.last.qos, node.last.dup, node.last.properties, node.last.received_at) == (1, True, props, 5.0)


def test_ingest_rate_is_tens_of_thousands_per_second() -> None:
    """Not a timing assertion on speed targets (see benchmarks/): a sanity bound that catches an O(n) mistake."""
    import time

    tree = TopicTree()
    topics = [f"site/{i % 7}/device/{i}/value" for i in range(10_000)]
    start = time.process_time()
    for i in range(100_000):
        tree.ingest(topics[i % 10_000], b"1", received_at=i / 10_000)
    assert time.process_time() - start < 10.0
    assert len(tree) == 10_000


def test_restored_values_are_stale_until_a_live_message_comes() -> None:
    tree = TopicTree()
    tree.ingest("live", b"1", received_at=10.0)
    assert tree.restore("old", b"a", qos=1, retain=True, received_at=5.0)
    assert not tree.restore("live", b"older", received_at=1.0)  # a live value is never replaced
    old, live = tree.get("old"), tree.get("live")
    assert old is not None and old.last is not None and old.last.stale and old.retained
    assert old.history is not None and old.history[-1].stale
    assert live is not None and live.last is not None and live.last.payload == b"1" and not live.last.stale
    assert tree.stats.stale_topics == 1
    tree.ingest("old", b"b", received_at=11.0)
    assert not old.last.stale and old.last.payload == b"b"
    assert tree.stats.stale_topics == 0
    assert not tree.restore("old", b"c")
