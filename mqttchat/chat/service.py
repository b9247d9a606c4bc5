"""ChatService: the chat protocol over an MQTTClient — join, send, presence, typing, direct and raw rooms.

The client must be created with :func:`chat_client_options` so that the broker keeps a persistent session
(messages sent while away are delivered on reconnect) and announces our departure with a retained "offline"
presence as our will if the connection dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

from mqttchat.chat import protocol as p
from mqttchat.chat.history import History
from mqttchat.chat.model import ChatMessage, ChatModel, Delivery
from mqttchat.client import ClientError, ClientOptions, Message, MQTTClient, StateChange, Status
from mqttchat.protocol import Properties, Will, matches, topic_filter_problem, topic_name_problem

log = logging.getLogger("mqttchat.chat")

WEEK = 7 * 24 * 3600
TYPING_INTERVAL = 3.0

HELP = """Commands:
/join ROOM      join a room (or switch to it)
/leave          leave this room
/nick NAME      change your display name
/me ACTION      say what you are doing
/msg NICK TEXT  a direct message to one user
/who            who is in this room
/topic          the MQTT topic of this room
/raw TOPIC      any MQTT topic as a plain-text room
/search TEXT    search the local history
/help           this list
Alt+↑ Alt+↓ switch rooms, PgUp PgDn scroll, ↑ ↓ recall what you sent"""


def default_nick() -> str:
    try:
        name = getpass.getuser()
    except Exception:  # no user database (containers): any name will do
        name = "guest"
    cleaned = "".join(c for c in name if c.isalnum() or c in "-_.") or "guest"
    return cleaned[: p.MAX_NAME]


def chat_identity(options: ClientOptions, nick: str) -> str:
    """The topic level that identifies us: the broker user name when there is one (an ACL can enforce it)."""
    user = options.effective_username
    return user if user and p.name_problem(user) is None else nick


def chat_client_options(
    options: ClientOptions, nick: str, rooms: list[str], session_expiry: int = WEEK, install: str = ""
) -> ClientOptions:
    """Options for chatting: a stable client id, a persistent session, and an "offline" presence as the will.

    The client id is ``mqttchat-chat-{identity}-{install}`` (``install``: :func:`mqttchat.config.install_id`), or
    the one ``options`` sets.
    """
    identity = chat_identity(options, nick)
    will = Will(p.presence(identity), p.presence_payload("offline", nick, rooms, "mqttchat"), 1, True)
    client_id = options.client_id or f"mqttchat-chat-{identity}" + (f"-{install}" if install else "")
    version5 = options.version == 5
    return replace(
        options,
        client_id=client_id,
        clean_start=False,
        session_expiry=session_expiry if version5 else None,
        will=will,
        reconnect=True,
    )


class ChatService:
    """Everything the chat view asks for, and what it shows (``model``)."""

    def __init__(self, client: MQTTClient, nick: str, rooms: list[str], history: History | None = None) -> None:
        self.client = client
        self.nick = nick
        self.identity = chat_identity(client.options, nick)
        self.model = ChatModel(self.identity)
        self.sender = p.Sender(nick)
        self.history = history
        self.joined: list[str] = []
        self.raw: dict[str, str] = {}  # room name -> topic filter
        self._typing_sent = 0.0
        self.notices: list[str] = []
        self._initial_rooms = rooms
        self._tasks: set[asyncio.Task[Any]] = set()
        #: (topic, payload) of plain-text messages we published to raw rooms, to recognise them coming back.
        self._raw_echoes: deque[tuple[str, bytes]] = deque(maxlen=100)
        # Listen before the client connects: a resumed session delivers what was queued for us at once.
        self.model.connected_at = time.time()
        self._own_presence = p.presence(self.identity)
        self._stopping = False
        self._removers = [client.add_message_handler(self._on_message), client.add_state_listener(self._on_state)]
        self._started = False

    # ------------------------------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Subscribe, publish our presence (the birth message), load history. The client must be connected.

        Create the service *before* connecting the client, so that messages queued in the persistent session
        while we were away are not missed.
        """
        for room in self._initial_rooms:
            await self.join(room)
        if self._initial_rooms:
            self.model.select(self._initial_rooms[0])
        await self.client.subscribe(f"{p.PREFIX}/direct/{self.identity}/+", qos=1)
        await self.client.subscribe(f"{p.PREFIX}/presence/+", qos=1)
        await self.announce("online")
        self._started = True

    def _on_state(self, change: StateChange) -> None:
        if change.status is not Status.CONNECTED:
            return
        self.model.connected_at = time.time()
        if self._started:  # a reconnect: our will may have said "offline" meanwhile
            self._spawn(self.announce("online"))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def announce(self, status: str) -> None:
        if self._stopping and status != "offline":
            return
        await self.client.publish(p.presence(self.identity), p.presence_payload(status, self.nick, self.joined,
                                  "mqttchat"), 1, retain=True)  # fmt: skip

    async def stop(self) -> None:
        """A clean exit: say so (the will is only for unclean ones)."""
        self._stopping = True
        for task in list(self._tasks):  # an "online" still on its way must not follow our "offline"
            task.cancel()
        with contextlib.suppress(ClientError):
            if self.client.connected:
                await self.announce("offline")
        for remove in self._removers:
            remove()
        if self.history is not None:
            self.history.close()

    # ------------------------------------------------------------------------------------------ input

    def _on_message(self, message: Message) -> None:
        topic = message.topic
        for room, topic_filter in self.raw.items():
            if matches(topic_filter, topic):
                if (topic, message.payload) in self._raw_echoes:
                    self._raw_echoes.remove((topic, message.payload))
                    return
                added = self.model.ingest_raw(room, topic, message.payload, message.received_at)
                self._store(added)
                return
        added_message = self.model.ingest(topic, message.payload, message.received_at)
        if added_message is not None:
            self._store(added_message)
        if topic == self._own_presence and self._started and not self._stopping and self.client.connected:
            # Our identity chats from more than one machine (each has its own session): when another one leaves,
            # its "offline" (or its will) must not hide that we are still here.
            said = p.decode_presence(message.payload)
            if said is None or said.status == "offline":
                self._spawn(self.announce("online"))

    def _store(self, message: ChatMessage) -> None:
        if self.history is not None and self.model.rooms[message.room].kind != "raw":
            self.history.add(message)

    # ------------------------------------------------------------------------------------------ commands

    async def join(self, room: str) -> str | None:
        problem = p.name_problem(room, "room name")
        if problem:
            return problem
        self.model.room(room)
        if room not in self.joined:
            await self.client.subscribe(f"{p.PREFIX}/rooms/{room}/#", qos=1)
            self.joined.append(room)
            self.load_history(room)
            if self.client.connected:
                await self.announce("online")
        self.model.select(room)
        return None

    def load_history(self, room: str) -> int:
        """Put the newest page of local history before what the room shows; return how many were added."""
        if self.history is None:
            return 0
        model_room = self.model.rooms[room]
        oldest = model_room.messages[0].received_at if model_room.messages else None
        page = self.history.page(room, before=oldest)
        known = {m.envelope.id for m in model_room.messages}
        page = [m for m in page if m.envelope.id not in known]
        if not page:
            model_room.history_exhausted = True
            return 0
        model_room.messages[:0] = page
        model_room.version += 1
        return len(page)

    async def leave(self, room: str) -> None:
        if room in self.joined:
            self.joined.remove(room)
            with contextlib.suppress(ClientError):
                await self.client.unsubscribe(f"{p.PREFIX}/rooms/{room}/#")
            await self.announce("online")
        if room in self.raw:
            topic_filter = self.raw.pop(room)
            with contextlib.suppress(ClientError):
                await self.client.unsubscribe(topic_filter)
        self.model.rooms.pop(room, None)
        self.model.current = self.joined[0] if self.joined else next(iter(self.model.rooms), "")

    async def open_raw(self, topic_filter: str) -> str | None:
        problem = topic_filter_problem(topic_filter)
        if problem:
            return problem
        name = f"#{topic_filter}"
        self.model.room(name, "raw", topic_filter)
        self.raw[name] = topic_filter
        # MQTT 5 "No Local": what we publish there is not sent back to us (we show it already).
        await self.client.subscribe(topic_filter, qos=1, no_local=self.client.options.version == 5)
        self.model.select(name)
        return None

    async def send(self, room_name: str, text: str, kind: str = "message") -> ChatMessage | None:
        """Publish a message (QoS 1); its delivery state follows the broker's PUBACK."""
        room = self.model.rooms.get(room_name)
        if room is None or not text:
            return None
        if room.kind == "raw":
            assert room.topic is not None
            if topic_name_problem(room.topic):
                self.notices.append(f"{room.topic} is a filter: open a single topic to publish to it")
                return None
            envelope = self.sender.envelope(text, room=room_name)
            own = self.model.add_own(room_name, envelope, time.time())
            if self.client.options.version != 5:  # 3.1.1 has no No Local: recognise the echo instead
                self._raw_echoes.append((room.topic, text.encode()))
            self._publish(own, room.topic, text.encode(), Properties())
            return own
        envelope = self.sender.envelope(text, kind, room_name)
        own = self.model.add_own(room_name, envelope, time.time())
        self._store(own)
        if room.kind == "direct":
            topic = p.direct(room_name[1:], self.identity)
        else:
            topic = p.room_messages(room_name, self.identity)
        self._publish(own, topic, envelope.to_json(), envelope.properties())
        return own

    def _publish(self, own: ChatMessage, topic: str, payload: bytes, props: Properties) -> None:
        async def run() -> None:
            try:
                result = await self.client.publish(topic, payload, 1, properties=props)
            except ClientError as exc:
                self.model.delivered(own.envelope.id, False, str(exc))
            else:
                error = None if result.ok else result.reason_code.title
                self.model.delivered(own.envelope.id, result.ok, error)
            room = self.model.rooms.get(own.room)
            if self.history is not None and room is not None and room.kind != "raw":
                self.history.set_delivery(own.envelope.id, own.delivery)

        self._spawn(run())

    def typing(self, room_name: str) -> None:
        """Tell the room we are typing (QoS 0, at most every few seconds)."""
        room = self.model.rooms.get(room_name)
        now = time.time()
        if (
            room is None
            or room.kind != "room"
            or now - self._typing_sent < TYPING_INTERVAL
            or not self.client.connected
        ):
            return
        self._typing_sent = now
        self.client.publish_nowait(p.room_typing(room_name, self.identity), b'{"typing":true}', 0)

    async def command(self, room_name: str, line: str) -> str | None:
        """Run a /command or send a message. Returns text to show the user (help, errors), or None."""
        if not line.startswith("/") or line.startswith("//"):
            await self.send(room_name, line[1:] if line.startswith("//") else line)
            return None
        name, _, rest = line[1:].partition(" ")
        rest = rest.strip()
        if name == "help":
            return HELP
        if name == "join":
            if not rest or " " in rest:
                return "usage: /join ROOM (a room name is one word)"
            return await self.join(rest)
        if name == "leave":
            await self.leave(room_name)
            return f"left {room_name}"
        if name == "nick":
            if not rest or " " in rest:
                return "usage: /nick NAME (one word)"
            problem = p.name_problem(rest, "nick")
            if problem:
                return problem
            self.nick = self.sender.nick = rest
            await self.announce("online")
            return f"you are now {rest}"
        if name == "me":
            if not rest:
                return "usage: /me ACTION"
            await self.send(room_name, rest, "action")
            return None
        if name == "msg":
            to, _, text = rest.partition(" ")
            if not to or not text:
                return "usage: /msg NICK TEXT"
            problem = p.name_problem(to, "user")
            if problem:
                return problem
            self.model.room(f"@{to}", "direct")
            await self.send(f"@{to}", text.strip())
            return None
        if name == "who":
            members = self.model.members(room_name)
            return "in " + room_name + ": " + (", ".join(f"{u} ({s})" for u, s in members) or "nobody seen yet")
        if name == "topic":
            room = self.model.rooms.get(room_name)
            if room is None:
                return "no room"
            if room.kind == "raw":
                return f"{room_name} is the MQTT topic {room.topic}"
            if room.kind == "direct":
                return f"direct messages go to {p.direct(room_name[1:], self.identity)}"
            mine = p.room_messages(room_name, self.identity)
            return f"{room_name} is {p.PREFIX}/rooms/{room_name}/messages/+ (yours: {mine})"
        if name == "raw":
            return (await self.open_raw(rest)) if rest else "usage: /raw TOPIC"
        if name == "search":
            if self.history is None or not rest:
                return "usage: /search TEXT"
            hits = self.history.search(rest)
            if not hits:
                return f"no message contains {rest!r}"
            return "\n".join(f"[{m.room}] {m.envelope.nick}: {m.text}" for m in hits[:20])
        return f"unknown command /{name}: type /help for the list"

    @property
    def delivery_counts(self) -> dict[Delivery, int]:
        counts: dict[Delivery, int] = {}
        for room in self.model.rooms.values():
            for message in room.messages:
                if message.own:
                    counts[message.delivery] = counts.get(message.delivery, 0) + 1
        return counts
