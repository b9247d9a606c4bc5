"""The lasting history store: writing, eviction by budget and retention, search, time travel, the writer thread,
and export. No Textual, no network."""

from __future__ import annotations

import datetime as dt
import io
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mqttchat.client.messages import Message
from mqttchat.explorer.conditions import parse_condition
from mqttchat.explorer.history_export import MAX_COLUMNS, CsvExport, message_fields, write_jsonl
from mqttchat.explorer.history_store import (
    CHUNK,
    SPAN_SECONDS,
    HistoryDatabase,
    HistoryError,
    HistoryQuery,
    HistoryReader,
    HistoryWriter,
    _indexed_text_sql,
    fts5_available,
    fts_query,
    indexed_text,
    parse_moment,
    store_path,
)
from mqttchat.explorer.recording import parse_line
from mqttchat.protocol import Properties
from tests.helpers.waiting import until_sync

T0 = 1_800_000_000.0


def message(topic: str, payload: bytes | str, t: float, **kwargs: object) -> Message:
    data = payload.encode() if isinstance(payload, str) else payload
    return Message(topic, data, received_at=t, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "history" / "broker.sqlite"


@pytest.fixture
def database(path: Path) -> Iterator[HistoryDatabase]:
    db = HistoryDatabase(path, budget=1 << 30, retention=None)
    yield db
    db.close()


def read(path: Path, query: HistoryQuery | None = None) -> list[str]:
    with HistoryReader(path) as reader:
        return [f"{m.topic}={m.payload.decode()}" for m in reader.search(query or HistoryQuery())]


def test_messages_come_back_as_they_were_stored(database: HistoryDatabase, path: Path) -> None:
    props = Properties(content_type="application/json", user_property=[("a", "1"), ("a", "2")])
    database.write([
        message("home/kitchen/temp", '{"temp": 21.5}', T0 + 0.1234, qos=1, retain=True, properties=props),
        message("home/cam", b"\xff\xd8" + b"x" * 100, T0 + 1, qos=2, dup=True),
    ])  # fmt: skip
    with HistoryReader(path) as reader:
        first, second = reader.search(HistoryQuery())
        summary = reader.summary()
    assert (first.topic, first.payload, first.qos, first.retain, first.dup) == (
        "home/kitchen/temp", b'{"temp": 21.5}', 1, True, False,
    )  # fmt: skip
    assert first.t == pytest.approx(T0 + 0.123)  # kept to the millisecond
    assert first.properties.content_type == "application/json"
    assert first.properties.user_property == (("a", "1"), ("a", "2"))
    assert (second.qos, second.retain, second.dup, second.payload[:2]) == (2, False, True, b"\xff\xd8")
    assert second.id == first.id + 1
    assert summary["messages"] == 2 and summary["topics"] == 2
    assert summary["oldest"] == pytest.approx(T0 + 0.123) and summary["newest"] == pytest.approx(T0 + 1)


def test_long_payloads_are_stored_cut_with_their_size(path: Path) -> None:
    db = HistoryDatabase(path, payload_limit=1024, retention=None)
    db.write([message("big", b"y" * 5000, T0)])
    db.close()
    with HistoryReader(path) as reader:
        (stored,) = reader.search(HistoryQuery())
    assert len(stored.payload) == 1024 and stored.size == 5000 and stored.truncated


def test_reopening_continues_the_ids(path: Path) -> None:
    db = HistoryDatabase(path, retention=None)
    db.write([message("a", "1", T0), message("a", "2", T0 + 1)])
    db.close()
    db = HistoryDatabase(path, retention=None)
    assert db.count == 2
    db.write([message("a", "3", T0 + 2)])
    db.close()
    with HistoryReader(path) as reader:
        assert [m.id for m in reader.search(HistoryQuery())] == [1, 2, 3]


def test_topic_filters_match_as_mqtt_wildcards(database: HistoryDatabase, path: Path) -> None:
    topics = ["home", "home/kitchen/temp", "home/hall/temp", "home/hall/light", "homes/x", "$SYS/broker/uptime"]
    database.write([message(topic, str(i), T0 + i) for i, topic in enumerate(topics)])

    def topics_for(*filters: str) -> list[str]:
        return [entry.split("=")[0] for entry in read(path, HistoryQuery(topics=filters))]

    assert topics_for("home/#") == ["home", "home/kitchen/temp", "home/hall/temp", "home/hall/light"]
    assert topics_for("home/+/temp") == ["home/kitchen/temp", "home/hall/temp"]
    assert topics_for("#") == topics[:5]  # '#' does not match $ topics
    assert topics_for("$SYS/#") == ["$SYS/broker/uptime"]
    assert topics_for("+/hall/light", "homes/x") == ["home/hall/light", "homes/x"]
    assert topics_for("home/hall") == []
    assert topics_for("nothing/#") == []


def test_a_filter_matching_more_topics_than_an_in_list_holds(database: HistoryDatabase, path: Path) -> None:
    database.write([message(f"s/{i:04}/v", str(i), T0 + i / 1000) for i in range(1200)])
    database.write([message(f"other/{i}", "x", T0 + 2) for i in range(10)])
    found = read(path, HistoryQuery(topics=("s/+/v",)))
    assert len(found) == 1200 and found[0] == "s/0000/v=0" and found[-1] == "s/1199/v=1199"


def test_time_range_and_a_clock_that_stepped_back(database: HistoryDatabase, path: Path) -> None:
    # Received in this order; the clock stepped back an hour between the third and the fourth.
    times = [T0, T0 + 60, T0 + 120, T0 - 3600, T0 - 3540, T0 + 180]
    database.write([message("t", f"m{i}", t) for i, t in enumerate(times)])
    assert read(path, HistoryQuery(since=T0 + 60, until=T0 + 120)) == ["t=m1", "t=m2"]
    assert read(path, HistoryQuery(since=T0 - 3600, until=T0 - 3000)) == ["t=m3", "t=m4"]
    assert read(path, HistoryQuery(since=T0 + 150)) == ["t=m5"]
    assert read(path, HistoryQuery(until=T0 - 3550)) == ["t=m3"]
    assert read(path, HistoryQuery(since=T0 + 10_000)) == []
    assert read(path, HistoryQuery(until=T0 - 10_000)) == []


def test_text_search_with_the_index_and_without(tmp_path: Path) -> None:
    payloads = [
        '{"state": "door opened", "who": "Alice"}',
        '{"state": "door closed"}',
        "window opened",
        'AND OR NOT "quoted" * ^ -x',
        "température élevée",
    ]
    results = {}
    for use_fts in [True, False] if fts5_available() else [False]:
        path = tmp_path / f"fts-{use_fts}.sqlite"
        db = HistoryDatabase(path, use_fts=use_fts, retention=None)
        db.write([message("x", p, T0 + i) for i, p in enumerate(payloads)] + [message("bin", b"\xffopened", T0 + 9)])
        db.close()
        with HistoryReader(path) as reader:
            assert reader.fts is use_fts

        def found(text: str, path: Path = path) -> list[int]:
            with HistoryReader(path) as reader:
                return [m.id for m in reader.search(HistoryQuery(text=text))]

        results[use_fts] = [
            found("opened"),
            found("door opened"),
            found('"door opened"'),
            found("alice"),
            found('AND OR "quoted"'),
            found("*"),
            found("température"),
            found("nothing-like-this"),
        ]
        assert results[use_fts][0] == [1, 3]
        assert results[use_fts][1] == [1]
        assert results[use_fts][2] == [1]
        assert results[use_fts][3] == [1]
        assert results[use_fts][4] == [4]
        assert results[use_fts][6] == [5]
        assert results[use_fts][7] == []


def test_fts_query_quotes_every_word() -> None:
    assert fts_query('a "b c" d"e') == '"a" AND "b c" AND "d""e"'


def test_regex_and_conditions_filter_the_payloads(database: HistoryDatabase, path: Path) -> None:
    database.write([message(f"s/{i % 2}", json.dumps({"temp": 20 + i, "id": f"n{i}"}), T0 + i) for i in range(10)])
    database.write([message("s/plain", "35", T0 + 20), message("s/text", "hot", T0 + 21)])
    assert read(path, HistoryQuery(condition=parse_condition("temp > 27"))) == [
        's/0={"temp": 28, "id": "n8"}', 's/1={"temp": 29, "id": "n9"}',
    ]  # fmt: skip
    assert read(path, HistoryQuery(topics=("s/1",), condition=parse_condition("temp >= 27"))) == [
        's/1={"temp": 27, "id": "n7"}', 's/1={"temp": 29, "id": "n9"}',
    ]  # fmt: skip
    assert read(path, HistoryQuery(condition=parse_condition("payload > 30"))) == ["s/plain=35"]
    assert read(path, HistoryQuery(regex=r'"n[38]"')) == [
        's/1={"temp": 23, "id": "n3"}',
        's/0={"temp": 28, "id": "n8"}',
    ]
    with pytest.raises(ValueError, match="regular expression"):
        read(path, HistoryQuery(regex="("))
    with pytest.raises(ValueError, match="topic filter"):
        read(path, HistoryQuery(topics=("a/#/b",)))


def test_paging_newest_first_and_limits(database: HistoryDatabase, path: Path) -> None:
    database.write([message(f"p/{i % 3}", str(i), T0 + i) for i in range(20)])
    with HistoryReader(path) as reader:

        def ids(query: HistoryQuery) -> list[int]:
            return [m.id for m in reader.search(query, chunk=3)]

        assert ids(HistoryQuery()) == list(range(1, 21))
        assert ids(HistoryQuery(newest_first=True, limit=4)) == [20, 19, 18, 17]
        assert ids(HistoryQuery(topics=("p/1",), after_id=5, limit=3)) == [8, 11, 14]
        assert ids(HistoryQuery(topics=("p/1",), before_id=14, newest_first=True)) == [11, 8, 5, 2]
        assert ids(HistoryQuery(limit=0)) == []
        assert ids(HistoryQuery(condition=parse_condition("payload >= 18"))) == [19, 20]


def test_state_at_a_moment_and_stepping_through_changes(database: HistoryDatabase, path: Path) -> None:
    database.write([
        message("house/temp", "20", T0), message("house/door", "closed", T0 + 5), message("house/temp", "21", T0 + 30),
        message("house/door", "open", T0 + 40), message("garden/rain", "0", T0 + 50),
        message("house/temp", "22", T0 + 100),
    ])  # fmt: skip
    with HistoryReader(path) as reader:

        def state(moment: float, *filters: str) -> list[str]:
            return [f"{m.topic}={m.payload.decode()}" for m in reader.state_at(moment, filters)]

        assert state(T0 - 1) == []
        assert state(T0 + 1) == ["house/temp=20"]
        assert state(T0 + 35) == ["house/door=closed", "house/temp=21"]
        assert state(T0 + 60) == ["garden/rain=0", "house/door=open", "house/temp=21"]
        assert state(T0 + 60, "house/#") == ["house/door=open", "house/temp=21"]
        assert state(T0 + 1000) == ["garden/rain=0", "house/door=open", "house/temp=22"]
        # Stepping: one change at a time, forward and back, within a filter.
        temps = HistoryQuery(topics=("house/temp",))
        first = next(iter(reader.search(temps)))
        second = reader.step(first.id, query=temps)
        assert second is not None and second.payload == b"21"
        third = reader.step(second.id, query=temps)
        assert third is not None and third.payload == b"22"
        assert reader.step(third.id, query=temps) is None
        back = reader.step(third.id, forward=False, query=temps)
        assert back is not None and back.id == second.id
        any_next = reader.step(second.id)
        assert any_next is not None and any_next.topic == "house/door"


def fts_consistent(path: Path) -> None:
    db = sqlite3.connect(path)
    try:
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'texts'").fetchone():
            db.execute("INSERT INTO texts (texts, rank) VALUES ('integrity-check', 0)")
    finally:
        db.close()


def test_the_budget_evicts_the_oldest_and_counts(path: Path) -> None:
    budget = 512 * 1024
    db = HistoryDatabase(path, budget=budget, retention=None)
    for batch in range(40):
        db.write(
            [message(f"b/{i % 50}", f"reading {batch} {i} " + "z" * 200, T0 + batch + i / 1000) for i in range(100)]
        )
        assert db.used_bytes() <= budget, batch
    stats = db.stats
    assert stats.written == 4000
    assert stats.evicted_budget > 0 and stats.evicted_retention == 0
    assert stats.stored == db.count == 4000 - stats.evicted_budget
    assert stats.evicted_bytes > stats.evicted_budget * 200
    db.close()
    with HistoryReader(path) as reader:
        ids = [m.id for m in reader.search(HistoryQuery())]
        assert ids == list(range(4001 - stats.stored, 4001))  # the newest kept, none missing
        # Evicted messages are gone from the text index too.
        if reader.fts:
            assert [m.id for m in reader.search(HistoryQuery(text='"reading 0"'))] == []
            newest = [m.id for m in reader.search(HistoryQuery(text='"reading 39"'))]
            assert newest == list(range(3901, 4001))
    fts_consistent(path)


def test_evicting_gives_the_space_back(path: Path) -> None:
    """With a budget made smaller (the settings changed), eviction frees pages and the file shrinks to about the
    budget (``PRAGMA incremental_vacuum`` run to its end: stepped once it freed one page and the file stayed)."""
    db = HistoryDatabase(path, budget=1 << 30, retention=None)
    db.write([message(f"b/{i % 50}", f"{i} " + "z" * 500, T0 + i / 1000) for i in range(16_000)])
    db.close()
    assert path.stat().st_size > 9 * 2**20
    db = HistoryDatabase(path, budget=2 * 2**20, retention=None)
    db.write([message("b/0", "one more", T0 + 20)])
    assert 0 < db.count < 16_000 and db.used_bytes() <= 2 * 2**20
    db.close()
    assert path.stat().st_size < 3 * 2**20


def test_the_retention_evicts_old_messages_and_counts(path: Path) -> None:
    db = HistoryDatabase(path, retention=3600)
    db.write([message("r", str(i), T0 + i * 600) for i in range(10)], now=T0 + 5400)  # 0 .. 5400 s
    # Older than an hour before 5,400 s: those at 0 to 1,200 s.
    assert db.stats.evicted_retention == 3
    assert db.count == 7
    db.write([], now=T0 + 5400 + 5)  # too soon to look again
    assert db.stats.evicted_retention == 3
    db.write([], now=T0 + 9000)
    assert db.stats.evicted_retention == 9 and db.count == 1
    db.write([], now=T0 + 20_000)
    assert db.count == 0 and db.stats.evicted == 10
    db.write([message("r", "new", T0 + 20_000)], now=T0 + 20_000)
    db.close()
    assert read(path) == ["r=new"]
    fts_consistent(path)


def test_clear_and_unused_topics_are_forgotten(path: Path) -> None:
    db = HistoryDatabase(path, budget=1 << 30, retention=60)
    db.write([message("gone", "1", T0)], now=T0)
    db.write([message("kept", "2", T0 + 100)], now=T0 + 100)
    assert db.forget_unused_topics() == 1
    db.clear()
    assert db.count == 0
    db.write([message("again", "3", T0 + 200)], now=T0 + 200)
    db.close()
    with HistoryReader(path) as reader:
        assert list(reader.topic_names().values()) == ["again"]
        assert [m.payload for m in reader.search(HistoryQuery())] == [b"3"]


def test_the_writer_writes_in_its_thread_and_drops_what_does_not_fit(path: Path) -> None:
    writer = HistoryWriter(path, retention=None, queue_messages=100, interval=60)
    gate = threading.Event()
    # Hold the writer thread so that the queue fills.
    blocked = threading.Thread(target=lambda: writer.call(lambda db: gate.wait(10)))
    blocked.start()
    try:
        offered = [writer.offer(message("w", str(i), T0 + i)) for i in range(150)]
    finally:
        gate.set()
        blocked.join()
    assert offered.count(True) == 100 and writer.stats.dropped == 50
    assert writer.flush()
    assert writer.stats.written == 100 and writer.queued == 0
    assert read(path)[-1] == "w=99"
    writer.offer(message("w", "last", T0 + 1000))
    writer.close()
    assert read(path)[-1] == "w=last"
    assert not writer.offer(message("w", "after", T0 + 1001))
    assert writer.stats.dropped == 51


def test_the_writer_bounds_queued_bytes(path: Path) -> None:
    writer = HistoryWriter(path, retention=None, queue_bytes=1000, interval=60)
    gate = threading.Event()
    blocked = threading.Thread(target=lambda: writer.call(lambda db: gate.wait(10)))
    blocked.start()
    try:
        offered = [writer.offer(message("w", b"x" * 300, T0)) for _ in range(5)]
    finally:
        gate.set()
        blocked.join()
    writer.close()
    assert offered == [True, True, True, False, False]


def test_a_write_error_stops_the_writer_and_is_said(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = HistoryWriter(path, retention=None, interval=60)

    def broken(*args: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(writer._database, "write", broken)
    writer.offer(message("w", "1", T0))
    writer.close()
    assert writer.stats.error is not None and "disk is full" in writer.stats.error
    assert writer.stats.dropped == 1  # the message it could not write
    assert not writer.offer(message("w", "2", T0))


def test_readers_see_an_error_for_what_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match="no history store"):
        HistoryReader(tmp_path / "absent.sqlite")
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(HistoryError, match=r"junk\.sqlite"):
        HistoryReader(tmp_path / "junk.sqlite")
    with pytest.raises(HistoryError, match=r"junk\.sqlite"):
        HistoryDatabase(tmp_path / "junk.sqlite")


def test_indexed_text_is_the_same_from_a_cut_payload() -> None:
    text = "é" * 2000  # 4,000 bytes: the index takes 2,048 bytes, a whole number of characters
    assert indexed_text(text.encode()) == "é" * 1024
    assert indexed_text(("a" + text).encode()) == "a" + "é" * 1023  # a character cut at the end is dropped
    assert indexed_text(b"\xff\xfe") is None
    assert indexed_text(b"") is None


def test_store_path_per_broker(tmp_path: Path) -> None:
    assert store_path(tmp_path, "mqtt://127.0.0.1:1883") == tmp_path / "history" / "mqtt_127.0.0.1_1883.sqlite"
    assert store_path(tmp_path, "ws://[::1]:8080/mqtt").name == "ws_1_8080_mqtt.sqlite"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", T0),
        ("10m", T0 - 600),
        ("-2h", T0 - 7200),
        ("3d ago", T0 - 3 * 86_400),
        ("1700000000", 1_700_000_000.0),
        ("2026-12-03T14:02:00+00:00", dt.datetime(2026, 12, 3, 14, 2, tzinfo=dt.UTC).timestamp()),
        ("2026-12-03 14:02", dt.datetime(2026, 12, 3, 14, 2).timestamp()),
        ("2026-12-03", dt.datetime(2026, 12, 3).timestamp()),
    ],
)
def test_moments(text: str, expected: float) -> None:
    assert parse_moment(text, now=T0) == pytest.approx(expected)


