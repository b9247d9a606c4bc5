"""Hot topics: the history of a topic hotter than ``history_rate`` is sampled (fairly: it does not push the other
topics' history out of the shared budget), and the ranking of topics and subtrees by rate."""

from __future__ import annotations

import itertools

from mqttchat.explorer.hot import hot_topics
from mqttchat.explorer.tree import HISTORY_ENTRY_OVERHEAD, SortOrder, TopicTree


def test_a_hot_topics_history_is_sampled_and_counted() -> None:
    tree = TopicTree(history_rate=20)
    for i in range(1000):  # 1,000 messages in second 100
        tree.ingest("plant/hot", str(i).encode(), received_at=100 + i / 1000)
    node = tree.get("plant/hot")
    assert node is not None and node.history is not None
    assert node.messages == 1000 and node.last is not None and node.last.payload == b"999"  # latest always
    assert len(node.history) == 20 and node.sampled == 980 and tree.stats.sampled == 980
    for i in range(1000):  # hot the second before: one entry per 50 ms, spread over the second
        tree.ingest("plant/hot", b"x", received_at=101 + i / 1000)
    kept = [entry.received_at for entry in node.history if entry.received_at >= 101]
    assert 19 <= len(kept) <= 20
    gaps = [b - a for a, b in itertools.pairwise(kept)]
    assert min(gaps) >= 0.05 - 1e-9
    assert tree.stats.sampled == 2000 - 20 - len(kept)


def test_a_burst_on_a_quiet_topic_is_kept_whole() -> None:
    tree = TopicTree(history_rate=20)
    for i in range(15):
        tree.ingest("door", str(i).encode(), received_at=50.0)
    node = tree.get("door")
    assert node is not None and node.history is not None and len(node.history) == 15 and node.sampled == 0


def test_a_firehose_does_not_push_other_topics_history_out() -> None:
    """The shared budget holds 200 entries: five topics at 1,000 messages a second fill their rings (500 entries)
    and evict the quiet topic's history; sampled, they keep 20 each (100) and the quiet one keeps all of its own."""
    budget = 200 * (HISTORY_ENTRY_OVERHEAD + 1)
    for rate, quiet_kept in ((20, 10), (0, 0)):
        tree = TopicTree(history_budget=budget, history_rate=rate)
        for i in range(10):
            tree.ingest("quiet", b"q", received_at=10.0 + i)
        for i in range(5_000):
            tree.ingest(f"hot/{i % 5}", b"h", received_at=20.0 + i / 5_000)
        quiet = tree.get("quiet")
        assert quiet is not None and len(quiet.history or ()) == quiet_kept, rate
        assert tree.stats.sampled == (5_000 - 100 if rate else 0)


def test_ranking_of_topics_and_subtrees_by_rate() -> None:
    tree = TopicTree()
    for second in (100, 101):
        for i in range(300):
            tree.ingest("plant/line1/press", b"1", received_at=second + i / 300)
        for i in range(50):
            tree.ingest("plant/line2/oven", b"1", received_at=second + i / 50)
        for i in range(100):
            tree.ingest("office/door", b"1", received_at=second + i / 100)
        tree.consume_changes()
    topics, subtrees = hot_topics(tree, 101.5)
    assert [(row.topic, row.rate) for row in topics] == [
        ("plant/line1/press", 300.0), ("office/door", 100.0), ("plant/line2/oven", 50.0)
    ]  # fmt: skip
    assert topics[0].sampled == 600 - 20 - 20  # sampled: 20 kept in each second
    assert [(row.topic, row.rate) for row in subtrees][:2] == [("plant", 350.0), ("plant/line1", 300.0)]
    assert hot_topics(tree, 200.0) == ([], [])  # nothing in the last second
    # the tree sorts by rate too (s)
    by_rate = [node.topic for node in TopicTree.sorted_children(tree.root, SortOrder.RATE, 101.5)]
    assert by_rate == ["plant", "office"]
