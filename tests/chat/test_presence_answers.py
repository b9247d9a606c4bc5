"""Presence without retained messages: members answer a newcomer's "online" (RabbitMQ sends no retained message
to a wildcard subscription, and a cluster may keep retained messages on one node)."""

from __future__ import annotations

import asyncio
from typing import Any

from mqttchat.broker.server import Broker
from mqttchat.chat import protocol as p
from mqttchat.chat.service import ChatService, chat_client_options
from mqttchat.client import ClientOptions, MQTTClient, parse_url
from mqttchat.protocol import RetainHandling
from tests.helpers.brokers import broker_config
from tests.helpers.chat_members import member
from tests.helpers.waiting import until


async def newcomer_without_retained(url: str, nick: str) -> ChatService:
    """A member whose broker sends no retained message to its wildcard subscriptions (as RabbitMQ does): its
    subscriptions ask for none (MQTT 5 Retain Handling 2)."""
    client = MQTTClient(chat_client_options(ClientOptions(parse_url(url)), nick, ["lobby"]))
    subscribe = client.subscribe

    async def without_retained(*filters: Any, **options: Any) -> Any:
        return await subscribe(*filters, **{**options, "retain_handling": RetainHandling.DO_NOT_SEND})

    client.subscribe = without_retained  # type: ignore[method-assign]
    service = ChatService(client, nick, ["lobby"])
    await client.connect()
    await service.start()
    return service


async def stop(*services: ChatService) -> None:
    for service in services:
        await service.stop()
        await service.client.disconnect()


async def test_a_newcomer_learns_who_is_online_from_their_answers() -> None:
    async with Broker(broker_config()) as broker:
        alice = await member(broker.url, "alice")
        carol = await member(broker.url, "carol")
        bob = await newcomer_without_retained(broker.url, "bob")
        await until(lambda: ("alice", "online") in bob.model.members("lobby"))
        await until(lambda: ("carol", "online") in bob.model.members("lobby"))
        await until(lambda: ("bob", "online") in alice.model.members("lobby"))
        await stop(alice, bob, carol)


async def test_answers_end_after_one_round() -> None:
    """Each member answers each newcomer once: three members and a newcomer make a bounded exchange."""
    async with Broker(broker_config()) as broker:
        members = [await member(broker.url, name) for name in ("alice", "carol", "dave")]
        async with MQTTClient(broker.url, client_id="presence-counter") as counter:
            stream = counter.messages()
            await counter.subscribe(p.presence("+"), qos=1)
            async with asyncio.timeout(5):
                for _ in range(3):
                    await stream.get()
            bob = await member(broker.url, "bob")
            await until(lambda: all(("bob", "online") in m.model.members("lobby") for m in members))
            await until(lambda: len(bob.model.members("lobby")) == 4)
            seen = []
            idle_until = asyncio.get_running_loop().time() + 1.0  # the exchange is over well within a second
            while (left := idle_until - asyncio.get_running_loop().time()) > 0:
                try:
                    async with asyncio.timeout(left):
                        seen.append((await stream.get()).topic)
                except TimeoutError:
                    break
            # bob's "online", one answer from each member, and at most one from bob (the members' answers were
            # new to him): never a storm.
            assert seen.count(p.presence("bob")) <= 2
            for name in ("alice", "carol", "dave"):
                assert seen.count(p.presence(name)) == 1, seen
        await stop(*members, bob)