def test_a_time_of_day_is_today() -> None:
    today = dt.datetime.fromtimestamp(T0).date()
    assert parse_moment("9:05", now=T0) == dt.datetime.combine(today, dt.time(9, 5)).timestamp()
    assert parse_moment("14:02:30", now=T0) == dt.datetime.combine(today, dt.time(14, 2, 30)).timestamp()
    with pytest.raises(ValueError, match="not a moment"):
        parse_moment("yesterday-ish", now=T0)


def test_spans_are_coarse_enough() -> None:
    assert SPAN_SECONDS >= 1


# ---------------------------------------------------------------------------------------------------------------
# Export


def test_jsonl_export_is_the_recording_format(database: HistoryDatabase, path: Path) -> None:
    props = Properties(user_property=[("k", "v")])
    database.write([message("e/a", "1", T0, qos=1, retain=True, properties=props), message("e/b", b"\x00\xff", T0 + 1)])
    out = io.StringIO()
    with HistoryReader(path) as reader:
        assert write_jsonl(reader.search(HistoryQuery()), out) == 2
    first, second = (parse_line(line) for line in out.getvalue().splitlines())
    assert (first.topic, first.payload, first.qos, first.retain, first.t) == ("e/a", b"1", 1, True, T0)
    assert first.properties.user_property == (("k", "v"),)
    assert second.payload == b"\x00\xff"


