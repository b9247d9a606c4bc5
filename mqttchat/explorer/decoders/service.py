"""The decoders as the explorer uses them: the rules, one pipeline per rule, the Sparkplug state, and a cache of
decoded payloads bounded in bytes.

Decoding is lazy: nothing is decoded at ingest (only :meth:`PayloadDecoders.observe` runs there, for Sparkplug's
state). A payload is decoded when it is shown, selected, filtered or charted, and the result is kept in the cache,
keyed by what it depends on: the topic, the payload, the content type, the rules and the Sparkplug aliases in force
(so two messages with equal bytes share one result, and a message decoded again after a rebirth keeps the names
it had).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from mqttchat.config.decoder_rules import AUTO, DECODERS, DecoderRule
from mqttchat.explorer.decoders.base import DEFAULT_LIMITS, AliasLookup, DecodeContext, DecodeLimits
from mqttchat.explorer.decoders.compression import is_gzip, is_zlib
from mqttchat.explorer.decoders.pipeline import Pipeline, content_type_decoder
from mqttchat.explorer.decoders.result import PLAIN_DECODERS, DecodeResult
from mqttchat.explorer.decoders.rules import DecoderRules
from mqttchat.explorer.decoders.sparkplug.state import SparkplugObservation, SparkplugState

__all__ = ["CANDIDATES_LIMIT", "DEFAULT_CACHE_BYTES", "CacheStats", "DecodeCache", "PayloadDecoders"]

DEFAULT_CACHE_BYTES = 32 * 1024 * 1024
#: Notes that make a result a poor candidate for "decode as…".
_UNCONVINCING = ("a sequence of", "bytes that are not UTF-8")
#: The largest payload :meth:`PayloadDecoders.candidates` tries every decoder on.
CANDIDATES_LIMIT = 256 * 1024
#: A result costing more than this share of the cache is returned but not kept.
_LARGEST_SHARE = 4

_Key = tuple[str, bytes, str | None, int, int]


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    #: Results too large to keep.
    uncached: int = 0


class DecodeCache:
    """Least-recently-used decoded payloads within a byte budget (a result's cost plus its key's bytes)."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.stats = CacheStats()
        self._entries: OrderedDict[_Key, tuple[DecodeResult, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: _Key) -> DecodeResult | None:
        entry = self._entries.get(key)
        if entry is None:
            self.stats.misses += 1
            return None
        self._entries.move_to_end(key)
        self.stats.hits += 1
        return entry[0]

    def put(self, key: _Key, result: DecodeResult) -> None:
        cost = result.cost + len(key[0]) + len(key[1]) + len(key[2] or "") + 150
        if cost * _LARGEST_SHARE > self.max_bytes:
            self.stats.uncached += 1
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._entries[key] = (result, cost)
        self.bytes += cost
        while self.bytes > self.max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.bytes -= evicted
            self.stats.evictions += 1

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0


class PayloadDecoders:
    """Decodes payloads by the rules, keeps Sparkplug B state, and caches results within a byte budget.

    The reader task calls :meth:`observe` for each message (cheap, and only for ``spBv1.0/`` topics); the screen
    calls :meth:`decode` for what it shows. A chain with an external command gives a ``pending`` result from
    :meth:`decode`: await :meth:`decode_async` in a worker, then show the result (it is cached).
    """

    def __init__(
        self,
        rules: Iterable[DecoderRule] = (),
        *,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        limits: DecodeLimits = DEFAULT_LIMITS,
        sparkplug: SparkplugState | None = None,
    ) -> None:
        self.rules = DecoderRules(rules)
        self.limits = limits
        self.sparkplug = sparkplug if sparkplug is not None else SparkplugState()
        self.cache = DecodeCache(cache_bytes)
        self._pipelines: dict[DecoderRule | None, Pipeline] = {}
        self._rules_version = self.rules.version
        #: External commands running, by cache key: a second request for the same payload waits for the first.
        self._running: dict[_Key, asyncio.Task[DecodeResult]] = {}

    # -------------------------------------------------------------------------------------------------- rules

    def choose(self, rule: DecoderRule) -> None:
        """Use rule first for its filter ("decode as…"); the caller saves ``list(self.rules)`` to the settings.

        Raises:
            ValueError: the rule is not valid (the first problem).
        """
        problems = rule.problems()
        if problems:
            key, problem = problems[0]
            raise ValueError(f"{key}: {problem}")
        self.rules.choose(rule)

    def forget(self, topic_filter: str) -> bool:
        """Go back to automatic decoding for exactly this filter."""
        return self.rules.forget(topic_filter)

    def set_rules(self, rules: Iterable[DecoderRule]) -> None:
        """Replace every rule (the settings were loaded again)."""
        self.rules.replace_all(rules)

    def rule_for(self, topic: str) -> DecoderRule | None:
        return self.rules.rule_for(topic)

    def pipeline_for(self, topic: str) -> Pipeline:
        if self._rules_version != self.rules.version:
            self._pipelines.clear()
            self.cache.clear()
            self._rules_version = self.rules.version
        rule = self.rules.rule_for(topic)
        pipeline = self._pipelines.get(rule)
        if pipeline is None:
            pipeline = self._pipelines[rule] = Pipeline(rule)
        return pipeline

    def transforms(self, topic: str, payload: bytes, content_type: str | None = None) -> bool:
        """Whether decoding this payload may give something other than its own text (cheap, decodes nothing): a
        rule with a decoder other than JSON or text applies to the topic, or automatically, a Sparkplug B topic
        (not a host's STATE), a content type naming a binary format (CBOR, MessagePack, protobuf...), or a
        payload that starts as gzip or zlib do. JSON, text and other bytes are what they are."""
        if self.rules:
            rule = self.rules.rule_for(topic)
            if rule is not None:
                return any(name not in PLAIN_DECODERS for name in rule.chain)
        if topic.startswith("spBv1.0/"):
            return not topic.startswith("spBv1.0/STATE/")
        if content_type:
            hinted = content_type_decoder(content_type)
            if hinted is not None and hinted not in PLAIN_DECODERS:
                return True
        return is_gzip(payload) or is_zlib(payload)

    # ------------------------------------------------------------------------------------------------ ingest

    def observe(self, topic: str, payload: bytes, received_at: float) -> SparkplugObservation | None:
        """Feed the Sparkplug state with a message as it arrives; None for topics outside ``spBv1.0/``.
        Keep the observation with the message to decode it later with the aliases of its time."""
        if not topic.startswith("spBv1.0/"):
            return None
        return self.sparkplug.observe(topic, payload, received_at)

    # ------------------------------------------------------------------------------------------------ decode

    def _context(
        self, topic: str, content_type: str | None, observation: SparkplugObservation | None
    ) -> tuple[DecodeContext, int]:
        aliases: AliasLookup | None = None
        if observation is not None:
            aliases = observation.aliases
        elif topic.startswith("spBv1.0/"):
            aliases = self.sparkplug.aliases_for(topic)
        generation = aliases.generation if aliases is not None else 0
        return DecodeContext(topic, content_type, aliases, self.limits), generation

    def decode(
        self,
        topic: str,
        payload: bytes,
        *,
        content_type: str | None = None,
        observation: SparkplugObservation | None = None,
    ) -> DecodeResult:
        """The payload decoded by the rule for its topic (automatically without one). Never raises.

        ``observation`` is what :meth:`observe` returned when the message arrived; without it a Sparkplug message
        is decoded with the aliases in force now.
        """
        pipeline = self.pipeline_for(topic)
        ctx, generation = self._context(topic, content_type, observation)
        key = (topic, payload, content_type, self.rules.version, generation)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        result = pipeline.run(payload, ctx)
        if not result.pending:
            self.cache.put(key, result)
        return result

    async def decode_async(
        self,
        topic: str,
        payload: bytes,
        *,
        content_type: str | None = None,
        observation: SparkplugObservation | None = None,
    ) -> DecodeResult:
        """As :meth:`decode`, running an external command when the rule has one (never blocking the loop)."""
        pipeline = self.pipeline_for(topic)
        ctx, generation = self._context(topic, content_type, observation)
        key = (topic, payload, content_type, self.rules.version, generation)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        running = self._running.get(key)
        if running is None:
            running = self._running[key] = asyncio.ensure_future(pipeline.run_async(payload, ctx))

            def finished(task: asyncio.Task[DecodeResult]) -> None:
                self._running.pop(key, None)
                if not task.cancelled() and task.exception() is None:
                    self.cache.put(key, task.result())

            running.add_done_callback(finished)
        return await asyncio.shield(running)

    def candidates(
        self, topic: str, payload: bytes, *, observation: SparkplugObservation | None = None
    ) -> list[tuple[str, DecodeResult]]:
        """The decoders that need no options and decode this payload, with their results, in the order of
        :data:`~mqttchat.config.decoder_rules.DECODERS` (to put them first in "decode as…"). Payloads larger
        than :data:`CANDIDATES_LIMIT` are tried with the hex decoder only."""
        names = [name for name, info in DECODERS.items() if not info.required and name != AUTO]
        if len(payload) > CANDIDATES_LIMIT:
            names = ["hex"]
        out = []
        for name in names:
            result = self.decode_as(DecoderRule("#", name), topic, payload, observation=observation)
            if not result.ok or (name != "hex" and result.format == "binary"):
                continue
            if any(words in note for note in result.notes for words in _UNCONVINCING):
                continue  # text only by replacing bytes, CBOR or MessagePack only as a run of small items
            out.append((name, result))
        return out

    def decode_as(
        self,
        rule: DecoderRule,
        topic: str,
        payload: bytes,
        *,
        content_type: str | None = None,
        observation: SparkplugObservation | None = None,
    ) -> DecodeResult:
        """The payload decoded by rule, without choosing it (to preview "decode as…"); not cached."""
        ctx, _ = self._context(topic, content_type, observation)
        return Pipeline(rule).run(payload, ctx)
