"""Broker persistence in SQLite (WAL): retained messages, persistent sessions, their queues and in-flight state.

Changes are collected while the event loop handles one batch of input and written in one transaction when it
yields (a group commit). Acknowledgements of incoming QoS 1/2 messages are held until that commit: a PUBACK or
PUBREC the broker has sent always refers to a message on disk, so a crash (kill -9) loses nothing that was
acknowledged. ``synchronous=NORMAL`` in WAL mode makes a committed transaction survive a process crash (an
operating system crash may lose the last transactions).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mqttchat.broker.retained import RetainedMessage
from mqttchat.broker.session import NEVER_EXPIRES, Session, SessionConnection
from mqttchat.protocol import (
    EMPTY_PROPERTIES,
    MAX_PACKET_ID,
    MAX_VARIABLE_INTEGER,
    Completed,
    Packet,
    Properties,
    ProtocolError,
    Publish,
    RetainHandling,
    Subscription,
    Will,
    parse_shared_subscription,
    topic_filter_problem,
    topic_name_problem,
)
from mqttchat.protocol.constants import PacketType
from mqttchat.protocol.properties import WILL_PROPERTIES, decode_properties, encode_properties
from mqttchat.protocol.topics import MAX_TOPIC_LEVELS, too_deep
from mqttchat.protocol.wire import has_control_character
from mqttchat.untrusted import loggable

if TYPE_CHECKING:
    from mqttchat.broker.clock import Clock
    from mqttchat.broker.core import BrokerCore

log = logging.getLogger("mqttchat.broker")

#: Seconds a client that was connected when the broker stopped (or crashed) has, after the next start, to come
#: back before its will is published (or its will delay, if longer): a client reconnecting to a restarted or
#: taken-over broker is not announced gone, one that never comes back is.
RESTART_WILL_GRACE = 30.0

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
CREATE TABLE IF NOT EXISTS wills (
    client_id TEXT PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL, qos INTEGER NOT NULL,
    retain INTEGER NOT NULL, properties BLOB, due REAL);
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


def _make_directory(path: Path) -> None:
    """Create the store's directory (0700: readable by this user only) when it does not exist yet."""
    directory = path.parent
    if directory.is_dir():
        return
    try:
        directory.mkdir(mode=0o700, parents=True)
        directory.chmod(0o700)  # the umask applies to mkdir's mode
    except FileExistsError:
        if not directory.is_dir():
            raise StoreError(f"persistence file {path}: {directory} exists and is not a directory") from None
    except OSError as exc:
        raise StoreError(
            f"persistence file {path}: cannot create its directory {directory}: {exc.strerror or exc}"
        ) from None


def _int_or_zero(value: object) -> int:
    return value if isinstance(value, int) else 0


def _wall(expires_at: float | None, clock: Clock) -> float | None:
    """A monotonic deadline as wall-clock time (what survives a restart)."""
    return None if expires_at is None else clock.wall() + (expires_at - clock.now())


def _mono(expires_wall: float | None, clock: Clock) -> float | None:
    return None if expires_wall is None else clock.now() + (expires_wall - clock.wall())


class StoreError(OSError):
    """The store cannot be used: its directory cannot be created, it is not an SQLite database, it is damaged.

    ``str(error)`` is one line naming the file and the problem.
    """


class StoreInUse(StoreError):
    """Another broker (in this process or another) has the store open."""


class BadRow(ValueError):
    """A row of the store that cannot be restored (written by hand, by another program, or damaged)."""


def _private(path: Path) -> None:
    """Make an existing file of the store readable by its owner only (it holds messages and who received them)."""
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)


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
    lock = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StoreError(f"persistence file {path}: cannot open its lock file {lock}: {exc.strerror or exc}") from None
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


#: Bad rows logged one by one at start-up; beyond this only their number.
_BAD_ROWS_LOGGED = 20


def _is_packet_id(value: object) -> bool:
    return type(value) is int and 0 < value <= MAX_PACKET_ID


