"""``mqttchat history``: the explorer's stored messages queried from the command line."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mqttchat.cli import main
from mqttchat.client.messages import Message
from mqttchat.explorer.history_store import HistoryDatabase, HistoryWriter, store_path
from mqttchat.explorer.recording import parse_line

#: Whole seconds: the moments given on the command line are exact.
NOW = float(int(time.time()))


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory with a store for the default broker: three rooms' temperatures, a minute apart."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    from mqttchat.config import data_dir

    db = HistoryDatabase(store_path(data_dir(), "mqtt://127.0.0.1:1883"), retention=None)
    rooms = ["kitchen", "hall", "attic", "kitchen", "hall"]
    readings = [json.dumps({"temp": 20 + i, "room": room}).encode() for i, room in enumerate(rooms)]
    db.write([
        Message(f"home/{room}/temp", reading, received_at=NOW - 600 + 60 * i)
        for i, (room, reading) in enumerate(zip(rooms, readings, strict=True))
    ] + [Message("log/door", b"door opened by Alice", received_at=NOW - 10)])  # fmt: skip
    db.close()
    other = HistoryDatabase(store_path(data_dir(), "mqtt://broker.example:1884"), retention=None)
    other.write([Message("x", b"elsewhere", received_at=NOW)])
    other.close()
    return data_dir()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["history", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_filters_combine(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "-t", "home/+/temp", "--where", "temp >= 22", "--since", f"{NOW - 500:.3f}")
    assert status == 0
    assert [line.split(" ", 2)[2] for line in out.splitlines()] == [
        'home/attic/temp {"temp": 22, "room": "attic"}',
        'home/kitchen/temp {"temp": 23, "room": "kitchen"}',
        'home/hall/temp {"temp": 24, "room": "hall"}',
    ]
    _, out, _ = run(capsys, "--text", "alice door", "-F", "json")
    (line,) = out.splitlines()
    record = parse_line(line)
    assert (record.topic, record.payload) == ("log/door", b"door opened by Alice")
    assert record.t == pytest.approx(NOW - 10, abs=0.001)
    _, out, _ = run(capsys, "--regex", "kit.hen", "-C", "1", "--newest-first")
    assert '"temp": 23' in out and len(out.splitlines()) == 1
    _, out, _ = run(capsys, "--until", f"{NOW - 530:.3f}")
    assert len(out.splitlines()) == 2


def test_state_at_a_moment_as_csv(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    moment = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(NOW - 450))  # after the attic's reading
    status, out, _ = run(capsys, "--at", moment, "-t", "home/#", "-F", "csv")
    assert status == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["topic"], r["temp"], r["room"]) for r in rows] == [
        ("home/attic/temp", "22", "attic"), ("home/hall/temp", "21", "hall"), ("home/kitchen/temp", "20", "kitchen"),
    ]  # fmt: skip
    _, out, _ = run(capsys, "--at", "now", "--where", "temp > 22", "-F", "csv")
    assert [r["temp"] for r in csv.DictReader(io.StringIO(out))] == ["24", "23"]


def test_stores_are_per_broker_and_listed(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "-L", "mqtt://broker.example:1884")
    assert out.endswith(" x elsewhere\n")
    _, out, _ = run(capsys, "-h", "broker.example", "-p", "1884")
    assert out.endswith(" x elsewhere\n")
    _, out, _ = run(capsys, "--list")
    assert out.splitlines() == [
        line for line in out.splitlines() if line.startswith(("mqtt_127.0.0.1_1883.sqlite", "mqtt_broker.example"))
    ]
    assert "6 messages, 4 topics" in out
    _, out, _ = run(capsys, "--stats")
    assert json.loads(out)["messages"] == 6
    _, out, _ = run(capsys, "--file", str(store_path(data, "mqtt://broker.example:1884")))
    assert "elsewhere" in out


@pytest.mark.parametrize(
    ("args", "status", "words"),
    [
        (("-L", "mqtt://nobody:1"), 1, "no history store there"),
        (("--where", "temp >"), 2, "--where: expected a field"),
        (("--since", "soonish"), 2, "--since: 'soonish' is not a moment"),
        (("-t", "a/#/b"), 2, "topic filter 'a/#/b'"),
        (("--regex", "("), 2, "bad regular expression"),
        (("-L", "mqtt://x", "-p", "3"), 2, "not both"),
        (("-C", "-1"), 2, "-C must not be negative"),
        (("--clear", "-t", "home/#"), 2, "--clear forgets by age only (--until), from the oldest end: not with -t"),
        (("--clear", "--since", "1h"), 2, "not with --since"),
        (("--all",), 2, "--all goes with --clear"),
        (("--clear", "--all", "-L", "mqtt://x"), 2, "not both"),
        (("--clear", "--until", "soonish"), 2, "--until: 'soonish' is not a moment"),
        (("--clear", "-L", "mqtt://nobody:1"), 1, "no history store there (the explorer writes one per broker"),
    ],
)
def test_errors_are_one_line(
    data: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], status: int, words: str
) -> None:
    code, out, err = run(capsys, *args)
    assert code == status
    assert out == ""
    assert err.startswith("mqttchat history: ") and words in err and err.count("\n") == 1


def test_a_damaged_store_is_an_error_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"garbage" * 1000)
    code, _, err = run(capsys, "--file", str(junk))
    assert code == 1 and str(junk) in err


def test_the_command_loads_no_ui(data: Path) -> None:
    code = (
        "import sys\n"
        "from mqttchat.cli import main\n"
        "assert main(['history', '-t', 'home/#', '--where', 'temp > 1', '-F', 'csv']) == 0\n"
        "print('loaded:' + ','.join(sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('textual', 'rich') or m.startswith('mqttchat.ui'))))\n"
    )
    env = {**os.environ, "XDG_DATA_HOME": str(data.parent)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "loaded:"
    assert "home/kitchen/temp" in result.stdout


def test_clear_forgets_one_brokers_messages(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--clear`` empties the local broker's store (the file stays, for the app to write on); the other broker's
    store keeps its messages."""
    status, out, err = run(capsys, "--clear")
    assert (status, err) == (0, "")
    assert out.startswith("mqtt_127.0.0.1_1883.sqlite: 6 messages forgotten, ")
    assert run(capsys)[1] == ""
    assert json.loads(run(capsys, "--stats")[1])["topics"] == 0
    assert run(capsys, "-L", "mqtt://broker.example:1884")[1].endswith(" x elsewhere\n")


