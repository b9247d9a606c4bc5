"""The codec's topic caches are bounded in bytes: distinct long topic names from a peer are not kept."""

from __future__ import annotations

from collections.abc import Iterator

from mqttchat.protocol import PacketReader, Properties, Publish
from mqttchat.protocol.cache import CACHEABLE_TOPIC_LENGTH, BoundedCache
from tests.helpers.memory import bytes_kept

MiB = 1024 * 1024


def _long_topics(name: str, count: int, size: int) -> Iterator[str]:
    """Distinct topics (``name`` keeps each test's apart), each made when asked for: nothing but a cache can keep
    one alive."""
    filler = "x" * (size - 12 - len(name))
    for i in range(count):
        yield f"{name}/{i:05d}/" + filler


def test_decoding_distinct_long_topics_keeps_nothing() -> None:
    """300 distinct 60 KB topic names decoded (as a broker receives them) leave less than 1 MiB behind: before,
    the decoded-topic cache kept every raw topic and its string (36 MB here)."""
    wire = [Publish(topic, b"p").encode(5) for topic in _long_topics("decode", 300, 60_000)]

    def decode_all() -> None:
        reader = PacketReader(5)
        for data in wire:
            reader.feed(data)
            assert isinstance(reader.next_packet(), Publish)

    assert bytes_kept(decode_all) < MiB


def test_encoding_distinct_long_topics_keeps_nothing() -> None:
    """A broker sending 300 distinct 60 KB topics to a subscriber keeps none of their encodings."""

    def encode_all() -> None:
        for topic in _long_topics("encode", 300, 60_000):
            Publish(topic, b"p").encode(5)

    assert bytes_kept(encode_all) < MiB


def test_many_short_topics_stay_within_the_byte_budget() -> None:
    """20,000 distinct 900-byte topics (cacheable ones) decoded and encoded: both caches together stay within their
    budgets (2 MiB each), not 4,096 entries of any size each (8 to 15 MB before)."""

    def both() -> None:
        reader = PacketReader(5)
        for topic in _long_topics("short", 20_000, 900):
            reader.feed(Publish(topic, b"p").encode(5))
            reader.next_packet()

    assert bytes_kept(both) < 5 * MiB


def test_short_topics_are_still_cached() -> None:
    """The common case keeps its cache: a topic received twice decodes to the very same string object."""
    data = Publish("home/kitchen/temp", b"21").encode(5)
    reader = PacketReader(5)
    reader.feed(data + data)
    first, second = reader.next_packet(), reader.next_packet()
    assert isinstance(first, Publish) and isinstance(second, Publish)
    assert first.topic is second.topic


def test_bounded_cache_limits() -> None:
    cache: BoundedCache[str, int] = BoundedCache(max_entries=3, max_bytes=1000, max_key_length=10)
    assert not cache.put("x" * 11, 1)  # too long to be worth caching
    assert cache.put("a", 1) and cache.put("b", 2) and cache.put("c", 3)
    assert cache.put("d", 4)  # full: starts over
    assert list(cache.entries) == ["d"] and cache.clears == 1
    assert not cache.put("e", 5, size=2000)  # larger than the whole budget
    for key in "efghij":
        cache.put(key, 0, size=400)
    assert cache.bytes <= 1000 and len(cache) <= 3
    assert CACHEABLE_TOPIC_LENGTH >= 256


def test_topic_alias_properties_are_not_kept_for_every_alias() -> None:
    """PUBLISHes with every topic alias up to 65,535 (refused later, by the alias maximum) leave little behind: the
    shared alias-only Properties were kept for each (22 MB)."""

    def every_alias() -> None:
        reader = PacketReader(5)
        for alias in range(1, 65_536):
            reader.feed(Publish("a", b"", properties=Properties(topic_alias=alias)).encode(5))
            reader.next_packet()

    assert bytes_kept(every_alias) < MiB
