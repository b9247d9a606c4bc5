"""Recording to JSONL and loading it back: round trips, filters, errors naming file and line, replay timing."""

from __future__ import annotations

import gzip
import json
import os
import re
from pathlib import Path

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mqttchat.client import Message
from mqttchat.explorer.decoders import PayloadDecoders
from mqttchat.explorer.recording import (
    MAX_REPLAY_GAP,
    REPLAY_RATE,
    RecordedMessage,
    Recorder,
    RecordingError,
    format_line,
    load_recording,
    parse_line,
    replay_delays,
    replay_waits,
)
from mqttchat.explorer.tree import FilterKind, TopicFilter, parse_filter_text
from mqttchat.protocol import EMPTY_PROPERTIES, MAX_VARIABLE_INTEGER, Properties
from tests.explorer.decoders import sparkplug_schema as spb
from tests.explorer.decoders.test_sparkplug import birth, payload

ROUND_TRIP = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

EVERY_PROPERTY = Properties(
    content_type="application/json; charset=utf-8",
    payload_format_indicator=1,
    message_expiry_interval=3600,
    response_topic="replies/ü",
    correlation_data=b"\x00\xffcorr",
    user_property=[("unit", "°C"), ("unit", "K"), ("", "")],
    subscription_identifier=[1, MAX_VARIABLE_INTEGER],
)


def record_all(path: Path, messages: list[Message], text: str = "") -> Recorder:
    with Recorder(path, parse_filter_text(text)) as recorder:
        for message in messages:
            recorder.offer(message)
    return recorder


def as_recorded(message: Message) -> RecordedMessage:
    return RecordedMessage(
        message.received_at, message.topic, message.payload, message.qos, message.retain, message.properties
    )


# ------------------------------------------------------------------------------------------ round trips


def test_round_trip_text_binary_and_every_property(tmp_path: Path) -> None:
    messages = [
        Message("home/kitchen/temp", b"21.5", 1, True, False, received_at=1_718_000_000.125),
        Message("cam/frame", bytes(range(256)), 0, False, True, EVERY_PROPERTY, 1_718_000_001.5),
        Message("empty", b"", 2, False, received_at=1_718_000_002.0),
        Message("/a//b", "naïve ☃ \x00 \u2028 line\nbreak".encode(), 0, received_at=1_718_000_003.0),
    ]
    path = tmp_path / "rec.jsonl"
    recorder = record_all(path, messages)
    assert recorder.written == 4 and recorder.skipped == 0
    data = path.read_bytes()
    assert recorder.bytes_written == len(data)
    assert data.count(b"\n") == 4  # one line a message, whatever the payload holds
    assert load_recording(path) == [as_recorded(m) for m in messages]


def test_line_format_keys(tmp_path: Path) -> None:
    text = json.loads(format_line("a/b", b"hi", 1, True, Properties(), 12.5))
    assert text == {"t": 12.5, "topic": "a/b", "qos": 1, "retain": True, "payload": "hi"}
    binary = json.loads(format_line("a", b"\xff", 0, False, EVERY_PROPERTY, 1.0))
    assert binary["payload_base64"] == "/w==" and "payload" not in binary
    assert binary["properties"] == {
        "content_type": "application/json; charset=utf-8",
        "payload_format_indicator": 1,
        "message_expiry_interval": 3600,
        "response_topic": "replies/ü",
        "correlation_data": "AP9jb3Jy",
        "user_properties": [["unit", "°C"], ["unit", "K"], ["", ""]],
        "subscription_identifiers": [1, MAX_VARIABLE_INTEGER],
    }


def test_only_publish_properties_are_recorded() -> None:
    record = json.loads(format_line("a", b"", 0, False, Properties(topic_alias=3), 1.0))
    assert "properties" not in record


def test_defaults_when_loading_a_hand_written_line() -> None:
    assert parse_line('{"t": 5, "topic": "x"}') == RecordedMessage(5.0, "x", b"", 0, False, Properties())


