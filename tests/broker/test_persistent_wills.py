"""Wills of persistent sessions outlive the broker: a broker that stops or crashes while a client is connected
publishes that client's will after its next start, unless the client comes back first (the chat's presence
depends on it: a member whose machine hosted the broker and crashed must not stay "online" for ever)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mqttchat.broker import persistence
from mqttchat.broker.config import with_overrides
from mqttchat.broker.server import Broker
from mqttchat.client import MQTTClient
from mqttchat.protocol import Properties, Will
from tests.helpers.brokers import broker_config
from tests.helpers.waiting import until

GRACE = 0.5


@pytest.fixture(autouse=True)
def short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(persistence, "RESTART_WILL_GRACE", GRACE)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Path]:
    yield tmp_path / "store.sqlite3"


async def start(store: Path, port: int = 0) -> Broker:
    config = with_overrides(broker_config(persistence=True, persistence_file=store), port=port)
    broker = Broker(config)
    await broker.start()
    return broker


def crash(broker: Broker) -> None:
    """What kill -9 leaves behind: the store as last committed; no goodbye, no will handling, no final writes."""
    store = broker.core.persistence
    store.commit()
    broker.core.persistence = None
    store.db.close()
    store._unlock()
    for listener in broker.listeners:
        listener.server.close()
    for task in broker._tasks:
        task.cancel()
    broker.core.stopping = True  # so that the sockets torn down below publish nothing
    for conn in list(broker.connections):
        conn.close(clean=True)


def member(url: str, client_id: str, delay: int = 0) -> MQTTClient:
    props = Properties(will_delay_interval=delay) if delay else Properties()
    return MQTTClient(url, client_id=client_id, clean_start=False, session_expiry=3600, reconnect=False,
                      will=Will(f"presence/{client_id}", b"offline", 1, True, props))  # fmt: skip


async def watcher(url: str) -> tuple[MQTTClient, Callable[[], list[bytes]]]:
    client = MQTTClient(url, client_id="watcher", reconnect=False)
    got: list[bytes] = []
    client.add_message_handler(lambda message: got.append(message.payload))
    await client.connect()
    await client.subscribe("presence/#", qos=1)
    return client, lambda: got


@pytest.mark.parametrize("how", ["stop", "crash"])
async def test_a_client_that_does_not_come_back_gets_its_will_after_the_restart(store: Path, how: str) -> None:
    broker = await start(store)
    port = broker.port
    bob = member(broker.url, "bob")
    await bob.connect()
    await bob.publish("presence/bob", b"online", qos=1, retain=True)
    if how == "stop":
        await broker.stop()
    else:
        crash(broker)
    assert broker.core.retained.get("presence/bob").payload == b"online"  # type: ignore[union-attr]
    await bob.disconnect()
    broker = await start(store, port)
    try:
        watch, got = await watcher(broker.url)
        assert got() in ([], [b"online"])
        await until(lambda: b"offline" in got())  # published after the grace period
        retained = broker.core.retained.get("presence/bob")
        assert retained is not None and retained.payload == b"offline"
        await watch.disconnect()
    finally:
        await broker.stop()
    broker = await start(store, port)  # published once: not again after another restart
    try:
        await asyncio.sleep(GRACE * 2)
        assert broker.core.persistence.db.execute("SELECT COUNT(*) FROM wills").fetchone()[0] == 0
    finally:
        await broker.stop()


async def test_a_client_that_comes_back_in_time_is_not_announced_gone(store: Path) -> None:
    broker = await start(store)
    port = broker.port
    bob = member(broker.url, "bob")
    await bob.connect()
    await broker.stop()
    await bob.disconnect()
    broker = await start(store, port)
    try:
        watch, got = await watcher(broker.url)
        back = member(broker.url, "bob")
        await back.connect()  # within the grace period
        await asyncio.sleep(GRACE * 3)
        assert b"offline" not in got()
        await back.disconnect()  # clean: no will either
        await asyncio.sleep(GRACE)
        assert b"offline" not in got()
        await watch.disconnect()
    finally:
        await broker.stop()


async def test_a_will_waiting_for_its_delay_survives_a_restart(store: Path) -> None:
    broker = await start(store)
    port = broker.port
    bob = member(broker.url, "bob", delay=2)
    await bob.connect()
    assert bob._link is not None
    bob._link.abort()  # an unclean end: the will waits 2 s
    await until(lambda: broker.core.sessions["bob"].will_handle is not None)
    await broker.stop()
    broker = await start(store, port)
    try:
        watch, got = await watcher(broker.url)
        await until(lambda: b"offline" in got(), timeout=5)
        await watch.disconnect()
    finally:
        await broker.stop()
        await bob.disconnect()


async def test_a_clean_disconnect_leaves_no_will_behind(store: Path) -> None:
    broker = await start(store)
    port = broker.port
    bob = member(broker.url, "bob")
    await bob.connect()
    await bob.disconnect()
    await broker.stop()
    broker = await start(store, port)
    try:
        assert broker.core.persistence.db.execute("SELECT COUNT(*) FROM wills").fetchone()[0] == 0
        assert broker.core.sessions["bob"].will is None
    finally:
        await broker.stop()
