"""One memory budget shared by the topic trees of several brokers watched at once.

The explorer's history (every message but the latest of each topic) is bounded in bytes. With several brokers
open, the user's budget (the settings' ``history_budget_mb``) stays one figure for all of them: each tree gets a
share, recomputed about once a second from what each uses. A quiet broker keeps what it holds plus some headroom
to grow until the next split; the busy ones share the rest equally; what no one needs is spread over all. The
shares never add up to more than the budget, so memory stays within it however the traffic moves.
"""

from __future__ import annotations

from collections.abc import Sequence

#: The least a tree may grow by between two splits.
MIN_HEADROOM = 1024 * 1024


def headroom(total: int, count: int) -> int:
    """How much a tree may grow between two splits: an eighth of an equal share, at least MIN_HEADROOM."""
    return max(MIN_HEADROOM, total // (8 * max(count, 1)))


def share_budget(total: int, used: Sequence[int], room: int) -> list[int]:
    """Split ``total`` bytes among consumers using ``used`` bytes now.

    Taking them from the one using least: each gets what it uses plus ``room``, but never more than an equal part
    of what the ones before it left. What is left over at the end is spread equally over all. The sum of the
    shares is at most ``total``; a consumer using more than its share must give the difference back.
    """
    count = len(used)
    if count == 0:
        return []
    shares = [0] * count
    left = total
    for rank, index in enumerate(sorted(range(count), key=lambda i: used[i])):
        share = min(used[index] + room, left // (count - rank))
        shares[index] = share
        left -= share
    extra = left // count
    return [share + extra for share in shares]
