"""Brokers that are not mosquitto: QoS 2 answered by PUBACK, 3.1.1 only, refusals by closing the connection.

Each behaviour is scripted with the raw fake broker, as RabbitMQ 3.10 and aedes 1 show it (tests/peers run the
same checks against the real ones).
"""

from __future__ import annotations

import asyncio

import pytest

from mqttchat.client import ConnackRefused, ConnectError, MQTTClient
from mqttchat.client.errors import ClosedBeforeConnack, RetriesExhausted, SubscriptionRefused
from mqttchat.protocol import (
    ConnAck,
    Connect,
    Packet,
    PubAck,
    Publish,
    PubRec,
    PubRel,
    ReasonCode,
    SubAck,
    Subscribe,
)
from tests.helpers.fake_broker import Close, connack_then, fake_broker


def _downgrading(packet: Packet, version: int) -> bytes:
    """RabbitMQ's answers: PUBACK for QoS 1 and QoS 2 publishes, QoS 1 granted for a QoS 2 subscription."""
    if isinstance(packet, Publish) and packet.qos:
        assert packet.packet_id is not None
        return PubAck(packet.packet_id).encode(version)
    if isinstance(packet, Subscribe):
        return SubAck(packet.packet_id, (ReasonCode.GRANTED_QOS_1,) * len(packet.subscriptions)).encode(version)
    return b""


@pytest.mark.parametrize("version", [5, 4])
async def test_qos2_answered_with_puback_is_delivered_at_qos1_and_never_sent_again(version: int) -> None:
    with fake_broker(connack_then(_downgrading)) as fake:
        client = MQTTClient(f"mqtt://127.0.0.1:{fake.port}", version=version, reconnect_min_delay=0.01)
        await client.connect()
        try:
            async with asyncio.timeout(5):
                first = await client.publish("t", b"one", qos=2)
                second = await client.publish("t", b"two", qos=2)
            assert first.ok and first.downgraded and second.downgraded
            assert client.downgraded_publishes == 2
            assert client.connected and fake.connections == 1
            publishes = [p for p in fake.received if isinstance(p, Publish)]
            assert [p.payload for p in publishes] == [b"one", b"two"]  # once each
            assert not any(isinstance(p, PubRel) for p in fake.received)
            qos1 = await client.publish("t", b"three", qos=1)
            assert qos1.ok and not qos1.downgraded
        finally:
            await client.disconnect()


async def test_qos1_answered_with_pubrec_is_complete_and_released() -> None:
    def answer(packet: Packet, version: int) -> bytes:
        if isinstance(packet, Publish) and packet.qos:
            assert packet.packet_id is not None
            return PubRec(packet.packet_id).encode(version)
        return b""

    with fake_broker(connack_then(answer)) as fake:
        client = MQTTClient(f"mqtt://127.0.0.1:{fake.port}", reconnect_min_delay=0.01)
        await client.connect()
        try:
            async with asyncio.timeout(5):
                assert (await client.publish("t", b"x", qos=1)).ok
                while not any(isinstance(p, PubRel) for p in fake.received):
                    await asyncio.sleep(0.01)  # the fake reads in its own thread
            assert client.connected and fake.connections == 1
            assert len([p for p in fake.received if isinstance(p, Publish)]) == 1
        finally:
            await client.disconnect()


def _v311_only(answer_v5: bytes) -> object:
    """A 3.1.1-only broker: ``answer_v5`` to an MQTT 5 CONNECT (then it closes), CONNACK to a 3.1.1 one."""

    def script(packet: Packet, version: int) -> bytes:
        if isinstance(packet, Connect):
            if packet.protocol_version == 5:
                return Close(answer_v5)
            return ConnAck(False).encode(4)
        return _downgrading(packet, version)

    return script


V5_REFUSALS = {
    "closed": b"",  # RabbitMQ 3.10
    "3.1.1 CONNACK return code 1": b"\x20\x02\x00\x01",  # aedes 1
    "5.0 CONNACK 0x84": ConnAck(False, ReasonCode.UNSUPPORTED_PROTOCOL_VERSION).encode(5),
}


@pytest.mark.parametrize("answer", V5_REFUSALS.values(), ids=V5_REFUSALS.keys())
async def test_falls_back_to_311_when_mqtt5_is_refused(answer: bytes) -> None:
    with fake_broker(_v311_only(answer)) as fake:  # type: ignore[arg-type]
        client = MQTTClient(f"mqtt://127.0.0.1:{fake.port}", version_fallback=True)
        caps = await client.connect()
        try:
            assert caps.version == 4 and client.session.version == 4 and client.options.version == 4
            assert client.version_fallback is not None and "connected with MQTT 3.1.1" in client.version_fallback
            assert client.client_id  # 3.1.1 gets an identifier of its own
            assert (await client.publish("t", b"x", qos=1)).ok
        finally:
            await client.disconnect()
        assert [p.protocol_version for p in fake.received if isinstance(p, Connect)] == [5, 4]


