"""Property-based tests: random and mutated input never escapes the error family, hangs or over-allocates."""

from __future__ import annotations

import contextlib
import tracemalloc

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mqttchat.protocol import (
    PacketReader,
    Properties,
    ProtocolError,
    Publish,
    RemoteProtocolError,
    decode_packet,
)
from tests.protocol.samples import v5_packets, v311_packets

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID = [(5, p.encode(5)) for p in v5_packets()] + [(4, p.encode(4)) for p in v311_packets()]


def _drain(reader: PacketReader, data: bytes, chunk: int) -> int:
    """Feed ``data`` in chunks; return the packets decoded. Only the protocol error family may escape."""
    count = 0
    try:
        for i in range(0, len(data), chunk):
            reader.feed(data[i : i + chunk])
            for _ in reader:
                count += 1
                assert count <= len(data)  # each packet takes at least two bytes: no infinite loop
    except RemoteProtocolError as exc:
        assert isinstance(exc.reason_code, int)
    return count


@FUZZ
@given(data=st.binary(max_size=600), version=st.sampled_from([None, 4, 5]), chunk=st.integers(1, 64))
def test_arbitrary_bytes(data: bytes, version: int | None, chunk: int) -> None:
    _drain(PacketReader(version), data, chunk)


@FUZZ
@given(
    case=st.sampled_from(VALID),
    mutations=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
    truncate=st.integers(0, 10_000),
)
def test_mutated_valid_packets(case: tuple[int, bytes], mutations: list[tuple[int, int]], truncate: int) -> None:
    version, wire = case
    data = bytearray(wire)
    for pos, value in mutations:
        data[pos % len(data)] = value
    data = data[: max(2, truncate % (len(data) + 1))]
    reader = PacketReader(None if data[0] >> 4 == 1 else version)
    _drain(reader, bytes(data), 7)
    with contextlib.suppress(ProtocolError):
        decode_packet(bytes(data), version)


@FUZZ
@given(
    case=st.sampled_from(VALID),
    inserted=st.binary(min_size=1, max_size=8),
    at=st.integers(0, 10_000),
)
def test_inserted_bytes(case: tuple[int, bytes], inserted: bytes, at: int) -> None:
    version, wire = case
    at %= len(wire)
    data = wire[:at] + inserted + wire[at:]
    _drain(PacketReader(None if data[0] >> 4 == 1 else version), data, 5)


@settings(max_examples=60, deadline=None)
@given(length=st.integers(1025, 268_435_455), first=st.sampled_from([0x30, 0x82, 0x10, 0xE0]))
def test_never_allocates_more_than_the_maximum_packet_size(length: int, first: int) -> None:
    from mqttchat.protocol.wire import encode_varint

    header = bytes((first,)) + encode_varint(length)
    reader = PacketReader(5, max_packet_size=1024)
    tracemalloc.start()
    try:
        # The peer keeps sending a body far beyond the limit: it is refused at the header, nothing is kept.
        try:
            reader.feed(header)
            reader.next_packet()
            for _ in range(64):
                reader.feed(b"\x00" * 4096)
                reader.next_packet()
        except RemoteProtocolError:
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reader.buffered <= 4096
    assert peak < 64 * 1024


topic_level = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00+#/"), min_size=0, max_size=12
)
topics = st.lists(topic_level, min_size=1, max_size=6).map("/".join).filter(bool)
user_props = st.lists(st.tuples(topic_level, topic_level), max_size=3)


@FUZZ
@given(
    topic=topics,
    payload=st.binary(max_size=300),
    qos=st.integers(0, 2),
    retain=st.booleans(),
    dup=st.booleans(),
    packet_id=st.integers(1, 65_535),
    content_type=st.none() | topic_level,
    expiry=st.none() | st.integers(0, 2**32 - 1),
    correlation=st.none() | st.binary(max_size=20),
    users=user_props,
    sub_ids=st.lists(st.integers(1, 268_435_455), max_size=3),
    version=st.sampled_from([4, 5]),
)
def test_publish_round_trip(
    topic: str,
    payload: bytes,
    qos: int,
    retain: bool,
    dup: bool,
    packet_id: int,
    content_type: str | None,
    expiry: int | None,
    correlation: bytes | None,
    users: list[tuple[str, str]],
    sub_ids: list[int],
    version: int,
) -> None:
    props = Properties(
        content_type=content_type,
        message_expiry_interval=expiry,
        correlation_data=correlation,
        user_property=users or None,
        subscription_identifier=sub_ids or None,
    )
    packet = Publish(
        topic,
        payload,
        qos,
        retain,
        dup and qos > 0,
        packet_id if qos else None,
        props if version == 5 else Properties(),
    )
    wire = packet.encode(version)
    assert decode_packet(wire, version) == packet
