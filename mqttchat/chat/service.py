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
from mqttchat.chat.history import History, SavedRoom
from mqttchat.chat.model import ChatMessage, ChatModel, Delivery
from mqttchat.client import ClientError, ClientOptions, Message, MQTTClient, StateChange, Status
from mqttchat.protocol import Properties, Will, matches, topic_filter_problem, topic_name_problem

log = logging.getLogger("mqttchat.chat")

WEEK = 7 * 24 * 3600
#: The room opened on the very first start (later starts open the rooms that were open).
DEFAULT_ROOM = "lobby"
TYPING_INTERVAL = 3.0
#: Seconds a member waits before answering a newcomer's "online": newcomers arriving meanwhile share one answer.
ANSWER_DELAY = 0.2
#: The room level of the probe that finds out whether the broker turns "." into "/" (see ChatService.dots_problem).
DOT_PROBE = "mqttchat.dot-probe"
DOT_PROBE_PART = "dot-probe/typing/"
DOT_PROBE_TIMEOUT = 2.0


class ChatRefused(ClientError):
    """The chat cannot run as asked on this broker (a name it would mangle)."""


HELP = """Commands:
/join ROOM      join a room (or switch to it)
/leave          leave this room
/nick NAME      change your display name
/me ACTION      say what you are doing
/msg NICK TEXT  a direct message to one user (or /msg @IDENTITY TEXT)
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
        self.model.on_accept = self._store
        self._initial_rooms, self._current = self._rooms_to_open(rooms)
        self._tasks: set[asyncio.Task[Any]] = set()
        #: (topic, payload) of plain-text messages we published to raw rooms, to recognise them coming back.
        self._raw_echoes: deque[tuple[str, bytes]] = deque(maxlen=100)
        # Listen before the client connects: a resumed session delivers what was queued for us at once.
        self.model.connected_at = time.time()
        self._own_presence = p.presence(self.identity)
        self._presence_prefix = p.presence("")
        #: Identities seen "online" since we connected (their next "online" needs no answer).
        self._online_seen: set[str] = set()
        self._answer_pending = False
        #: Whether the broker turns "." in topics into "/" (None: not probed yet; see dots_problem()).
        self._maps_dots: bool | None = None
        self._probe_arrived: asyncio.Future[str] | None = None
        self._stopping = False
        self._removers = [client.add_message_handler(self._on_message), client.add_state_listener(self._on_state)]
        self._started = False
        self._saved: list[SavedRoom] = []

    # ------------------------------------------------------------------------------------------ lifecycle

    def _rooms_to_open(self, rooms: list[str]) -> tuple[list[SavedRoom], str]:
        """The rooms to open at start, in order, and the one to show: those open when the chat last ran (from
        the local history) and ``rooms`` (given now: the first of them is shown); with neither, ``lobby``.

        They are put in the model at once (with their local history), before the client connects, so that the
        messages the broker kept for us while we were away find their rooms."""
        saved = self.history.saved_rooms() if self.history is not None else None
        if saved is None:  # the first run (or a history from before rooms were saved: its conversations)
            saved = [] if rooms else [SavedRoom(DEFAULT_ROOM, "room")]
            if self.history is not None:
                saved += self.history.direct_rooms()
        opened = list(saved)
        names = {room.name for room in opened}
        for name in rooms:
            if name not in names:
                opened.append(SavedRoom(name, "room"))
                names.add(name)
        current = rooms[0] if rooms else next((room.name for room in opened if room.current), "")
        for saved_room in opened:
            self.model.room(saved_room.name, saved_room.kind, saved_room.topic)
            self._load_first_page(saved_room.name)
        self.model.current = current or (opened[0].name if opened else "")
        return opened, self.model.current

    async def start(self) -> None:
        """Subscribe, publish our presence (the birth message). The client must be connected.

        Create the service *before* connecting the client, so that messages queued in the persistent session
        while we were away are not missed.

        Raises:
            ChatRefused: our identity has a ``.`` and the broker turns ``.`` into ``/``.
        """
        problem = await self.dots_problem(self.identity, "identity (nick or user name)")
        if problem:
            raise ChatRefused(problem)
        for room in self._initial_rooms:
            problem = None
            if room.kind == "room":
                problem = await self.join(room.name, select=False)
            elif room.kind == "raw":
                problem = await self.open_raw(room.topic or "", select=False)
            if problem:  # a room that cannot be opened is not shown as if it were
                self.model.rooms.pop(room.name, None)
                self.notices.append(f"{room.name} not opened again: {problem}")
        if self._current not in self.model.rooms:
            self._current = next(iter(self.model.rooms), "")
        self.model.select(self._current)
        await self.client.subscribe(f"{p.PREFIX}/direct/{self.identity}/+", qos=1)
        await self.client.subscribe(f"{p.PREFIX}/presence/+", qos=1)
        await self.announce("online")
        self._started = True
        self.save_rooms()

    def save_rooms(self) -> None:
        """Remember the open rooms in the local history (a restart opens them again, in this order)."""
        if self.history is None:
            return
        rooms = [SavedRoom(room.name, room.kind, room.topic, room.name == self.model.current)
                 for room in self.model.rooms.values() if room.kind in ("room", "direct", "raw")]  # fmt: skip
        if rooms != self._saved:
            self.history.save_rooms(rooms)
            self._saved = rooms

    def _on_state(self, change: StateChange) -> None:
        if change.status is not Status.CONNECTED:
            return
        self._online_seen.clear()  # our "online" on reconnecting asks everyone again
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
        if DOT_PROBE_PART in topic:  # the dot probe, as sent or as a broker rewrote it: not a chat message
            if self._probe_arrived is not None and not self._probe_arrived.done():
                self._probe_arrived.set_result(topic)
            return
        for room, topic_filter in self.raw.items():
            if matches(topic_filter, topic):
                if (topic, message.payload) in self._raw_echoes:
                    self._raw_echoes.remove((topic, message.payload))
                    return
                self.model.ingest_raw(room, topic, message.payload, message.received_at)
                return
        rooms = len(self.model.rooms)
        self.model.ingest(topic, message.payload, message.received_at)  # stores what it accepts, first
        if len(self.model.rooms) != rooms:  # a direct conversation opened: with its history
            for name in list(self.model.rooms)[rooms:]:
                self._load_first_page(name)
            self.save_rooms()
        if topic == self._own_presence and self._started and not self._stopping and self.client.connected:
            # Our identity chats from more than one machine (each has its own session): when another one leaves,
            # its "offline" (or its will) must not hide that we are still here.
            said = p.decode_presence(message.payload)
            if said is None or said.status == "offline":
                self._spawn(self.announce("online"))
        elif topic.startswith(self._presence_prefix):
            self._answer_newcomer(topic[len(self._presence_prefix) :], message.payload)

    def _answer_newcomer(self, user: str, payload: bytes) -> None:
        """Someone came online whom we had not seen online since we connected: say that we are here too.

        Presence is a retained message, but not every broker delivers retained messages to a wildcard
        subscription (RabbitMQ does not), and a clustered broker may keep them on one node only. So members
        answer a newcomer's "online" with their own, live: the newcomer learns who is here without retained
        messages. Each member answers each newcomer once (and a burst of newcomers with one announcement after
        :data:`ANSWER_DELAY`); the answers are "online" from members the others already know, so nobody answers
        them and the exchange ends.
        """
        try:
            said = p.decode_presence(payload)
        except p.PresenceError:
            return
        if said is None or said.status == "offline":
            self._online_seen.discard(user)
            return
        if user in self._online_seen or "/" in user:
            return
        self._online_seen.add(user)
        if self._started and not self._stopping and self.client.connected and not self._answer_pending:
            self._answer_pending = True
            self._spawn(self._answer())

    async def _answer(self) -> None:
        try:
            await asyncio.sleep(ANSWER_DELAY)
            if self.client.connected and not self._stopping:
                await self.announce("online")
        finally:
            self._answer_pending = False

    async def dots_problem(self, name: str, what: str) -> str | None:
        """Why ``name`` (with a ``.``) cannot be a topic level on this broker, or None.

        RabbitMQ maps MQTT topics to AMQP routing keys, where ``.`` separates words: it delivers ``dev.ops`` as
        ``dev/ops``, two levels, so the sender's message is acknowledged and nobody in ``dev.ops`` receives it.
        Whether a broker does this is found out once, by a probe (:meth:`_probe_dots`), when a name has a dot.
        """
        if "." not in name:
            return None
        if self._maps_dots is None:
            self._maps_dots = await self._probe_dots()
        if not self._maps_dots:
            return None
        return (
            f"the {what} {name!r} has a '.', which this broker turns into '/' (it maps MQTT topics to AMQP routing "
            "keys, as RabbitMQ does): messages would go to another topic and nobody would receive them; use - or _"
        )

    async def _probe_dots(self) -> bool:
        """Publish to a topic with a ``.`` in one level and see which topic the broker delivers it on."""
        loop = asyncio.get_running_loop()
        arrived: asyncio.Future[str] = loop.create_future()
        self._probe_arrived = arrived
        topic_filter = f"{p.PREFIX}/rooms/{DOT_PROBE}/typing/#"
        try:
            await self.client.subscribe(topic_filter, qos=1)
            await self.client.publish(p.room_typing(DOT_PROBE, self.identity), b"", qos=1)
            try:
                async with asyncio.timeout(DOT_PROBE_TIMEOUT):
                    topic = await arrived
            except TimeoutError:
                return False  # nothing came back: nothing known, nothing refused
            return f"/{DOT_PROBE}/" not in topic
        finally:
            self._probe_arrived = None
            with contextlib.suppress(ClientError):
                await self.client.unsubscribe(topic_filter)

    def _store(self, message: ChatMessage) -> None:
        if self.history is not None and self.model.rooms[message.room].kind != "raw":
            self.history.add(message)

    # ------------------------------------------------------------------------------------------ commands

    async def join(self, room: str, select: bool = True) -> str | None:
        problem = p.name_problem(room, "room name")
        if problem:
            return problem
        if room.startswith("@"):
            return f"{room} would be a direct conversation: /msg {room[1:]} TEXT"
        problem = await self.dots_problem(room, "room name")
        if problem:
            return problem
        existing = self.model.rooms.get(room)
        if existing is not None and existing.kind != "room":
            return f"{room} is open already as a {existing.kind} room"
        if existing is None:
            self.model.room(room)
            self._load_first_page(room)
        if room not in self.joined:
            self.joined.append(room)
            try:
                await self.client.subscribe(f"{p.PREFIX}/rooms/{room}/#", qos=1)
            except ClientError:
                self.joined.remove(room)
                self.model.rooms.pop(room, None)
                raise
            if self.client.connected and self._started:
                await self.announce("online")
        if select:
            self.model.select(room)
        self.save_rooms()
        return None

    def _load_first_page(self, room: str) -> None:
        """A room just opened: its newest page of local history, and where each sender's sequence stood."""
        if self.history is None:
            return
        self.load_history(room)
        for sender, session, seq in self.history.sequences(room):
            self.model._sequence(sender, session, room, seq)

    def load_history(self, room: str) -> int:
        """Put the newest page of local history before what the room shows; return how many were added."""
        model_room = self.model.rooms.get(room)
        if self.history is None or model_room is None or model_room.kind == "raw":
            return 0
        stored = [m for m in model_room.messages if m.envelope.kind not in ("notice", "dropped")]
        oldest = stored[0].received_at if stored else None
        page = self.history.page(room, before=oldest)
        known = {m.envelope.id for m in model_room.messages}
        page = [m for m in page if m.envelope.id not in known]
        if not page:
            model_room.history_exhausted = True
            return 0
        self.model.remember(page)
        model_room.messages[:0] = page
        model_room.version += 1
        return len(page)

    async def leave(self, room: str) -> str:
        """Leave ``room``: unsubscribe (chat and raw rooms), close it, show the next one. Returns what to say."""
        model_room = self.model.rooms.get(room)
        if model_room is None:
            return "you are in no room: /join ROOM"
        order = [r.name for r in self.model.ordered_rooms()]
        if room in self.joined:
            self.joined.remove(room)
            with contextlib.suppress(ClientError):
                await self.client.unsubscribe(f"{p.PREFIX}/rooms/{room}/#")
            if self.client.connected:
                with contextlib.suppress(ClientError):
                    await self.announce("online")
        if room in self.raw:
            topic_filter = self.raw.pop(room)
            with contextlib.suppress(ClientError):
                await self.client.unsubscribe(topic_filter)
        self.model.rooms.pop(room, None)
        if self.model.current == room:
            rest = [name for name in order if name != room]
            index = order.index(room)
            following = [name for name in order[index + 1 :] if name in self.model.rooms]
            self.model.current = ""
            if rest:
                self.model.select(following[0] if following else rest[-1])
        self.save_rooms()
        if not self.model.rooms:
            return f"left {room}; you are in no room now: /join ROOM to chat"
        return f"left {room}"

    async def open_raw(self, topic_filter: str, select: bool = True) -> str | None:
        problem = topic_filter_problem(topic_filter)
        if problem:
            return problem
        name = f"#{topic_filter}"
        self.model.room(name, "raw", topic_filter)
        if name not in self.raw:
            self.raw[name] = topic_filter
            # MQTT 5 "No Local": what we publish there is not sent back to us (we show it already).
            await self.client.subscribe(topic_filter, qos=1, no_local=self.client.options.version == 5)
        if select:
            self.model.select(name)
        self.save_rooms()
        return None

    async def send(self, room_name: str, text: str, kind: str = "message") -> ChatMessage | None:
        """Publish a message (QoS 1); its delivery state follows the broker's PUBACK."""
        room = self.model.rooms.get(room_name)
        if room is None:
            if text:
                self.notices.append("you are in no room: /join ROOM first (your message was not sent)")
            return None
        if not text:
            return None
        if len(text) > p.MAX_TEXT and room.kind != "raw":
            self.notices.append(f"not sent: {len(text):,} characters, a message holds at most {p.MAX_TEXT:,}")
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
            self.save_rooms()
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
        if name in ("leave", "me", "who", "topic") and room_name not in self.model.rooms:
            return "you are in no room: /join ROOM first"
        if name == "join":
            if not rest or " " in rest:
                return "usage: /join ROOM (a room name is one word)"
            return await self.join(rest)
        if name == "leave":
            return await self.leave(room_name)
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
            if not to or not text.strip():
                return "usage: /msg NICK TEXT (or /msg @IDENTITY TEXT)"
            identity, answer = self.resolve(to)
            if identity is None:
                return answer
            opened = f"@{identity}" not in self.model.rooms
            self.model.room(f"@{identity}", "direct")
            if opened:
                self._load_first_page(f"@{identity}")
            await self.send(f"@{identity}", text.strip())
            return answer
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

    def resolve(self, name: str) -> tuple[str | None, str | None]:
        """Who ``/msg NAME`` writes to: (identity, a line to show or None), or (None, why not).

        ``@NAME`` is an identity as it is, seen or not. Otherwise an identity seen (in presence, a room or a
        direct conversation) wins; then a nick that exactly one identity uses now (from presence), matched exactly
        or else ignoring case."""
        if name.startswith("@"):
            identity = name[1:]
            problem = p.name_problem(identity, "identity")
            return (None, problem) if problem else (identity, None)
        problem = p.name_problem(name, "nick")
        if problem:
            return None, problem
        known = set(self.model.presence)
        for room in self.model.rooms.values():
            known |= room.members
            if room.kind == "direct":
                known.add(room.name[1:])
        if name in known:
            return name, None
        nicks = {user: presence.nick for user, presence in self.model.presence.items()}
        exact = sorted(user for user, nick in nicks.items() if nick == name)
        matches = exact or sorted(user for user, nick in nicks.items() if nick.casefold() == name.casefold())
        if len(matches) == 1:
            return matches[0], f"{name} is @{matches[0]}: direct messages go to that identity"
        if matches:
            return None, f"{name} is the nick of {', '.join('@' + m for m in matches)}: /msg @IDENTITY TEXT"
        seen = ", ".join(sorted(f"{nick} (@{user})" if nick and nick != user else f"@{user}"
                                for user, nick in nicks.items()))  # fmt: skip
        return None, (f"nobody called {name} is known here (seen: {seen or 'nobody'}); "
                      f"to write to an identity not seen yet: /msg @{name} TEXT")  # fmt: skip

    @property
    def delivery_counts(self) -> dict[Delivery, int]:
        counts: dict[Delivery, int] = {}
        for room in self.model.rooms.values():
            for message in room.messages:
                if message.own:
                    counts[message.delivery] = counts.get(message.delivery, 0) + 1
        return counts