def test_publish_properties_leave_out_subscription_identifiers() -> None:
    message = parse_line(format_line("a", b"", 0, False, EVERY_PROPERTY, 1.0))
    assert message.properties.subscription_identifier == (1, MAX_VARIABLE_INTEGER)
    assert message.publish_properties.subscription_identifier == ()
    assert message.publish_properties.content_type == EVERY_PROPERTY.content_type


# ------------------------------------------------------------------------------------------ the recorder


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("", FilterKind.SUBSTRING, ["home/kitchen/temp", "home/hall/light", "garden/raw", "$SYS/uptime"]),
        ("KITCHEN", FilterKind.SUBSTRING, ["home/kitchen/temp"]),
        ("eco", FilterKind.SUBSTRING, ["garden/raw"]),  # substrings search payloads too
        ("home/+/light", FilterKind.WILDCARD, ["home/hall/light"]),
        ("#", FilterKind.WILDCARD, ["home/kitchen/temp", "home/hall/light", "garden/raw"]),  # not $SYS
        ("/^home/.*(temp|light)$/", FilterKind.REGEX, ["home/kitchen/temp", "home/hall/light"]),
        ("/ECO-\\d/", FilterKind.REGEX, ["garden/raw"]),
    ],
)
def test_filter_kinds(tmp_path: Path, text: str, kind: FilterKind, expected: list[str]) -> None:
    topic_filter = parse_filter_text(text)
    assert topic_filter.kind is kind
    messages = [
        Message("home/kitchen/temp", b"21"),
        Message("home/hall/light", b"on"),
        Message("garden/raw", b"mode eco-2"),
        Message("$SYS/uptime", b"12"),
    ]
    path = tmp_path / "rec.jsonl"
    with Recorder(path, topic_filter) as recorder:
        written = [m.topic for m in messages if recorder.offer(m)]
    assert written == expected
    assert recorder.written == len(expected) and recorder.skipped == 4 - len(expected)
    assert [r.topic for r in load_recording(path)] == expected


def test_filter_on_topics_only(tmp_path: Path) -> None:
    with Recorder(tmp_path / "r.jsonl", TopicFilter("eco", search_payloads=False)) as recorder:
        assert not recorder.offer(Message("garden/raw", b"eco"))
        assert recorder.offer(Message("eco/x", b""))


def test_parse_filter_text() -> None:
    assert parse_filter_text("  /a|b/ ") == TopicFilter("a|b", FilterKind.REGEX)
    assert parse_filter_text("a/#") == TopicFilter("a/#", FilterKind.WILDCARD)
    assert parse_filter_text("/") == TopicFilter("/", FilterKind.SUBSTRING)
    assert parse_filter_text("x", search_payloads=False).search_payloads is False


