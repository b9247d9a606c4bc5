"""One history budget shared by several brokers' trees (mqttchat.explorer.budget)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mqttchat.explorer.budget import MIN_HEADROOM, headroom, share_budget
from mqttchat.explorer.tree import TopicTree

MiB = 1024 * 1024


def test_one_consumer_gets_the_whole_budget() -> None:
    assert share_budget(64 * MiB, [5 * MiB], MiB) == [64 * MiB]


def test_two_busy_brokers_split_it_equally() -> None:
    assert share_budget(64 * MiB, [40 * MiB, 50 * MiB], MiB) == [32 * MiB, 32 * MiB]


def test_a_quiet_broker_keeps_what_it_holds_plus_headroom_and_the_busy_one_takes_the_rest() -> None:
    shares = share_budget(64 * MiB, [63 * MiB, 2 * MiB], MiB)
    assert shares == [61 * MiB, 3 * MiB]


def test_what_nobody_needs_is_spread_over_all() -> None:
    # Both use little: each may still grow well beyond its headroom, and the whole budget is handed out.
    shares = share_budget(64 * MiB, [MiB, 2 * MiB], MiB)
    assert sum(shares) == 64 * MiB
    assert shares == [2 * MiB + 29 * MiB + MiB // 2, 3 * MiB + 29 * MiB + MiB // 2]


def test_headroom_is_an_eighth_of_an_equal_share_or_a_mebibyte() -> None:
    assert headroom(64 * MiB, 2) == 4 * MiB
    assert headroom(4 * MiB, 3) == MIN_HEADROOM


@given(
    total=st.integers(0, 2**34),
    used=st.lists(st.integers(0, 2**34), min_size=1, max_size=12),
    room=st.integers(0, 2**30),
)
def test_shares_never_exceed_the_budget_and_each_gets_its_need_or_an_equal_part(
    total: int, used: list[int], room: int
) -> None:
    shares = share_budget(total, used, room)
    assert len(shares) == len(used)
    assert sum(shares) <= total
    equal = total // len(used)
    for share, need in zip(shares, used, strict=True):
        assert share >= min(need + room, equal)


def test_a_tree_given_a_smaller_share_evicts_at_once() -> None:
    tree = TopicTree(history_budget=MiB)
    for i in range(200):
        tree.ingest("a/b", bytes(1000), received_at=float(i))
    before = tree.stats.history_bytes
    assert before > 100_000
    tree.set_history_budget(100_000)
    assert tree.history_budget == 100_000
    assert tree.stats.history_bytes <= 100_000
    assert tree.stats.evicted_bytes >= before - 100_000
    node = tree.get("a/b")
    assert node is not None and node.last is not None  # the latest message stays
