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
import math
import time
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from mqttchat.protocol import Properties
from mqttchat.untrusted import printable, shorten

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


@lru_cache(maxsize=4096)
def valid_name(name: str) -> bool:
    """Whether ``name`` may be a room or user name (cached: a reader checks the levels of every topic)."""
    return name_problem(name) is None


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


class Invalid(ValueError):
    """A payload on a chat topic that breaks the receiving rules (docs/chat-protocol.md, "Receiving"): the reader
    drops it and counts it under ``reason``, a short name (the field at fault, or ``size``/``json``/``object``)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class EnvelopeError(Invalid):
    """A payload on a message topic that is not a valid version 1 envelope.

    ``id``, ``session`` and ``seq`` are set when those fields themselves were valid (the fault lies elsewhere, for
    example an unknown ``kind``): the reader still counts the message for duplicates and sequence gaps, so that
    one dropped message is reported once, as dropped, and not a second time as a gap.
    """

    def __init__(
        self, reason: str, detail: str, id: str | None = None, session: str | None = None, seq: int | None = None
    ) -> None:
        super().__init__(reason, detail)
        self.id = id
        self.session = session
        self.seq = seq


class PresenceError(Invalid):
    """A presence payload that breaks the rules."""


#: The largest payload a reader parses on a chat topic (bytes); a bigger one is dropped unread.
MAX_PAYLOAD = 256 * 1024
MAX_ID = 128
MAX_SESSION = 64
#: JavaScript's Number.MAX_SAFE_INTEGER: the largest sequence number every JSON reader holds exactly.
MAX_SEQ = 2**53 - 1
#: ``ts`` is in seconds since 1970 (UTC), from 1970-01-01 up to (not including) 2100-01-01.
TS_MIN = 0.0
TS_MAX = 4_102_444_800.0
KINDS = ("message", "action")
STATUSES = ("online", "away", "offline")
#: Statuses of a member who is connected (``away``: connected, but not at the keyboard).
ONLINE_STATUSES = ("online", "away")
MAX_CLIENT = 64
MAX_PRESENCE_ROOMS = 256
#: How a cut text is marked: the first MAX_TEXT characters, then this (with the number of characters cut).
TEXT_CUT_MARK = "… [{cut:,} more characters cut]"


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


#: One decoder for every payload (json.loads with an argument builds a new one per call).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _json_object(payload: bytes, error: type[Invalid]) -> dict[str, Any]:
    """Parse ``payload`` as one strict JSON object (UTF-8, no NaN/Infinity) or raise ``error``."""
    if len(payload) > MAX_PAYLOAD:
        raise error("size", f"{len(payload):,} bytes, more than {MAX_PAYLOAD:,}")
    try:
        data = _DECODER.decode(payload.decode("utf-8"))
    except UnicodeDecodeError:
        raise error("json", "not UTF-8") from None
    except (ValueError, RecursionError) as exc:
        raise error("json", f"not JSON ({str(exc)[:80]})") from None
    if not isinstance(data, dict):
        raise error("object", f"not a JSON object but {_json_type(data)}")
    return data


_MISSING = object()


def _json_type(value: object) -> str:
    if value is _MISSING:
        return "missing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _integer(value: object) -> int | None:
    """A JSON number with an integral value (``4`` and ``4.0`` alike: JavaScript cannot tell them apart), else
    None (also for ``true``, a string, or a fraction)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _version(data: dict[str, Any], error: type[Invalid]) -> None:
    version = data.get("v")
    if _integer(version) != VERSION:
        shown = "missing" if "v" not in data else json.dumps(version)[:20]
        raise error("version", f"v is {shown}, not {VERSION}")


def _token(data: dict[str, Any], key: str, limit: int) -> str | None:
    """A short id (``id``, ``session``): a string of 1 to ``limit`` printable ASCII characters without spaces."""
    value = data.get(key)
    if (
        isinstance(value, str)
        and 0 < len(value) <= limit
        and value.isascii()
        and value.isprintable()
        and " " not in value
    ):
        return value
    return None


def _timestamp(value: object, error: type[Invalid], what: str = "ts") -> float:
    if not _is_number(value):
        raise error("ts", f"{what} is {_json_type(value)}, not a number of seconds")
    try:
        stamp = float(value)  # type: ignore[arg-type]
    except OverflowError:  # an integer of hundreds of digits
        stamp = math.inf
    if stamp >= TS_MAX and stamp < TS_MAX * 1000 * 1.01:
        raise error("ts", f"{what} {stamp:.0f} is in milliseconds: send seconds (JavaScript: Date.now()/1000)")
    if not TS_MIN <= stamp < TS_MAX:
        raise error("ts", f"{what} {stamp:g} is not a time between 1970 and 2100 in seconds")
    return stamp


