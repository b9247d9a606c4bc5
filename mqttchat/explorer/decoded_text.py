"""The decoded text of each topic's latest payload, for the tree's filter: a Sparkplug B metric's name and value, a
CBOR or MessagePack field, what a gzip'd payload holds.

Only payloads a decoder transforms get one (:meth:`PayloadDecoders.transforms`): JSON and text are searched as
they came. A text is the decoded rendering cut at :data:`TEXT_LIMIT` characters, kept per topic until the topic's
latest message changes, all texts together within a byte budget (the least recently used go first). Decoding is
bounded in time as well: a filter pass decodes for at most the budget it was given; a topic whose latest payload
was not decoded in time is searched in the last text made for it (an older message's), or not at all until a
later pass decodes it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from mqttchat.explorer.decoders import PayloadDecoders
from mqttchat.explorer.tree import Entry, TopicNode

__all__ = ["DEFAULT_TEXT_BYTES", "TEXT_LIMIT", "DecodedTexts"]

#: All decoded texts together, in bytes (each counted as its characters, its topic's, the payload it was made of
#: (kept to know when the topic's latest message changed) and :data:`_OVERHEAD`).
DEFAULT_TEXT_BYTES = 8 * 1024 * 1024
#: The characters of a decoded rendering that are searched (a regular expression searches the first 4,096 bytes
#: of a raw payload alike).
TEXT_LIMIT = 4096
#: What one kept text costs beyond its characters and its topic's: the dict slot, the tuple, the str headers.
_OVERHEAD = 200


class DecodedTexts:
    """Decoded texts by topic for the filter, bounded in bytes and in decoding time per pass.

    Call :meth:`begin` before a filter pass with the seconds it may spend decoding, then :meth:`text` for each
    topic the raw filter did not match.
    """

    def __init__(
        self,
        decoders: PayloadDecoders,
        max_bytes: int = DEFAULT_TEXT_BYTES,
        *,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.decoders = decoders
        self.max_bytes = max_bytes
        self.bytes = 0
        #: Payloads decoded for the filter, and topics searched in an older text (or none) for lack of time.
        self.decoded = 0
        self.deferred = 0
        self._clock = clock
        self._deadline = 0.0
        self._texts: OrderedDict[str, tuple[Entry, str, int]] = OrderedDict()
        self._rules_version = decoders.rules.version

    def __len__(self) -> int:
        return len(self._texts)

    def begin(self, budget: float) -> None:
        """Start a filter pass that may spend ``budget`` seconds decoding."""
        if self._rules_version != self.decoders.rules.version:  # other rules: other texts
            self._rules_version = self.decoders.rules.version
            self.clear()
        self._deadline = self._clock() + budget

    def text(self, node: TopicNode) -> str | None:
        """The decoded text of the node's latest payload (casefolded), or None when a decoder makes nothing
        other of it than its own text (or nothing was decoded for it yet)."""
        entry = node.last
        if entry is None:
            return None
        topic = node.topic
        texts = self._texts
        known = texts.get(topic)
        if known is not None and known[0] is entry:
            texts.move_to_end(topic)
            return known[1]
        decoders = self.decoders
        if not decoders.transforms(topic, entry.payload, entry.properties.content_type):
            return None
        if self._clock() >= self._deadline:
            self.deferred += 1
            return known[1] if known is not None else None
        result = decoders.decode(
            topic, entry.payload, content_type=entry.properties.content_type, observation=entry.observation
        )
        if result.pending:  # an external command: found once it finished (the explorer decodes what it shows)
            return known[1] if known is not None else None
        self.decoded += 1
        found = result.text[:TEXT_LIMIT].casefold() if not result.plain else ""
        self._keep(topic, entry, found)
        return found

    def _keep(self, topic: str, entry: Entry, found: str) -> None:
        texts = self._texts
        old = texts.pop(topic, None)
        if old is not None:
            self.bytes -= old[2]
        cost = len(found) + len(topic) + len(entry.payload) + _OVERHEAD
        texts[topic] = (entry, found, cost)
        self.bytes += cost
        while self.bytes > self.max_bytes and texts:
            _, (_, _, evicted) = texts.popitem(last=False)
            self.bytes -= evicted

    def clear(self) -> None:
        self._texts.clear()
        self.bytes = 0