@pytest.mark.parametrize(("text", "problem"), [("a/#/b", "'#' must be the last level"), ("/(/", "regular expression")])
def test_invalid_filter_refused(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Recorder(tmp_path / "r.jsonl", parse_filter_text(text))
    assert not (tmp_path / "r.jsonl").exists()


def test_file_is_truncated_and_counters_and_summary(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text("old content\n")
    recorder = Recorder(path, parse_filter_text("home/#"))
    assert path.read_text() == ""
    for i in range(120):
        recorder.offer(Message(f"home/{i}", b"x" * 100, received_at=float(i)))
    recorder.flush()
    assert path.stat().st_size == recorder.bytes_written
    assert recorder.summary() == f"recording home/# to {path}: 120 messages, {recorder.bytes_written / 1024:.1f} KiB"
    recorder.close()
    recorder.close()  # idempotent
    assert recorder.summary().startswith("recorded home/# to")
    assert not recorder.offer(Message("home/late", b""))
    assert recorder.written == 120 and not recorder.active
    assert len(load_recording(path)) == 120


def test_cannot_open_is_a_clear_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"^cannot record to .*missing/r\.jsonl: No such file") as info:
        Recorder(tmp_path / "missing" / "r.jsonl", TopicFilter(""))
    assert info.value.errno is not None
    with pytest.raises(IsADirectoryError, match="cannot record to"):
        Recorder(tmp_path, TopicFilter(""))


def test_write_error_stops_recording_without_raising(tmp_path: Path) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    recorder = Recorder("/dev/full", TopicFilter(""), buffer_size=0)
    assert not recorder.offer(Message("a", b"x"))
    assert recorder.error is not None and not recorder.active
    assert "stopped" in recorder.summary()
    assert not recorder.offer(Message("a", b"x"))
    recorder.flush()
    recorder.close()
    assert recorder.written == 0


# ------------------------------------------------------------------------------------------ decoded payloads


def test_lines_keep_the_decoded_form_where_a_decoder_applies(tmp_path: Path) -> None:
    decoders = PayloadDecoders()
    recorder = Recorder(tmp_path / "r.jsonl", TopicFilter(""), decoders=decoders)

    def offer(topic: str, payload: bytes, properties: Properties = EMPTY_PROPERTIES) -> None:
        message = Message(topic, payload, properties=properties, received_at=float(len(sent)))
        sent.append(message)
        recorder.offer(message, decoders.observe(topic, payload, message.received_at))

    sent: list[Message] = []
    offer("spBv1.0/G/NBIRTH/E", birth())
    pressure = {"name": "Steam/Pressure", "alias": 20, "datatype": spb.DOUBLE, "double_value": 1.0}
    offer("spBv1.0/G/DBIRTH/E/Boiler", payload([pressure], seq=1))
    offer("spBv1.0/G/DDATA/E/Boiler", payload([{"alias": 20, "double_value": 2.75}], seq=2))
    offer("spBv1.0/G/DDATA/E/Boiler", b"\xff\xff not protobuf")
    offer("meters/m1", cbor2.dumps({"kwh": 1234.5, "id": b"\x01\x02"}), Properties(content_type="application/cbor"))
    offer("solar/inverter", gzip.compress(b'{"voltage": 231.5}', mtime=0))
    offer("home/temp", b'{"t": 21.5}')
    offer("home/door", b"closed")
    offer("raw/bytes", bytes(range(1, 20)))
    recorder.close()
    lines = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    data = lines[2]
    assert data["decoder"] == "sparkplug"
    assert data["decoded"]["metrics"] == {"Steam/Pressure": 2.75}  # named by the birth's alias
    assert "payload_base64" in data  # beside the raw payload
    assert lines[3]["decoder"] == "sparkplug" and "not a Sparkplug B payload" in lines[3]["decode_error"]
    assert "decoded" not in lines[3]
    assert (lines[4]["decoder"], lines[4]["decoded"]) == ("cbor", {"kwh": 1234.5, "id": "0102"})
    assert (lines[5]["decoder"], lines[5]["decoded"]) == ("gzip+json", {"voltage": 231.5})
    for plain in lines[6:]:  # JSON, text and bytes that no decoder transforms: the payload says it all
        assert "decoder" not in plain and "decoded" not in plain
    assert recorder.decoded == 6 and recorder.undecoded == 0
    # A replay publishes the payloads as they came.
    assert load_recording(tmp_path / "r.jsonl") == [as_recorded(message) for message in sent]


def test_recordings_with_and_without_decoded_forms_load_alike() -> None:
    old = '{"t":1.5,"topic":"meters/m1","qos":1,"retain":false,"payload_base64":"oWNrd2j7QJNKAAAAAAA="}'
    new = old[:-1] + ',"decoder":"cbor","decoded":{"kwh":1234.5}}'
    failed = old[:-1] + ',"decoder":"cbor","decode_error":"cbor: premature end of stream"}'
    assert parse_line(old) == parse_line(new) == parse_line(failed)
    assert parse_line(old).payload == cbor2.dumps({"kwh": 1234.5})


def test_the_recorder_decodes_within_its_share_of_each_second(tmp_path: Path) -> None:
    moments = iter([10.0, 10.06, 10.1, 10.16, 10.2, 11.0, 11.01])  # each decode's start and end
    recorder = Recorder(
        tmp_path / "r.jsonl", TopicFilter(""), decoders=PayloadDecoders(), decode_share=0.1, clock=lambda: next(moments)
    )
    cbor = Properties(content_type="application/cbor")
    for i in range(4):
        recorder.offer(Message(f"m/{i}", cbor2.dumps({"i": i}), properties=cbor, received_at=float(i)))
    recorder.close()
    lines = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    # 60 ms, then 60 ms more (the share was not spent when it began), then none left: the next second, again.
    assert ["decoded" in line for line in lines] == [True, True, False, True]
    assert (recorder.decoded, recorder.undecoded) == (3, 1)
    assert recorder.summary().endswith("1 without the decoded form (no time to decode)")


# ------------------------------------------------------------------------------------------ load errors


def write_lines(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD = '{"t": 1, "topic": "a/b", "payload": "x"}'


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"t": 1, "topic": "a", ', "bad JSON"),
        ("[1, 2]", "expected a JSON object, found a list"),
        ('{"t": 1}', "missing 'topic'"),
        ('{"t": 1, "topic": 7}', "'topic' must be a string"),
        ('{"t": 1, "topic": "a/+/b"}', "invalid topic name: .*wildcard"),
        ('{"t": 1, "topic": ""}', "invalid topic name: .*empty"),
        ('{"t": 1, "topic": "a\\u0000b"}', "invalid topic name: .*U\\+0000"),
        ('{"t": 1, "topic": "a\\ud800"}', "invalid topic name: .*surrogate"),
        ('{"topic": "a"}', "missing 't'"),
        ('{"t": "noon", "topic": "a"}', "'t' must be a number"),
        ('{"t": 1, "topic": "a", "qos": 3}', "bad qos 3"),
        ('{"t": 1, "topic": "a", "qos": "1"}', "bad qos"),
        ('{"t": 1, "topic": "a", "qos": true}', "bad qos"),
        ('{"t": 1, "topic": "a", "retain": 1}', "'retain' must be true or false"),
        ('{"t": 1, "topic": "a", "payload_base64": "%%%"}', "bad base64 in 'payload_base64'"),
        ('{"t": 1, "topic": "a", "payload_base64": "abc"}', "bad base64 in 'payload_base64'"),
        ('{"t": 1, "topic": "a", "payload": 5}', "'payload' must be a string"),
        ('{"t": 1, "topic": "a", "payload": "x", "payload_base64": ""}', "both 'payload' and 'payload_base64'"),
        ('{"t": 1, "topic": "a", "properties": []}', "'properties' must be an object"),
        ('{"t": 1, "topic": "a", "properties": {"colour": "red"}}', "unknown property 'colour'"),
        ('{"t": 1, "topic": "a", "properties": {"correlation_data": "*"}}', "bad base64 in 'correlation_data'"),
        ('{"t": 1, "topic": "a", "properties": {"payload_format_indicator": 2}}', "from 0 to 1"),
        ('{"t": 1, "topic": "a", "properties": {"response_topic": "r/#"}}', "'response_topic': .*wildcard"),
        ('{"t": 1, "topic": "a", "properties": {"user_properties": [["k"]]}}', "not a \\[name, value\\] pair"),
        ('{"t": 1, "topic": "a", "properties": {"user_properties": [["k", 1]]}}', "must be a string"),
        ('{"t": 1, "topic": "a", "properties": {"subscription_identifiers": [0]}}', "from 1 to"),
        ('{"t": 1, "topic": "a", "properties": {"content_type": null}}', "'content_type' must be a string"),
    ],
)
def test_load_errors_name_file_and_line(tmp_path: Path, line: str, problem: str) -> None:
    path = write_lines(tmp_path, GOOD, "", line, GOOD)  # the bad line is line 3 (the empty line 2 is skipped)
    with pytest.raises(RecordingError, match=f"^{re.escape(str(path))}, line 3: ") as info:
        load_recording(path)
    assert re.search(problem, info.value.problem), info.value.problem
    assert info.value.line == 3 and info.value.path == str(path)
    assert isinstance(info.value, ValueError)


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bin.jsonl"
    path.write_bytes(GOOD.encode() + b"\n" + b'{"t": 1, "topic": "\xff"}\n')
    with pytest.raises(RecordingError, match=r"line 2: not UTF-8 text"):
        load_recording(path)


