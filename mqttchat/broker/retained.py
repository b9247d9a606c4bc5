"""Retained messages: one per topic, found by topic filter without scanning unrelated topics."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from mqttchat.protocol import EMPTY_PROPERTIES, Properties


@dataclass(slots=True)
class RetainedMessage:
    topic: str
    payload: bytes
    qos: int
    properties: Properties = EMPTY_PROPERTIES
    #: Monotonic time after which it must not be delivered (MQTT 5 Message Expiry Interval), or None.
    expires_at: float | None = None
    #: Wall-clock time it was stored (for the key-value inspector and persistence).
    stored_at: float = 0.0


class _Node:
    __slots__ = ("children", "message")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.message: RetainedMessage | None = None


class RetainedStore:
    """Topic → retained message, as a trie of topic levels.

    :meth:`match` walks only the branches a filter can reach, so a subscriber to ``home/+/temp`` on a broker
    holding 100,000 retained topics elsewhere does not pay for them. ``$``-topics are not matched by a filter
    whose first level is a wildcard.
    """

    def __init__(self) -> None:
        self._root = _Node()
        self._count = 0
        self.bytes = 0

    def __len__(self) -> int:
        return self._count

    def set(self, message: RetainedMessage) -> None:
        """Store ``message`` (an empty payload deletes the topic's retained message instead)."""
        if not message.payload:
            self.delete(message.topic)
            return
        node = self._root
        for level in message.topic.split("/"):
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = _Node()
            node = child
        if node.message is None:
            self._count += 1
        else:
            self.bytes -= len(node.message.payload)
        node.message = message
        self.bytes += len(message.payload)

    def get(self, topic: str) -> RetainedMessage | None:
        node: _Node | None = self._root
        for level in topic.split("/"):
            assert node is not None
            node = node.children.get(level)
            if node is None:
                return None
        return node.message if node is not None else None

    def delete(self, topic: str) -> bool:
        path: list[tuple[_Node, str]] = []
        node = self._root
        for level in topic.split("/"):
            child = node.children.get(level)
            if child is None:
                return False
            path.append((node, level))
            node = child
        if node.message is None:
            return False
        self.bytes -= len(node.message.payload)
        node.message = None
        self._count -= 1
        for parent, level in reversed(path):
            child = parent.children[level]
            if child.message is not None or child.children:
                break
            del parent.children[level]
        return True

    def match(self, topic_filter: str, now: float | None = None) -> Iterator[RetainedMessage]:
        """Retained messages whose topic matches ``topic_filter`` (expired ones are removed, not returned).

        The walk keeps its own stack: a topic may have thousands of levels, far past Python's recursion limit.
        """
        levels = topic_filter.split("/")
        depth = len(levels)
        expired: list[str] = []
        found: list[_Node] = []
        # (node, index of the filter level to match below it); wildcards at index 0 skip "$" topics.
        stack: list[tuple[_Node, int]] = [(self._root, 0)]
        while stack:
            node, i = stack.pop()
            if i == depth:
                found.append(node)
                continue
            level = levels[i]
            if level == "#":
                # Everything below, and this level itself ("a/#" matches "a").
                if i:
                    found.append(node)
                below = [child for name, child in node.children.items() if not (i == 0 and name.startswith("$"))]
                while below:
                    child = below.pop()
                    found.append(child)
                    below.extend(child.children.values())
            elif level == "+":
                stack.extend(
                    (child, i + 1) for name, child in node.children.items() if not (i == 0 and name.startswith("$"))
                )
            else:
                exact = node.children.get(level)
                if exact is not None:
                    stack.append((exact, i + 1))
        for node in found:
            message = node.message
            if message is None:
                continue
            if now is not None and message.expires_at is not None and message.expires_at <= now:
                expired.append(message.topic)
            else:
                yield message
        for topic in expired:
            self.delete(topic)

    def __iter__(self) -> Iterator[RetainedMessage]:
        stack = [self._root]
        while stack:
            node = stack.pop()
            if node.message is not None:
                yield node.message
            stack.extend(node.children.values())

    def expire(self, now: float) -> int:
        """Remove every expired message; return how many."""
        topics = [m.topic for m in self if m.expires_at is not None and m.expires_at <= now]
        for topic in topics:
            self.delete(topic)
        return len(topics)
