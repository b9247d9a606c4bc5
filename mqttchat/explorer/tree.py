"""The live topic tree: every topic seen, with counts, rates, retained markers and bounded per-topic history.

Memory is bounded by a visible budget. Each topic keeps its latest message in full, always; older messages go
to a per-topic history ring (``history_per_topic`` entries, each payload cut at ``history_payload_limit`` bytes
and marked as truncated) and all rings share one byte budget (``history_budget``): when it is exceeded the
oldest history entries anywhere are evicted first. Counters say what was evicted and truncated. The budget counts
what an entry really costs: its payload plus :data:`HISTORY_ENTRY_OVERHEAD` bytes for the objects that hold it, so
that a flood of small messages is bounded as well as a few large ones.

A hot topic's history is sampled: once a topic gets ``history_rate`` messages in a second, its history keeps one
entry per ``1 / history_rate`` seconds (and at most ``history_rate`` a second) while it stays that hot; the others
update the topic (latest value, counts, rates) but not its history ring, and are counted as sampled (per topic and
in total). So a firehose on one topic neither churns the history nor pushes the
other topics' history out of the shared budget, and costs less to ingest.

Ingestion is O(topic levels) and reads no clock: the caller passes the receive time. The UI takes the set of
nodes changed since its last refresh with :meth:`TopicTree.take_dirty`; the sets taken by
:meth:`TopicTree.consume_changes` over the last two seconds stay in ``recent`` (the hot-topic ranking reads them).
"""

from __future__ import annotations

import re
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from operator import attrgetter
from typing import TYPE_CHECKING

from mqttchat.protocol import EMPTY_PROPERTIES, Properties, matches, topic_filter_problem

if TYPE_CHECKING:
    from mqttchat.explorer.decoders.sparkplug.state import SparkplugObservation

DEFAULT_HISTORY_PER_TOPIC = 100
DEFAULT_HISTORY_BUDGET = 64 * 1024 * 1024
DEFAULT_HISTORY_PAYLOAD_LIMIT = 64 * 1024
#: History entries kept per topic and second at most; a hotter topic's further messages are sampled out.
DEFAULT_HISTORY_RATE = 20
#: Change sets kept in ``TopicTree.recent`` (two seconds of flushes at 15 Hz).
RECENT_SETS = 32
#: Bytes a history entry costs beyond its payload: the Entry object, the payload's bytes header, its slots in the
#: ring and in the eviction order (measured with sys.getsizeof on CPython 3.11: about 220).
HISTORY_ENTRY_OVERHEAD = 220


_NAME = attrgetter("name")
_COUNT = attrgetter("subtree_messages")
_RECENCY = attrgetter("changed_at")


@dataclass(slots=True, eq=False)
class Entry:
    """One received message as the explorer keeps it."""

    payload: bytes
    #: The payload's size on the wire (``len(payload)`` is smaller when it was truncated for the history).
    size: int
    qos: int
    retain: bool
    dup: bool
    properties: Properties
    received_at: float
    alive: bool = True
    #: What the payload decoders learnt when it arrived (a Sparkplug B message's aliases), or None.
    observation: SparkplugObservation | None = None
    #: Restored from the lasting history at start-up (:meth:`TopicTree.restore`), not received in this session.
    stale: bool = False

    @property
    def truncated(self) -> bool:
        return len(self.payload) < self.size


