"""Persistence: what survives a clean restart and a kill -9 of `mqttchat broker` (SQLite, WAL, group commit)."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mqttchat.broker.server import Broker
from mqttchat.client import MQTTClient
from tests.helpers.brokers import RunningBroker, broker_config, start_mqttchat_broker
from tests.helpers.reading import stop_reading


def restart(broker: RunningBroker, kill: bool) -> RunningBroker:
    if kill:
        broker.kill()
    else:
        broker.stop()
    return start_mqttchat_broker(broker.directory / "broker.toml", broker.port, broker.log)


async def drain(client: MQTTClient, stream: object, count: int, timeout: float = 10.0) -> list[bytes]:
    got: list[bytes] = []
    async with asyncio.timeout(timeout):
        while len(got) < count:
            got.append((await stream.get()).payload)  # type: ignore[attr-defined]
    return got


async def leave(broker: RunningBroker, topic_filter: str, qos: int) -> None:
    """The persistent subscriber "away" subscribes, then goes offline."""
    away = MQTTClient(broker.url, client_id="away", clean_start=False, session_expiry=3600)
    await away.connect()
    await away.subscribe(topic_filter, qos=qos)
    await away.disconnect()


async def come_back(broker: RunningBroker, count: int) -> list[bytes]:
    """ "away" reconnects: the ``count`` payloads it is sent, after checking that nothing more follows."""
    back = MQTTClient(broker.url, client_id="away", clean_start=False, session_expiry=3600)
    stream = back.messages()
    caps = await back.connect()
    assert caps.session_present
    got = await drain(back, stream, count)
    await asyncio.sleep(0.4)
    assert len(stream) == 0, "nothing twice, nothing left over"
    await back.disconnect()
    return got


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "kill-9"])
async def test_retained_and_sessions_survive_a_restart(
    broker_process: Callable[..., RunningBroker], tmp_path: Path, kill: bool
) -> None:
    db = tmp_path / "state.sqlite3"
    broker = broker_process(
        f"persistence = true\npersistence_file = '{db}'\nmax_inflight_messages = 0\nmax_queued_messages = 0"
    )
    try:
        # A persistent subscriber, offline while messages arrive for it.
        away = MQTTClient(broker.url, client_id="away", clean_start=False, session_expiry=3600)
        await away.connect()
        await away.subscribe("chat/#", qos=2, subscription_identifier=9)
        await away.disconnect()
        async with MQTTClient(broker.url, client_id="pub") as pub:
            await pub.publish("config/a", "retained A", qos=1, retain=True)
            await pub.publish("config/b", "retained B", qos=1, retain=True, content_type="text/plain")
            for i in range(50):
                result = await pub.publish("chat/room", f"{i:02d}", qos=1 + i % 2)
                assert result.ok  # acknowledged: so it must survive even kill -9
        broker = restart(broker, kill)
        back = MQTTClient(broker.url, client_id="away", clean_start=False, session_expiry=3600)
        stream = back.messages()
        caps = await back.connect()
        assert caps.session_present
        got = await drain(back, stream, 50)
        assert got == [f"{i:02d}".encode() for i in range(50)]
        await asyncio.sleep(0.3)
        assert len(stream) == 0  # nothing twice
        await back.subscribe("config/#", qos=1)
        retained = await drain(back, stream, 2)
        assert sorted(retained) == [b"retained A", b"retained B"]
        await back.disconnect()
    finally:
        broker.stop()


async def test_in_flight_deliveries_resume_after_kill(
    broker_process: Callable[..., RunningBroker], tmp_path: Path
) -> None:
    """Messages sent to a persistent subscriber but not yet acknowledged by it are resent after a crash."""
    db = tmp_path / "state.sqlite3"
    broker = broker_process(f"persistence = true\npersistence_file = '{db}'\nmax_inflight_messages = 5")
    try:
        slow = MQTTClient(broker.url, client_id="slow", clean_start=False, session_expiry=600, receive_maximum=5)
        await slow.connect()
        await slow.subscribe("work/#", qos=1)
        # Stop acknowledging: the broker keeps 5 in flight and queues the rest.
        stop_reading(slow)
        async with MQTTClient(broker.url, client_id="producer") as pub:
            for i in range(20):
                assert (await pub.publish("work/x", f"{i:02d}", qos=1)).ok
        broker = restart(broker, kill=True)
        await slow.disconnect()
        again = MQTTClient(broker.url, client_id="slow", clean_start=False, session_expiry=600)
        stream = again.messages()
        await again.connect()
        got = await drain(again, stream, 20)
        assert got == [f"{i:02d}".encode() for i in range(20)]
        await again.disconnect()
    finally:
        broker.stop()


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "kill-9"])
async def test_queued_messages_keep_their_order_whatever_the_publishers_packet_ids(
    broker_process: Callable[..., RunningBroker], tmp_path: Path, kill: bool
) -> None:
    """Two publishers use the same packet identifiers (each counts from 1). Their messages queued for an offline
    subscriber are stored without those identifiers: restored, they are still queued (not "in flight" under a
    publisher's id, where equal ids overwrote each other and one message resurfaced after a later restart)."""
    db = tmp_path / "state.sqlite3"
    broker = broker_process(
        f"persistence = true\npersistence_file = '{db}'\nmax_inflight_messages = 0\nmax_queued_messages = 0"
    )
    try:
        await leave(broker, "chat/#", 2)
        async with MQTTClient(broker.url, client_id="pa") as a, MQTTClient(broker.url, client_id="pb") as b:
            for i in range(20):
                assert (await a.publish("chat/a", f"a{i:02d}", qos=1)).ok
                assert (await b.publish("chat/b", f"b{i:02d}", qos=2)).ok
        broker = restart(broker, kill)
        with sqlite3.connect(db) as conn:
            ids = [row[0] for row in conn.execute("SELECT packet_id FROM messages WHERE client_id = 'away'")]
        assert ids == [None] * 40  # queued, never sent: no packet identifier yet
        assert await come_back(broker, 40) == [f"{p}{i:02d}".encode() for i in range(20) for p in "ab"]
        broker = restart(broker, kill)
        assert await come_back(broker, 0) == []  # nothing left over to resurface after another restart
    finally:
        broker.stop()


async def test_rows_sharing_a_packet_id_from_an_older_store_are_all_delivered(
    broker_process: Callable[..., RunningBroker], tmp_path: Path
) -> None:
    """A store written before the fix above may hold queued rows under (publisher) identifiers, even marked
    "released" by an id they shared with a real in-flight message. The real one gets its PUBREL; every other row
    is delivered once, in order, and none is left behind for a later restart."""
    db = tmp_path / "state.sqlite3"
    broker = broker_process(f"persistence = true\npersistence_file = '{db}'")
    try:
        await leave(broker, "old/#", 2)
        broker.stop()
        rows = [  # payload, packet id, released
            (b"in flight, PUBREC received", 7, 1),
            (b"queued, shares its id", 7, 1),
            (b"queued", None, 0),
            (b"queued after a queued one", 8, 0),
        ]
        with sqlite3.connect(db) as conn:
            for row, (payload, pid, released) in enumerate(rows, start=1):
                conn.execute(
                    "INSERT INTO messages (id, client_id, topic, payload, qos, retain, packet_id, released)"
                    " VALUES (?, 'away', 'old/x', ?, 2, 0, ?, ?)",
                    (row, payload, pid, released),
                )
        broker = restart(broker, kill=False)
        assert await come_back(broker, 3) == [payload for payload, _, _ in rows[1:]]
        broker = restart(broker, kill=False)
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
    finally:
        broker.stop()


async def test_pubrels_are_resent_in_the_order_the_pubrecs_arrived(
    broker_process: Callable[..., RunningBroker], tmp_path: Path
) -> None:
    """[MQTT-4.6.0-4] across a restart too: the store keeps the order of PUBRECs, not the order of sending."""
    from tests.helpers.conformance import CONNACK, PUBLISH, PUBREL, RawClient

    resume = {"clean": False, "properties": b"\x05\x11\x00\x00\x0e\x10"}  # Session Expiry 3600

    db = tmp_path / "state.sqlite3"
    broker = broker_process(f"persistence = true\npersistence_file = '{db}'")
    raw = RawClient(broker.port)
    try:
        await leave(broker, "rel/#", 2)
        async with MQTTClient(broker.url, client_id="pub") as pub:
            for i in range(3):
                assert (await pub.publish("rel/x", f"m{i}", qos=2)).ok
        # "away" receives the three, answers PUBREC for the last first, then stops (no PUBCOMP).
        raw.connect("away", **resume)
        publishes = [raw.expect(PUBLISH) for _ in range(3)]
        ids = [p.body[len(b"rel/x") + 2 : len(b"rel/x") + 4] for p in publishes]
        for pid in reversed(ids):
            raw.send(b"\x50\x02" + pid)
        assert [raw.expect(PUBREL).body[:2] for _ in range(3)] == list(reversed(ids))
        raw.close()
        broker = restart(broker, kill=True)
        raw = RawClient(broker.port)
        assert raw.connect("away", **resume).type == CONNACK
        assert [raw.expect(PUBREL).body[:2] for _ in range(3)] == list(reversed(ids))
    finally:
        raw.close()
        broker.stop()


async def test_a_message_too_large_for_the_subscriber_leaves_no_row(
    broker_process: Callable[..., RunningBroker], tmp_path: Path
) -> None:
    """A message over the subscriber's Maximum Packet Size is dropped (MQTT 5 3.1.2.11.4): not stored either, or it
    would come back after every restart."""
    db = tmp_path / "state.sqlite3"
    broker = broker_process(f"persistence = true\npersistence_file = '{db}'")
    try:
        small = MQTTClient(broker.url, client_id="small", clean_start=False, session_expiry=600,
                           maximum_packet_size=200)  # fmt: skip
        stream = small.messages()
        await small.connect()
        await small.subscribe("big/#", qos=1)
        async with MQTTClient(broker.url, client_id="pub") as pub:
            assert (await pub.publish("big/x", b"x" * 1000, qos=1)).ok
            assert (await pub.publish("big/x", b"fits", qos=1)).ok
        async with asyncio.timeout(5):
            assert (await stream.get()).payload == b"fits"
        await asyncio.sleep(0.3)
        await small.disconnect()
        broker.stop()
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
    finally:
        broker.stop()


# ------------------------------------------------------------------------------------------ a private store


@pytest.mark.parametrize("umask", [0o000, 0o022], ids=["umask-000", "umask-022"])
async def test_the_store_is_private_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    """Issue 13, item 10: the store (chat messages, DMs) was created 0644 in a 0755 directory under umask 022.
    Now its directory is created 0700, and the database, its WAL and shared-memory files and its lock 0600."""
    store = tmp_path / "new" / "dir" / "state.sqlite3"
    old = os.umask(umask)
    try:
        async with Broker(broker_config(persistence=True, persistence_file=store)) as broker:
            async with MQTTClient(broker.url) as client:
                await client.publish("kept", "x", qos=1, retain=True)
            broker.core.persistence.commit()
            files = [store, *(store.with_name(store.name + end) for end in ("-wal", "-shm", ".lock"))]
            assert all(f.exists() for f in files)
            assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: 0o600 for f in files}
            assert stat.S_IMODE(store.parent.stat().st_mode) == 0o700
    finally:
        os.umask(old)