def test_empty_lines_and_unknown_keys(tmp_path: Path) -> None:
    path = write_lines(tmp_path, "", GOOD, "   ", '{"t": 2, "topic": "c", "note": "later addition"}', "")
    assert [r.topic for r in load_recording(path)] == ["a/b", "c"]
    assert load_recording(write_lines(tmp_path, "")) == []


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_recording(tmp_path / "nope.jsonl")


# ------------------------------------------------------------------------------------------ replay timing


def recorded(*times: float) -> list[RecordedMessage]:
    return [RecordedMessage(t, "a") for t in times]


def test_replay_delays_follow_the_original_gaps_divided_by_speed() -> None:
    records = recorded(100.0, 100.5, 101.5, 101.5, 104.0)
    assert replay_delays(records, 1) == [0.0, 0.5, 1.0, 0.0, 2.5]
    assert replay_delays(records, 2) == [0.0, 0.25, 0.5, 0.0, 1.25]
    assert replay_delays(records, 0.5) == [0.0, 1.0, 2.0, 0.0, 5.0]
    assert replay_delays([100.0, 100.5], 1) == [0.0, 0.5]  # bare times work too
    assert replay_delays([], 1) == []


@pytest.mark.parametrize("speed", [0, 0.0, float("inf")])
def test_as_fast_as_possible(speed: float) -> None:
    assert replay_delays(recorded(1, 50, 2, 3000), speed) == [0.0] * 4


