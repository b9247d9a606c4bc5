"""Outbound topic aliases: least recently used replacement, and a bound on the topic bytes remembered."""

from __future__ import annotations

from mqttchat.protocol import Publish
from mqttchat.protocol.aliases import InboundTopicAliases, OutboundTopicAliases


def send(aliases: OutboundTopicAliases, receiver: InboundTopicAliases, topic: str) -> tuple[str, int | None]:
    packet = aliases.apply(Publish(topic, b"x"))
    assert receiver.resolve(packet).topic == topic  # what the peer makes of it
    return packet.topic, packet.properties.topic_alias


def test_least_recently_used_topic_gives_its_alias_up() -> None:
    out, peer = OutboundTopicAliases(2), InboundTopicAliases(2)
    assert send(out, peer, "t/aaaa") == ("t/aaaa", 1)
    assert send(out, peer, "t/bbbb") == ("t/bbbb", 2)
    assert send(out, peer, "t/aaaa") == ("", 1)
    assert send(out, peer, "t/cccc") == ("t/cccc", 2)  # t/bbbb was the least recently used
    assert send(out, peer, "t/aaaa") == ("", 1)


def test_the_topic_bytes_remembered_are_bounded() -> None:
    out, peer = OutboundTopicAliases(100, max_bytes=20), InboundTopicAliases(100)
    for i in range(50):
        send(out, peer, f"topic/{i:04d}")  # 10 characters each: two fit
    assert len(out) == 2 and out._bytes <= 20
    assert max(alias for alias in out._aliases.values()) <= 3  # aliases given up are reused, not new ones
    long = "x" * 21
    assert send(out, peer, long) == (long, None)  # longer than the bound: sent as it is
    assert send(out, peer, "topic/0049") == ("", out._aliases["topic/0049"])