async def test_an_existing_world_readable_store_is_made_private(tmp_path: Path) -> None:
    store = tmp_path / "state.sqlite3"
    sqlite3.connect(store).close()
    store.chmod(0o644)
    async with Broker(broker_config(persistence=True, persistence_file=store)):
        assert stat.S_IMODE(store.stat().st_mode) == 0o600


# ------------------------------------------------------------------------------------------ a damaged store


def _broker_command(conf: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("mqttchat")
    cmd = [exe] if exe else [sys.executable, "-m", "mqttchat"]
    return subprocess.run([*cmd, "broker", "-c", str(conf)], check=False, capture_output=True, text=True, timeout=30)


def _store_config(tmp_path: Path, store: Path) -> Path:
    conf = tmp_path / "broker.toml"
    conf.write_text(f"persistence = true\npersistence_file = '{store}'\n[[listener]]\nport = 0\n")
    return conf


def test_a_store_that_is_not_a_database_is_one_line_naming_the_file(tmp_path: Path) -> None:
    """Issue 13, item 11: random bytes or a truncated store ended in a 26-line traceback naming no file."""
    store = tmp_path / "state.sqlite3"
    for damage in ("random", "truncated"):
        if damage == "random":
            store.write_bytes(random.Random(1).randbytes(20_000))
        else:
            db = sqlite3.connect(store)
            db.execute("CREATE TABLE retained (topic TEXT PRIMARY KEY, payload BLOB)")
            db.executemany("INSERT INTO retained VALUES (?, ?)", [(f"t/{i}", b"x" * 300) for i in range(2000)])
            db.commit()
            db.close()
            with store.open("r+b") as f:
                f.truncate(store.stat().st_size // 2)
        done = _broker_command(_store_config(tmp_path, store))
        assert done.returncode == 1, done
        assert "Traceback" not in done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert str(store) in lines[0] and "cannot listen" not in lines[0]
        assert ("file is not a database" if damage == "random" else "malformed") in lines[0]
        store.unlink()


def test_a_store_directory_that_cannot_be_created_says_so(tmp_path: Path) -> None:
    """It said "cannot listen"."""
    (tmp_path / "a-file").write_text("")
    store = tmp_path / "a-file" / "dir" / "state.sqlite3"
    done = _broker_command(_store_config(tmp_path, store))
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"mqttchat broker: persistence file {store}: cannot create its directory {store.parent}: Not a directory"
    )


async def test_bad_rows_are_skipped_and_counted_never_fatal(
    broker_process: Callable[..., RunningBroker], tmp_path: Path
) -> None:
    """Issue 13, item 11: one bad row (bad properties, a text expiry, retain handling 9) stopped start-up; a retained
    row 'r/#' killed every '#' subscriber; a queued message with NUL in its topic locked its owner out. Each is now
    skipped (logged, counted, left in the file) and everything else is restored."""
    db = tmp_path / "state.sqlite3"
    broker = broker_process(f"persistence = true\npersistence_file = '{db}'")
    try:
        await leave(broker, "q/#", 1)
        async with MQTTClient(broker.url, client_id="pub") as pub:
            await pub.publish("good/retained", "kept", qos=1, retain=True)
            await pub.publish("q/1", "queued", qos=1)
        broker.stop()
        store = sqlite3.connect(db)
        with store:
            store.execute("INSERT INTO retained VALUES ('bad/props', x'01', 0, x'ff', NULL, 0)")
            store.execute("INSERT INTO retained VALUES ('bad/expiry', x'01', 0, NULL, 'soon', 0)")
            store.execute("INSERT INTO retained VALUES ('r/#', x'01', 0, NULL, NULL, 0)")
            store.execute("INSERT INTO subscriptions VALUES ('away', 'bad/rh', 1, 0, 0, 9, NULL)")
            insert = "INSERT INTO messages (id, client_id, topic, payload, qos, retain) VALUES (?, 'away', ?, ?, 1, 0)"
            store.execute(insert, (999, "q/nul\x00here", b"x"))
            store.execute(insert, (1000, "q/2", b"after"))
        store.close()
        broker = restart(broker, kill=False)
        # Everything good is back: the queued message, the retained one; '#' subscribers are not killed.
        assert await come_back(broker, 2) == [b"queued", b"after"]
        async with MQTTClient(broker.url, client_id="everything") as watcher:
            stream = watcher.messages()
            await watcher.subscribe("#", qos=1)
            got = await drain(watcher, stream, 1)
            assert got == [b"kept"]
            assert (await watcher.publish("fence", "after", qos=1)).ok
            assert await drain(watcher, stream, 1) == [b"after"]  # still connected, nothing else came
        log = broker.log_text()
        assert "Traceback" not in log
        skipped = [line for line in log.splitlines() if " row " in line and " skipped: " in line and str(db) in line]
        assert len(skipped) == 5, "\n".join(skipped)
        assert "5 row(s) could not be restored" in log
    finally:
        broker.stop()
