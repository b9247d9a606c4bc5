"""Every packet type round-trips, for both protocol versions, with every property the packet may carry."""

from __future__ import annotations

import pytest

from mqttchat.protocol import (
    ConnAck,
    Connect,
    PacketReader,
    PacketType,
    Properties,
    Publish,
    ReasonCode,
    SubAck,
    decode_packet,
)
from mqttchat.protocol.properties import PROPERTY_SPECS, WILL_PROPERTIES
from tests.protocol.samples import all_properties, v5_packets, v311_packets


def _id(packet: object) -> str:
    return type(packet).__name__


@pytest.mark.parametrize("packet", v5_packets(), ids=_id)
def test_v5_round_trip(packet: object) -> None:
    wire = packet.encode(5)  # type: ignore[attr-defined]
    decoded = decode_packet(wire, 5)
    assert decoded == packet
    assert decoded.encode(5) == wire


@pytest.mark.parametrize("packet", v311_packets(), ids=_id)
def test_v311_round_trip(packet: object) -> None:
    wire = packet.encode(4)  # type: ignore[attr-defined]
    decoded = decode_packet(wire, 4)
    assert decoded == packet
    assert decoded.encode(4) == wire


def test_every_packet_type_is_covered() -> None:
    assert {p.TYPE for p in v5_packets()} == set(PacketType)
    assert {p.TYPE for p in v311_packets()} == set(PacketType) - {PacketType.AUTH}


def test_every_property_is_exercised_in_every_context_it_may_appear() -> None:
    contexts = {int(t) for t in PacketType} | {WILL_PROPERTIES}
    for context in contexts:
        allowed = {pid for pid, spec in PROPERTY_SPECS.items() if context in spec.contexts}
        assert set(all_properties(context)) == allowed
    # Every context that may carry properties has at least User Property (all but PINGREQ/PINGRESP).
    assert len(PROPERTY_SPECS) == 27


def test_v5_packets_encoded_for_v311_drop_what_311_cannot_carry() -> None:
    publish = Publish("t", b"p", 1, packet_id=3, properties=Properties(content_type="x"))
    assert decode_packet(publish.encode(4), 4) == Publish("t", b"p", 1, packet_id=3)
    refused = SubAck(1, (ReasonCode.GRANTED_QOS_1, ReasonCode.NOT_AUTHORIZED, ReasonCode.QUOTA_EXCEEDED))
    assert decode_packet(refused.encode(4), 4) == SubAck(
        1, (ReasonCode.GRANTED_QOS_1, ReasonCode.UNSPECIFIED_ERROR, ReasonCode.UNSPECIFIED_ERROR)
    )
    assert decode_packet(ConnAck(False, ReasonCode.BANNED).encode(4), 4) == ConnAck(False, ReasonCode.NOT_AUTHORIZED)
    assert decode_packet(ConnAck(False, ReasonCode.SERVER_BUSY).encode(4), 4) == ConnAck(
        False, ReasonCode.SERVER_UNAVAILABLE
    )


def test_server_side_stream_connect_then_everything() -> None:
    connect = v5_packets()[0]
    rest = [p for p in v5_packets() if not isinstance(p, Connect)]
    stream = connect.encode(5) + b"".join(p.encode(5) for p in rest)
    for chunk_size in (1, 2, 3, 7, 64, 1000, len(stream)):
        reader = PacketReader()  # server side: version unknown until CONNECT
        got = []
        for i in range(0, len(stream), chunk_size):
            got.extend(reader.read(stream[i : i + chunk_size]))
        assert got == [connect, *rest]
        assert reader.version == 5
        assert reader.buffered == 0