def test_negative_gaps_become_zero_and_huge_gaps_are_capped() -> None:
    assert replay_delays(recorded(1000.0, 10.0, 11.0, 5000.0, 5001.0), 1) == [0.0, 0.0, 1.0, MAX_REPLAY_GAP, 1.0]
    assert replay_delays(recorded(0.0, 30.0), 2) == [0.0, MAX_REPLAY_GAP]  # the wait itself is capped
    assert replay_delays(recorded(0.0, 30.0), 10) == [0.0, 3.0]
    assert MAX_REPLAY_GAP == 10.0


def test_a_replay_waits_at_least_its_rate_allows() -> None:
    records = recorded(100.0, 100.5, 100.5, 100.5)
    floor = 1 / REPLAY_RATE
    assert replay_waits(records, 1) == [floor, 0.5, floor, floor]
    assert replay_waits(records, 0) == [floor] * 4


@pytest.mark.parametrize("speed", [-1.0, float("nan")])
def test_bad_speed(speed: float) -> None:
    with pytest.raises(ValueError, match="replay speed"):
        replay_delays(recorded(1, 2), speed)


# ------------------------------------------------------------------------------------------ property test

TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=20)
TOPIC = TEXT.filter(lambda t: bool(t) and "+" not in t and "#" not in t)
PROPERTIES = st.builds(
    Properties,
    content_type=st.none() | TEXT,
    payload_format_indicator=st.none() | st.integers(0, 1),
    message_expiry_interval=st.none() | st.integers(0, 0xFFFF_FFFF),
    response_topic=st.none() | TOPIC,
    correlation_data=st.none() | st.binary(max_size=16),
    user_property=st.none() | st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=3),
    subscription_identifier=st.none() | st.lists(st.integers(1, MAX_VARIABLE_INTEGER), min_size=1, max_size=3),
)
MESSAGES = st.builds(
    Message,
    topic=TOPIC,
    payload=st.binary(max_size=64) | TEXT.map(str.encode),
    qos=st.integers(0, 2),
    retain=st.booleans(),
    properties=PROPERTIES,
    received_at=st.floats(0, 4e9, allow_nan=False),
)


@ROUND_TRIP
@given(messages=st.lists(MESSAGES, max_size=8))
def test_round_trip_property(tmp_path: Path, messages: list[Message]) -> None:
    path = tmp_path / "prop.jsonl"
    recorder = record_all(path, messages)
    assert recorder.written == len(messages)
    assert load_recording(path) == [as_recorded(m) for m in messages]
