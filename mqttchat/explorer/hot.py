"""Hot topics: the topics and subtrees with the most messages a second, from what changed lately.

The ranking reads no message: the tree counts each node's messages per second as it ingests (the last whole
second's count is the rate shown everywhere), and keeps the sets of nodes changed over the last two seconds
(``TopicTree.recent``). Ranking costs O(topics active lately), not O(topics), so it stays cheap on a tree of a
million topics of which a few thousand are busy.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from mqttchat.explorer.tree import TopicNode, TopicTree

#: Rows of each ranking.
HOT_ROWS = 20


@dataclass(frozen=True, slots=True)
class HotRow:
    """One topic (or subtree) of a ranking."""

    topic: str
    #: Messages in the last whole second (here and below, for a subtree).
    rate: float
    #: Messages received in all (here and below, for a subtree).
    messages: int
    #: Messages whose history entry was sampled out (a topic's own; 0 for a subtree).
    sampled: int
    #: Topics below (0 for a topic).
    topics_below: int


def _row(node: TopicNode, now: float, subtree: bool) -> HotRow:
    if subtree:
        return HotRow(node.topic, node.rate(now), node.subtree_messages, 0, node.topics_below)
    return HotRow(node.topic, node.rate(now), node.messages, node.sampled, 0)


def hot_topics(tree: TopicTree, now: float, rows: int = HOT_ROWS) -> tuple[list[HotRow], list[HotRow]]:
    """The hottest topics and the hottest subtrees now (most messages in the last whole second first; those with
    none left out)."""
    active = tree.recently_changed()
    topics = [node for node in active if node.messages]
    hottest = heapq.nlargest(rows, topics, key=lambda node: (node.rate(now), node.messages))
    subtrees: set[TopicNode] = set()
    root = tree.root
    for node in active:
        parent = node.parent
        while parent is not None and parent is not root and parent not in subtrees:
            subtrees.add(parent)
            parent = parent.parent
    busiest = heapq.nlargest(rows, subtrees, key=lambda node: (node.rate(now), node.subtree_messages))
    return (
        [_row(node, now, False) for node in hottest if node.rate(now)],
        [_row(node, now, True) for node in busiest if node.rate(now)],
    )
