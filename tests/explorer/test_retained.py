"""Retained messages as a set, without a screen: the export/import file and the pace of bulk publishing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mqttchat.explorer.retained import (
    BULK_RATE,
    RetainedFormatError,
    RetainedMessage,
    bulk_duration,
    bulk_pause,
    dump_retained,
    export_retained,
    import_retained,
    load_retained,
    retained_messages,
)
from mqttchat.explorer.tree import TopicTree


def test_bulk_delete_says_how_long_it_takes() -> None:
    assert bulk_duration(2) == "in under a second"
    assert bulk_duration(BULK_RATE) == "in under a second"
    assert bulk_duration(BULK_RATE + 1) == "about 2 s"
    assert bulk_duration(10 * BULK_RATE) == "about 10 s"


def test_bulk_publishing_pauses_a_second_after_each_batch() -> None:
    pauses = [bulk_pause(sent) for sent in range(1, 3 * BULK_RATE + 1)]
    assert sum(pauses) == 3.0
    assert [i + 1 for i, pause in enumerate(pauses) if pause] == [BULK_RATE, 2 * BULK_RATE, 3 * BULK_RATE]


def test_the_retained_messages_the_explorer_holds() -> None:
    tree = TopicTree()
    tree.ingest("home/door", b"open", 1, True)
    tree.ingest("home/cam", b"\xff\x00", 0, True)
    tree.ingest("home/temp", b"21", 0, False)  # not retained
    messages = retained_messages(tree, ["home/door", "home/cam", "home/temp", "home/gone"])
    assert messages == [RetainedMessage("home/door", b"open", 1), RetainedMessage("home/cam", b"\xff\x00", 0)]


def test_export_and_import_round_trip(tmp_path: Path) -> None:
    messages = [
        RetainedMessage("home/door", "ouvert ✓".encode(), 1),
        RetainedMessage("home/cam", bytes(range(256)), 0),
        RetainedMessage("home/empty", b"", 2),
    ]
    text = dump_retained(messages)
    records = json.loads(text)["retained"]
    assert records[0] == {"topic": "home/door", "qos": 1, "payload": "ouvert ✓"}
    assert set(records[1]) == {"topic", "qos", "payload_base64"}
    assert load_retained(text) == messages
    path = tmp_path / "retained.json"
    export_retained(path, messages)
    assert import_retained(path) == messages
    # A record without a QoS is published at QoS 1.
    assert load_retained('{"retained": [{"topic": "a", "payload": "x"}]}') == [RetainedMessage("a", b"x", 1)]


@pytest.mark.parametrize(
    "text",
    ["not json", "[]", '{"other": []}', '{"retained": 5}', '{"retained": [{"payload": "x"}]}',
     '{"retained": [{"topic": "a"}]}', '{"retained": [{"topic": "a", "payload": "x", "qos": "high"}]}',
     '{"retained": [{"topic": "a", "payload_base64": "abc"}]}', '{"retained": ["a"]}'],
)  # fmt: skip
def test_what_is_not_an_export(text: str) -> None:
    with pytest.raises(RetainedFormatError):
        load_retained(text)


def test_files_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        import_retained(tmp_path / "missing.json")
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(RetainedFormatError):
        import_retained(binary)
