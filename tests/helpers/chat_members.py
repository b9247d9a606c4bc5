"""Chat members without a screen: a chat service on its own client, connected and started."""

from __future__ import annotations

import dataclasses
from typing import Any

from mqttchat.chat.service import ChatService, chat_client_options
from mqttchat.client import ClientOptions, MQTTClient, parse_url


async def member(url: str, nick: str, rooms: list[str] | None = None, install: str = "", **options: Any) -> ChatService:
    base = dataclasses.replace(ClientOptions(parse_url(url)), **options)
    client = MQTTClient(chat_client_options(base, nick, rooms or ["lobby"], install=install))
    service = ChatService(client, nick, rooms or ["lobby"])
    await client.connect()
    await service.start()
    return service
