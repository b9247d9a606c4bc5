"""Local chat history in SQLite under the platformdirs data dir: scroll-back pages, search, and the rooms that
were open (so that a restart brings them back in their order)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mqttchat.chat.model import ChatMessage, Delivery
from mqttchat.chat.protocol import TS_MAX, TS_MIN, Envelope, shown_nick
from mqttchat.untrusted import printable

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY, room TEXT NOT NULL, sender TEXT NOT NULL, session TEXT, seq INTEGER, ts REAL,
    nick TEXT, text TEXT, kind TEXT, received_at REAL NOT NULL, own INTEGER NOT NULL, delivery TEXT);
CREATE INDEX IF NOT EXISTS messages_by_room ON messages (room, received_at);
CREATE TABLE IF NOT EXISTS rooms (
    position INTEGER PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, topic TEXT, current INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class SavedRoom:
    """A room that was open: ``kind`` is ``room``, ``direct`` or ``raw`` (``topic``: its MQTT topic filter)."""

    name: str
    kind: str
    topic: str | None = None
    current: bool = False


class History:
    """Chat messages kept across runs. A received message is committed as it is added, before it is shown:
    the broker has acknowledged it already, so this is the only copy (WAL with synchronous=NORMAL survives the
    process dying; a commit costs tens of microseconds)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(str(path))
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self._pending: list[tuple[Any, ...]] = []

    def add(self, message: ChatMessage) -> None:
        """Store ``message`` now (committed before this returns)."""
        e = message.envelope
        self._pending.append((e.id, message.room, message.sender, e.session, e.seq, e.ts, e.nick, e.text, e.kind,
                              message.received_at, int(message.own), message.delivery.value))  # fmt: skip
        self.flush()

    def set_delivery(self, message_id: str, delivery: Delivery) -> None:
        self.flush()
        self.db.execute("UPDATE messages SET delivery = ? WHERE id = ?", (delivery.value, message_id))
        self.db.commit()

    def flush(self) -> None:
        if self._pending:
            self.db.executemany("INSERT OR IGNORE INTO messages VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", self._pending)
            self.db.commit()
            self._pending.clear()

    def page(self, room: str, before: float | None = None, limit: int = 200) -> list[ChatMessage]:
        """Up to ``limit`` messages of ``room`` received before ``before`` (the newest page when None), oldest first."""
        self.flush()
        if before is None:
            rows = self.db.execute(
                "SELECT * FROM messages WHERE room = ? ORDER BY received_at DESC LIMIT ?", (room, limit)
            ).fetchall()
        else:
            rows = self.db.execute(
                "SELECT * FROM messages WHERE room = ? AND received_at < ? ORDER BY received_at DESC LIMIT ?",
                (room, before, limit),
            ).fetchall()
        return [self._message(row) for row in reversed(rows)]

    def search(self, text: str, room: str | None = None, limit: int = 100) -> list[ChatMessage]:
        self.flush()
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        if room is None:
            rows = self.db.execute(
                "SELECT * FROM messages WHERE text LIKE ? ESCAPE '\\' ORDER BY received_at DESC LIMIT ?",
                (pattern, limit),
            ).fetchall()
        else:
            rows = self.db.execute(
                "SELECT * FROM messages WHERE room = ? AND text LIKE ? ESCAPE '\\' ORDER BY received_at DESC LIMIT ?",
                (room, pattern, limit),
            ).fetchall()
        return [self._message(row) for row in rows]

    def rooms(self) -> list[str]:
        self.flush()
        return [row[0] for row in self.db.execute("SELECT DISTINCT room FROM messages ORDER BY room")]

    def save_rooms(self, rooms: list[SavedRoom]) -> None:
        """Remember the open rooms, in their order (replacing what was saved)."""
        with self.db:
            self.db.execute("DELETE FROM rooms")
            self.db.executemany(
                "INSERT INTO rooms VALUES (?,?,?,?,?)",
                [(i, r.name, r.kind, r.topic, int(r.current)) for i, r in enumerate(rooms)],
            )

    def saved_rooms(self) -> list[SavedRoom] | None:
        """The rooms open when the chat last ran, in their order; None if none were ever saved (a new history,
        or one from before rooms were saved: see :meth:`direct_rooms`)."""
        rows = self.db.execute("SELECT name, kind, topic, current FROM rooms ORDER BY position").fetchall()
        if not rows:
            return None
        return [SavedRoom(str(n), str(k), None if t is None else str(t), bool(c)) for n, k, t, c in rows]

    def direct_rooms(self) -> list[SavedRoom]:
        """The direct conversations this history holds messages of, oldest first."""
        direct = self.db.execute(
            "SELECT room FROM messages WHERE room LIKE '@%' GROUP BY room ORDER BY MIN(received_at)"
        ).fetchall()
        return [SavedRoom(str(row[0]), "direct") for row in direct]

    def sequences(self, room: str) -> list[tuple[str, str, int]]:
        """(sender, session, highest seq) of the messages received in ``room``: where each sender stood."""
        self.flush()
        rows = self.db.execute(
            "SELECT sender, session, MAX(seq) FROM messages WHERE room = ? AND own = 0 AND session != '' "
            "GROUP BY sender, session",
            (room,),
        ).fetchall()
        return [(str(sender), str(session), int(seq)) for sender, session, seq in rows if seq]

    @staticmethod
    def _message(row: tuple[Any, ...]) -> ChatMessage:
        mid, room, sender, session, seq, ts, nick, text, kind, received_at, own, delivery = row
        # Neutralised again: a history written by an older version may hold a nick or text as it was received.
        stamp = float(ts or 0)
        if not TS_MIN <= stamp < TS_MAX:  # a history from before ts was checked
            stamp = float(received_at)
        envelope = Envelope(str(mid), int(seq or 0), str(session or ""), stamp, shown_nick(str(nick)),
                            printable(str(text), keep="\n"), str(kind))  # fmt: skip
        return ChatMessage(
            str(room), str(sender), envelope, float(received_at), bool(own),
            Delivery(str(delivery)) if delivery else Delivery.RECEIVED,
        )  # fmt: skip

    def close(self) -> None:
        self.flush()
        self.db.close()