class TopicNode:
    """One topic level. ``topic`` is the full topic name; a node has messages only if it was published to."""

    __slots__ = (
        "_kept_count",
        "_kept_slot",
        "_prev_count",
        "_slot",
        "_slot_count",
        "branches",
        "changed_at",
        "children",
        "history",
        "last",
        "messages",
        "name",
        "parent",
        "retained_entry",
        "sampled",
        "sorted_names",
        "subtree_messages",
        "topic",
        "topics_below",
    )

    def __init__(self, name: str, topic: str, parent: TopicNode | None) -> None:
        self.name = name
        self.topic = topic
        self.parent = parent
        self.children: dict[str, TopicNode] = {}
        #: How many of the children have children of their own (0: a view can add them all at once, as leaves).
        self.branches = 0
        self.last: Entry | None = None
        self.history: deque[Entry] | None = None
        self.messages = 0
        self.subtree_messages = 0
        self.topics_below = 0
        #: Messages whose history entry was sampled out (the topic was hot: see DEFAULT_HISTORY_RATE).
        self.sampled = 0
        #: The retained message the broker holds for this topic, as far as we have seen: the last message that
        #: arrived with the retain flag (subscribe with retain-as-published to see live updates flagged).
        self.retained_entry: Entry | None = None
        #: When a message last arrived here or below (for recency sorting and change flashes).
        self.changed_at = 0.0
        self._slot = 0
        self._slot_count = 0
        self._prev_count = 0
        #: History entries kept in second ``_kept_slot`` (for the sampling of a hot topic's history).
        self._kept_slot = 0
        self._kept_count = 0
        #: Children in name order, cached until a child is added (the tree view walks this many times a second).
        self.sorted_names: list[TopicNode] | None = None

    def __repr__(self) -> str:
        return f"<TopicNode {self.topic!r} messages={self.messages} below={self.topics_below}>"

    @property
    def retained(self) -> bool:
        return self.retained_entry is not None

    @property
    def depth(self) -> int:
        return self.topic.count("/") + 1 if self.topic else 0

    def rate(self, now: float) -> float:
        """Messages per second here and below, over the last whole second."""
        slot = int(now)
        if slot == self._slot:
            return float(self._prev_count)
        if slot == self._slot + 1:
            return float(self._slot_count)
        return 0.0

    def history_newest_first(self) -> list[Entry]:
        return list(reversed(self.history)) if self.history else ([self.last] if self.last else [])

    def walk(self) -> Iterator[TopicNode]:
        """This node and every node below it, depth first."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(node.children.values())


class FilterKind(Enum):
    SUBSTRING = "substring"
    WILDCARD = "wildcard"
    REGEX = "regex"


@dataclass(frozen=True, slots=True)
class TopicFilter:
    """A filter as the user typed it. ``predicate()`` raises ValueError with an explanation when it is invalid."""

    text: str
    kind: FilterKind = FilterKind.SUBSTRING
    search_payloads: bool = True

    def matcher(self) -> Callable[[str, bytes | None], bool]:
        """``match(topic, payload)`` for one message; a payload of None matches on the topic alone.

        Raises:
            ValueError: the filter is invalid (the message explains why).
        """
        text = self.text
        if not text:
            return lambda topic, payload: True
        if self.kind is FilterKind.WILDCARD:
            problem = topic_filter_problem(text)
            if problem:
                raise ValueError(problem)
            return lambda topic, payload: matches(text, topic)
        if self.kind is FilterKind.REGEX:
            try:
                pattern = re.compile(text, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
            search = pattern.search
            if self.search_payloads:
                return lambda topic, payload: (
                    bool(search(topic))
                    or (payload is not None and bool(search(payload[:4096].decode(errors="replace"))))
                )
            return lambda topic, payload: bool(search(topic))
        needle = text.casefold()
        raw = text.encode()
        if self.search_payloads:
            return lambda topic, payload: needle in topic.casefold() or (payload is not None and raw in payload)
        return lambda topic, payload: needle in topic.casefold()

    def text_matcher(self) -> Callable[[str], bool] | None:
        """``match(text)`` for a casefolded text made of a payload (its decoded rendering), or None when the
        filter does not look at payloads (empty, an MQTT wildcard filter, or topics only).

        Raises:
            ValueError: the filter is invalid (the message explains why).
        """
        text = self.text
        if not text or not self.search_payloads or self.kind is FilterKind.WILDCARD:
            return None
        if self.kind is FilterKind.REGEX:
            try:
                search = re.compile(text, re.IGNORECASE).search
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
            return lambda decoded: bool(search(decoded))
        needle = text.casefold()
        return lambda decoded: needle in decoded

    def predicate(self) -> Callable[[TopicNode], bool]:
        """Whether a node matches, on its topic and its latest payload."""
        match = self.matcher()
        return lambda node: match(node.topic, node.last.payload if node.last is not None else None)


def parse_filter_text(text: str, search_payloads: bool = True) -> TopicFilter:
    """``/regex/`` → regex; text with ``+`` or ``#`` → MQTT wildcard filter; anything else → substring.

    Surrounding white space is ignored. The result is not checked: ``matcher()`` raises ValueError when invalid.
    """
    text = text.strip()
    if len(text) >= 2 and text.startswith("/") and text.endswith("/"):
        return TopicFilter(text[1:-1], FilterKind.REGEX, search_payloads)
    if "+" in text or "#" in text:
        return TopicFilter(text, FilterKind.WILDCARD, search_payloads)
    return TopicFilter(text, FilterKind.SUBSTRING, search_payloads)


class SortOrder(Enum):
    NAME = "name"
    COUNT = "count"
    RECENCY = "recency"
    RATE = "rate"


@dataclass(slots=True)
class TreeStats:
    messages: int = 0
    bytes: int = 0
    topics: int = 0
    history_entries: int = 0
    history_bytes: int = 0
    #: History entries removed to stay within the byte budget (the latest message of a topic never is).
    evicted_entries: int = 0
    evicted_bytes: int = 0
    #: History payloads cut at the per-entry limit.
    truncated: int = 0
    #: Messages of hot topics not added to the history (beyond ``history_rate`` a second on one topic).
    sampled: int = 0
    retained_topics: int = 0
    #: Topics whose latest value was restored from the lasting history and has not been replaced by a live one.
    stale_topics: int = 0


@dataclass
class TopicTree:
    history_per_topic: int = DEFAULT_HISTORY_PER_TOPIC
    history_budget: int = DEFAULT_HISTORY_BUDGET
    history_payload_limit: int = DEFAULT_HISTORY_PAYLOAD_LIMIT
    #: History entries kept per topic and second at most (0: no sampling).
    history_rate: int = DEFAULT_HISTORY_RATE
    root: TopicNode = field(default_factory=lambda: TopicNode("", "", None))
    stats: TreeStats = field(default_factory=TreeStats)

    def __post_init__(self) -> None:
        #: Every node by topic (intermediate levels included).
        self.nodes: dict[str, TopicNode] = {}
        #: Every history entry, oldest first, with its node: the budget evicts from the front, and an entry that
        #: leaves its ring (full) leaves here at once (an entry left here would keep its payload alive, unbounded).
        self._order: OrderedDict[Entry, TopicNode] = OrderedDict()
        self._dirty: set[TopicNode] = set()
        #: The change sets of the last flushes (see consume_changes), newest last.
        self.recent: deque[set[TopicNode]] = deque(maxlen=RECENT_SETS)
        #: Incremented whenever a node is added: views rebuild their rows only when it changed.
        self.structure_version = 0

    def __len__(self) -> int:
        """Topics that received at least one message."""
        return self.stats.topics

    def get(self, topic: str) -> TopicNode | None:
        return self.nodes.get(topic)

    def _node(self, topic: str) -> TopicNode:
        node = self.nodes.get(topic)
        if node is not None:
            return node
        # The missing ancestors, deepest first, found without recursion (a topic may have thousands of levels).
        missing = [topic]
        parent = self.root
        head, sep, _ = topic.rpartition("/")
        while sep:
            known = self.nodes.get(head)
            if known is not None:
                parent = known
                break
            missing.append(head)
            head, sep, _ = head.rpartition("/")
        for path in reversed(missing):
            name = path.rpartition("/")[2]
            child = TopicNode(name, path, parent)
            if not parent.children and parent.parent is not None:
                parent.parent.branches += 1  # its first child: parent is a branch of its own parent now
            parent.children[name] = child
            parent.sorted_names = None
            self.nodes[path] = child
            self.structure_version += 1
            parent = child
        return parent

    def ingest(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        dup: bool = False,
        properties: Properties = EMPTY_PROPERTIES,
        received_at: float = 0.0,
        observation: SparkplugObservation | None = None,
    ) -> TopicNode:
        """Record one message. O(levels); the payload is kept by reference (no copy). ``observation`` is kept with
        it for its decoding (:meth:`mqttchat.explorer.decoders.PayloadDecoders.observe`)."""
        node = self._node(topic)
        stats = self.stats
        size = len(payload)
        stats.messages += 1
        stats.bytes += size
        entry = Entry(payload, size, qos, retain, dup, properties, received_at, True, observation)
        first = node.messages == 0
        last = node.last
        if last is not None and last.stale:
            stats.stale_topics -= 1
        node.messages += 1
        node.last = entry
        if retain:
            was_retained = node.retained_entry is not None
            node.retained_entry = entry if size else None  # an empty retained message deletes it
            if was_retained != (size > 0):
                stats.retained_topics += 1 if size else -1
        if first:
            stats.topics += 1
        # The history ring and the global byte budget; a hot topic's history is sampled.
        slot = int(received_at)
        if node._slot != slot:
            node._prev_count = node._slot_count if slot == node._slot + 1 else 0
            node._slot = slot
            node._slot_count = 0
        if node._kept_slot != slot:
            node._kept_slot = slot
            node._kept_count = 0
        rate = self.history_rate
        hot = False
        if rate:
            if node._kept_count >= rate:
                hot = True
            elif node._prev_count >= rate:  # hot the second before: what is kept is spread over the second
                ring = node.history
                hot = ring is not None and len(ring) > 0 and received_at - ring[-1].received_at < 1.0 / rate
        if hot:
            node.sampled += 1
            stats.sampled += 1
        elif self.history_per_topic > 0:
            kept = entry
            if size > self.history_payload_limit:
                kept = Entry(
                    payload[: self.history_payload_limit],
                    size,
                    qos,
                    retain,
                    dup,
                    properties,
                    received_at,
                    True,
                    observation,
                )
                stats.truncated += 1
            ring = node.history
            if ring is None:
                ring = node.history = deque()
            if len(ring) >= self.history_per_topic:
                old = ring.popleft()
                old.alive = False
                self._order.pop(old, None)
                stats.history_entries -= 1
                stats.history_bytes -= len(old.payload) + HISTORY_ENTRY_OVERHEAD
            ring.append(kept)
            node._kept_count += 1
            self._order[kept] = node
            stats.history_entries += 1
            stats.history_bytes += len(kept.payload) + HISTORY_ENTRY_OVERHEAD
            if stats.history_bytes > self.history_budget:
                self._evict()
        # Counts, rates and recency up to the root.
        current: TopicNode | None = node
        while current is not None:
            current.subtree_messages += 1
            if first and current is not node:
                current.topics_below += 1
            current.changed_at = max(current.changed_at, received_at)
            if current._slot != slot:
                current._prev_count = current._slot_count if slot == current._slot + 1 else 0
                current._slot = slot
                current._slot_count = 0
            current._slot_count += 1
            current = current.parent
        self._dirty.add(node)
        return node

    def restore(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        properties: Properties = EMPTY_PROPERTIES,
        received_at: float = 0.0,
    ) -> bool:
        """Show a topic's last known value from the lasting history, marked stale until a live message arrives;
        a topic that already received one this session is left as it is. Whether it was restored. It counts as a
        message of the tree (counts and history ring) like a received one."""
        node = self.nodes.get(topic)
        if node is not None and node.messages:
            return False
        node = self.ingest(topic, payload, qos, retain, False, properties, received_at)
        assert node.last is not None
        node.last.stale = True
        if node.history:
            node.history[-1].stale = True
        self.stats.stale_topics += 1
        return True

    def _evict(self) -> None:
        stats = self.stats
        order = self._order
        while stats.history_bytes > self.history_budget and order:
            entry, node = order.popitem(last=False)
            ring = node.history
            if ring and ring[0] is entry:  # the oldest entry anywhere is the oldest of its ring
                ring.popleft()
            entry.alive = False
            cost = len(entry.payload) + HISTORY_ENTRY_OVERHEAD
            stats.history_entries -= 1
            stats.history_bytes -= cost
            stats.evicted_entries += 1
            stats.evicted_bytes += cost

    def set_history_budget(self, budget: int) -> None:
        """Change the history's byte budget (a share of one budget across brokers), evicting at once what no
        longer fits."""
        self.history_budget = budget
        if self.stats.history_bytes > budget:
            self._evict()

    def consume_changes(self) -> bool:
        """Whether messages arrived since the last call (O(1); forgets which)."""
        changed = bool(self._dirty)
        if changed:
            self.recent.append(self._dirty)
            self._dirty = set()
        return changed

    def take_dirty(self) -> set[TopicNode]:
        """Nodes that received messages since the last call, and their ancestors (whose counts changed)."""
        dirty = self._dirty
        self._dirty = set()
        out: set[TopicNode] = set()
        for node in dirty:
            current: TopicNode | None = node
            while current is not None and current not in out and current is not self.root:
                out.add(current)
                current = current.parent
        return out

    def recently_changed(self) -> set[TopicNode]:
        """The topics that received messages over the last two seconds or so (``recent`` and what is pending)."""
        active: set[TopicNode] = set(self._dirty)
        for changed in self.recent:
            active |= changed
        return active

    # ------------------------------------------------------------------------------------------ queries

    def visible(
        self, topic_filter: TopicFilter, decoded: Callable[[TopicNode], str | None] | None = None
    ) -> set[TopicNode] | None:
        """The nodes to show for a filter: matching topics and their ancestors; None means everything.

        ``decoded(node)``: the casefolded decoded text of a node's latest payload, or None (see
        :class:`mqttchat.explorer.decoded_text.DecodedTexts`); a payload filter then matches it too. It is asked
        only for topics whose name and raw payload do not match.
        """
        if not topic_filter.text:
            return None
        predicate = topic_filter.predicate()
        search = topic_filter.text_matcher() if decoded is not None else None
        if decoded is not None and search is not None:
            raw, text_of, search_text = predicate, decoded, search

            def raw_or_decoded(node: TopicNode) -> bool:
                if raw(node):
                    return True
                text = text_of(node)
                return text is not None and search_text(text)

            predicate = raw_or_decoded
        out: set[TopicNode] = set()
        for node in self.nodes.values():
            if node.messages and predicate(node):
                current: TopicNode | None = node
                while current is not None and current not in out and current is not self.root:
                    out.add(current)
                    current = current.parent
        return out

    @staticmethod
    def sorted_children(node: TopicNode, order: SortOrder, now: float = 0.0) -> list[TopicNode]:
        """A node's children in ``order``; by rate, messages in the whole second before ``now``."""
        by_name = node.sorted_names
        if by_name is None:
            by_name = node.sorted_names = sorted(node.children.values(), key=_NAME)
        if order is SortOrder.NAME:
            return by_name
        # Most first, ties by name: a stable sort of the name order (``reverse`` keeps ties in order), with a
        # C-level key: several times faster than a tuple key, which matters with 100,000 topics expanded.
        if order is SortOrder.RATE:
            if node.changed_at < int(now) - 1:
                # No message below in the last two seconds (``changed_at`` is the latest time anywhere below): every
                # child's rate is 0 and the name order stays, without a look at each child.
                return by_name
            return sorted(by_name, key=lambda child: child.rate(now), reverse=True)
        return sorted(by_name, key=_COUNT if order is SortOrder.COUNT else _RECENCY, reverse=True)

    def retained_nodes(self) -> list[TopicNode]:
        return [node for node in self.nodes.values() if node.retained]

    def clear(self) -> None:
        self.root = TopicNode("", "", None)
        self.structure_version += 1
        self.nodes.clear()
        self._order.clear()
        self._dirty.clear()
        self.recent.clear()
        self.stats = TreeStats()
