"""A subscription trie: topic filters to subscribers, matched against a topic name in O(levels).

Each node is one topic level. A lookup walks the topic's levels once, following the exact child, the ``+`` child
and collecting the ``#`` child at every step, so its cost depends on the number of levels and of wildcard
branches, never on the number of subscriptions. Topics beginning with ``$`` are not matched by a filter whose
first level is a wildcard (MQTT 4.7.2).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Node(Generic[K, V]):
    __slots__ = ("children", "entries")

    def __init__(self) -> None:
        self.children: dict[str, _Node[K, V]] = {}
        #: Subscribers whose filter ends at this node, by key (a client id, a (group, client) pair, ...).
        self.entries: dict[K, V] = {}


class SubscriptionTrie(Generic[K, V]):
    """Topic filter → {key: value}, for the broker's routing and the client's message dispatch.

    The same key may subscribe through several filters; :meth:`match` then yields it once per matching filter
    and the caller merges (MQTT 3.1.1: highest QoS; MQTT 5.0: all subscription identifiers).
    """

    def __init__(self) -> None:
        self._root: _Node[K, V] = _Node()
        self._count = 0

    def __len__(self) -> int:
        """The number of (filter, key) subscriptions."""
        return self._count

    def add(self, topic_filter: str, key: K, value: V) -> bool:
        """Subscribe ``key`` to ``topic_filter``; return True if new, False if it replaced a subscription."""
        node = self._root
        for level in topic_filter.split("/"):
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = _Node()
            node = child
        is_new = key not in node.entries
        node.entries[key] = value
        if is_new:
            self._count += 1
        return is_new

    def remove(self, topic_filter: str, key: K) -> V | None:
        """Remove ``key``'s subscription to ``topic_filter``; return its value, None if there was none."""
        path: list[tuple[_Node[K, V], str]] = []
        node = self._root
        for level in topic_filter.split("/"):
            child = node.children.get(level)
            if child is None:
                return None
            path.append((node, level))
            node = child
        if key not in node.entries:
            return None
        value = node.entries.pop(key)
        self._count -= 1
        # Prune nodes left with neither subscribers nor children.
        for parent, level in reversed(path):
            child = parent.children[level]
            if child.entries or child.children:
                break
            del parent.children[level]
        return value

    def get(self, topic_filter: str, key: K) -> V | None:
        node = self._root
        for level in topic_filter.split("/"):
            child = node.children.get(level)
            if child is None:
                return None
            node = child
        return node.entries.get(key)

    def match(self, topic: str) -> list[tuple[K, V]]:
        """Every (key, value) whose filter matches ``topic``; a key appears once per matching filter."""
        out: list[tuple[K, V]] = []
        levels = topic.split("/")
        root = self._root
        if topic.startswith("$"):
            # Wildcards in the first level do not match $-topics: start below the root on the exact child only.
            first = root.children.get(levels[0])
            if first is None:
                return out
            nodes = [first]
            levels = levels[1:]
        else:
            nodes = [root]
        for level in levels:
            next_nodes: list[_Node[K, V]] = []
            for node in nodes:
                children = node.children
                if not children:
                    continue
                hash_child = children.get("#")
                if hash_child is not None:
                    out.extend(hash_child.entries.items())
                plus_child = children.get("+")
                if plus_child is not None:
                    next_nodes.append(plus_child)
                exact = children.get(level)
                if exact is not None:
                    next_nodes.append(exact)
            if not next_nodes:
                return out
            nodes = next_nodes
        for node in nodes:
            out.extend(node.entries.items())
            # "a/#" also matches "a": the parent level of a multi-level wildcard.
            hash_child = node.children.get("#")
            if hash_child is not None:
                out.extend(hash_child.entries.items())
        return out

    def __iter__(self) -> Iterator[tuple[str, K, V]]:
        """Every (filter, key, value), depth first."""
        stack: list[tuple[str | None, _Node[K, V]]] = [(None, self._root)]
        while stack:
            prefix, node = stack.pop()
            if prefix is not None:
                for key, value in node.entries.items():
                    yield prefix, key, value
            for level, child in node.children.items():
                stack.append((level if prefix is None else f"{prefix}/{level}", child))
