"""The runtime and the lasting history: every message the explorer sees is stored, and a later start shows each
topic's last known value, stale until a live message replaces it. Against the embedded broker, no screen."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mqttchat.broker.server import Broker
from mqttchat.client import ClientOptions, MQTTClient, parse_url
from mqttchat.explorer.history_store import HistoryQuery, HistoryReader
from mqttchat.runtime import Runtime
from tests.helpers.waiting import until


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path / "data"


def runtime(broker: Broker, client_id: str = "history-test", **kwargs: object) -> Runtime:
    options = ClientOptions(parse_url(broker.url), client_id=client_id)
    return Runtime(options, (("#", 1),), embed_broker=False, **kwargs)  # type: ignore[arg-type]


async def publish(broker: Broker, *messages: tuple[str, bytes]) -> None:
    client = MQTTClient(ClientOptions(parse_url(broker.url), client_id="history-publisher"))
    await client.connect()
    try:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)
    finally:
        await client.disconnect()


async def test_messages_are_stored_and_the_next_start_shows_them_stale(broker: Broker) -> None:
    first = runtime(broker, history_budget=16 * 1024 * 1024)
    await first.start()
    try:
        assert first.history is not None and first.history_restored == 0
        await publish(broker, ("home/temp", b"21"), ("home/door", b"closed"), ("home/temp", b"22"))
        await until(lambda: first.tree.stats.messages == 3)
        path = first.history_path
    finally:
        await first.stop()
    with HistoryReader(path) as reader:
        stored = [(m.topic, m.payload) for m in reader.search(HistoryQuery())]
    assert stored == [("home/temp", b"21"), ("home/door", b"closed"), ("home/temp", b"22")]

    second = runtime(broker, history_budget=16 * 1024 * 1024)
    await second.open_history()  # what start() does first, before the connection brings live messages
    try:
        tree = second.tree
        temp, door = tree.get("home/temp"), tree.get("home/door")
        assert temp is not None and temp.last is not None and temp.last.payload == b"22" and temp.last.stale
        assert door is not None and door.last is not None and door.last.stale
        assert second.history_restored == 2 and tree.stats.stale_topics == 2
        await second.start()
        await publish(broker, ("home/temp", b"23"))
        await until(lambda: temp.last is not None and temp.last.payload == b"23")
        assert not temp.last.stale and door.last.stale
        assert tree.stats.stale_topics == 1
    finally:
        await second.stop()
    with HistoryReader(path) as reader:
        # The restored values are not stored again; the live one is.
        assert [m.payload for m in reader.search(HistoryQuery(topics=("home/temp",)))] == [b"21", b"22", b"23"]


async def test_no_budget_keeps_no_history(broker: Broker, data_home: Path) -> None:
    plain = runtime(broker)
    await plain.start()
    try:
        await publish(broker, ("x", b"1"))
        await until(lambda: plain.tree.stats.messages == 1)
        assert plain.history is None
    finally:
        await plain.stop()
    assert not (data_home / "mqttchat" / "history").exists()


async def test_a_store_that_cannot_be_opened_is_said_and_the_app_goes_on(broker: Broker) -> None:
    broken = runtime(broker, history_budget=1024 * 1024)
    broken.history_path.parent.mkdir(parents=True)
    broken.history_path.write_bytes(b"this is no database" * 512)
    await broken.start()
    try:
        assert broken.history is None
        assert broken.history_problem is not None and str(broken.history_path) in broken.history_problem
        await publish(broker, ("x", b"1"))
        await until(lambda: broken.tree.stats.messages == 1)
    finally:
        await broken.stop()


async def test_a_second_app_on_the_same_broker_reads_the_history_but_does_not_write_it(broker: Broker) -> None:
    first = runtime(broker, history_budget=16 * 1024 * 1024)
    await first.start()
    second = runtime(broker, "history-test-2", history_budget=16 * 1024 * 1024)
    try:
        await publish(broker, ("home/temp", b"21"))
        await until(lambda: first.tree.stats.messages == 1)
        assert first.history is not None and first.history.flush()
        await second.start()
        assert second.history is None
        assert second.history_problem is not None and "another mqttchat" in second.history_problem
        assert second.history_elsewhere and not first.history_elsewhere
        temp = second.tree.get("home/temp")
        assert temp is not None and temp.last is not None and temp.last.payload == b"21"
        await publish(broker, ("home/temp", b"22"))
        await until(lambda: second.tree.stats.messages == 2 and first.tree.stats.messages == 2)
    finally:
        await second.stop()
        await first.stop()
    with HistoryReader(first.history_path) as reader:
        assert [m.payload for m in reader.search(HistoryQuery())] == [b"21", b"22"]  # stored once


async def test_every_message_the_tree_shows_is_in_the_store(broker: Broker) -> None:
    """Messages in quick succession over many topics, more than one of the writer's chunks: the store holds every
    one the tree counted, and each topic's last value there is the one the tree shows."""
    explorer = runtime(broker, history_budget=16 * 1024 * 1024)
    await explorer.start()
    try:
        client = MQTTClient(ClientOptions(parse_url(broker.url), client_id="history-flood"))
        await client.connect()
        try:
            for i in range(2500):
                await client.publish(f"flood/{i % 97}/value", f'{{"n": {i}}}'.encode(), qos=0)
        finally:
            await client.disconnect()
        await until(lambda: explorer.tree.stats.messages == 2500)
        writer = explorer.history
        assert writer is not None
        shown = {}
        for i in range(97):
            entry = explorer.tree.get(f"flood/{i}/value")
            assert entry is not None and entry.last is not None
            shown[f"flood/{i}/value"] = entry.last.payload
        path = explorer.history_path
    finally:
        await explorer.stop()  # writes what is queued
    assert writer.stats.written == 2500 and writer.stats.dropped == 0 and writer.stats.error is None
    with HistoryReader(path) as reader:
        assert reader.summary()["messages"] == 2500
        last = {m.topic: m.payload for m in reader.state_at(time.time())}
    assert last == shown
