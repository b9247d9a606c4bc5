"""The chat model: rooms in arrival order, de-duplicated by message id, with sequence gaps and delivery states.

Pure Python (no I/O, no clock reads): the runtime feeds it what the MQTT client received and what the user sent;
the chat view reads it on its timer.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from enum import Enum

from mqttchat.chat.protocol import (
    Envelope,
    EnvelopeError,
    Presence,
    decode_envelope,
    decode_presence,
    parse_topic,
)

#: Message ids remembered per model to drop redeliveries (QoS 1 is at least once).
DEDUPE_WINDOW = 200_000
TYPING_SECONDS = 6.0


class Delivery(Enum):
    RECEIVED = "received"
    SENDING = "sending"
    ACKED = "acknowledged"
    FAILED = "failed"


@dataclass
class ChatMessage:
    room: str
    #: The sender's identity: the user topic level (what an ACL enforces), not the free-form nick.
    sender: str
    envelope: Envelope
    received_at: float
    own: bool = False
    delivery: Delivery = Delivery.RECEIVED
    #: Sent while we were away, received as catch-up from our persistent session.
    away: bool = False
    #: How many of this sender's messages are missing just before this one (a sequence gap).
    gap_before: int = 0
    #: Failure reason for own messages.
    error: str | None = None

    @property
    def text(self) -> str:
        return self.envelope.text


@dataclass
class Room:
    name: str
    #: ``room`` (a chat room), ``direct`` (a conversation with one user: name "@user"), or ``raw`` (any topic).
    kind: str = "room"
    #: For raw rooms: the MQTT topic (filter) shown as a room.
    topic: str | None = None
    messages: list[ChatMessage] = field(default_factory=list)
    unread: int = 0
    members: set[str] = field(default_factory=set)
    typing: dict[str, float] = field(default_factory=dict)
    #: Incremented on every change, for the view.
    version: int = 0
    #: Older messages available in local history (the view loads them on scroll-back).
    history_exhausted: bool = False

    def typing_now(self, now: float) -> list[str]:
        return sorted(user for user, until in self.typing.items() if until > now)


class ChatModel:
    """Everything the chat view shows."""

    def __init__(self, me: str) -> None:
        self.me = me
        self.rooms: dict[str, Room] = {}
        self.current = ""
        self.presence: dict[str, Presence] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._last_seq: dict[tuple[str, str, str], int] = {}
        self._own: dict[str, ChatMessage] = {}
        #: When the current connection was established: older envelopes arriving now are catch-up.
        self.connected_at = 0.0
        self.invalid = 0
        self.duplicates = 0
        self.gaps = 0
        self._notices = 0

    def room(self, name: str, kind: str = "room", topic: str | None = None) -> Room:
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = Room(name, kind, topic)
            if not self.current:
                self.current = name
        return room

    def ordered_rooms(self) -> list[Room]:
        """Rooms as listed: chat rooms, then direct conversations, then raw topics, each in the order opened."""
        rank = {"room": 0, "direct": 1, "raw": 2}
        return sorted(self.rooms.values(), key=lambda room: rank.get(room.kind, 3))

    def _remember(self, message_id: str) -> bool:
        """False if the id was seen before (a duplicate)."""
        if message_id in self._seen:
            return False
        self._seen[message_id] = None
        if len(self._seen) > DEDUPE_WINDOW:
            self._seen.popitem(last=False)
        return True

    def _append(self, room: Room, message: ChatMessage) -> None:
        room.messages.append(message)
        room.version += 1
        if room.name != self.current and not message.own:
            room.unread += 1

    # ------------------------------------------------------------------------------------------ input

    def ingest(self, topic: str, payload: bytes, received_at: float) -> ChatMessage | None:
        """Take one MQTT message; return the chat message it added, if any."""
        parsed = parse_topic(topic)
        if parsed.kind == "presence":
            assert parsed.user is not None
            status = decode_presence(payload)
            if status is None:
                self.presence.pop(parsed.user, None)
            else:
                self.presence[parsed.user] = status
                for name in status.rooms:
                    if name in self.rooms:
                        self.rooms[name].members.add(parsed.user)
                        self.rooms[name].version += 1
            return None
        if parsed.kind == "typing":
            assert parsed.room is not None and parsed.user is not None
            if parsed.user != self.me and parsed.room in self.rooms:
                room = self.rooms[parsed.room]
                room.typing[parsed.user] = received_at + TYPING_SECONDS if payload else 0.0
                room.version += 1
            return None
        if parsed.kind not in ("message", "direct"):
            return None
        assert parsed.user is not None
        try:
            envelope = decode_envelope(payload)
        except EnvelopeError:
            self.invalid += 1
            return None
        own = self._own.get(envelope.id)
        if own is not None:
            return None  # our own message coming back from the broker: already shown
        if not self._remember(envelope.id):
            self.duplicates += 1
            return None
        if parsed.kind == "message":
            assert parsed.room is not None
            room = self.room(parsed.room)
            room.members.add(parsed.user)
        else:
            other = parsed.user if parsed.to == self.me else parsed.to
            room = self.room(f"@{other}", "direct")
        key = (parsed.user, envelope.session, room.name)
        last = self._last_seq.get(key)
        gap = 0
        if last is not None and envelope.seq > last + 1:
            gap = envelope.seq - last - 1
            self.gaps += gap
        if last is None or envelope.seq > last:
            self._last_seq[key] = envelope.seq
        room.typing.pop(parsed.user, None)
        message = ChatMessage(room.name, parsed.user, envelope, received_at, gap_before=gap,
                              away=bool(self.connected_at) and envelope.ts < self.connected_at - 1.0)  # fmt: skip
        self._append(room, message)
        return message

    def ingest_raw(self, room_name: str, topic: str, payload: bytes, received_at: float) -> ChatMessage:
        """A message on a raw room's topic: its payload as a line of text."""
        room = self.rooms[room_name]
        text = payload.decode(errors="replace")
        sender = topic.rsplit("/", 1)[-1] if topic != room.topic else topic
        envelope = Envelope(f"raw-{received_at}-{len(room.messages)}", len(room.messages) + 1, "", received_at,
                            sender, text)  # fmt: skip
        message = ChatMessage(room_name, topic, envelope, received_at)
        self._append(room, message)
        return message

    def add_notice(self, room_name: str, text: str, now: float) -> ChatMessage:
        """A local line (command output, errors): shown in the room, never sent or stored."""
        room = self.room(room_name) if room_name else self.room("lobby")
        self._notices += 1
        envelope = Envelope(f"notice-{self._notices}", 0, "", now, "", text, "notice")
        message = ChatMessage(room.name, "", envelope, now)
        room.messages.append(message)
        room.version += 1
        return message

    # ------------------------------------------------------------------------------------------ own messages

    def add_own(self, room_name: str, envelope: Envelope, received_at: float) -> ChatMessage:
        room = self.rooms[room_name]
        message = ChatMessage(room_name, self.me, envelope, received_at, own=True, delivery=Delivery.SENDING)
        self._own[envelope.id] = message
        self._remember(envelope.id)
        self._append(room, message)
        return message

    def delivered(self, message_id: str, ok: bool, error: str | None = None) -> None:
        message = self._own.get(message_id)
        if message is None:
            return
        message.delivery = Delivery.ACKED if ok else Delivery.FAILED
        message.error = error
        self.rooms[message.room].version += 1

    def select(self, room_name: str) -> None:
        self.current = room_name
        room = self.rooms.get(room_name)
        if room is not None:
            room.unread = 0
            room.version += 1

    def members(self, room_name: str) -> list[tuple[str, str]]:
        """(user, status) of a room's members, online first."""
        room = self.rooms.get(room_name)
        if room is None:
            return []
        users = set(room.members) | {u for u, p in self.presence.items() if room_name in p.rooms}
        rows = []
        for user in users:
            status = self.presence.get(user)
            rows.append((user, status.status if status else "unknown"))
        rows.sort(key=lambda r: (r[1] != "online", r[0]))
        return rows