def _number(value: object, what: str) -> float | None:
    if value is None:
        return None
    if type(value) not in (int, float) or not math.isfinite(value):  # type: ignore[arg-type]
        raise BadRow(f"{what} is {value!r}, not a number")  # text, a bool, NaN or an infinity
    return float(value)  # type: ignore[arg-type]


def _choice(value: object, allowed: tuple[int, ...], what: str) -> int:
    if type(value) is not int or value not in allowed:
        raise BadRow(f"{what} is {value!r}, not one of {', '.join(map(str, allowed))}")
    return value


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise BadRow(f"{what} is {type(value).__name__}, not text")
    if "\x00" in value:
        raise BadRow(f"{what} holds U+0000")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise BadRow(f"{what} is not UTF-8") from None
    return value


def _topic_name(value: object) -> str:
    topic = _text(value, "the topic")
    problem = topic_name_problem(topic)
    if problem is None and has_control_character(topic):
        problem = "the topic holds a control character"
    if problem is None and too_deep(topic):
        problem = f"the topic has more than {MAX_TOPIC_LEVELS} levels"
    if problem is not None:
        raise BadRow(problem)
    return topic


def _blob(value: object, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise BadRow(f"{what} is {type(value).__name__}, not a BLOB")
    return value


def _properties(value: object) -> Properties:
    if value is None:
        return EMPTY_PROPERTIES
    try:
        return _props_from(_blob(value, "the properties"))
    except ProtocolError as exc:
        raise BadRow(f"the properties do not decode: {exc.message}") from None


def _will_from(row: tuple[Any, ...]) -> tuple[str, Will, float | None]:
    """(client id, the will, when it is due (wall clock) or None: its client was connected when the broker
    stopped)."""
    client_id, topic, payload, qos, retain, props, due = row
    properties = EMPTY_PROPERTIES
    if props is not None:
        blob = _blob(props, "the properties")
        try:
            properties, _ = decode_properties(blob, 0, len(blob), WILL_PROPERTIES)
        except ProtocolError as exc:
            raise BadRow(f"the will properties do not decode: {exc.message}") from None
    will = Will(_topic_name(topic), _blob(payload, "the payload"), _choice(qos, (0, 1, 2), "the QoS"),
                bool(_choice(retain, (0, 1), "retain")), properties)  # fmt: skip
    return _text(client_id, "the client id"), will, _number(due, "the due time")


def _retained_from(row: tuple[Any, ...], now_wall: float, clock: Clock) -> RetainedMessage | None:
    """The retained message of a ``retained`` row, None when it has expired."""
    topic_value, payload, qos, props, expires, stored_at = row
    topic = _topic_name(topic_value)
    expires_wall = _number(expires, "the expiry")
    stored = _number(stored_at, "the time it was stored") or 0.0
    message = RetainedMessage(topic, _blob(payload, "the payload"), _choice(qos, (0, 1, 2), "the QoS"),
                              _properties(props), _mono(expires_wall, clock), stored)  # fmt: skip
    if expires_wall is not None and expires_wall <= now_wall:
        return None
    return message


def _session_from(row: tuple[Any, ...]) -> tuple[str, int, int, str | None, float | None, bool]:
    client_id, expiry, version, username, disconnected_at, authenticated = row
    client_id = _text(client_id, "the client id")
    if type(expiry) is not int or not 0 <= expiry <= NEVER_EXPIRES:
        raise BadRow(f"the session expiry is {expiry!r}, not 0-{NEVER_EXPIRES}")
    version = _choice(version, (4, 5), "the protocol version")
    username = None if username is None else _text(username, "the user name")
    return (client_id, expiry, version, username, _number(disconnected_at, "the disconnection time"),
            bool(_choice(authenticated, (0, 1), "authenticated")))  # fmt: skip


def _subscription_from(row: tuple[Any, ...], version: int) -> tuple[Subscription, int | None]:
    _, topic_filter, qos, no_local, rap, rh, sub_id = row
    topic_filter = _text(topic_filter, "the topic filter")
    shared = None
    problem = topic_filter_problem(topic_filter)
    if problem is None and version == 5:
        shared = parse_shared_subscription(topic_filter)  # valid: checked by topic_filter_problem
    inner = shared.topic_filter if shared is not None else topic_filter
    if problem is None and has_control_character(topic_filter):
        problem = "the topic filter holds a control character"
    if problem is None and too_deep(inner):
        problem = f"the topic filter has more than {MAX_TOPIC_LEVELS} levels"
    if problem is not None:
        raise BadRow(problem)
    if sub_id is not None and (type(sub_id) is not int or not 0 < sub_id <= MAX_VARIABLE_INTEGER):
        raise BadRow(f"the subscription identifier is {sub_id!r}")
    subscription = Subscription(
        topic_filter, _choice(qos, (0, 1, 2), "the QoS"), bool(_choice(no_local, (0, 1), "no local")),
        bool(_choice(rap, (0, 1), "retain as published")),
        RetainHandling(_choice(rh, (0, 1, 2), "the retain handling")),
    )  # fmt: skip
    return subscription, sub_id


def _message_from(row: tuple[Any, ...]) -> tuple[int, str, Publish, float | None, int]:
    """(row id, client id, the message with our packet id or none, its expiry (wall clock), its PUBREC order)."""
    row_id, client_id, topic, payload, qos, retain, props, expires, packet_id, released = row
    if type(row_id) is not int:
        raise BadRow("the row id is not an integer")
    if packet_id is not None and not _is_packet_id(packet_id):
        raise BadRow(f"the packet identifier is {packet_id!r}, not 1-65535")
    if type(released) is not int or released < 0:
        raise BadRow(f"released is {released!r}")
    message = Publish(_topic_name(topic), _blob(payload, "the payload"), _choice(qos, (1, 2), "the QoS"),
                      bool(_choice(retain, (0, 1), "retain")), False, packet_id, _properties(props))  # fmt: skip
    return row_id, client_id, message, _number(expires, "the expiry"), released


class Store:
    """The broker's SQLite store; see the module docstring for the durability rules."""

    def __init__(self, core: BrokerCore, path: Path | None) -> None:
        """Open (or create) the store at ``path``, private to this user: the directory 0700 when created here, the
        database, its WAL and shared-memory files and its lock 0600, whatever the umask.

        Raises:
            StoreError: the directory cannot be created, the file is not an SQLite database or is damaged.
            StoreInUse: another broker holds the store.
        """
        if path is None:
            raise ValueError("persistence needs a persistence_file")
        self.path = path
        #: Rows that could not be restored by :meth:`load` (left in the store, logged, counted here).
        self.bad_rows = 0
        _make_directory(path)
        self._lock_fd = _lock(path)
        try:
            self._open(core, path)
        except BaseException:
            self._abandon()
            raise

    def _open(self, core: BrokerCore, path: Path) -> None:
        self.core = core
        try:
            # Created 0600 before SQLite opens it: SQLite gives the WAL and shared-memory files the database's
            # permissions, and the process umask (often 022) would otherwise leave all three world-readable.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                _private(file)
        except OSError as exc:
            raise StoreError(f"persistence file {path}: cannot open it: {exc.strerror or exc}") from None
        try:
            db = self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            # Text that is not UTF-8 (a damaged or hand-edited row) is read with surrogates and refused by the row
            # checks, instead of failing the whole query.
            db.text_factory = lambda data: data.decode("utf-8", "surrogateescape")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(sessions)")}
            if "authenticated" not in columns:  # a store from before sessions had owners
                db.execute("ALTER TABLE sessions ADD COLUMN authenticated INTEGER NOT NULL DEFAULT 0")
            self._next_id = _int_or_zero(db.execute("SELECT MAX(id) FROM messages").fetchone()[0]) + 1
            #: ``released`` holds the order in which PUBRECs arrived (1, 2, ...): PUBRELs are resent in that order.
            self._release_seq = _int_or_zero(db.execute("SELECT MAX(released) FROM messages").fetchone()[0])
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None
        self._ops: list[tuple[str, tuple[Any, ...]]] = []
        self._acks: list[tuple[SessionConnection, Packet]] = []
        self._scheduled = False
        self.commits = 0

    def _unusable(self, exc: sqlite3.Error) -> StoreError:
        """One line for a store SQLite cannot read (``file is not a database``, ``database disk image is
        malformed``): the file, what SQLite said, what to do."""
        return StoreError(f"persistence file {self.path}: cannot be used: {exc} (move it aside to start afresh)")

    def _abandon(self) -> None:
        """Close without writing anything (the store could not be opened or loaded)."""
        db: sqlite3.Connection | None = getattr(self, "db", None)
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()
        self._unlock()

    # ------------------------------------------------------------------------------------------ batching

    def _op(self, sql: str, params: tuple[Any, ...]) -> None:
        self._ops.append((sql, params))
        self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self.core.clock.call_soon(self.commit)

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

    def after_commit(self, conn: SessionConnection, ack: Packet) -> None:
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
                 _wall(message.expires_at, self.core.clock), message.stored_at),
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

    def save_will(self, session: Session, due: float | None = None) -> None:
        """Keep a persistent session's will while its client is connected (``due`` None) or while the will waits
        for its delay (``due``: wall-clock time); a session without a will has none stored.

        A will survives the broker: when the broker stops or crashes while the client is connected, the next
        start gives the client :data:`RESTART_WILL_GRACE` seconds to come back before publishing it.
        """
        if not session.persistent:
            return
        will = session.will
        if will is None:
            self._op("DELETE FROM wills WHERE client_id = ?", (session.client_id,))
            return
        props = encode_properties(will.properties, WILL_PROPERTIES) if will.properties else None
        self._op(
            "INSERT OR REPLACE INTO wills VALUES (?, ?, ?, ?, ?, ?, ?)",
            (session.client_id, will.topic, will.payload, will.qos, int(will.retain), props, due),
        )

    def will_gone(self, session: Session) -> None:
        """The session's will was published or discarded."""
        if session.persistent_id is not None:
            self._op("DELETE FROM wills WHERE client_id = ?", (session.client_id,))

    def session_disconnected(self, session: Session) -> None:
        if session.persistent:
            self._op(
                "UPDATE sessions SET disconnected_at = ?, expiry_interval = ? WHERE client_id = ?",
                (self.core.clock.wall(), session.expiry_interval, session.client_id),
            )

    def delete_session(self, session: Session) -> None:
        for table in ("sessions", "subscriptions", "messages", "incoming_qos2", "wills"):
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
             _props_blob(message.properties), _wall(expires_at, self.core.clock), packet_id),
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
        """Restore retained messages and persistent sessions (subscriptions, queues, in-flight state).

        A row that cannot be restored (a bad value in any column: written by hand, by another program, or damaged)
        is skipped, logged and counted in :attr:`bad_rows`, and left in the file; what depended on it (the
        subscriptions and messages of a skipped session) goes with it. Nothing read from the store reaches a
        client without the checks a client's own packet would pass.

        Raises:
            StoreError: SQLite cannot read the file (damaged, truncated); the store is closed and unlocked.
        """
        try:
            self._load()
        except sqlite3.Error as exc:
            self._abandon()
            raise self._unusable(exc) from None

    def _bad(self, table: str, key: object, problem: str) -> None:
        self.bad_rows += 1
        if self.bad_rows <= _BAD_ROWS_LOGGED:
            log.warning("persistence: %s: %s row %s skipped: %s", self.path, table, loggable(str(key)), problem)

    def _load(self) -> None:
        core = self.core
        db = self.db
        now_wall = core.clock.wall()
        retained = 0
        for row in db.execute("SELECT topic, payload, qos, properties, expires_at, stored_at FROM retained"):
            try:
                kept = _retained_from(row, now_wall, core.clock)
            except BadRow as exc:
                self._bad("retained", row[0], str(exc))
                continue
            if kept is None:
                self._op("DELETE FROM retained WHERE topic = ?", (row[0],))
                continue
            core.retained.set(kept)
            retained += 1
        sessions = 0
        sessions_rows = db.execute(
            "SELECT client_id, expiry_interval, version, username, disconnected_at, authenticated FROM sessions"
        ).fetchall()
        for row in sessions_rows:
            try:
                client_id, expiry, version, username, disconnected_at, authenticated = _session_from(row)
            except BadRow as exc:
                self._bad("sessions", row[0], str(exc))
                continue
            gone_since = disconnected_at if disconnected_at is not None else now_wall
            if expiry != NEVER_EXPIRES and gone_since + expiry <= now_wall:
                session = Session(client_id)
                self.delete_session(session)
                continue
            session = Session(client_id)
            session.expiry_interval = expiry
            session.version = version
            session.username = username
            session.authenticated = authenticated
            if core.acl is not None:
                # Until its client comes back, what is queued for it is still filtered by its rights.
                session.access = core.acl.for_client(username, client_id)
            session.persistent_id = 1
            core.sessions[client_id] = session
            if expiry != NEVER_EXPIRES:
                core.expire_later(session, gone_since + expiry - now_wall)
            sessions += 1
        for row in db.execute("SELECT client_id, topic, payload, qos, retain, properties, due FROM wills"):
            owner = core.sessions.get(row[0]) if isinstance(row[0], str) else None
            if owner is None:
                self._op("DELETE FROM wills WHERE client_id = ?", (row[0],))
                continue
            try:
                _, will, due = _will_from(row)
            except BadRow as exc:
                self._bad("wills", row[0], str(exc))
                continue
            # Connected when the broker stopped: a grace period to come back. Else the rest of its will delay.
            wait = max(RESTART_WILL_GRACE, will.properties.will_delay_interval or 0) if due is None else due - now_wall
            owner.will = will
            core.publish_will_later(owner, max(0.0, wait))
        for row in db.execute("SELECT * FROM subscriptions"):
            owner = core.sessions.get(row[0]) if isinstance(row[0], str) else None
            if owner is None:
                continue
            try:
                subscription, sub_id = _subscription_from(row, owner.version)
            except BadRow as exc:
                self._bad("subscriptions", f"{row[0]} {row[1]}", str(exc))
                continue
            core.restore_subscription(owner, subscription, sub_id)
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
        inflight: dict[str, list[tuple[int, int, Publish]]] = {}
        claimed: dict[str, set[int]] = {}
        for raw in rows:
            target = core.sessions.get(raw[1]) if isinstance(raw[1], str) else None
            if target is None:
                self._op("DELETE FROM messages WHERE id = ?", (raw[0],))
                continue
            try:
                row, client_id, message, expires_wall, released = _message_from(raw)
            except BadRow as exc:
                self._bad("messages", raw[0], str(exc))
                continue
            pid = message.packet_id
            ids = claimed.setdefault(client_id, set())
            if pid is not None and (client_id in queued or pid in ids):
                log.warning("persistence: message %d for %s has packet id %d out of place (an older store): queued "
                            "again", row, loggable(client_id), pid)  # fmt: skip
                pid = None
                message = Publish(message.topic, message.payload, message.qos, message.retain, False, None,
                                  message.properties)  # fmt: skip
                self._op("UPDATE messages SET packet_id = NULL, released = 0 WHERE id = ?", (row,))
            if pid is not None:
                ids.add(pid)
                inflight.setdefault(client_id, []).append((released, row, message))
            else:
                queued.add(client_id)
                target.restore_queued(message, _mono(expires_wall, core.clock), row)
            messages += 1
        for client_id, entries in inflight.items():
            flow = core.sessions[client_id].outgoing
            # Unreleased ones in the order sent, then released ones in the order their PUBRECs arrived.
            for released, row, message in sorted(entries, key=lambda e: (e[0] > 0, e[0], e[1])):
                flow.restore(message, released=released > 0, token=row)
        for client_id, packet_id in db.execute("SELECT client_id, packet_id FROM incoming_qos2"):
            holder = core.sessions.get(client_id) if isinstance(client_id, str) else None
            if holder is None:
                continue
            if not _is_packet_id(packet_id):
                self._bad("incoming_qos2", f"{client_id} {packet_id}", "the packet identifier is not 1-65535")
                continue
            holder.incoming(core.config.receive_maximum).restore(packet_id)
        self.commit()
        if self.bad_rows:
            log.warning("persistence: %s: %d row(s) could not be restored and were skipped (left in the file)",
                        self.path, self.bad_rows)  # fmt: skip
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
