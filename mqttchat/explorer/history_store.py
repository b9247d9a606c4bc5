"""The explorer's lasting history: every message it sees, per broker, in SQLite under the data directory, bounded by
a byte budget and a retention, searchable by topic filter, time, payload text (FTS5), regular expression and
conditions on JSON fields, and queried as it was at a moment (each topic's last value then).

Theory of operation
-------------------
The client's reader calls :meth:`HistoryWriter.offer` for every message: it appends the message to a bounded
queue and returns (a full queue drops the message and counts it; the event loop never waits on the disk). A writer
thread takes what is queued every :data:`WRITE_INTERVAL` seconds (sooner when :data:`BATCH` messages wait) and
writes it in one transaction, then enforces the budget and the retention, evicting the oldest messages and
counting them. The thread shares the GIL with the event loop, so it keeps Python out of the per-row work: it
makes one short tuple per message and hands SQLite a chunk of them as one JSON text and one blob of payloads;
``INSERT ... SELECT`` statements fill the tables from them, and eviction is done by statements too, during which
``sqlite3`` has let go of the GIL. Readers (:class:`HistoryReader`, in the app or ``mqttchat history``) use their
own connection: with WAL they read while the writer writes.

Rows are kept in arrival order (``messages.id``) and deleted only from the oldest end, so ids are contiguous:
``max(id) - min(id) + 1`` is the row count. ``spans`` maps each :data:`SPAN_SECONDS` of receive time to the ids
that arrived in it, which turns a time range into an id range even when the clock stepped back. The payload text
index is a contentless FTS5 table fed with the first :data:`TEXT_BYTES` of each UTF-8 payload, deleted with the
same text when the row goes: the writer flags the rows whose payload is UTF-8 text, and SQL cuts the text from the
stored payload both times as :func:`indexed_text` does. When the SQLite
at hand lacks FTS5, text search scans the payloads instead (:attr:`HistoryReader.fts` is False).

Nothing here imports asyncio or Textual.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import re
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mqttchat.explorer.conditions import Condition
from mqttchat.explorer.recording import ReceivedMessage, RecordedMessage, parse_properties, properties_record
from mqttchat.protocol import EMPTY_PROPERTIES, Properties, matches, topic_filter_problem

#: Defaults of the settings (``history_store_mb``, ``history_retention_days``).
DEFAULT_BUDGET = 256 * 1024 * 1024
DEFAULT_RETENTION = 7 * 86_400.0
#: Longer payloads are stored cut to this many bytes (the row keeps the original size).
DEFAULT_PAYLOAD_LIMIT = 64 * 1024
#: The writer's queue: at most this many messages and payload bytes wait; more are dropped and counted.
QUEUE_MESSAGES = 200_000
QUEUE_BYTES = 64 * 1024 * 1024
#: The writer writes at least this often (seconds), and at once when this many messages wait. Each transaction
#: rewrites the topic index's pages its messages touch (all over the index, with many topics): bigger batches write
#: fewer of them a message (5,000 messages a batch cost a fifth more CPU than 20,000 in a store of 400,000).
WRITE_INTERVAL = 1.0
BATCH = 20_000
#: Messages handed to SQLite in one statement (the writer holds the GIL while it makes one such chunk: about a
#: millisecond).
CHUNK = 1_000
#: How much of a payload's text goes into the text index.
TEXT_BYTES = 2048
#: The receive-time granularity of the time → id map.
SPAN_SECONDS = 10
#: Eviction for the budget goes down to this share of it, so that it does not run after every batch.
EVICT_TO = 0.9
#: Evictions tried after one batch before giving up until the next (each measures the store again).
MAX_EVICTIONS = 8
#: Pages of the text index merged after an eviction (dropping the deleted rows' entries).
FTS_MERGE = 500
#: Retention is enforced at most this often (seconds).
RETENTION_INTERVAL = 10.0
#: Topic ids remembered by the writer (a broker may have millions of topics).
TOPIC_CACHE = 100_000
#: The largest topic list put in a query as ``IN (...)``; beyond it topics are checked as rows come.
MAX_IN_LIST = 500

#: The writer's page cache (the topic index is written all over: a small cache halves the write rate).
CACHE_KIB = 16 * 1024

HISTORY_DIR = "history"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS topics (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY, topic INTEGER NOT NULL, ms INTEGER NOT NULL, flags INTEGER NOT NULL,
    payload BLOB NOT NULL, size INTEGER, props TEXT);
CREATE INDEX IF NOT EXISTS messages_by_topic ON messages (topic);
CREATE TABLE IF NOT EXISTS spans (bucket INTEGER PRIMARY KEY, first_id INTEGER NOT NULL, last_id INTEGER NOT NULL);
"""
FTS_SCHEMA = "CREATE VIRTUAL TABLE IF NOT EXISTS texts USING fts5(body, content='', columnsize=0, tokenize='unicode61')"
SCHEMA_VERSION = 1

_RETAIN = 4
_DUP = 8
#: The payload's text is in the text index (:func:`indexed_text` is not None). Rows written before this flag was
#: kept (the store's ``text_flags_from``) are decided again from their payload when they leave the index.
_TEXT = 16