def test_csv_export_has_a_column_per_field(database: HistoryDatabase, path: Path) -> None:
    database.write([
        message("s/1", '{"temp": 21.5, "battery": {"level": 80}}', T0),
        message("s/2", '{"temp": 22, "tags": ["a", "b"], "ok": true}', T0 + 1),
        message("s/3", "plain text", T0 + 2),
        message("s/4", b"\xff", T0 + 3),
        message("s/5", '{"cmd": "=HYPERLINK(\\"x\\")", "n": -3}', T0 + 4),
    ])  # fmt: skip
    out = io.StringIO()
    with HistoryReader(path) as reader:
        export = CsvExport()
        assert export.write(lambda: reader.search(HistoryQuery()), out) == 5
    lines = out.getvalue().splitlines()
    assert lines[0] == "t,time,topic,temp,battery.level,tags[0],tags[1],ok,payload,payload_base64,cmd,n"
    assert lines[1] == f"{T0:.3f},2027-01-15T08:00:00.000Z,s/1,21.5,80,,,,,,,"
    assert lines[2].endswith(",s/2,22,,a,b,true,,,,")
    assert lines[3].endswith(",s/3,,,,,,plain text,,,")
    assert lines[4].endswith(",s/4,,,,,,,/w==,,")
    assert lines[5].endswith(""",s/5,,,,,,,,"'=HYPERLINK(""x"")",-3""")