def shown_nick(nick: str) -> str:
    """A nick as readers show it: control and format characters made visible, surrounding blanks removed, cut to
    MAX_NAME characters with a mark (``…``)."""
    return shorten(printable(nick.strip()), MAX_NAME)


def shown_text(text: str) -> str:
    """A message text as readers show it: line breaks kept (CR LF as LF), every other control or format character
    made visible, cut after MAX_TEXT characters with a mark saying how much was cut."""
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    text = printable(text, keep="\n")
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT] + TEXT_CUT_MARK.format(cut=len(text) - MAX_TEXT)
    return text


def decode_envelope(payload: bytes) -> Envelope:
    """Parse and check an envelope by the receiving rules; the result is normalised for showing (see
    :func:`shown_nick`, :func:`shown_text`). Raises EnvelopeError naming the reason."""
    data = _json_object(payload, EnvelopeError)
    _version(data, EnvelopeError)
    message_id = _token(data, "id", MAX_ID)
    if message_id is None:
        raise EnvelopeError("id", f"id must be a string of 1 to {MAX_ID} printable ASCII characters without spaces")
    session = _token(data, "session", MAX_SESSION)
    if session is None:
        raise EnvelopeError(
            "session", f"session must be a string of 1 to {MAX_SESSION} printable ASCII characters without spaces"
        )
    seq = _integer(data.get("seq"))
    if seq is None or not 1 <= seq <= MAX_SEQ:
        shown = json.dumps(data.get("seq"), ensure_ascii=True)[:30] if "seq" in data else "missing"
        raise EnvelopeError("seq", f"seq must be an integer from 1 to {MAX_SEQ}, not {shown}")

    def fail(reason: str, detail: str) -> EnvelopeError:
        return EnvelopeError(reason, detail, message_id, session, seq)

    try:
        ts = _timestamp(data.get("ts", _MISSING), EnvelopeError)
    except EnvelopeError as exc:
        raise fail(exc.reason, exc.detail) from None
    nick, text, kind = data.get("nick", _MISSING), data.get("text", _MISSING), data.get("kind", "message")
    if not isinstance(nick, str):
        raise fail("nick", f"nick is {_json_type(nick)}, not a string")
    if not isinstance(text, str):
        raise fail("text", f"text is {_json_type(text)}, not a string")
    if not text:
        raise fail("text", "text is empty")
    if kind not in KINDS:
        shown = json.dumps(kind, ensure_ascii=True)[:40]
        raise fail("kind", f"kind {shown} is not one of {', '.join(KINDS)}")
    return Envelope(message_id, seq, session, ts, shown_nick(nick), shown_text(text), kind)


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
    ts: float | None = None

    @property
    def online(self) -> bool:
        return self.status in ONLINE_STATUSES


def decode_presence(payload: bytes) -> Presence | None:
    """None for an empty (cleared) presence; a checked, normalised Presence; or PresenceError."""
    if not payload:
        return None
    data = _json_object(payload, PresenceError)
    _version(data, PresenceError)
    status, nick, rooms = data.get("status", _MISSING), data.get("nick", _MISSING), data.get("rooms", _MISSING)
    client = data.get("client", "")
    if status not in STATUSES:
        shown = "missing" if status is _MISSING else json.dumps(status, ensure_ascii=True)[:40]
        raise PresenceError("status", f"status {shown} is not one of {', '.join(STATUSES)}")
    if not isinstance(nick, str):
        raise PresenceError("nick", f"nick is {_json_type(nick)}, not a string")
    if not isinstance(rooms, list) or len(rooms) > MAX_PRESENCE_ROOMS:
        raise PresenceError("rooms", f"rooms must be an array of at most {MAX_PRESENCE_ROOMS} room names")
    for room in rooms:
        if not isinstance(room, str) or name_problem(room, "room name") is not None:
            raise PresenceError("rooms", f"rooms holds {_json_type(room)} that is not a room name")
    if not isinstance(client, str):
        raise PresenceError("client", f"client is {_json_type(client)}, not a string")
    ts = _timestamp(data["ts"], PresenceError) if "ts" in data else None
    return Presence(status, shown_nick(nick), tuple(dict.fromkeys(rooms)), shorten(printable(client), MAX_CLIENT), ts)


def decode_typing(payload: bytes) -> bool:
    """True for ``{"typing":true}``, False for an empty payload (stopped); anything else is a PresenceError."""
    if not payload:
        return False
    data = _json_object(payload, PresenceError)
    if data.get("typing") is not True:
        raise PresenceError("typing", 'a typing payload is {"typing":true} or empty')
    return True