def _indexed_text_sql(column: str) -> str:
    """:func:`indexed_text` in SQL for a payload that is UTF-8 text: its first :data:`TEXT_BYTES`, less a
    character cut at the end (a lead byte and fewer continuation bytes than it announces)."""
    head = f"MIN(length({column}), {TEXT_BYTES})"
    return (
        f"CAST(substr({column}, 1, {head} - CASE "
        f"WHEN substr({column}, {head}, 1) < x'80' THEN 0 "
        f"WHEN substr({column}, {head}, 1) >= x'C0' THEN 1 "
        f"WHEN substr({column}, {head} - 1, 1) >= x'E0' THEN 2 "
        f"WHEN substr({column}, {head} - 1, 1) >= x'C0' THEN 0 "
        f"WHEN substr({column}, {head} - 2, 1) >= x'F0' THEN 3 "
        "ELSE 0 END) AS TEXT)"
    )


# A chunk of messages is written with one statement per table from the JSON made by HistoryDatabase._chunk
# (json_extract rather than ->>, which SQLite has only since 3.38).
_INSERT_TOPICS = "INSERT OR IGNORE INTO topics (name) SELECT value FROM json_each(?)"
_SELECT_TOPICS = "SELECT t.id, t.name FROM json_each(?) AS j CROSS JOIN topics AS t ON t.name = j.value"
_INSERT_MESSAGES = """
INSERT INTO messages (id, topic, ms, flags, payload, size, props)
SELECT ?1 + key, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
       substr(?3, json_extract(value, '$[3]'), json_extract(value, '$[4]')), json_extract(value, '$[5]'),
       json_extract(value, '$[6]')
FROM json_each(?2)
"""
_INDEX_TEXTS = (
    f"INSERT INTO texts (rowid, body) SELECT id, {_indexed_text_sql('payload')} FROM messages "
    f"WHERE id BETWEEN ? AND ? AND flags & {_TEXT}"
)
_UNINDEX_TEXTS = (
    f"INSERT INTO texts (texts, rowid, body) SELECT 'delete', id, {_indexed_text_sql('payload')} FROM messages "
    f"WHERE id >= ? AND id < ? AND flags & {_TEXT}"
)
#: An empty store's ids start again from 1, and every row from then on is indexed (with FTS5) and flagged.
_IDS_RESTART = "UPDATE meta SET value = 1 WHERE key IN ('fts_from', 'text_flags_from')"
_INSERT_SPANS = f"""
INSERT INTO spans (bucket, first_id, last_id)
SELECT ms / {SPAN_SECONDS * 1000}, MIN(id), MAX(id) FROM messages WHERE id BETWEEN ? AND ? GROUP BY 1
ON CONFLICT (bucket) DO UPDATE SET first_id = MIN(first_id, excluded.first_id), last_id = MAX(last_id, excluded.last_id)
"""


class HistoryError(Exception):
    """The store cannot be opened or read: the message names the file and says why."""


class HistoryLocked(HistoryError):
    """Another process writes this store (it can still be read)."""


def store_path(data_dir: Path, url: str) -> Path:
    """The store of one broker (its URL without credentials: ``mqtt://host:1883``) under the data directory."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", url).strip("_") or "broker"
    return data_dir / HISTORY_DIR / f"{slug}.sqlite"


def fts5_available() -> bool:
    """Whether this Python's SQLite has FTS5 (the payload text index)."""
    db = sqlite3.connect(":memory:")
    try:
        db.execute("CREATE VIRTUAL TABLE t USING fts5(x)")
    except sqlite3.OperationalError:
        return False
    finally:
        db.close()
    return True


def indexed_text(payload: bytes) -> str | None:
    """What of a stored payload goes into the text index: its first :data:`TEXT_BYTES` as UTF-8 (a character
    cut at the end dropped), or None when it is not UTF-8 text. Called when a row is indexed and again when it is
    deleted from the index, which needs the same text."""
    head = payload[:TEXT_BYTES]
    try:
        text = head.decode()
    except UnicodeDecodeError as exc:
        if exc.reason != "unexpected end of data" or exc.end != len(head):
            return None
        text = head[: exc.start].decode()
    return text or None


# ---------------------------------------------------------------------------------------------------------------
# Moments


_RELATIVE = re.compile(r"-?\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)(?:\s+ago)?", re.IGNORECASE)
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def parse_moment(text: str, now: float | None = None) -> float:
    """A moment as the user writes it, in seconds since the epoch: ``now``, a time ago (``10m``, ``-2h``, ``3d
    ago``), a local time today (``14:02``, ``14:02:30``), a date and time (``2026-12-03 14:02``, ISO 8601 with an
    optional offset; local time without one), a date (its midnight) or seconds since the epoch.

    Raises:
        ValueError: none of these, explained.
    """
    now = time.time() if now is None else now
    value = text.strip()
    if value.lower() == "now":
        return now
    match = _RELATIVE.fullmatch(value)
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2).lower()]
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if math.isfinite(number) and number >= 0:
            return number
    if re.fullmatch(r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?", value):
        today = dt.datetime.fromtimestamp(now).date().isoformat()
        value = f"{today}T{value.zfill(len(value) + (1 if value.index(':') == 1 else 0))}"
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a moment: use now, 10m (ago), 14:02, 2026-12-03 14:02, ISO 8601 or epoch seconds"
        ) from None
    return moment.timestamp()