def test_csv_columns_are_bounded() -> None:
    many = {f"f{i}": i for i in range(MAX_COLUMNS + 5)}
    export = CsvExport()
    out = io.StringIO()
    from mqttchat.explorer.history_store import StoredMessage

    export.write(lambda: [StoredMessage(1, T0, "x", json.dumps(many).encode())], out)
    assert len(export.columns) == MAX_COLUMNS and export.skipped_fields == 5
    assert message_fields(b"[1, 2]") == {"payload": [1, 2]}


def test_one_writer_per_store(path: Path) -> None:
    first = HistoryWriter(path, retention=None)
    try:
        with pytest.raises(HistoryError, match="another mqttchat"):
            HistoryWriter(path, retention=None)
        first.offer(message("w", "1", T0))
    finally:
        first.close()
    second = HistoryWriter(path, retention=None)  # the lock went with the first writer
    second.offer(message("w", "2", T0 + 1))
    second.close()
    assert read(path) == ["w=1", "w=2"]


def test_a_data_directory_that_cannot_be_created_is_a_history_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(HistoryError, match="cannot open the history store"):
        HistoryDatabase(blocker / "history" / "broker.sqlite")
    with pytest.raises(HistoryError):
        HistoryWriter(blocker / "history" / "broker.sqlite")


