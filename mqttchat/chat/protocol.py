"""The chat wire protocol, version 1 (see docs/chat-protocol.md): topics, envelopes, presence, typing.

Topics (``{prefix}`` is ``mqttchat/v1``; ``{user}`` is the sender's identity, which a broker ACL can enforce):

* ``{prefix}/rooms/{room}/messages/{user}``  chat messages (QoS 1, not retained)
* ``{prefix}/rooms/{room}/typing/{user}``    typing indicators (QoS 0, not retained)
* ``{prefix}/direct/{to}/{user}``            direct messages to one user (QoS 1)
* ``{prefix}/presence/{user}``               presence (QoS 1, retained): the birth message on connect,
                                             the will on an unclean disconnect, "offline" on a clean exit
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from mqttchat.protocol import Properties

VERSION = 1
PREFIX = f"mqttchat/v{VERSION}"
CONTENT_TYPE = "application/vnd.mqttchat.v1+json"
#: Room and user names: one topic level, no wildcards, not empty, not starting with $.
MAX_NAME = 64
MAX_TEXT = 16_000


def name_problem(name: str, what: str = "name") -> str | None:
    """Why ``name`` cannot be a room or user name (one topic level), or None."""
    if not name:
        return f"the {what} is empty"
    if len(name) > MAX_NAME:
        return f"the {what} is longer than {MAX_NAME} characters"
    if any(c in name for c in "/+#\x00") or name.startswith("$"):
        return f"the {what} {name!r} may not contain / + # or start with $"
    if not name.isprintable() or name != name.strip():
        return f"the {what} {name!r} has control characters or surrounding spaces"
    return None


def room_messages(room: str, user: str) -> str:
    return f"{PREFIX}/rooms/{room}/messages/{user}"


def room_typing(room: str, user: str) -> str:
    return f"{PREFIX}/rooms/{room}/typing/{user}"


def direct(to: str, user: str) -> str:
    return f"{PREFIX}/direct/{to}/{user}"


def presence(user: str) -> str:
    return f"{PREFIX}/presence/{user}"


def subscriptions(user: str, rooms: list[str]) -> list[str]:
    """What a member subscribes to: its rooms, its direct messages, everyone's presence."""
    out = [f"{PREFIX}/rooms/{room}/#" for room in rooms]
    out.append(f"{PREFIX}/direct/{user}/+")
    out.append(f"{PREFIX}/presence/+")
    return out


@dataclass(frozen=True)
class Parsed:
    """What a chat topic means: kind is ``message``, ``typing``, ``direct``, ``presence``, or ``other``."""

    kind: str
    room: str | None = None
    user: str | None = None
    to: str | None = None


def parse_topic(topic: str) -> Parsed:
    if not topic.startswith(PREFIX + "/"):
        return Parsed("other")
    levels = topic[len(PREFIX) + 1 :].split("/")
    if len(levels) == 4 and levels[0] == "rooms" and levels[2] in ("messages", "typing"):
        return Parsed("message" if levels[2] == "messages" else "typing", levels[1], levels[3])
    if len(levels) == 3 and levels[0] == "direct":
        return Parsed("direct", None, levels[2], levels[1])
    if len(levels) == 2 and levels[0] == "presence":
        return Parsed("presence", None, levels[1])
    return Parsed("other")


@dataclass(frozen=True)
class Envelope:
    """A chat message as it travels: JSON, mirrored in MQTT 5 user properties."""

    id: str
    #: The sender session's sequence number in this room or direct conversation: 1, 2, 3, ... (a gap means
    #: messages were lost).
    seq: int
    #: A random id per sender session (an app run): sequence numbers restart with it.
    session: str
    ts: float
    nick: str
    text: str
    #: ``message``, or ``action`` for /me.
    kind: str = "message"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        body = {"v": VERSION, "id": self.id, "seq": self.seq, "session": self.session, "ts": round(self.ts, 3),
                "nick": self.nick, "text": self.text, "kind": self.kind, **self.extra}  # fmt: skip
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    def properties(self) -> Properties:
        return Properties(
            content_type=CONTENT_TYPE,
            user_property=[
                ("id", self.id),
                ("seq", str(self.seq)),
                ("session", self.session),
                ("nick", self.nick),
                ("kind", self.kind),
            ],
        )


class EnvelopeError(ValueError):
    """A payload on a chat topic that is not a valid version 1 envelope."""


def decode_envelope(payload: bytes) -> Envelope:
    """Parse an envelope. Raises EnvelopeError naming what is wrong."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnvelopeError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EnvelopeError("not a JSON object")
    if data.get("v") != VERSION:
        raise EnvelopeError(f"unsupported version {data.get('v')!r}")
    try:
        envelope = Envelope(
            id=str(data["id"]),
            seq=int(data["seq"]),
            session=str(data.get("session", "")),
            ts=float(data["ts"]),
            nick=str(data["nick"])[:MAX_NAME],
            text=str(data["text"])[:MAX_TEXT],
            kind=str(data.get("kind", "message")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise EnvelopeError(f"missing or bad field: {exc}") from None
    if envelope.seq < 1:
        raise EnvelopeError("seq must be 1 or more")
    return envelope


class Sender:
    """Makes this member's envelopes: a fresh session id per run, and sequence numbers from 1 per room (or
    direct conversation), so that a reader of one room sees a gap only when a message of that room is lost."""

    def __init__(self, nick: str, session: str | None = None) -> None:
        self.nick = nick
        self.session = session or uuid.uuid4().hex[:12]
        self.seq: dict[str, int] = {}

    def envelope(self, text: str, kind: str = "message", room: str = "", now: float | None = None) -> Envelope:
        seq = self.seq[room] = self.seq.get(room, 0) + 1
        return Envelope(uuid.uuid4().hex, seq, self.session, time.time() if now is None else now, self.nick,
                        text, kind)  # fmt: skip


def presence_payload(status: str, nick: str, rooms: list[str], client: str) -> bytes:
    return json.dumps({"v": VERSION, "status": status, "nick": nick, "rooms": rooms, "client": client,
                       "ts": round(time.time(), 3)}, separators=(",", ":")).encode()  # fmt: skip


@dataclass(frozen=True)
class Presence:
    status: str
    nick: str
    rooms: tuple[str, ...]
    client: str


def decode_presence(payload: bytes) -> Presence | None:
    """None for an empty (cleared) presence or an unreadable one."""
    if not payload:
        return None
    try:
        data = json.loads(payload)
        return Presence(str(data["status"]), str(data.get("nick", "")), tuple(map(str, data.get("rooms", []))),
                        str(data.get("client", "")))  # fmt: skip
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None
