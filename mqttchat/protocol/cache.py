"""Caches keyed by text from the network (topic names), bounded in entries and in bytes.

A cache keyed by what a peer sends is an amplifier: 10,000 distinct 65 KB topic names published once each would
otherwise stay in memory as keys (and values) long after the peer left. Each cache here therefore has three
limits: a number of entries, a byte budget for keys and values together, and a longest key worth caching. A long
topic costs as much to hash and to keep as it saves, so it is simply not cached; when an insertion would exceed
a budget the cache starts over (cleared in place, so a bound ``entries.get`` stays valid).

Hot paths read ``cache.entries`` directly (a plain dict); only a miss pays for :meth:`BoundedCache.put`.
"""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K", str, bytes)
V = TypeVar("V")

#: Topic names longer than this (in characters or bytes) are not cached anywhere: typical topics are tens of
#: bytes, and a long one costs as much to hash and to keep as a cache would save.
CACHEABLE_TOPIC_LENGTH = 1024

#: What one cache entry costs beyond its key and value: the dict slot and the object headers.
ENTRY_OVERHEAD = 100


class BoundedCache(Generic[K, V]):
    """A dict bounded by ``max_entries`` entries, ``max_bytes`` bytes and keys of ``max_key_length``.

    Sizes are the caller's estimate of an entry's key and value in bytes (:data:`ENTRY_OVERHEAD` is added).
    """

    __slots__ = ("bytes", "clears", "entries", "max_bytes", "max_entries", "max_key_length")

    def __init__(self, max_entries: int, max_bytes: int, max_key_length: int = CACHEABLE_TOPIC_LENGTH) -> None:
        self.entries: dict[K, V] = {}
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_key_length = max_key_length
        #: Bytes held now (the sum of the sizes given to :meth:`put`).
        self.bytes = 0
        #: How many times the cache was full and started over.
        self.clears = 0

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: K) -> V | None:
        return self.entries.get(key)

    def put(self, key: K, value: V, size: int = 0) -> bool:
        """Cache ``value`` for ``key`` (not yet cached) unless the key is too long; True if cached."""
        if len(key) > self.max_key_length:
            return False
        size += len(key) + ENTRY_OVERHEAD
        if size > self.max_bytes:
            return False
        entries = self.entries
        if len(entries) >= self.max_entries or self.bytes + size > self.max_bytes:
            entries.clear()
            self.bytes = 0
            self.clears += 1
        entries[key] = value
        self.bytes += size
        return True

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = 0