def index_rows(path: Path, word: str) -> list[int]:
    """The rows the text index holds for ``word`` (stale entries of deleted rows included)."""
    db = sqlite3.connect(path)
    try:
        return [row[0] for row in db.execute("SELECT rowid FROM texts WHERE texts MATCH ?", (fts_query(word),))]
    finally:
        db.close()


TEXT_CASES = [
    ("plain", "word " * 500),  # 2,500 bytes: cut at 2,048 on a character boundary
    ("two-byte", "a" + "é" * 1500),  # cut inside a 2-byte character
    ("three-byte", "ab" + "€" * 1000),  # cut after the first byte of a 3-byte one
    ("three-byte-2", "a" + "€" * 1000),  # after its second byte
    ("four-byte", "abc" + "😀" * 600),  # after the third byte of a 4-byte one
    ("short", "short é€😀 text"),
]


def test_the_index_text_cut_in_sql_is_indexed_text() -> None:
    """SQL cuts the text of a flagged payload for the index, when the row is written and again when it goes: the
    same as indexed_text() at every way a character can be cut (at 2 KiB or where the payload was stored cut)."""
    db = sqlite3.connect(":memory:")
    try:
        statement = f"SELECT {_indexed_text_sql('p')} FROM (SELECT ? AS p)"
        payloads = [text.encode() for _, text in TEXT_CASES] + [
            (text.encode())[:cut] for text in ("é€😀" * 3,) for cut in range(1, 28)
        ]
        for payload in payloads:
            for head in (payload, payload[:1025]):
                expected = indexed_text(head)
                if expected is not None:
                    assert db.execute(statement, (head,)).fetchone()[0] == expected, head
    finally:
        db.close()


