"""mqttchat's library and CLI through brokers nobody here wrote: RabbitMQ 3.10 and aedes 1, TCP and WebSocket."""

from __future__ import annotations

import asyncio

import pytest

from mqttchat.client import Message, MQTTClient
from tests.peers.brokers import PEERS, CliSub, PeerBroker, resolve_peer, run_cli


@pytest.fixture(params=PEERS)
def peer(request: pytest.FixtureRequest) -> PeerBroker:
    return resolve_peer(request, request.param)


async def collect(stream: object, count: int, timeout: float = 15.0) -> list[Message]:
    got: list[Message] = []
    async with asyncio.timeout(timeout):
        async for message in stream:  # type: ignore[attr-defined]
            got.append(message)
            if len(got) == count:
                return got
    return got


async def test_library_qos_in_order(peer: PeerBroker, unique: str) -> None:
    async with (
        MQTTClient(peer.url, client_id=f"sub-{unique}", version=4) as sub,
        MQTTClient(peer.url, client_id=f"pub-{unique}", version=4) as pub,
    ):
        stream = sub.messages()
        assert await sub.subscribe(f"lib/{unique}/#", qos=1) == [1]
        for i in range(30):
            result = await pub.publish(f"lib/{unique}/{i % 3}", str(i), qos=i % 2)
            assert result.ok
        got = await collect(stream, 30)
        # MQTT orders messages of one QoS (4.6): each QoS in the order sent.
        for qos in (0, 1):
            assert [m.payload for m in got if m.qos == qos] == [str(i).encode() for i in range(30) if i % 2 == qos]


async def test_library_retained_on_an_exact_subscription(peer: PeerBroker, unique: str) -> None:
    topic = f"lib/{unique}/retained"
    async with MQTTClient(peer.url, client_id=f"pub-{unique}", version=4) as pub:
        assert (await pub.publish(topic, "kept", qos=1, retain=True)).ok
    async with MQTTClient(peer.url, client_id=f"sub-{unique}", version=4) as sub:
        stream = sub.messages()
        await sub.subscribe(topic, qos=1)
        (message,) = await collect(stream, 1)
        assert (message.payload, message.retain) == (b"kept", True)
        assert (await sub.publish(topic, b"", qos=1, retain=True)).ok  # cleared, for the next run


async def test_library_persistent_session_queues_while_away(peer: PeerBroker, unique: str) -> None:
    client_id = f"away-{unique}"
    async with MQTTClient(peer.url, client_id=client_id, version=4, clean_start=False) as away:
        await away.subscribe(f"lib/{unique}/queued", qos=1)
    async with MQTTClient(peer.url, client_id=f"pub-{unique}", version=4) as pub:
        for i in range(5):
            assert (await pub.publish(f"lib/{unique}/queued", str(i), qos=1)).ok
    back = MQTTClient(peer.url, client_id=client_id, version=4, clean_start=False)
    stream = back.messages()
    caps = await back.connect()
    try:
        assert caps.session_present
        got = await collect(stream, 5)
        assert [m.payload for m in got] == [str(i).encode() for i in range(5)]
    finally:
        await back.disconnect()
    async with MQTTClient(peer.url, client_id=client_id, version=4, clean_start=True):
        pass  # the session is dropped


def test_cli_pub_sub(peer: PeerBroker, unique: str) -> None:
    sub = CliSub(peer.url, "-V", "311", "-t", f"cli/{unique}/#", "-v", "-C", "3", "-q", "1")
    for qos, text in ((0, "zero"), (1, "one"), (1, "two")):
        done = run_cli("pub", "-L", peer.url, "-V", "311", "-t", f"cli/{unique}/{qos}", "-m", text, "-q", str(qos))
        assert done.returncode == 0, done.stderr
    code, out, err = sub.finish()
    assert code == 0, err
    assert out.decode().splitlines() == [f"cli/{unique}/0 zero", f"cli/{unique}/1 one", f"cli/{unique}/1 two"]
