"""Incremental decoding: every truncated prefix waits for more; any chunking yields the same packets."""

from __future__ import annotations

import sys

import pytest

from mqttchat.protocol import Connect, PacketReader, Publish, RemoteProtocolError
from tests.protocol.samples import v5_packets, v311_packets


def _cases() -> list[tuple[int, object]]:
    return [(5, p) for p in v5_packets()] + [(4, p) for p in v311_packets()]


@pytest.mark.parametrize(
    ("version", "packet"), _cases(), ids=lambda x: type(x).__name__ if not isinstance(x, int) else f"v{x}"
)
def test_every_truncated_prefix_means_need_more_bytes(version: int, packet: object) -> None:
    wire = packet.encode(version)  # type: ignore[attr-defined]
    server_side = isinstance(packet, Connect)
    for cut in range(len(wire)):
        reader = PacketReader(None if server_side else version)
        reader.feed(wire[:cut])
        assert reader.next_packet() is None, f"prefix of {cut}/{len(wire)} bytes"
        assert reader.buffered == cut
        reader.feed(wire[cut:])
        assert reader.next_packet() == packet
        assert reader.next_packet() is None
        assert reader.buffered == 0


def test_byte_at_a_time_over_many_packets() -> None:
    packets = [Publish(f"t/{i}", bytes(i % 300), i % 3, packet_id=(i % 3 and i + 1) or None) for i in range(200)]
    stream = b"".join(p.encode(5) for p in packets)
    reader = PacketReader(5)
    got = []
    for i in range(len(stream)):
        reader.feed(stream[i : i + 1])
        got.extend(reader)
    assert got == packets


def test_large_packet_in_many_chunks_is_joined_once() -> None:
    big = Publish("big", b"\xab" * 1_000_000, 1, packet_id=1)
    wire = big.encode(5)
    reader = PacketReader(5)
    for i in range(0, len(wire), 4096):
        reader.feed(wire[i : i + 4096])
        if i + 4096 < len(wire):
            assert reader.next_packet() is None
    assert reader.next_packet() == big


def test_packets_split_across_chunk_boundaries_with_leftovers() -> None:
    a = Publish("a", b"1" * 200).encode(4)
    b = Publish("b", b"2" * 5).encode(4)
    c = Publish("c", b"3").encode(4)
    stream = a + b + c
    reader = PacketReader(4)
    out = reader.read(stream[:150]) + reader.read(stream[150:205]) + reader.read(stream[205:])
    assert [p.topic for p in out] == ["a", "b", "c"]  # type: ignore[attr-defined]


def test_feed_accepts_bytearray_and_memoryview() -> None:
    wire = Publish("a", b"x").encode(5)
    reader = PacketReader(5)
    assert reader.read(bytearray(wire[:3])) == []
    assert reader.read(memoryview(wire)[3:]) == [Publish("a", b"x")]


def test_server_reader_learns_the_version_from_connect() -> None:
    for version in (3, 4, 5):
        reader = PacketReader()
        (_connect,) = reader.read(Connect("c", protocol_version=version).encode())
        assert reader.version == version
        # After CONNECT the reader decodes with that version's rules: a 3.x PUBACK has no reason code.
        assert reader.read(bytes.fromhex("40020001"))


def test_take_plain_pubacks_consumes_only_a_run_of_plain_pubacks() -> None:
    from mqttchat.protocol import PubAck, ReasonCode

    reader = PacketReader(5)
    wire = (
        PubAck(1).encode(5) + PubAck(2).encode(5)
        + PubAck(3, ReasonCode.NO_MATCHING_SUBSCRIBERS).encode(5)  # not plain: left for next_packet
        + PubAck(4).encode(5)
    )  # fmt: skip
    reader.feed(wire[:9])  # two whole PUBACKs and the first byte of the third
    assert reader.take_plain_pubacks() == [1, 2]
    assert reader.take_plain_pubacks() == []
    reader.feed(wire[9:])
    packet = reader.next_packet()
    assert isinstance(packet, PubAck) and packet.packet_id == 3 and packet.reason_code == 0x10
    assert reader.take_plain_pubacks() == [4]
    assert reader.next_packet() is None
    reader.feed(b"\x40\x02\x00\x00")  # packet identifier 0: refused by next_packet, not skipped
    assert reader.take_plain_pubacks() == []
    with pytest.raises(RemoteProtocolError):
        reader.next_packet()


def test_take_plain_pubacks_waits_for_connect_on_a_server() -> None:
    reader = PacketReader(None)
    reader.feed(b"\x40\x02\x00\x01")
    assert reader.take_plain_pubacks() == []


def test_the_reader_lets_go_of_a_chunk_read_to_its_end() -> None:
    """Once every packet of a chunk is read, the reader holds no reference to it: an idle connection would keep
    its last read for good (in the broker, a page of the socket's read buffer for a CONNECT of a few bytes)."""
    chunk = Connect("idle-1", protocol_version=4).encode(4) + b"\xc0\x00"  # CONNECT, PINGREQ
    reader = PacketReader(None)
    held = sys.getrefcount(chunk)
    reader.feed(chunk)
    assert sys.getrefcount(chunk) == held + 1
    assert isinstance(reader.next_packet(), Connect)
    assert sys.getrefcount(chunk) == held + 1, "let go while a packet was still unread"
    assert reader.next_packet() is not None
    assert reader.next_packet() is None
    assert sys.getrefcount(chunk) == held
    assert reader.buffered == 0