def test_clear_until_forgets_what_is_older(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--clear --until MOMENT`` forgets the messages received at or before it, from the oldest end, and the
    topics left without messages; the text index follows (what stays is found by its words)."""
    status, out, _ = run(capsys, "--clear", "--until", f"{NOW - 540:.3f}")
    assert status == 0 and "2 messages forgotten" in out
    _, out, _ = run(capsys, "-F", "json")
    assert [parse_line(line).t for line in out.splitlines()] == pytest.approx(
        [NOW - 480, NOW - 420, NOW - 360, NOW - 10], abs=0.001
    )
    assert json.loads(run(capsys, "--stats")[1])["topics"] == 4
    assert "door opened by Alice" in run(capsys, "--text", "alice")[1]
    _, out, _ = run(capsys, "--clear", "--until", f"{NOW - 3600:.3f}")  # nothing that old
    assert "0 messages forgotten" in out


def test_clear_all_and_the_space_given_back(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--clear --all`` empties every broker's store, and the files shrink: the space is given back."""
    path = store_path(data, "mqtt://127.0.0.1:1883")
    db = HistoryDatabase(path, retention=None)
    db.write([Message(f"bulk/{i % 100}", b"%05d" % i * 100, received_at=NOW) for i in range(5_000)])
    db.close()
    before = path.stat().st_size
    assert before > 2_500_000
    status, out, _ = run(capsys, "--clear", "--all")
    assert status == 0
    assert out.splitlines()[0].startswith("mqtt_127.0.0.1_1883.sqlite: 5,006 messages forgotten")
    assert out.splitlines()[1].startswith("mqtt_broker.example_1884.sqlite: 1 message forgotten")
    assert path.stat().st_size < before / 4
    assert "0 messages" in run(capsys, "--list")[1]


def test_clear_waits_for_the_app_writing_the_store(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A store an app is writing is not cleared under it (the app would go on from ids it holds): the command
    says to quit the app first, and the messages stay."""
    writer = HistoryWriter(store_path(data, "mqtt://127.0.0.1:1883"), retention=None)
    try:
        status, out, err = run(capsys, "--clear")
    finally:
        writer.close()
    assert status == 1 and out == ""
    assert "an mqttchat keeps this broker's history now: quit it first" in err
    assert json.loads(run(capsys, "--stats")[1])["messages"] == 6