# ---------------------------------------------------------------------------------------------------------------
# What is stored and read back


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One message read back from the store."""

    id: int
    t: float
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    dup: bool = False
    properties: Properties = EMPTY_PROPERTIES
    #: The payload's size when it arrived (larger than ``len(payload)`` when it was stored cut).
    size: int = 0

    @property
    def truncated(self) -> bool:
        return len(self.payload) < self.size

    @property
    def received_at(self) -> float:
        return self.t

    def recorded(self) -> RecordedMessage:
        """As a line of a recording (:mod:`mqttchat.explorer.recording`)."""
        return RecordedMessage(self.t, self.topic, self.payload, self.qos, self.retain, self.properties)


@dataclass(slots=True)
class HistoryStats:
    """What the writer did, for the status bar (read from any thread: plain counters)."""

    #: Messages written since the store was opened, and those in the store now (None until known).
    written: int = 0
    stored: int = 0
    #: Bytes the store's database takes (its used pages), and the budget.
    bytes: int = 0
    budget: int = 0
    #: Messages evicted since opening: for the budget and for the retention, and their payload bytes.
    evicted_budget: int = 0
    evicted_retention: int = 0
    evicted_bytes: int = 0
    #: Messages offered that were not queued (queue full, or the writer stopped), and why it stopped.
    dropped: int = 0
    error: str | None = None

    @property
    def evicted(self) -> int:
        return self.evicted_budget + self.evicted_retention


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """What to look for. Every part given must hold (an empty query gives every message, oldest first)."""

    #: MQTT topic filters (wildcards allowed); a message matching any of them is in. Empty: every topic.
    topics: tuple[str, ...] = ()
    #: Receive time, seconds since the epoch, inclusive.
    since: float | None = None
    until: float | None = None
    #: Words that must all appear in the payload's text (``"a phrase"`` in double quotes stays one).
    text: str | None = None
    #: A regular expression searched in the payload's text (decoded with replacements).
    regex: str | None = None
    condition: Condition | None = None
    #: Only ids after / before these (paging and stepping).
    after_id: int | None = None
    before_id: int | None = None
    newest_first: bool = False
    limit: int | None = None

    def problems(self) -> list[str]:
        """What is wrong with it (empty when nothing)."""
        out = [f"topic filter {f!r}: {p}" for f in self.topics if (p := topic_filter_problem(f))]
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                out.append(f"bad regular expression: {exc}")
        if self.since is not None and self.until is not None and self.since > self.until:
            out.append("the start of the time range is after its end")
        if self.limit is not None and self.limit < 0:
            out.append("the limit must not be negative")
        return out


def fts_query(text: str) -> str:
    """User text as an FTS5 query: each word (or ``"quoted phrase"``) a quoted string, all of them required, so
    that no character of the text is read as FTS5 syntax."""
    parts = re.findall(r'"([^"]*)"|(\S+)', text)
    terms = [phrase or word for phrase, word in parts]
    return " AND ".join('"' + term.replace('"', '""') + '"' for term in terms if term.strip())


def _flags(qos: int, retain: bool, dup: bool) -> int:
    return qos | (_RETAIN if retain else 0) | (_DUP if dup else 0)


def _props_text(properties: Properties) -> str | None:
    record = properties_record(properties)
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) if record else None


def _props_from(text: str | None) -> Properties:
    if not text:
        return EMPTY_PROPERTIES
    try:
        return parse_properties(json.loads(text))
    except ValueError:
        return EMPTY_PROPERTIES


# ---------------------------------------------------------------------------------------------------------------
# Writing


def _connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    else:
        db = sqlite3.connect(str(path), check_same_thread=False)
    db.execute("PRAGMA busy_timeout=5000")
    return db


class HistoryDatabase:
    """The store opened for writing (by one thread at a time: :class:`HistoryWriter`'s, or a test's)."""

    def __init__(
        self,
        path: Path,
        *,
        budget: int = DEFAULT_BUDGET,
        retention: float | None = DEFAULT_RETENTION,
        payload_limit: int = DEFAULT_PAYLOAD_LIMIT,
        use_fts: bool | None = None,
        stats: HistoryStats | None = None,
    ) -> None:
        """Open (creating) the store at ``path``.

        Args:
            budget: bytes its database may take; the oldest messages are evicted beyond it.
            retention: seconds a message is kept (None: as long as the budget allows).
            use_fts: index payload text with FTS5 (None: when this SQLite has it).

        Raises:
            HistoryError: it cannot be created or is not a store.
        """
        self.path = path
        self.budget = budget
        self.retention = retention
        self.payload_limit = payload_limit
        self.stats = stats if stats is not None else HistoryStats()
        self.stats.budget = budget
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = _connect(path)
            db = self.db
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # only takes effect on a new file: before any table
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA journal_size_limit=16777216")
            db.execute(f"PRAGMA cache_size={-CACHE_KIB}")
            db.executescript(SCHEMA)
            if use_fts is None:
                use_fts = fts5_available()
            has_texts = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'texts'").fetchone() is not None
            if use_fts and not has_texts:
                db.execute(FTS_SCHEMA)
                # Messages stored while there was no index are not searchable by text; later ones are.
                db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('fts_from', (SELECT IFNULL(MAX(id), 0) + 1 FROM messages))"
                )
            self.fts = use_fts or has_texts
            db.execute("INSERT OR IGNORE INTO meta VALUES ('version', ?)", (SCHEMA_VERSION,))
            db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('text_flags_from', (SELECT IFNULL(MAX(id), 0) + 1 FROM messages))"
            )
            first, last = db.execute("SELECT MIN(id), MAX(id) FROM messages").fetchone()
            if last is None:
                db.execute(_IDS_RESTART)
            meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('fts_from', 'text_flags_from')"))
            db.commit()
            self.page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
        except (sqlite3.Error, OSError) as exc:  # OSError: its folder cannot be made
            raise HistoryError(f"{path}: cannot open the history store: {exc}") from None
        self._first_id: int = first or 0
        self._last_id: int = last or 0
        #: Topic ids by name (a broker may have millions of topics: bounded, cleared when full).
        self._topics: dict[str, int] = {}
        #: Rows below these ids are not in the text index / were written without the text flag.
        self._fts_from = int(meta.get("fts_from", 0))
        self._text_flags_from = int(meta["text_flags_from"])
        self._retention_at = 0.0
        self._gc_topics = False
        self.stats.stored = self.count
        self.stats.bytes = self.used_bytes()

    @property
    def count(self) -> int:
        """Messages in the store."""
        return self._last_id - self._first_id + 1 if self._last_id else 0

    def used_bytes(self) -> int:
        """Bytes of the database's pages in use (free pages not counted; the WAL file neither)."""
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
        return int(pages - free) * self.page_size

    def write(self, messages: Sequence[ReceivedMessage], now: float | None = None) -> None:
        """Store ``messages`` (in this order) in one transaction, then enforce the budget and the retention.

        Python touches each message once, to make a short tuple of it; SQLite does the rest with one statement
        per :data:`CHUNK` messages (the topic ids, the rows, the text index and the time map are filled by
        ``INSERT ... SELECT`` from the chunk passed as JSON and its payloads as one blob). ``sqlite3`` lets go of
        the GIL while a statement runs, so the event loop runs beside it: one statement per row handed the GIL
        back and forth for every row, and the loop waited on the writer each time.
        """
        if not messages:
            self.enforce(now)
            return
        db = self.db
        first = self._last_id + 1
        last = first + len(messages) - 1
        with db:
            for start in range(0, len(messages), CHUNK):
                rows, payloads = self._chunk(messages[start : start + CHUNK])
                db.execute(_INSERT_MESSAGES, (first + start, rows, payloads))
            if self.fts:
                db.execute(_INDEX_TEXTS, (first, last))
            db.execute(_INSERT_SPANS, (first, last))
        self._last_id = last
        if not self._first_id:
            self._first_id = first
        self.stats.written += len(messages)
        self.enforce(now)

    def _topic_ids(self, messages: Sequence[ReceivedMessage]) -> dict[str, int]:
        """The ids of the messages' topics (those not known yet are stored), in the writer's bounded cache."""
        cache = self._topics
        missing = {m.topic for m in messages}.difference(cache)
        if missing:
            if len(cache) + len(missing) > TOPIC_CACHE:
                cache.clear()
                missing = {m.topic for m in messages}
            names = json.dumps(list(missing), ensure_ascii=False)
            self.db.execute(_INSERT_TOPICS, (names,))
            cache.update((name, topic_id) for topic_id, name in self.db.execute(_SELECT_TOPICS, (names,)))
        return cache

    def _chunk(self, messages: Sequence[ReceivedMessage]) -> tuple[str, bytes]:
        """Messages as SQLite takes them: a JSON array of ``[topic id, ms, flags, offset, length, size, props]``
        (``offset`` and ``length``: where the stored payload is in the blob; ``size``: the original size when it
        is stored cut, else null) and the stored payloads joined in one blob."""
        topic_ids = self._topic_ids(messages)
        limit = self.payload_limit
        rows: list[tuple[object, ...]] = []
        payloads: list[bytes] = []
        offset = 1
        for m in messages:
            payload = m.payload
            size = len(payload)
            if size > limit:
                payload = payload[:limit]
            length = len(payload)
            flags = m.qos
            if m.retain:
                flags |= _RETAIN
            if getattr(m, "dup", False):
                flags |= _DUP
            if length and (payload[:TEXT_BYTES].isascii() or indexed_text(payload) is not None):
                flags |= _TEXT
            props = m.properties
            rows.append((
                topic_ids[m.topic], int(m.received_at * 1000), flags, offset, length, size if size > length else None,
                None if props is EMPTY_PROPERTIES or not props else _props_text(props),
            ))  # fmt: skip
            payloads.append(payload)
            offset += length
        return json.dumps(rows, ensure_ascii=False, separators=(",", ":")), b"".join(payloads)

    def enforce(self, now: float | None = None) -> None:
        """Evict what is past the retention, then the oldest messages while the store exceeds its budget."""
        now = time.time() if now is None else now
        stats = self.stats
        if self.retention is not None and self.count and now - self._retention_at >= RETENTION_INTERVAL:
            self._retention_at = now
            cutoff_ms = int((now - self.retention) * 1000)
            stats.evicted_retention += self._evict_before(self._keep_from(cutoff_ms))
        used = self.used_bytes()
        # Deleting from the text index writes delete markers before a merge drops them: the store may shrink
        # less than the rows evicted, so measure again and evict more until it fits.
        for _ in range(MAX_EVICTIONS):
            if used <= self.budget or not self.count:
                break
            excess = used - self.budget * EVICT_TO
            rows = min(self.count, max(1, math.ceil(excess / (used / self.count))))
            stats.evicted_budget += self._evict_before(self._first_id + rows)
            used = self.used_bytes()
            if self.fts and used > self.budget:
                # Merging drops the evicted rows' entries and their delete markers: free space before evicting more.
                with self.db:
                    self.db.execute("INSERT INTO texts (texts, rank) VALUES ('merge', ?)", (FTS_MERGE,))
                used = self.used_bytes()
        free = int(self.db.execute("PRAGMA freelist_count").fetchone()[0]) * self.page_size
        if free > max(self.budget // 4, 4 * 1024 * 1024):
            self._vacuum()
        stats.stored = self.count
        stats.bytes = used

    def _keep_from(self, cutoff_ms: int) -> int:
        """The id of the first message, from the oldest end, received at or after ``cutoff_ms`` (one past the last
        when none was): where the retention's eviction stops."""
        row = self.db.execute(
            "SELECT MIN(first_id) FROM spans WHERE bucket >= ?", (cutoff_ms // (SPAN_SECONDS * 1000),)
        ).fetchone()
        keep_from = row[0] if row[0] is not None else self._last_id + 1
        # The first span kept may start before the cutoff: its older rows go too.
        return self._first_kept(keep_from, cutoff_ms)

    def _first_kept(self, start: int, cutoff_ms: int) -> int:
        row = self.db.execute(
            "SELECT id FROM messages WHERE id >= ? AND ms >= ? ORDER BY id LIMIT 1", (start, cutoff_ms)
        ).fetchone()
        return int(row[0]) if row is not None else self._last_id + 1

    def _evict_before(self, end: int) -> int:
        """Delete the messages with ids below ``end``; how many went."""
        first = self._first_id
        if not self._last_id or end <= first:
            return 0
        end = min(end, self._last_id + 1)
        db = self.db
        with db:
            (evicted_bytes,) = db.execute(
                "SELECT IFNULL(SUM(length(payload)), 0) FROM messages WHERE id < ?", (end,)
            ).fetchone()
            if self.fts:
                low = max(first, self._fts_from)
                if low < self._text_flags_from:
                    self._unindex_unflagged(low, min(end, self._text_flags_from))
                db.execute(_UNINDEX_TEXTS, (max(low, self._text_flags_from), end))
            db.execute("DELETE FROM messages WHERE id < ?", (end,))
            db.execute("DELETE FROM spans WHERE last_id < ?", (end,))
            db.execute("UPDATE spans SET first_id = ? WHERE first_id < ?", (end, end))
            if end > self._last_id:
                db.execute(_IDS_RESTART)
        count = end - first
        if end > self._last_id:
            self._first_id = self._last_id = 0
            self._fts_from = self._text_flags_from = 1
        else:
            self._first_id = end
        self.stats.evicted_bytes += int(evicted_bytes)
        self._gc_topics = True
        return count

    def _unindex_unflagged(self, start: int, end: int) -> None:
        """Take the rows from ``start`` to before ``end``, written before the text flag was kept, out of the text
        index: which of them are in it, and with what text, is decided again from their payloads."""
        deletes = []
        for row_id, payload in self.db.execute(
            "SELECT id, payload FROM messages WHERE id >= ? AND id < ?", (start, end)
        ):
            text = indexed_text(payload)
            if text is not None:
                deletes.append((row_id, text))
        self.db.executemany("INSERT INTO texts (texts, rowid, body) VALUES ('delete', ?, ?)", deletes)

    def forget_unused_topics(self) -> int:
        """Delete topics none of whose messages is left; how many."""
        if not self._gc_topics:
            return 0
        self._gc_topics = False
        with self.db:
            cursor = self.db.execute(
                "DELETE FROM topics WHERE NOT EXISTS (SELECT 1 FROM messages WHERE messages.topic = topics.id)"
            )
        self._topics.clear()
        return cursor.rowcount

    def clear(self) -> None:
        """Forget every message (the file stays, emptied)."""
        with self.db:
            for table in ("messages", "spans", "topics"):
                self.db.execute(f"DELETE FROM {table}")
            if self.fts:
                self.db.execute("INSERT INTO texts (texts) VALUES ('delete-all')")
            self.db.execute(_IDS_RESTART)
        self._vacuum()
        self._first_id = self._last_id = 0
        self._fts_from = self._text_flags_from = 1
        self._topics.clear()
        self.stats.stored = 0
        self.stats.bytes = self.used_bytes()

    def _vacuum(self) -> None:
        """Give the free pages back to the file system. ``PRAGMA incremental_vacuum`` frees a page a step, and
        ``execute`` steps a statement once: run to its end, as a script, it frees them all."""
        self.db.executescript("PRAGMA incremental_vacuum;")

    def forget(self, until: float | None = None) -> int:
        """Delete the messages received at or before ``until`` (seconds since the epoch; None: every message), from
        the oldest end as the retention does (a message that arrived earlier with a later clock goes with those
        around it), and give their space back to the file system; how many went."""
        if until is None:
            count = self.count
            self.clear()
        else:
            count = self._evict_before(self._keep_from(math.floor(until * 1000) + 1))
            self.forget_unused_topics()
            self._vacuum()
            self.stats.stored = self.count
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.stats.bytes = self.used_bytes()
        return count

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.execute("PRAGMA optimize")
        self.db.close()


class _WriterLock:
    """One writer per store: a second app on the same broker (the explorer and the chat in two terminals) would
    store every message twice and trip over the other's row ids. Held with ``flock`` on ``<store>.lock`` for the
    writer's life (released by the system if the process dies); where there is no ``fcntl`` nothing is locked."""

    def __init__(self, path: Path) -> None:
        self._file: Any = None
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return
        lock_path = path.with_name(path.name + ".lock")
        try:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            file = open(lock_path, "a+b")  # noqa: SIM115 - held until release()
        except OSError as exc:
            raise HistoryError(f"{path}: cannot open its lock file: {exc}") from None
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            file.close()
            raise HistoryLocked(
                f"{path}: another mqttchat on this machine is keeping this broker's history (it is read, not written)"
            ) from None
        self._file = file

    def release(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()


def forget_stored(path: Path, until: float | None = None) -> int:
    """Forget the messages of the store at ``path`` received at or before ``until`` (None: all of them), as
    :meth:`HistoryDatabase.forget` does; how many went. The store must exist and no app may be writing it.

    Raises:
        HistoryLocked: an app is keeping this broker's history now (it would go on writing).
        HistoryError: there is no store there, or it cannot be opened.
    """
    if not path.is_file():
        raise HistoryError(f"{path}: there is no history store there")
    lock = _WriterLock(path)
    try:
        database = HistoryDatabase(path, retention=None)
        try:
            return database.forget(until)
        except sqlite3.Error as exc:
            raise HistoryError(f"{path}: {exc}") from None
        finally:
            database.close()
    finally:
        lock.release()


class HistoryWriter:
    """Feeds a :class:`HistoryDatabase` from the event loop through a bounded queue and a thread of its own.

    :meth:`offer` never blocks and never raises: a message that does not fit in the queue (or arrives after an
    error stopped the writer) is counted in ``stats.dropped``. A write error (a full disk, a damaged file) stops
    the writer and is kept in ``stats.error``.
    """

    def __init__(
        self,
        path: Path,
        *,
        budget: int = DEFAULT_BUDGET,
        retention: float | None = DEFAULT_RETENTION,
        payload_limit: int = DEFAULT_PAYLOAD_LIMIT,
        use_fts: bool | None = None,
        queue_messages: int = QUEUE_MESSAGES,
        queue_bytes: int = QUEUE_BYTES,
        interval: float = WRITE_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Open the store (in the calling thread, so that a store that cannot be opened is said at once) and
        start the writer thread.

        Raises:
            HistoryError: the store cannot be opened.
        """
        self.path = path
        self.stats = HistoryStats()
        self._lock = _WriterLock(path)
        try:
            self._database = HistoryDatabase(
                path, budget=budget, retention=retention, payload_limit=payload_limit, use_fts=use_fts,
                stats=self.stats,
            )  # fmt: skip
        except BaseException:
            self._lock.release()
            raise
        self.fts = self._database.fts
        self.queue_messages = queue_messages
        self.queue_bytes = queue_bytes
        self.interval = interval
        self._clock = clock
        self._queue: deque[ReceivedMessage] = deque()
        # Bytes queued = offered - taken; each counter has one writing thread.
        self._offered_bytes = 0
        self._taken_bytes = 0
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._stopping = False
        self._requests: deque[Callable[[HistoryDatabase], None]] = deque()
        self._writing = 0
        self._thread = threading.Thread(target=self._run, name="history writer", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------------------------------------- loop side

    def offer(self, message: ReceivedMessage) -> bool:
        """Queue ``message`` for writing; False (and counted) when it does not fit or the writer stopped."""
        queue = self._queue
        size = len(message.payload)
        if (
            len(queue) >= self.queue_messages
            or self._offered_bytes - self._taken_bytes + size > self.queue_bytes
            or self._stopping
            or self.stats.error is not None
        ):
            self.stats.dropped += 1
            return False
        queue.append(message)
        self._offered_bytes += size
        if len(queue) == BATCH:
            self._wake.set()
        return True

    @property
    def queued(self) -> int:
        return len(self._queue)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until what was offered before this call is written; whether it was in time (for tests, and
        before a query that must see it)."""
        done = threading.Event()
        self._requests.append(lambda database: done.set())
        self._wake.set()
        return done.wait(timeout)

    def call(self, job: Callable[[HistoryDatabase], Any], timeout: float = 30.0) -> Any:
        """Run ``job`` in the writer thread after what is queued now is written, and return what it returns.

        Raises:
            TimeoutError: it did not finish in time. Whatever ``job`` raised.
        """
        done = threading.Event()
        result: list[Any] = []
        error: list[BaseException] = []

        def run(database: HistoryDatabase) -> None:
            try:
                result.append(job(database))
            except BaseException as exc:  # handed to the caller
                error.append(exc)
            finally:
                done.set()

        self._requests.append(run)
        self._wake.set()
        if not done.wait(timeout):
            raise TimeoutError("the history writer did not answer in time")
        if error:
            raise error[0]
        return result[0]

    def clear(self) -> None:
        """Forget every message stored (and those queued)."""
        self.call(lambda database: database.clear())

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread and close the store."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)

    # ---------------------------------------------------------------------------------------------- thread

    def _take(self, count: int) -> list[ReceivedMessage]:
        queue = self._queue
        batch: list[ReceivedMessage] = []
        size = 0
        for _ in range(min(len(queue), count)):
            message = queue.popleft()
            batch.append(message)
            size += len(message.payload)
        self._taken_bytes += size
        return batch

    def _run(self) -> None:
        database = self._database
        try:
            while True:
                self._wake.wait(self.interval)
                self._wake.clear()
                stopping = self._stopping
                # What was asked before now is answered after what was queued before now is written.
                requests = len(self._requests)
                pending = len(self._queue)
                if not pending:
                    database.enforce(self._clock())
                while pending > 0:
                    batch = self._take(min(pending, BATCH * 2))
                    pending -= len(batch)
                    self._writing = len(batch)
                    database.write(batch, self._clock())
                    self._writing = 0
                for _ in range(requests):
                    self._requests.popleft()(database)
                if not self._queue:
                    database.forget_unused_topics()
                if stopping:
                    break
        except (sqlite3.Error, OSError, HistoryError) as exc:
            self.stats.error = f"the history store stopped: {exc}"
            self.stats.dropped += self._writing  # the batch it failed to write
        finally:
            while self._requests:
                with contextlib.suppress(Exception):
                    self._requests.popleft()(database)
            self.stats.dropped += len(self._queue)
            self._queue.clear()
            database.close()
            self._lock.release()


# ---------------------------------------------------------------------------------------------------------------
# Reading


class HistoryReader:
    """Queries on a store, on a connection of its own (readers do not wait for the writer)."""

    def __init__(self, path: Path) -> None:
        """Open the store at ``path`` for reading.

        Raises:
            HistoryError: there is no store there, or it cannot be read.
        """
        self.path = path
        if not path.exists():
            raise HistoryError(f"{path}: no history store there")
        try:
            self.db = _connect(path, readonly=True)
            names = {row[0] for row in self.db.execute("SELECT name FROM sqlite_master")}
        except sqlite3.DatabaseError as exc:
            raise HistoryError(f"{path}: cannot read the history store: {exc}") from None
        if "messages" not in names:
            raise HistoryError(f"{path}: not a history store")
        #: Whether payload text is indexed (else text search scans payloads).
        self.fts = "texts" in names and self._fts_works()

    def _fts_works(self) -> bool:
        try:
            self.db.execute("SELECT rowid FROM texts WHERE texts MATCH '\"x\"' LIMIT 0").fetchall()
        except sqlite3.OperationalError:
            return False
        return True

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> HistoryReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------------- facts

    def summary(self) -> dict[str, Any]:
        """Messages, topics, time span and size of the store."""
        db = self.db
        first, last, count = db.execute("SELECT MIN(id), MAX(id), COUNT(*) FROM messages").fetchone()
        oldest = newest = None
        if first is not None:
            oldest = db.execute("SELECT ms FROM messages WHERE id = ?", (first,)).fetchone()[0] / 1000
            newest = db.execute("SELECT ms FROM messages WHERE id = ?", (last,)).fetchone()[0] / 1000
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        return {
            "path": str(self.path),
            "messages": int(count),
            "topics": int(db.execute("SELECT COUNT(*) FROM topics").fetchone()[0]),
            "oldest": oldest,
            "newest": newest,
            "bytes": int(pages - free) * int(page_size),
            "file_bytes": int(pages) * int(page_size),
            "fts": self.fts,
        }

    def topic_names(self, filters: Sequence[str] = ()) -> dict[int, str]:
        """The stored topics matching any of ``filters`` (every topic when empty), by id."""
        if not filters:
            return {int(i): str(n) for i, n in self.db.execute("SELECT id, name FROM topics")}
        out: dict[int, str] = {}
        for topic_filter in filters:
            wildcard = min((i for i in (topic_filter.find("+"), topic_filter.find("#")) if i >= 0), default=-1)
            if wildcard < 0:
                rows = self.db.execute("SELECT id, name FROM topics WHERE name = ?", (topic_filter,))
            elif wildcard == 0:
                rows = self.db.execute("SELECT id, name FROM topics")
            else:
                prefix = topic_filter[:wildcard]
                # 'a/#' matches 'a' too: the parent level, without its slash.
                parent = prefix[:-1] if topic_filter.endswith("/#") and wildcard == len(topic_filter) - 1 else prefix
                rows = self.db.execute(
                    "SELECT id, name FROM topics WHERE name = ? OR (name >= ? AND name < ?)",
                    (parent, prefix, prefix + "\U0010ffff"),
                )
            for topic_id, name in rows:
                if matches(topic_filter, name):
                    out[int(topic_id)] = str(name)
        return out

    def _id_range(self, since: float | None, until: float | None) -> tuple[int | None, int | None] | None:
        """Ids bounding the messages received from ``since`` to ``until`` (None: no bound on that side), or None
        when no message was received then."""
        low = high = None
        span_ms = SPAN_SECONDS * 1000
        if since is not None:
            (low,) = self.db.execute(
                "SELECT MIN(first_id) FROM spans WHERE bucket >= ?", (math.floor(since * 1000) // span_ms,)
            ).fetchone()
            if low is None:
                return None
        if until is not None:
            (high,) = self.db.execute(
                "SELECT MAX(last_id) FROM spans WHERE bucket <= ?", (math.floor(until * 1000) // span_ms,)
            ).fetchone()
            if high is None:
                return None
        return low, high

    # ---------------------------------------------------------------------------------------------- queries

    def search(self, query: HistoryQuery, *, chunk: int = 2000) -> Iterator[StoredMessage]:
        """The messages that meet ``query``, oldest first (``newest_first``: the other way), lazily.

        Raises:
            ValueError: the query is invalid (see :meth:`HistoryQuery.problems`).
        """
        problems = query.problems()
        if problems:
            raise ValueError("; ".join(problems))
        names = self.topic_names(query.topics) if query.topics else None
        if names is not None and not names:
            return
        id_range = self._id_range(query.since, query.until)
        if id_range is None:
            return
        low, high = id_range
        if query.after_id is not None:
            low = max(low or 0, query.after_id + 1)
        if query.before_id is not None:
            high = query.before_id - 1 if high is None else min(high, query.before_id - 1)
        where: list[str] = []
        params: list[Any] = []
        if names is not None and len(names) <= MAX_IN_LIST:
            where.append(f"topic IN ({','.join('?' * len(names))})")
            params.extend(names)
        if query.since is not None:
            where.append("ms >= ?")
            params.append(math.floor(query.since * 1000))
        if query.until is not None:
            where.append("ms <= ?")
            params.append(math.floor(query.until * 1000))
        scan_text: str | None = None
        if query.text is not None and query.text.strip():
            if self.fts:
                where.append("id IN (SELECT rowid FROM texts WHERE texts MATCH ?)")
                params.append(fts_query(query.text))
            else:
                scan_text = query.text
        regex = re.compile(query.regex).search if query.regex else None
        condition = query.condition
        all_names = names if names is not None else None
        topic_cache: dict[int, str] = dict(names) if names is not None else {}
        order = "DESC" if query.newest_first else "ASC"
        remaining = query.limit
        if remaining == 0:
            return
        cursor_low, cursor_high = low, high
        while True:
            bounds = list(where)
            bound_params = list(params)
            if cursor_low is not None:
                bounds.append("id >= ?")
                bound_params.append(cursor_low)
            if cursor_high is not None:
                bounds.append("id <= ?")
                bound_params.append(cursor_high)
            sql = "SELECT id, topic, ms, flags, payload, size, props FROM messages"
            if bounds:
                sql += " WHERE " + " AND ".join(bounds)
            sql += f" ORDER BY id {order} LIMIT ?"
            rows = self.db.execute(sql, [*bound_params, chunk]).fetchall()
            if not rows:
                return
            for row_id, topic_id, ms, flags, data, size, props in rows:
                topic = topic_cache.get(topic_id)
                if topic is None:
                    if all_names is not None:
                        continue  # not a matching topic (the IN list was too long to give)
                    topic = self._topic_name(topic_id)
                    if len(topic_cache) < TOPIC_CACHE:
                        topic_cache[topic_id] = topic
                payload = bytes(data)
                if scan_text is not None and not _text_matches(scan_text, payload):
                    continue
                if regex is not None and regex(payload.decode(errors="replace")) is None:
                    continue
                if condition is not None and not condition(payload):
                    continue
                yield _stored(row_id, topic, ms, flags, payload, size, props)
                if remaining is not None:
                    remaining -= 1
                    if remaining <= 0:
                        return
            last_id = int(rows[-1][0])
            if query.newest_first:
                cursor_high = last_id - 1
            else:
                cursor_low = last_id + 1
            if len(rows) < chunk:
                return

    def _topic_name(self, topic_id: int) -> str:
        row = self.db.execute("SELECT name FROM topics WHERE id = ?", (topic_id,)).fetchone()
        return str(row[0]) if row is not None else f"?{topic_id}"

    def state_at(self, moment: float, topics: Sequence[str] = ()) -> list[StoredMessage]:
        """Each topic's last message received at or before ``moment`` (topics matching ``topics``; all when
        empty), in topic order: the tree as it was then."""
        span_ms = SPAN_SECONDS * 1000
        row = self.db.execute(
            "SELECT MAX(last_id) FROM spans WHERE bucket <= ?", (int(moment * 1000) // span_ms,)
        ).fetchone()
        if row[0] is None:
            return []
        high, moment_ms = int(row[0]), math.floor(moment * 1000)
        names = self.topic_names(topics)
        out: list[StoredMessage] = []
        statement = (
            "SELECT id, ms, flags, payload, size, props FROM messages WHERE topic = ? AND id <= ? AND ms <= ? "
            "ORDER BY id DESC LIMIT 1"
        )
        for topic_id, name in sorted(names.items(), key=lambda item: item[1]):
            found = self.db.execute(statement, (topic_id, high, moment_ms)).fetchone()
            if found is None:
                continue
            row_id, ms, flags, payload, size, props = found
            out.append(_stored(row_id, name, ms, flags, bytes(payload), size, props))
        return out

    def step(self, from_id: int, forward: bool = True, query: HistoryQuery | None = None) -> StoredMessage | None:
        """The next change after the message ``from_id`` (``forward`` false: the one before) among those that
        meet ``query``: stepping through time one change at a time."""
        base = query or HistoryQuery()
        if forward:
            step = HistoryQuery(
                base.topics, base.since, base.until, base.text, base.regex, base.condition, after_id=from_id, limit=1
            )
        else:
            step = HistoryQuery(
                base.topics, base.since, base.until, base.text, base.regex, base.condition,
                before_id=from_id, newest_first=True, limit=1,
            )  # fmt: skip
        return next(iter(self.search(step)), None)


def payload_filter(query: HistoryQuery) -> Callable[[bytes], bool]:
    """The payload parts of ``query`` (text, regular expression, condition) as one test, the text as the scan
    without FTS5 reads it: for messages that did not come from :meth:`HistoryReader.search`."""
    text = query.text if query.text and query.text.strip() else None
    regex = re.compile(query.regex).search if query.regex else None
    condition = query.condition

    def accepts(payload: bytes) -> bool:
        if text is not None and not _text_matches(text, payload):
            return False
        if regex is not None and regex(payload.decode(errors="replace")) is None:
            return False
        return condition is None or condition(payload)

    return accepts


def _stored(
    row_id: int, topic: str, ms: int, flags: int, payload: bytes, size: int | None, props: str | None
) -> StoredMessage:
    return StoredMessage(
        int(row_id), ms / 1000, topic, payload, flags & 3, bool(flags & _RETAIN), bool(flags & _DUP),
        _props_from(props), int(size) if size is not None else len(payload),
    )  # fmt: skip


def _text_matches(text: str, payload: bytes) -> bool:
    """The scan used without FTS5: every word (or quoted phrase) appears in the text the index would hold
    (:func:`indexed_text`), ignoring case (a word may be part of a longer one here)."""
    indexed = indexed_text(payload)
    if indexed is None:
        return False
    haystack = indexed.casefold()
    parts = re.findall(r'"([^"]*)"|(\S+)', text)
    return all((phrase or word).casefold() in haystack for phrase, word in parts if (phrase or word).strip())
