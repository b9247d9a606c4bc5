"""Broker persistence in SQLite (WAL): retained messages, persistent sessions, their queues and in-flight state.

Changes are collected while the event loop handles one batch of input and written in one transaction when it
yields (a group commit). Acknowledgements of incoming QoS 1/2 messages are held until that commit: a PUBACK or
PUBREC the broker has sent always refers to a message on disk, so a crash (kill -9) loses nothing that was
acknowledged. ``synchronous=NORMAL`` in WAL mode makes a committed transaction survive a process crash (an
operating system crash may lose the last transactions).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mqttchat.broker.retained import RetainedMessage
from mqttchat.broker.session import NEVER_EXPIRES, Session
from mqttchat.protocol import (
    EMPTY_PROPERTIES,
    Completed,
    InFlight,
    OutgoingState,
    Packet,
    Properties,
    Publish,
    RetainHandling,
    Subscription,
)
from mqttchat.protocol.constants import PacketType
from mqttchat.protocol.properties import decode_properties, encode_properties

if TYPE_CHECKING:
    from mqttchat.broker.connection import BrokerConnection
    from mqttchat.broker.core import BrokerCore

log = logging.getLogger("mqttchat.broker")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS retained (
    topic TEXT PRIMARY KEY, payload BLOB NOT NULL, qos INTEGER NOT NULL, properties BLOB,
    expires_at REAL, stored_at REAL);
CREATE TABLE IF NOT EXISTS sessions (
    client_id TEXT PRIMARY KEY, expiry_interval INTEGER NOT NULL, version INTEGER NOT NULL,
    username TEXT, disconnected_at REAL);
CREATE TABLE IF NOT EXISTS subscriptions (
    client_id TEXT NOT NULL, topic_filter TEXT NOT NULL, qos INTEGER NOT NULL, no_local INTEGER NOT NULL,
    retain_as_published INTEGER NOT NULL, retain_handling INTEGER NOT NULL, subscription_id INTEGER,
    PRIMARY KEY (client_id, topic_filter));
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY, client_id TEXT NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL,
    qos INTEGER NOT NULL, retain INTEGER NOT NULL, properties BLOB, expires_at REAL,
    packet_id INTEGER, released INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS messages_by_client ON messages (client_id, id);
CREATE TABLE IF NOT EXISTS incoming_qos2 (client_id TEXT NOT NULL, packet_id INTEGER NOT NULL,
    PRIMARY KEY (client_id, packet_id));
"""


def _props_blob(props: Properties) -> bytes | None:
    return None if not props else encode_properties(props, PacketType.PUBLISH)


def _props_from(blob: bytes | None) -> Properties:
    if not blob:
        return EMPTY_PROPERTIES
    props, _ = decode_properties(blob, 0, len(blob), PacketType.PUBLISH)
    return props


def _wall(expires_at: float | None) -> float | None:
    """A monotonic deadline as wall-clock time (what survives a restart)."""
    return None if expires_at is None else time.time() + (expires_at - time.monotonic())


def _mono(expires_wall: float | None) -> float | None:
    return None if expires_wall is None else time.monotonic() + (expires_wall - time.time())


class StoreInUse(OSError):
    """Another broker (in this process or another) has the store open."""


