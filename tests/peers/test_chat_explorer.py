"""The chat and the explorer's model through RabbitMQ (one node, and a two-node cluster) and aedes.

Two chat instances, as two people run them: presence, messages in order both ways, catch-up after one quits. In
the cluster alice is on one node and bob on the other, as two offices behind a clustered broker would be.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from mqttchat.chat.model import Delivery
from mqttchat.chat.service import ChatRefused, ChatService, chat_client_options
from mqttchat.client import ClientOptions, MQTTClient, parse_url
from mqttchat.runtime import Runtime
from tests.helpers.rabbitmq import RabbitCluster
from tests.helpers.waiting import until
from tests.peers.brokers import resolve_peer


async def member(url: str, nick: str, rooms: list[str], **options: Any) -> ChatService:
    """A chat member as the app starts one: MQTT 5 first, 3.1.1 when the broker refuses it."""
    base = dataclasses.replace(ClientOptions(parse_url(url)), version_fallback=True, **options)
    client = MQTTClient(chat_client_options(base, nick, rooms, install="peertests0001"))
    service = ChatService(client, nick, rooms)
    await client.connect()
    await service.start()
    return service


async def leave(*services: ChatService) -> None:
    for service in services:
        await service.stop()
        await service.client.disconnect()


@pytest.fixture(params=["rabbitmq-tcp", "rabbitmq-ws", "aedes-tcp", "aedes-ws", "rabbitmq-cluster"])
def urls(request: pytest.FixtureRequest) -> tuple[str, str, str]:
    """The broker's name, and where alice and bob connect: one broker, or the two nodes of the cluster."""
    if request.param == "rabbitmq-cluster":
        cluster: RabbitCluster = request.getfixturevalue("rabbitmq_cluster")
        return "rabbitmq", cluster.nodes[0].url, cluster.nodes[1].url
    peer = resolve_peer(request, request.param)
    return peer.name, peer.url, peer.url


async def test_two_chat_instances(urls: tuple[str, str, str], unique: str) -> None:
    _, alice_url, bob_url = urls
    room = f"room-{unique}"
    alice = await member(alice_url, f"alice-{unique}", [room])
    bob = await member(bob_url, f"bob-{unique}", [room])
    assert alice.client.session.version == 4 and bob.client.session.version == 4  # both brokers: 3.1.1 only
    # Presence: each sees the other online (RabbitMQ sends no retained presence to presence/+: answers do it).
    await until(lambda: (bob.identity, "online") in alice.model.members(room), timeout=20)
    await until(lambda: (alice.identity, "online") in bob.model.members(room), timeout=20)
    # Messages in order, both ways, each acknowledged.
    for i in range(15):
        await alice.send(room, f"a{i}")
        await bob.send(room, f"b{i}")
    for reader, prefix in ((bob, "a"), (alice, "b")):
        await until(
            lambda r=reader, x=prefix: len([m for m in r.model.rooms[room].messages if m.text.startswith(x)]) == 15,
            timeout=20,
        )
        texts = [m.text for m in reader.model.rooms[room].messages if m.text[0] == prefix]
        assert texts == [f"{prefix}{i}" for i in range(15)]
    for writer in (alice, bob):
        await until(lambda w=writer: all(m.delivery is Delivery.ACKED for m in w.model.rooms[room].messages
                                         if m.sender == w.identity), timeout=20)  # fmt: skip
    # bob quits: alice sees him offline, writes on, and bob catches up in order when he is back.
    await leave(bob)
    await until(lambda: (bob.identity, "offline") in alice.model.members(room), timeout=20)
    for i in range(5):
        await alice.send(room, f"while away {i}")
    mine = [m for m in alice.model.rooms[room].messages if m.sender == alice.identity]
    await until(lambda: all(m.delivery is Delivery.ACKED for m in mine), timeout=20)
    bob_again = await member(bob_url, f"bob-{unique}", [room])
    await until(
        lambda: len([m for m in bob_again.model.rooms[room].messages if m.text.startswith("while")]) == 5, timeout=20
    )
    caught_up = [m.text for m in bob_again.model.rooms[room].messages if m.text.startswith("while")]
    assert caught_up == [f"while away {i}" for i in range(5)]
    await until(lambda: (bob.identity, "online") in alice.model.members(room), timeout=20)
    await leave(alice, bob_again)


async def test_names_with_dots(urls: tuple[str, str, str], unique: str) -> None:
    """RabbitMQ delivers "dev.ops" as "dev/ops": such names are refused there, with the reason; aedes keeps them."""
    name, url, _ = urls
    maps_dots = name == "rabbitmq"
    alice = await member(url, f"alice-{unique}", [f"room-{unique}"])
    problem = await alice.join(f"dev.ops-{unique}")
    if maps_dots:
        assert problem is not None and "turns into '/'" in problem and "nobody would receive them" in problem
        assert f"dev.ops-{unique}" not in alice.model.rooms
        with pytest.raises(ChatRefused, match=r"identity .*'j\.doe-.*' has a '\.'"):
            await member(url, f"j.doe-{unique}", [f"room-{unique}"])
    else:
        assert problem is None
        bob = await member(url, f"j.doe-{unique}", [f"dev.ops-{unique}"])
        await alice.send(f"dev.ops-{unique}", "dotted")
        await until(lambda: [m.text for m in bob.model.rooms[f"dev.ops-{unique}"].messages] == ["dotted"], timeout=20)
        await leave(bob)
    await leave(alice)


async def test_explorer_model(urls: tuple[str, str, str], unique: str) -> None:
    """The explorer's runtime through the peer: the tree fills, and no retained message through '#' is explained
    where the broker does not send them (RabbitMQ)."""
    name, url, _ = urls
    async with MQTTClient(url, client_id=f"dev-{unique}", version=4) as device:
        await device.publish(f"plant-{unique}/state", "kept", qos=1, retain=True)
        options = ClientOptions(parse_url(url), client_id=f"explorer-{unique}", version_fallback=True)
        runtime = Runtime(options, ((f"plant-{unique}/#", 1),), embed_broker=False)
        await runtime.start()
        try:
            assert runtime.options.version == 4 and runtime.version_notice is not None
            for i in range(10):
                await device.publish(f"plant-{unique}/line{i % 2}/count", str(i), qos=1)
            await until(
                lambda: getattr(runtime.tree.get(f"plant-{unique}/line1/count"), "messages", 0) == 5, timeout=20
            )
            node = runtime.tree.get(f"plant-{unique}/line1/count")
            assert node is not None and node.last is not None and node.last.payload == b"9"
            note = runtime.retained_note()
            if name == "rabbitmq":
                assert runtime.retained_seen == 0
                assert note is not None and "does not send retained messages to wildcard" in note
            else:
                assert note is None and runtime.retained_seen == 1
        finally:
            await runtime.stop()
        await device.publish(f"plant-{unique}/state", b"", qos=1, retain=True)