async def test_no_fallback_when_the_version_is_forced() -> None:
    with fake_broker(_v311_only(b"")) as fake:  # type: ignore[arg-type]
        client = MQTTClient(f"mqtt://127.0.0.1:{fake.port}", version_fallback=False)
        with pytest.raises(ClosedBeforeConnack):
            await client.connect()
        assert fake.connections == 1


async def test_after_a_fallback_a_refusal_in_311_is_the_error_shown() -> None:
    def script(packet: Packet, version: int) -> bytes:
        if isinstance(packet, Connect):
            if packet.protocol_version == 5:
                return Close(b"")
            return Close(ConnAck(False, ReasonCode.BAD_USER_NAME_OR_PASSWORD).encode(4))
        return b""

    with fake_broker(script) as fake:
        client = MQTTClient(f"mqtt://127.0.0.1:{fake.port}", version_fallback=True)
        with pytest.raises(ConnackRefused) as refused:
            await client.connect()
        assert str(refused.value) == (
            "the broker refused the connection: bad user name or password (MQTT 3.1.1 return code 4)"
        )
        assert client.version_fallback is not None and "it speaks MQTT 3.1.1" in client.version_fallback


async def test_v311_return_code_4_is_named_as_311_names_it() -> None:
    script = connack_then()

    def refusing(packet: Packet, version: int) -> bytes:
        if isinstance(packet, Connect):
            return Close(ConnAck(False, ReasonCode.BAD_USER_NAME_OR_PASSWORD).encode(4))
        return script(packet, version)

    with fake_broker(refusing) as fake:
        client = MQTTClient(f"mqtt://127.0.0.1:{fake.port}", version=4)
        with pytest.raises(ConnackRefused, match=r"bad user name or password \(MQTT 3\.1\.1 return code 4\)$"):
            await client.connect()


def _refuse_subscribe(packet: Packet, version: int) -> bytes:
    if isinstance(packet, Connect):
        return ConnAck(False).encode(version)
    if isinstance(packet, Subscribe):
        return Close(b"")  # RabbitMQ's answer to a topic the user may not read
    return b""


async def test_subscription_refused_by_closing_is_named_without_reconnecting() -> None:
    with fake_broker(_refuse_subscribe) as fake:
        client = MQTTClient(f"mqtt://127.0.0.1:{fake.port}", version=4, reconnect=False)
        await client.connect()
        with pytest.raises(SubscriptionRefused, match=r"in answer to SUBSCRIBE 'secret/#'") as refused:
            async with asyncio.timeout(5):
                await client.subscribe("secret/#", qos=1)
        assert refused.value.topic_filters == ("secret/#",)
        assert client.closed and fake.connections == 1


async def test_the_same_refusal_on_every_connection_stops_the_reconnects() -> None:
    with fake_broker(_refuse_subscribe) as fake:
        client = MQTTClient(
            f"mqtt://127.0.0.1:{fake.port}", version=4, reconnect=True, reconnect_min_delay=0.01,
            reconnect_max_delay=0.05,
        )  # fmt: skip
        await client.connect()
        with pytest.raises(RetriesExhausted, match=r"SUBSCRIBE 'secret/#'.*3 connections in a row") as stopped:
            async with asyncio.timeout(10):
                await client.subscribe("secret/#", qos=1)
        assert isinstance(stopped.value.cause, SubscriptionRefused)
        assert client.closed and fake.connections == 3


async def test_a_connack_refusal_after_a_lost_connection_stops_after_three() -> None:
    def script(packet: Packet, version: int) -> bytes:
        if isinstance(packet, Connect):
            if fake.connections == 1:
                return ConnAck(False).encode(version)
            return Close(ConnAck(False, ReasonCode.NOT_AUTHORIZED).encode(version))
        return b""

    with fake_broker(script) as fake:
        client = MQTTClient(
            f"mqtt://127.0.0.1:{fake.port}", reconnect=True, reconnect_min_delay=0.01, reconnect_max_delay=0.05
        )
        stream = client.messages()
        await client.connect()
        fake.drop(0)  # the network fails once
        with pytest.raises(RetriesExhausted, match="Not authorized"):
            async with asyncio.timeout(10):
                await stream.get()
        assert client.closed and fake.connections == 4  # the first, then three refusals


async def test_network_failures_are_never_given_up_on() -> None:
    """Connections lost without the broker saying anything: the client keeps reconnecting."""
    with fake_broker(connack_then()) as fake:
        client = MQTTClient(
            f"mqtt://127.0.0.1:{fake.port}", reconnect=True, reconnect_min_delay=0.01, reconnect_max_delay=0.05
        )
        await client.connect()
        try:
            for i in range(4):
                fake.drop(i)
                async with asyncio.timeout(10):
                    while fake.connections < i + 2 or not client.connected:
                        await asyncio.sleep(0.01)
            assert not client.closed
        finally:
            await client.disconnect()


async def test_a_forced_v5_to_a_311_broker_says_what_happened() -> None:
    with fake_broker(_v311_only(b"\x20\x02\x00\x01")) as fake:  # type: ignore[arg-type]
        client = MQTTClient(f"mqtt://127.0.0.1:{fake.port}")
        with pytest.raises(ConnectError, match=r"Unsupported Protocol Version \(0x84\); it does not take MQTT 5\.0"):
            await client.connect()