def _lock(path: Path) -> int | None:
    """Take the store's lock (``<store>.lock``, held while the broker runs); None where locks are unsupported.

    Two brokers writing one store would each overwrite the other's sessions; and a broker taking over from one
    that is shutting down must load the store only after the last commit.

    Raises:
        StoreInUse: another broker holds it.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; one broker per store is then the user's business
        return None
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 32).decode("ascii", "replace").strip()
        os.close(fd)
        raise StoreInUse(
            f"{path} is in use by another broker" + (f" (pid {holder})" if holder.isdigit() else "")
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


class Store:
    """The broker's SQLite store; see the module docstring for the durability rules."""

    def __init__(self, core: BrokerCore, path: Path | None) -> None:
        if path is None:
            raise ValueError("persistence needs a persistence_file")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock(path)
        try:
            self._open(core, path)
        except BaseException:
            self._unlock()
            raise

    def _open(self, core: BrokerCore, path: Path) -> None:
        self.core = core
        self.path = path
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(sessions)")}
        if "authenticated" not in columns:  # a store from before sessions had owners
            self.db.execute("ALTER TABLE sessions ADD COLUMN authenticated INTEGER NOT NULL DEFAULT 0")
        self._next_id = (self.db.execute("SELECT MAX(id) FROM messages").fetchone()[0] or 0) + 1
        #: ``released`` holds the order in which PUBRECs arrived (1, 2, ...): PUBRELs are resent in that order.
        self._release_seq = self.db.execute("SELECT MAX(released) FROM messages").fetchone()[0] or 0
        self._ops: list[tuple[str, tuple[Any, ...]]] = []
        self._acks: list[tuple[BrokerConnection, Packet]] = []
        self._scheduled = False
        self.commits = 0

    # ------------------------------------------------------------------------------------------ batching

    def _op(self, sql: str, params: tuple[Any, ...]) -> None:
        self._ops.append((sql, params))
        self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self.core.loop.call_soon(self.commit)

    def commit(self) -> None:
        """Write what changed in one transaction, then send the acknowledgements that waited for it."""
        self._scheduled = False
        ops, self._ops = self._ops, []
        if ops:
            db = self.db
            db.execute("BEGIN")
            try:
                for sql, params in ops:
                    db.execute(sql, params)
                db.execute("COMMIT")
                self.commits += 1
            except sqlite3.Error:
                db.execute("ROLLBACK")
                log.exception("persistence: writing %d change(s) failed; acknowledgements withheld", len(ops))
                self._acks.clear()
                raise
        acks, self._acks = self._acks, []
        for conn, packet in acks:
            conn.send(packet)
            conn.flush()

    def after_commit(self, conn: BrokerConnection, ack: Packet) -> None:
        """Send ``ack`` once everything changed so far is on disk."""
        self._acks.append((conn, ack))
        self._schedule()

    # ------------------------------------------------------------------------------------------ changes

    def next_row_id(self) -> int:
        row = self._next_id
        self._next_id += 1
        return row

    def save_retained(self, message: RetainedMessage) -> None:
        if message.payload:
            self._op(
                "INSERT OR REPLACE INTO retained VALUES (?, ?, ?, ?, ?, ?)",
                (message.topic, message.payload, message.qos, _props_blob(message.properties),
                 _wall(message.expires_at), message.stored_at),
            )  # fmt: skip
        else:
            self._op("DELETE FROM retained WHERE topic = ?", (message.topic,))

    def session_connected(self, session: Session) -> None:
        if session.persistent:
            row = (session.client_id, session.expiry_interval, session.version, session.username,
                   int(session.authenticated))  # fmt: skip
            self._op(
                "INSERT OR REPLACE INTO sessions"
                " (client_id, expiry_interval, version, username, disconnected_at, authenticated)"
                " VALUES (?, ?, ?, ?, NULL, ?)",
                row,
            )
            session.persistent_id = 1
        elif session.persistent_id is not None:
            self.delete_session(session)

    def session_disconnected(self, session: Session) -> None:
        if session.persistent:
            self._op(
                "UPDATE sessions SET disconnected_at = ?, expiry_interval = ? WHERE client_id = ?",
                (time.time(), session.expiry_interval, session.client_id),
            )

    def delete_session(self, session: Session) -> None:
        for table in ("sessions", "subscriptions", "messages", "incoming_qos2"):
            self._op(f"DELETE FROM {table} WHERE client_id = ?", (session.client_id,))
        session.persistent_id = None

    def save_subscriptions(self, session: Session) -> None:
        self._op("DELETE FROM subscriptions WHERE client_id = ?", (session.client_id,))
        for topic_filter, entry in session.subscriptions.items():
            o = entry.options
            self._op(
                "INSERT INTO subscriptions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (session.client_id, topic_filter, o.qos, int(o.no_local), int(o.retain_as_published),
                 int(o.retain_handling), entry.subscription_id),
            )  # fmt: skip

    def add_message(
        self, session: Session, row: int, message: Publish, packet_id: int | None, expires_at: float | None
    ) -> None:
        """Store a message for ``session``: sent under our ``packet_id``, or queued (None).

        The identifier is always passed explicitly: a message being routed still carries its *publisher's*
        identifier, which means nothing on the subscriber's side. Stored, it made a queued message come back from
        a restart as "in flight" under a foreign identifier (and two publishers' equal identifiers collided).
        """
        self._op(
            "INSERT INTO messages (id, client_id, topic, payload, qos, retain, properties, expires_at, packet_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (row, session.client_id, message.topic, message.payload, message.qos, int(message.retain),
             _props_blob(message.properties), _wall(expires_at), packet_id),
        )  # fmt: skip

    def set_packet_id(self, row: int, packet_id: int | None) -> None:
        self._op("UPDATE messages SET packet_id = ? WHERE id = ?", (packet_id, row))

    def delete_messages(self, rows: Iterable[int]) -> None:
        for row in rows:
            self._op("DELETE FROM messages WHERE id = ?", (row,))

    def completed(self, session: Session, completed: list[Completed]) -> None:
        self.delete_messages(c.token for c in completed if isinstance(c.token, int))

    def released(self, row: int) -> None:
        """Our PUBREL is due for the outgoing QoS 2 message stored as ``row``: after a restart, resend PUBREL, not
        PUBLISH, and in the order the PUBRECs arrived (MQTT-4.6.0-4)."""
        self._release_seq += 1
        self._op("UPDATE messages SET released = ? WHERE id = ?", (self._release_seq, row))

    def qos2_received(self, session: Session, packet_id: int) -> None:
        self._op("INSERT OR IGNORE INTO incoming_qos2 VALUES (?, ?)", (session.client_id, packet_id))

    def qos2_finished(self, session: Session, packet_id: int) -> None:
        self._op("DELETE FROM incoming_qos2 WHERE client_id = ? AND packet_id = ?", (session.client_id, packet_id))

    # ------------------------------------------------------------------------------------------ restore

    def load(self) -> None:
        """Restore retained messages and persistent sessions (subscriptions, queues, in-flight state)."""
        core = self.core
        db = self.db
        now_wall = time.time()
        retained = 0
        for topic, payload, qos, props, expires_wall, stored_at in db.execute("SELECT * FROM retained"):
            if expires_wall is not None and expires_wall <= now_wall:
                self._op("DELETE FROM retained WHERE topic = ?", (topic,))
                continue
            core.retained.set(RetainedMessage(topic, payload, qos, _props_from(props), _mono(expires_wall), stored_at))
            retained += 1
        sessions = 0
        sessions_rows = db.execute(
            "SELECT client_id, expiry_interval, version, username, disconnected_at, authenticated FROM sessions"
        ).fetchall()
        for client_id, expiry, version, username, disconnected_at, authenticated in sessions_rows:
            gone_since = disconnected_at if disconnected_at is not None else now_wall
            if expiry != NEVER_EXPIRES and gone_since + expiry <= now_wall:
                session = Session(client_id)
                self.delete_session(session)
                continue
            session = Session(client_id)
            session.expiry_interval = expiry
            session.version = version
            session.username = username
            session.authenticated = bool(authenticated)
            if core.acl is not None:
                # Until its client comes back, what is queued for it is still filtered by its rights.
                session.access = core.acl.for_client(username, client_id)
            session.persistent_id = 1
            core.sessions[client_id] = session
            if expiry != NEVER_EXPIRES:
                remaining = gone_since + expiry - now_wall
                session.expiry_handle = core.loop.call_later(remaining, core._expire_session, session)
            sessions += 1
        for client_id, topic_filter, qos, nl, rap, rh, sub_id in db.execute("SELECT * FROM subscriptions"):
            owner = core.sessions.get(client_id)
            if owner is not None:
                core.restore_subscription(
                    owner, Subscription(topic_filter, qos, bool(nl), bool(rap), RetainHandling(rh)), sub_id
                )
        messages = 0
        rows = db.execute(
            "SELECT id, client_id, topic, payload, qos, retain, properties, expires_at, packet_id, released"
            " FROM messages ORDER BY id"
        )
        # A client's rows come in-flight ones (sent, with our packet id) first, then queued ones (no id yet): a
        # message is sent only when nothing older waits. A store written before the publisher's identifier was
        # kept out of queued rows can break that (an id after a queued row, or one id twice): such rows and the
        # client's later ones are queued again, so that none is lost and their order holds.
        queued: set[str] = set()
        inflight: dict[str, list[tuple[int, int, InFlight]]] = {}
        for row, client_id, topic, payload, qos, retain, props, expires_wall, packet_id, released in rows:
            target = core.sessions.get(client_id)
            if target is None:
                self._op("DELETE FROM messages WHERE id = ?", (row,))
                continue
            pid = packet_id
            if pid is not None and (client_id in queued or pid in target.outgoing.packet_ids):
                log.warning("persistence: message %d for %r has packet id %d out of place (an older store): queued "
                            "again", row, client_id, pid)  # fmt: skip
                pid = None
                self._op("UPDATE messages SET packet_id = NULL, released = 0 WHERE id = ?", (row,))
            message = Publish(topic, payload, qos, bool(retain), False, pid, _props_from(props))
            if pid is not None:
                target.outgoing.packet_ids.claim(pid)
                state = (
                    OutgoingState.AWAIT_PUBACK if qos == 1
                    else OutgoingState.AWAIT_PUBCOMP if released
                    else OutgoingState.AWAIT_PUBREC
                )  # fmt: skip
                inflight.setdefault(client_id, []).append((released or 0, row, InFlight(message, state, row)))
            else:
                queued.add(client_id)
                if target.queue is None:
                    target.queue = deque()
                target.queue.append((message, _mono(expires_wall), row))
                target.queued_bytes += len(payload) + len(topic)
            messages += 1
        for client_id, entries in inflight.items():
            flow = core.sessions[client_id].outgoing
            # Unreleased ones in the order sent, then released ones in the order their PUBRECs arrived.
            for _, _, entry in sorted(entries, key=lambda e: (e[0] > 0, e[0], e[1])):
                flow.inflight[entry.publish.packet_id] = entry  # type: ignore[index]
        for client_id, packet_id in db.execute("SELECT * FROM incoming_qos2"):
            holder = core.sessions.get(client_id)
            if holder is not None:
                holder.incoming.awaiting_pubrel[packet_id] = None
        self.commit()
        log.info(
            "persistence: restored %d retained message(s), %d session(s), %d queued or in-flight message(s) from %s",
            retained, sessions, messages, self.path,
        )  # fmt: skip

    def close(self) -> None:
        for session in list(self.core.sessions.values()):
            if session.connection is not None and session.persistent:
                self.session_disconnected(session)
        self.commit()
        self.db.close()
        self._unlock()

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor releases the lock


async def flush_soon(store: Store) -> None:  # pragma: no cover - a helper for tests that want a commit now
    store.commit()
    await asyncio.sleep(0)
