"""Topic aliases in both directions, and through the codec."""

from __future__ import annotations

import pytest

from mqttchat.protocol import (
    InboundTopicAliases,
    LocalProtocolError,
    OutboundTopicAliases,
    PacketReader,
    Properties,
    Publish,
    ReasonCode,
    RemoteProtocolError,
)


def test_outbound_aliases_round_trip_through_the_codec() -> None:
    out = OutboundTopicAliases(maximum=2)
    inbound = InboundTopicAliases(maximum=2)
    reader = PacketReader(5)
    topics = ["home/kitchen/temp", "home/kitchen/temp", "home/hall/light", "home/kitchen/temp", "home/garage/door",
              "home/hall/light", "a/b", "home/garage/door"]  # fmt: skip
    sizes = []
    for topic in topics:
        wire = out.apply(Publish(topic, b"1")).encode(5)
        sizes.append(len(wire))
        (received,) = reader.read(wire)
        resolved = inbound.resolve(received)  # type: ignore[arg-type]
        assert resolved.topic == topic
        assert resolved.properties.topic_alias is None  # connection-specific: not passed to the application
    assert sizes[1] < sizes[0]  # the second send of a topic carries only the alias
    assert len(out) == 2


def test_least_recently_used_alias_is_reassigned() -> None:
    out = OutboundTopicAliases(maximum=2)
    first = out.apply(Publish("topic/one", b""))
    second = out.apply(Publish("topic/two", b""))
    assert (first.properties.topic_alias, second.properties.topic_alias) == (1, 2)
    out.apply(Publish("topic/one", b""))  # one is now the most recent
    third = out.apply(Publish("topic/three", b""))
    assert third.topic == "topic/three"
    assert third.properties.topic_alias == 2  # two's alias, reassigned with the full topic


def test_no_aliases_when_the_peer_allows_none_or_the_topic_is_short() -> None:
    assert OutboundTopicAliases(0).apply(Publish("long/topic/name", b"")) == Publish("long/topic/name", b"")
    assert OutboundTopicAliases(5).apply(Publish("a/b", b"")) == Publish("a/b", b"")
    with pytest.raises(LocalProtocolError):
        OutboundTopicAliases(5).apply(Publish("long/topic", b"", properties=Properties(topic_alias=1)))


def test_inbound_alias_errors() -> None:
    inbound = InboundTopicAliases(maximum=3)
    with pytest.raises(RemoteProtocolError) as info:
        inbound.resolve(Publish("t", b"", properties=Properties(topic_alias=4)))
    assert info.value.reason_code == ReasonCode.TOPIC_ALIAS_INVALID
    with pytest.raises(RemoteProtocolError) as info:
        inbound.resolve(Publish("", b"", properties=Properties(topic_alias=2)))
    assert info.value.reason_code == ReasonCode.PROTOCOL_ERROR
    with pytest.raises(RemoteProtocolError) as info:
        InboundTopicAliases(0).resolve(Publish("t", b"", properties=Properties(topic_alias=1)))
    assert info.value.reason_code == ReasonCode.TOPIC_ALIAS_INVALID


def test_an_alias_can_be_remapped_by_the_sender() -> None:
    inbound = InboundTopicAliases(maximum=1)
    inbound.resolve(Publish("a/1", b"", properties=Properties(topic_alias=1)))
    inbound.resolve(Publish("a/2", b"", properties=Properties(topic_alias=1)))
    assert inbound.resolve(Publish("", b"", properties=Properties(topic_alias=1))).topic == "a/2"