@pytest.mark.skipif(not fts5_available(), reason="this SQLite has no FTS5")
@pytest.mark.parametrize("limit", [1024 + 1, 64 * 1024])
def test_the_index_takes_the_text_of_indexed_text_and_gives_it_back(path: Path, limit: int) -> None:
    """The writer flags text payloads and SQL cuts their text (at 2 KiB, or where the payload was stored cut,
    never inside a character): a search finds what indexed_text() holds, and eviction takes out exactly what went
    in (a different text would leave the rows' words in the contentless index)."""
    db = HistoryDatabase(path, retention=None, payload_limit=limit)
    messages = [message(f"t/{name}", f"{name}marker {text}", T0) for name, text in TEXT_CASES]
    messages.append(message("t/binary", b"\xffbinarymarker \xfe", T0))
    db.write(messages)
    with HistoryReader(path) as reader:
        for name, _ in TEXT_CASES:
            assert [m.topic for m in reader.search(HistoryQuery(text=f"{name}marker"))] == [f"t/{name}"]
        stored = {m.topic: m.payload for m in reader.search(HistoryQuery())}
        # The last word the index holds of each payload is the last whole one indexed_text() gives.
        words = {}
        for name, _ in TEXT_CASES:
            text = indexed_text(stored[f"t/{name}"])
            assert text is not None
            words[name] = set(text.split())
            last = text.split()[-1]
            assert f"t/{name}" in [m.topic for m in reader.search(HistoryQuery(text=last))], name
    assert index_rows(path, "binarymarker") == []  # not UTF-8: not indexed
    db._evict_before(db._last_id + 1)
    db.close()
    for name, _ in TEXT_CASES:
        for word in words[name]:
            assert index_rows(path, word) == [], (name, word)
    fts_consistent(path)


