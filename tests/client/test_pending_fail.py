"""A broker that breaks the protocol fails the operations it was answering, instead of leaving them hanging."""

from __future__ import annotations

import asyncio

import pytest

from mqttchat.client import ClientError, MQTTClient
from mqttchat.protocol import Packet, PubAck, Publish, ReasonCode, SubAck, Subscribe
from tests.helpers.fake_broker import connack_then, fake_broker


def _suback_with_two_codes(packet: Packet, version: int) -> bytes:
    if isinstance(packet, Subscribe):
        return SubAck(packet.packet_id, (ReasonCode.SUCCESS, ReasonCode.SUCCESS)).encode(version)
    return b""


@pytest.mark.parametrize("reconnect", [False, True])
async def test_a_suback_with_the_wrong_number_of_codes_fails_the_subscribe(reconnect: bool) -> None:
    with fake_broker(connack_then(_suback_with_two_codes)) as fake:
        client = MQTTClient(f"mqtt://127.0.0.1:{fake.port}", reconnect=reconnect)
        await client.connect()
        try:
            async with asyncio.timeout(5):
                with pytest.raises(ClientError, match="SUBACK has 2 reason codes for 1 topic filters"):
                    await client.subscribe("a/b")
            assert "a/b" not in client.session.subscriptions  # not resubscribed after a reconnect
        finally:
            await client.disconnect()


async def test_a_message_read_with_the_bad_packet_is_still_delivered() -> None:
    """A QoS 1 PUBLISH and a broken SUBACK in one read: the message was acknowledged, so it is delivered."""

    def answer(packet: Packet, version: int) -> bytes:
        if isinstance(packet, Subscribe):
            message = Publish("a/b", b"kept", qos=1, packet_id=7).encode(version)
            return message + SubAck(packet.packet_id, (ReasonCode.SUCCESS,) * 3).encode(version)
        return b""

    with fake_broker(connack_then(answer)) as fake:
        client = MQTTClient(f"mqtt://127.0.0.1:{fake.port}", reconnect=False)
        stream = client.messages()
        await client.connect()
        try:
            async with asyncio.timeout(5):
                with pytest.raises(ClientError):
                    await client.subscribe("a/b")
                message = await stream.get()
                assert message.payload == b"kept"
                while not any(isinstance(p, PubAck) and p.packet_id == 7 for p in fake.received):
                    await asyncio.sleep(0.01)  # the fake reads in its own thread
        finally:
            await client.disconnect()


async def test_a_pending_publish_fails_when_the_broker_breaks_the_protocol() -> None:
    """No reconnect: the QoS 1 publish waiting for its PUBACK fails with the broker's fault, not a hang."""

    def answer(packet: Packet, version: int) -> bytes:
        if isinstance(packet, Publish):
            return b"\x00\x00"  # reserved packet type 0
        return b""

    with fake_broker(connack_then(answer)) as fake:
        client = MQTTClient(f"mqtt://127.0.0.1:{fake.port}", reconnect=False)
        await client.connect()
        try:
            async with asyncio.timeout(5):
                with pytest.raises(ClientError, match="broke the protocol"):
                    await client.publish("a/b", b"x", qos=1)
        finally:
            await client.disconnect()
