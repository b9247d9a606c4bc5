"""The chat model: rooms in arrival order, de-duplicated by message id, with sequence gaps and delivery states.

Pure Python (no I/O, no clock reads): the runtime feeds it what the MQTT client received and what the user sent;
the chat view reads it on its timer.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from mqttchat.chat.protocol import (
    MAX_NAME,
    ONLINE_STATUSES,
    Envelope,
    EnvelopeError,
    Invalid,
    Presence,
    decode_envelope,
    decode_presence,
    decode_typing,
    parse_topic,
    valid_name,
)
from mqttchat.untrusted import printable

#: Message ids remembered per model to drop redeliveries (QoS 1 is at least once).
DEDUPE_WINDOW = 200_000
#: (sender, session, room) sequence positions remembered, oldest forgotten first.
SEQUENCE_WINDOW = 100_000
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
    #: ``room`` (a chat room), ``direct`` (a conversation with one user: name "@user"), ``raw`` (any topic), or
    #: ``home`` (the local lines shown while no room is open).
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
        #: What the view shows while no room is open (after leaving the last one): local lines only.
        self.home = Room("", "home")
        self.presence: dict[str, Presence] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._last_seq: dict[tuple[str, str, str], int] = {}
        self._own: dict[str, ChatMessage] = {}
        #: When the current connection was established: older envelopes arriving now are catch-up.
        self.connected_at = 0.0
        #: Payloads dropped for breaking the receiving rules, by reason (the field at fault), and the last one.
        self.dropped: dict[str, int] = {}
        self.last_drop = ""
        self._dropping: set[tuple[str, str]] = set()
        self.duplicates = 0
        self.gaps = 0
        self._notices = 0
        #: Called with each accepted message before it is shown (the service stores it in the local history).
        self.on_accept: Callable[[ChatMessage], None] | None = None
        #: The time local lines are stamped with.
        self.clock: Callable[[], float] = time.time

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
        """Take one MQTT message; return the chat message it added, if any.

        Follows the receiving rules of docs/chat-protocol.md: what breaks them is dropped and counted
        (:attr:`dropped`, :attr:`last_drop`, and a line in the room for messages); what is shown is normalised.
        Never raises for any topic or payload.
        """
        parsed = parse_topic(topic)
        if parsed.kind == "other":
            return None
        assert parsed.user is not None
        if not valid_name(parsed.user) or (parsed.room is not None and not valid_name(parsed.room)):
            self._drop("topic", "the topic's room or user level is not a valid name", parsed.user, None)
            return None
        if parsed.kind == "presence":
            self._ingest_presence(parsed.user, payload)
            return None
        if parsed.kind == "typing":
            assert parsed.room is not None
            try:
                typing = decode_typing(payload)
            except Invalid as exc:
                self._drop(exc.reason, exc.detail, parsed.user, None)
                return None
            if parsed.user != self.me and parsed.room in self.rooms:
                room = self.rooms[parsed.room]
                room.typing[parsed.user] = received_at + TYPING_SECONDS if typing else 0.0
                room.version += 1
            return None
        if parsed.kind == "message":
            assert parsed.room is not None
            room_name, room_kind = parsed.room, "room"
            if room_name not in self.rooms or self.rooms[room_name].kind != "room":
                return None  # a room we are not in (left, with a message still on its way)
        else:
            room_name, room_kind = f"@{parsed.user if parsed.to == self.me else parsed.to}", "direct"
        try:
            envelope = decode_envelope(payload)
        except EnvelopeError as exc:
            if exc.id is not None and exc.id in self._own:
                return None
            if exc.id is not None and not self._remember(exc.id):
                self.duplicates += 1
                return None
            if exc.session is not None and exc.seq is not None:
                self._sequence(parsed.user, exc.session, room_name, exc.seq)  # dropped, but not a gap
            self._drop(exc.reason, exc.detail, parsed.user, self.room(room_name, room_kind))
            return None
        if envelope.id in self._own:
            return None  # our own message coming back from the broker: already shown
        if not self._remember(envelope.id):
            self.duplicates += 1
            return None
        room = self.room(room_name, room_kind)
        if room.kind == "room":
            room.members.add(parsed.user)
        gap = self._sequence(parsed.user, envelope.session, room.name, envelope.seq)
        self.gaps += gap
        room.typing.pop(parsed.user, None)
        self._dropping.discard((room.name, parsed.user))
        message = ChatMessage(room.name, parsed.user, envelope, received_at, gap_before=gap,
                              away=bool(self.connected_at) and envelope.ts < self.connected_at - 1.0)  # fmt: skip
        if self.on_accept is not None:
            self.on_accept(message)  # stored before it is shown: nothing after this can lose it
        self._append(room, message)
        return message

    def _sequence(self, user: str, session: str, room: str, seq: int) -> int:
        """Record ``seq`` from ``user``'s ``session`` in ``room``; return how many are missing just before it."""
        key = (user, session, room)
        last = self._last_seq.get(key)
        if last is None or seq > last:
            self._last_seq[key] = seq
            if len(self._last_seq) > SEQUENCE_WINDOW:
                del self._last_seq[next(iter(self._last_seq))]
        return seq - last - 1 if last is not None and seq > last + 1 else 0

    def _ingest_presence(self, user: str, payload: bytes) -> None:
        try:
            status = decode_presence(payload)
        except Invalid as exc:
            self._drop(exc.reason, exc.detail, user, None, "presence")
            return
        old = self.presence.pop(user, None)
        if old is not None:
            for name in old.rooms:
                if name in self.rooms:
                    self.rooms[name].version += 1
        if status is None:
            return
        self.presence[user] = status
        for name in status.rooms:
            if name in self.rooms:
                self.rooms[name].members.add(user)
                self.rooms[name].version += 1

    def _drop(self, reason: str, detail: str, user: str, room: Room | None, what: str = "message") -> None:
        """Count a payload that broke the rules; for messages, say so once in the room (until that sender's next
        valid message there), so that a stream of bad messages adds one line, not one per message."""
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        detail = printable(detail)
        self.last_drop = f"{what} from {printable(user, limit=MAX_NAME)}: {detail}"
        if room is None or (room.name, user) in self._dropping:
            return
        if len(self._dropping) > SEQUENCE_WINDOW:
            self._dropping.clear()
        self._dropping.add((room.name, user))
        self._notices += 1
        text = f"a message from {printable(user, limit=MAX_NAME)} was dropped: {detail}"
        now = self.clock()
        envelope = Envelope(f"notice-{self._notices}", 0, "", now, "", text, "dropped")
        message = ChatMessage(room.name, "", envelope, now)
        room.messages.append(message)
        room.version += 1

    @property
    def invalid(self) -> int:
        """How many payloads were dropped for breaking the receiving rules."""
        return sum(self.dropped.values())

    def remember(self, messages: list[ChatMessage]) -> None:
        """Messages loaded from the local history: their ids are known (a redelivery is a duplicate) and their
        sequence numbers set where a sender's session stands (a message lost while we were away is a gap)."""
        for message in messages:
            envelope = message.envelope
            if envelope.kind in ("notice", "dropped"):
                continue
            self._remember(envelope.id)
            if envelope.session and envelope.seq > 0 and not message.own:
                self._sequence(message.sender, envelope.session, message.room, envelope.seq)

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
        """A local line (command output, errors): shown in the room (with no room open, in :attr:`home`), never
        sent or stored."""
        room = self.rooms.get(room_name) or self.home
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
        rows.sort(key=lambda r: (r[1] not in ONLINE_STATUSES, r[1] != "online", r[0]))
        return rows
