"""The host quits, the chat goes on: an instance that hosts the embedded broker quits, another takes over with the
broker's store, and nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mqttchat import runtime as runtime_module
from mqttchat.broker.persistence import StoreInUse
from mqttchat.broker.server import Broker
from mqttchat.client import ClientOptions, parse_url
from mqttchat.hosting import EmbeddedHost, Peer, describe_peers
from mqttchat.runtime import Runtime
from tests.helpers.brokers import broker_config
from tests.helpers.waiting import until


def free_port() -> int:
    """A port nothing listens on (the local default address the instances share, as 1883 is outside tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def local_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """A free port treated as this machine's default MQTT port, and a data directory for the test."""
    port = free_port()
    monkeypatch.setattr(runtime_module, "DEFAULT_PORT", port)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return port


@pytest.fixture
async def instances(local_default: int) -> AsyncIterator[Callable[[str], Runtime]]:
    """Make mqttchat instances (explorer + chat) pointed at the local default address, stopped at the end."""
    made: list[Runtime] = []

    def make(nick: str) -> Runtime:
        options = ClientOptions(parse_url(f"mqtt://127.0.0.1:{local_default}"))
        runtime = Runtime(options, subscriptions=(), chat_nick=nick)
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        await runtime.stop()


def texts(runtime: Runtime, room: str = "lobby") -> list[str]:
    assert runtime.chat is not None
    return [message.text for message in runtime.chat.model.rooms[room].messages]


async def test_a_second_broker_cannot_open_a_store_in_use(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite3"
    async with Broker(broker_config(persistence=True, persistence_file=store)):
        second = Broker(broker_config(persistence=True, persistence_file=store))
        with pytest.raises(StoreInUse, match="in use by another broker"):
            await second.start()
    async with Broker(broker_config(persistence=True, persistence_file=store)) as third:  # released on stop
        assert third.port


async def test_the_host_quits_and_the_others_keep_chatting(instances: Callable[[str], Runtime]) -> None:
    alice, bob, carol = instances("alice"), instances("bob"), instances("carol")
    await alice.start()
    assert alice.broker is not None and alice.host is not None and alice.host.persistent  # alice hosts, on disk
    await bob.start()
    await carol.start()
    assert bob.broker is None and carol.broker is None
    for runtime in (alice, bob, carol):
        await runtime.start_chat()
    assert alice.chat is not None and bob.chat is not None and carol.chat is not None
    await until(lambda: {("bob", "online"), ("carol", "online")} <= set(alice.chat.model.members("lobby")), timeout=15)  # type: ignore[union-attr]
    peers = alice.hosted_peers()
    assert describe_peers(peers) == "bob, carol (chat) and 2 mqttchat explorers"  # and not alice's own two
    await bob.chat.command("lobby", "before alice quits")
    await until(lambda: "before alice quits" in texts(carol) and "before alice quits" in texts(alice), timeout=15)

    await alice.stop()  # the host quits
    await until(lambda: bob.broker is not None or carol.broker is not None, timeout=15)  # one of the others takes over
    new_host, other = (bob, carol) if bob.broker is not None else (carol, bob)
    assert other.broker is None  # exactly one hosts
    assert any("took over hosting" in event for event in new_host.events)
    await until(lambda: bob.client.connected and carol.client.connected, timeout=15)
    await bob.chat.command("lobby", "after alice quit")
    await until(lambda: "after alice quit" in texts(carol), timeout=15)
    await carol.chat.command("lobby", "carol answers")
    await until(lambda: "carol answers" in texts(bob), timeout=15)

    # alice comes back: what was said while she was away was queued in her session, which the new host loaded
    # from the store the old host wrote.
    alice2 = instances("alice")
    await alice2.start()
    assert alice2.broker is None  # someone hosts: she connects to them
    await alice2.start_chat()
    await until(lambda: "after alice quit" in texts(alice2) and "carol answers" in texts(alice2), timeout=15)
    assert texts(alice2).index("after alice quit") < texts(alice2).index("carol answers")


async def test_retained_messages_survive_a_take_over(instances: Callable[[str], Runtime]) -> None:
    alice, bob = instances("alice"), instances("bob")
    await alice.start()
    await bob.start()
    result = await bob.client.publish("house/door", b"locked", qos=1, retain=True)
    assert result.ok
    await alice.stop()
    await until(lambda: bob.broker is not None, timeout=15)
    assert bob.broker.core.retained.get("house/door") is not None  # type: ignore[union-attr]


async def test_no_take_over_while_the_host_runs(instances: Callable[[str], Runtime]) -> None:
    """An instance whose connection is down while the host is alive (and holds the store) does not host."""
    alice, bob = instances("alice"), instances("bob")
    await alice.start()
    await bob.start()
    assert bob.host is not None
    assert not await bob.host.try_take_over()  # the port is in use
    assert alice.broker is not None and bob.broker is None


async def test_a_start_waits_for_the_previous_host_to_let_go_of_the_store(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite3"
    port = free_port()
    first = EmbeddedHost("127.0.0.1", port, store)
    await first.start()
    assert first.broker is not None
    second = EmbeddedHost("127.0.0.1", free_port(), store)
    with pytest.raises(StoreInUse):
        await second.start(wait_for_store=0.2)
    waiting = asyncio.create_task(second.start(wait_for_store=5))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await first.stop()
    await asyncio.wait_for(waiting, 5)
    assert second.hosting
    await second.stop()


def test_peers_are_described_by_chat_identity_and_counted() -> None:
    peers = [
        Peer("mqttchat-chat-bob-0123456789ab", None),
        Peer("mqttchat-chat-j-doe-ba9876543210", None),
        Peer("mqttchat-chat-evil\x1b[2J-0123456789ab", None),
        Peer("auto-1", None),
    ]
    text = describe_peers(peers)
    assert text == "bob, evil␛[2J, j-doe (chat) and 1 other MQTT client"
    assert "\x1b" not in text
    explorers = [Peer("mqttchat-explorer-0a1b2c3d", None), Peer("mqttchat-explorer-ffffffff", None)]
    expected = "bob, evil␛[2J, j-doe (chat), 2 mqttchat explorers and 1 other MQTT client"
    assert describe_peers(peers + explorers) == expected
    assert describe_peers(explorers[:1]) == "1 mqttchat explorer"
    assert describe_peers([Peer("mqttchat-explorer-not-hex!", None)]) == "1 other MQTT client"  # not one of ours


def test_the_explorer_is_named_when_no_client_id_is_configured() -> None:
    named = Runtime(ClientOptions(parse_url("mqtt://127.0.0.1:1")), embed_broker=False)
    assert Peer(named.client.options.client_id, None).is_explorer
    chosen = Runtime(ClientOptions(parse_url("mqtt://127.0.0.1:1"), client_id="mine"), embed_broker=False)
    assert chosen.client.options.client_id == "mine"
    persistent = Runtime(
        ClientOptions(parse_url("mqtt://127.0.0.1:1"), clean_start=False, session_expiry=60), embed_broker=False
    )
    assert persistent.client.options.client_id == ""  # a random id would leave a session behind on every start