@pytest.mark.skipif(not fts5_available(), reason="this SQLite has no FTS5")
def test_rows_written_before_the_text_flag_leave_the_index_too(path: Path) -> None:
    """A store written by the previous writer has no text flag on its rows: they are decided again from their
    payloads when evicted, the rows written since by the flag."""
    db = HistoryDatabase(path, retention=None)
    db.write([message("old", f"oldword{i} é", T0 + i) for i in range(5)] + [message("old", b"\xff", T0 + 5)])
    db.close()
    raw = sqlite3.connect(path)
    with raw:  # as the previous writer left it
        raw.execute(f"UPDATE messages SET flags = flags & ~{16}")
        raw.execute("UPDATE meta SET value = 7 WHERE key = 'text_flags_from'")
    raw.close()
    db = HistoryDatabase(path, retention=None)
    db.write([message("new", f"newword{i}", T0 + 10 + i) for i in range(5)])
    assert index_rows(path, "oldword3") == [4] and index_rows(path, "newword3") == [10]
    db._evict_before(9)  # the old rows and two new ones
    assert [index_rows(path, f"oldword{i}") for i in range(5)] == [[]] * 5
    assert index_rows(path, "newword1") == [] and index_rows(path, "newword2") == [9]
    db.close()
    assert read(path) == [f"new=newword{i}" for i in range(2, 5)]
    fts_consistent(path)


