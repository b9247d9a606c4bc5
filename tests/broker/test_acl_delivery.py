"""What the ACL lets through once filters wider than a user's rights are granted: shared subscriptions, and the
queues of sessions restored from persistence before their client comes back."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mqttchat.broker.auth import PasswordFile
from mqttchat.client import ConnackRefused, MQTTClient
from mqttchat.protocol import ReasonCode
from tests.helpers.brokers import RunningBroker, start_mqttchat_broker

ACL = """\
user worker
topic read jobs/#
user mallory
topic read jobs/mallory/#
user alice
topic read users/alice/#
user admin
topic readwrite #
"""
PASSWORDS = {"worker": "w-pw", "mallory": "m-pw", "alice": "a-pw", "admin": "admin-pw"}


def security_files(directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    passwd = PasswordFile()
    for user, password in PASSWORDS.items():
        passwd.set_password(user, password, iterations=1000)
    passwd.save(directory / "passwd")
    (directory / "acl").write_text(ACL)
    return directory / "passwd", directory / "acl"


def url(port: int, user: str) -> str:
    return f"mqtt://{user}:{PASSWORDS[user]}@127.0.0.1:{port}"


async def test_a_shared_subscription_skips_members_that_may_not_read_the_topic(
    broker_factory: Callable[..., Any], tmp_path: Path
) -> None:
    """worker (jobs/#) and mallory (jobs/mallory/#) share `$share/g/jobs/#`: jobs/x all go to worker, none is
    handed to mallory and then dropped; jobs/mallory/... is shared between both."""
    passwd, acl = security_files(tmp_path)
    broker = await broker_factory(password_file=passwd, acl_file=acl, allow_anonymous=False)
    port = broker.port
    got: dict[str, list[bytes]] = {"worker": [], "mallory": []}
    clients = {user: MQTTClient(url(port, user), client_id=f"{user}-1") for user in got}
    for user, client in clients.items():
        client.add_message_handler(lambda m, user=user: got[user].append(m.payload))
        await client.connect()
        assert (await client.subscribe("$share/g/jobs/#", qos=1))[0] == 1
    async with MQTTClient(url(port, "admin"), client_id="admin-1") as admin:
        for i in range(6):
            assert (await admin.publish("jobs/x", f"job{i}", qos=1)).ok
        for i in range(4):
            assert (await admin.publish("jobs/mallory/y", f"m{i}", qos=1)).ok
        async with asyncio.timeout(5):
            while len(got["worker"]) + len(got["mallory"]) < 10:
                await asyncio.sleep(0.02)
    assert [p for p in got["worker"] if p.startswith(b"job")] == [f"job{i}".encode() for i in range(6)]
    assert all(p.startswith(b"m") for p in got["mallory"]) and got["mallory"]  # a share of hers, none of the jobs
    for client in clients.values():
        await client.disconnect()


async def test_a_restored_session_is_still_filtered_by_its_rights(
    broker_process: Callable[..., RunningBroker], tmp_path: Path
) -> None:
    """alice (users/alice/#) is away with a `#` subscription when the broker restarts: what arrives for others
    is not queued (nor stored) for her; what she may read is."""
    passwd, acl = security_files(tmp_path / "security")
    db = tmp_path / "state.sqlite3"
    broker = broker_process(
        f"persistence = true\npersistence_file = '{db}'\npassword_file = '{passwd}'\nacl_file = '{acl}'\n"
        "allow_anonymous = false"
    )
    try:
        alice = MQTTClient(url(broker.port, "alice"), client_id="alice-away", clean_start=False, session_expiry=600)
        await alice.connect()
        assert (await alice.subscribe("#", qos=1))[0] == 1
        await alice.disconnect()
        broker.stop()
        broker = start_mqttchat_broker(broker.directory / "broker.toml", broker.port, broker.log)
        async with MQTTClient(url(broker.port, "admin"), client_id="admin-1") as admin:
            for i in range(5):
                assert (await admin.publish(f"users/bob/{i}", "not for alice", qos=1)).ok
            assert (await admin.publish("users/alice/inbox", "for alice", qos=1)).ok
        with sqlite3.connect(db) as conn:
            stored = [row[0] for row in conn.execute("SELECT topic FROM messages WHERE client_id = 'alice-away'")]
        assert stored == ["users/alice/inbox"]
        back = MQTTClient(url(broker.port, "alice"), client_id="alice-away", clean_start=False, session_expiry=600)
        stream = back.messages()
        await back.connect()
        async with asyncio.timeout(5):
            assert (await stream.get()).payload == b"for alice"
        await asyncio.sleep(0.3)
        assert len(stream) == 0
        await back.disconnect()
    finally:
        broker.stop()


async def test_client_id_ownership_survives_a_restart_and_needs_a_checked_login(
    broker_process: Callable[..., RunningBroker], tmp_path: Path
) -> None:
    """A session made with a checked password belongs to its user across a restart (another user is refused its
    client id). One from a store written before sessions had owners (as when a password file is added to an open
    broker) belongs to no one: any user may take its client id, with a fresh session."""
    passwd, acl = security_files(tmp_path / "security")
    db = tmp_path / "state.sqlite3"
    with sqlite3.connect(db) as conn:  # the sessions table as older versions wrote it
        conn.execute(
            "CREATE TABLE sessions (client_id TEXT PRIMARY KEY, expiry_interval INTEGER NOT NULL, "
            "version INTEGER NOT NULL, username TEXT, disconnected_at REAL)"
        )
        conn.execute("INSERT INTO sessions VALUES ('old-device', 4294967295, 4, 'mallory', NULL)")
    broker = broker_process(
        f"persistence = true\npersistence_file = '{db}'\npassword_file = '{passwd}'\nacl_file = '{acl}'\n"
        "allow_anonymous = false"
    )
    try:
        worker = MQTTClient(url(broker.port, "worker"), client_id="old-device", clean_start=False, version=4)
        caps = await worker.connect()
        assert not caps.session_present  # mallory's unchecked session was not handed over
        await worker.disconnect()
        owned = MQTTClient(url(broker.port, "worker"), client_id="worker-box", clean_start=False, session_expiry=600)
        await owned.connect()
        await owned.disconnect()
        broker.stop()
        broker = start_mqttchat_broker(broker.directory / "broker.toml", broker.port, broker.log)
        thief = MQTTClient(url(broker.port, "alice"), client_id="worker-box", reconnect=False)
        with pytest.raises(ConnackRefused) as refused:
            await thief.connect()
        assert refused.value.reason_code == ReasonCode.NOT_AUTHORIZED
        again = MQTTClient(url(broker.port, "worker"), client_id="worker-box", clean_start=False, session_expiry=600)
        assert (await again.connect()).session_present
        await again.disconnect()
    finally:
        broker.stop()
