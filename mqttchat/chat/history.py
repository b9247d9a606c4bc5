"""Local chat history in SQLite under the platformdirs data dir: scroll-back pages and search."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from mqttchat.chat.model import ChatMessage, Delivery
from mqttchat.chat.protocol import Envelope

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY, room TEXT NOT NULL, sender TEXT NOT NULL, session TEXT, seq INTEGER, ts REAL,
    nick TEXT, text TEXT, kind TEXT, received_at REAL NOT NULL, own INTEGER NOT NULL, delivery TEXT);
CREATE INDEX IF NOT EXISTS messages_by_room ON messages (room, received_at);
"""


class History:
    """Chat messages kept across runs. Writes are committed in batches (call :meth:`flush`)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(str(path))
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        self._pending: list[tuple[Any, ...]] = []

    def add(self, message: ChatMessage) -> None:
        e = message.envelope
        self._pending.append((e.id, message.room, message.sender, e.session, e.seq, e.ts, e.nick, e.text, e.kind,
                              message.received_at, int(message.own), message.delivery.value))  # fmt: skip

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

    @staticmethod
    def _message(row: tuple[Any, ...]) -> ChatMessage:
        mid, room, sender, session, seq, ts, nick, text, kind, received_at, own, delivery = row
        envelope = Envelope(
            str(mid), int(seq or 0), str(session or ""), float(ts or 0), str(nick), str(text), str(kind)
        )
        return ChatMessage(
            str(room), str(sender), envelope, float(received_at), bool(own),
            Delivery(str(delivery)) if delivery else Delivery.RECEIVED,
        )  # fmt: skip

    def close(self) -> None:
        self.flush()
        self.db.close()