@pytest.mark.skipif(not fts5_available(), reason="this SQLite has no FTS5")
def test_an_emptied_store_indexes_and_unindexes_its_new_rows(path: Path) -> None:
    """Rows written before the text index existed are not in it; once the store is emptied its ids start again
    from 1, and those new rows, indexed, leave the index when evicted (they stayed there: their ids were below
    where the index began)."""
    db = HistoryDatabase(path, retention=None, use_fts=False)
    db.write([message("before", f"beforeword{i}", T0 + i) for i in range(3)])
    db.close()
    db = HistoryDatabase(path, retention=None)  # the index begins at id 4
    db._evict_before(db._last_id + 1)
    db.write([message("again", f"againword{i}", T0 + 20 + i) for i in range(3)])
    assert index_rows(path, "againword0") == [1]
    db._evict_before(db._last_id + 1)
    db.close()
    assert [index_rows(path, f"againword{i}") for i in range(3)] == [[]] * 3
    fts_consistent(path)


def test_a_batch_of_many_chunks_comes_back_whole(path: Path) -> None:
    """One write of several SQLite chunks (CHUNK messages each): every message in order with its topic, time,
    flags, properties and payload (cut ones with their size), the ids contiguous and the time map right."""
    db = HistoryDatabase(path, retention=None, payload_limit=1024)
    props = Properties(content_type="text/plain", user_property=[("k", "v\u00e9")])
    messages = [
        message(
            f"m/{i % 37}/é", bytes([i % 256]) * (i % 5) if i % 3 else b"x" * (i % 2000), T0 + i / 100,
            qos=i % 3, retain=i % 4 == 0, dup=i % 5 == 0, properties=props if i % 7 == 0 else Properties(),
        )
        for i in range(2 * CHUNK + 123)
    ]  # fmt: skip
    db.write(messages)
    db.close()
    with HistoryReader(path) as reader:
        stored = list(reader.search(HistoryQuery()))
        assert [m.id for m in stored] == list(range(1, len(messages) + 1))
        for m, s in zip(messages, stored, strict=True):
            assert (s.topic, s.qos, s.retain, s.dup, s.size) == (m.topic, m.qos, m.retain, m.dup, len(m.payload))
            assert s.payload == m.payload[:1024] and s.t == pytest.approx(int(m.received_at * 1000) / 1000)
            assert s.properties == m.properties
        # Ten seconds a span: the range of each second of the flood is found through the time map.
        assert [m.id for m in reader.search(HistoryQuery(since=T0 + 10, until=T0 + 10.999))] == list(range(1001, 1101))


CRASHING_WRITER = """
import sys, time
from pathlib import Path
from mqttchat.client.messages import Message
from mqttchat.explorer.history_store import HistoryWriter
writer = HistoryWriter(Path(sys.argv[1]), retention=None, interval=0.01)
for i in range(2000):
    writer.offer(Message(f"crash/{i % 10}", f"reading {i}".encode(), received_at=1.8e9 + i / 1000))
writer.flush()
print("written", flush=True)
i = 2000
while True:  # until killed: offered and written all the time
    writer.offer(Message(f"crash/{i % 10}", f"reading {i}".encode(), received_at=1.8e9 + i / 1000))
    i += 1
    if i % 500 == 0:
        time.sleep(0.001)
"""


def test_a_writer_killed_mid_write_leaves_a_store_that_opens_and_goes_on(path: Path) -> None:
    """Killed (SIGKILL) while writing: what was committed is there whole (contiguous ids, the time map, the text
    index consistent), what was not is absent, the lock went with the process and the next writer continues."""
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHING_WRITER, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "written"

        # Kill it once it has written more than it had when it said so.
        def written() -> int:
            with HistoryReader(path) as reader:
                return int(reader.summary()["messages"])

        until_sync(lambda: written() > 2500, what="the writer writes on")
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(30)
    fts_consistent(path)
    with HistoryReader(path) as reader:
        ids = [m.id for m in reader.search(HistoryQuery())]
        count = len(ids)
        assert ids == list(range(1, count + 1)) and count > 2500
        assert [m.payload for m in reader.search(HistoryQuery(topics=("crash/3",), limit=2))] == [
            b"reading 3", b"reading 13",
        ]  # fmt: skip
        if reader.fts:
            assert [m.id for m in reader.search(HistoryQuery(text="2222"))] == [2223]
    writer = HistoryWriter(path, retention=None)  # not locked by the dead one
    writer.offer(message("after", "crash", T0))
    writer.close()
    assert read(path)[-1] == "after=crash" and len(read(path)) == count + 1
