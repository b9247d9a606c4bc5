"""Keepalive, reconnect and fault injection between the client and mosquitto."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from benchmarks.netlab import DOWN, UP, FaultProxy
from mqttchat.client import ClientError, MQTTClient, StateChange, Status
from mqttchat.protocol import PacketType
from tests.helpers.brokers import RunningBroker
from tests.helpers.waiting import until


async def test_dead_connection_is_detected_by_keepalive(mosquitto: RunningBroker, proxy_factory) -> None:
    proxy: FaultProxy = await proxy_factory(mosquitto.port)
    changes: list[StateChange] = []
    client = MQTTClient(proxy.url, keepalive=1, reconnect_min_delay=0.05, reconnect_max_delay=0.1)
    client.add_state_listener(changes.append)
    await client.connect()
    proxy.stalled = True  # the network silently stops delivering: no FIN, no RST
    await until(lambda: any(c.status is Status.DISCONNECTED for c in changes), timeout=5)
    lost = next(c for c in changes if c.status is Status.DISCONNECTED)
    assert "PINGRESP" in str(lost.error)
    proxy.stalled = False
    await until(lambda: client.connected and client.stats.connects == 2)
    await client.disconnect()
    assert changes[-1].status is Status.CLOSED


async def test_reconnect_resubscribes_when_the_session_is_gone(
    mosquitto_factory: Callable[..., RunningBroker],
) -> None:
    broker = mosquitto_factory()
    port = broker.port
    client = MQTTClient(broker.url, reconnect_min_delay=0.05, reconnect_max_delay=0.2)
    await client.connect()
    await client.subscribe("re/#", qos=1)
    stream = client.messages()
    broker.stop()
    await until(lambda: client.status is Status.RECONNECTING)
    broker2 = mosquitto_factory(port=port)  # a fresh broker on the same port: no session
    await until(lambda: client.connected, timeout=15)
    async with MQTTClient(broker2.url) as pub:
        await pub.publish("re/x", "after restart", qos=1)
    async with asyncio.timeout(5):
        assert (await stream.get()).payload == b"after restart"
    await client.disconnect()


async def test_publishes_made_while_disconnected_are_sent_after_reconnect(
    mosquitto: RunningBroker, proxy_factory
) -> None:
    proxy: FaultProxy = await proxy_factory(mosquitto.port)
    async with MQTTClient(mosquitto.url, client_id="watch") as watcher:
        await watcher.subscribe("offline/#", qos=1)
        stream = watcher.messages()
        client = MQTTClient(proxy.url, reconnect_min_delay=0.3, reconnect_max_delay=0.3)
        await client.connect()
        proxy.cut_all()
        await until(lambda: not client.connected)
        pending = [asyncio.create_task(client.publish("offline/x", str(i), qos=i % 3)) for i in range(9)]
        await asyncio.sleep(0)
        assert not any(t.done() for i, t in enumerate(pending) if i % 3)  # QoS 1/2 wait for their acks
        await until(lambda: client.connected)
        results = await asyncio.gather(*pending)
        assert all(r.ok for r in results)
        async with asyncio.timeout(5):
            got = [(await stream.get()).payload for _ in range(9)]
        assert sorted(got) == [str(i).encode() for i in range(9)]
        for qos in range(3):  # mosquitto forwards QoS 2 at PUBREL: order holds within a QoS level
            assert [g for g in got if int(g) % 3 == qos] == [str(i).encode() for i in range(qos, 9, 3)]
        await client.disconnect()


async def test_operations_fail_cleanly_once_closed(mosquitto: RunningBroker) -> None:
    client = MQTTClient(mosquitto.url)
    await client.connect()
    await client.disconnect()
    with pytest.raises(ClientError):
        await client.publish("t", "x")


# Each case: the packet whose delivery the proxy prevents by cutting the connection.
QOS1_CUTS = [(UP, PacketType.PUBLISH), (DOWN, PacketType.PUBACK), (DOWN, PacketType.PUBLISH), (UP, PacketType.PUBACK)]
QOS2_CUTS = [
    (UP, PacketType.PUBLISH), (DOWN, PacketType.PUBREC), (UP, PacketType.PUBREL), (DOWN, PacketType.PUBCOMP),
    (DOWN, PacketType.PUBLISH), (UP, PacketType.PUBREC), (DOWN, PacketType.PUBREL), (UP, PacketType.PUBCOMP),
]  # fmt: skip


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize(
    ("qos", "direction", "packet_type", "nth"),
    [(1, d, t, n) for d, t in QOS1_CUTS for n in (1, 7)] + [(2, d, t, n) for d, t in QOS2_CUTS for n in (1, 7)],
    ids=lambda v: v.name if isinstance(v, PacketType) else str(v),
)
async def test_cut_at_each_step_loses_and_duplicates_nothing(
    mosquitto: RunningBroker, proxy_factory, version: int, qos: int, direction: str, packet_type: PacketType, nth: int
) -> None:
    """Publisher and subscriber both behind the proxy with persistent sessions; the link is cut once at one step
    of the QoS flow. After reconnecting, every message arrives in order, QoS 2 exactly once."""
    proxy: FaultProxy = await proxy_factory(mosquitto.port)
    session = {"clean_start": False, "session_expiry": 600} if version == 5 else {"clean_start": False}
    fast = {"reconnect_min_delay": 0.05, "reconnect_max_delay": 0.1, "version": version, **session}
    sub = MQTTClient(proxy.url, client_id=f"sub-{qos}", **fast)
    pub = MQTTClient(proxy.url, client_id=f"pub-{qos}", **fast)
    await sub.connect()
    await sub.subscribe("faults/#", qos=qos)
    stream = sub.messages()
    await pub.connect()
    proxy.cut_on(direction, packet_type, nth)
    n = 20
    results = await asyncio.gather(*(pub.publish("faults/x", f"{i:03d}", qos=qos) for i in range(n)))
    assert all(r.ok for r in results)
    got: list[bytes] = []
    async with asyncio.timeout(15):
        while len(set(got)) < n:
            got.append((await stream.get()).payload)
    await asyncio.sleep(0.2)
    while len(stream):
        got.append(stream.get_nowait().payload)  # type: ignore[union-attr]
    assert proxy.cuts == 1
    first_seen = list(dict.fromkeys(got))
    assert first_seen == [f"{i:03d}".encode() for i in range(n)]
    if qos == 2:
        assert len(got) == n, f"QoS 2 duplicated: {len(got) - n}"
    await pub.disconnect()
    await sub.disconnect()


async def test_a_taken_over_session_does_not_reconnect(broker_factory) -> None:
    """Two clients with one id and reconnect on would take the session from each other for ever: an MQTT 5
    broker says "Session taken over" (0x8E) and the replaced client stops."""
    broker = await broker_factory()
    changes: list[StateChange] = []
    first = MQTTClient(broker.url, client_id="twin", reconnect_min_delay=0.05, reconnect_max_delay=0.1)
    first.add_state_listener(changes.append)
    await first.connect()
    second = MQTTClient(broker.url, client_id="twin", reconnect_min_delay=0.05, reconnect_max_delay=0.1)
    await second.connect()
    await until(lambda: first.status is Status.CLOSED)
    assert "Session taken over" in str(changes[-1].error)
    await asyncio.sleep(0.5)
    assert second.connected and second.stats.connects == 1 and first.stats.connects == 1
    await second.disconnect()


async def test_short_lived_connections_keep_backing_off(mosquitto: RunningBroker) -> None:
    """mosquitto 2.0 closes a taken-over 3.1.1/5.0 connection without a reason: the backoff must keep growing
    across connections that do not last, instead of restarting at the minimum delay every time."""
    changes: list[StateChange] = []
    options = {"client_id": "twin", "reconnect_min_delay": 0.05, "reconnect_max_delay": 5.0}
    first = MQTTClient(mosquitto.url, **options)
    second = MQTTClient(mosquitto.url, **options)
    first.add_state_listener(changes.append)
    await first.connect()
    await second.connect()
    await asyncio.sleep(3)
    attempts = [c.attempt for c in changes if c.status is Status.RECONNECTING]
    assert attempts[:3] == [1, 2, 3] and attempts == sorted(attempts)
    assert first.stats.connects + second.stats.connects < 30  # without the backoff: hundreds
    await first.disconnect()
    await second.disconnect()
