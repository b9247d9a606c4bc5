"""``mqttchat pub`` and ``mqttchat sub`` as a user runs them, in subprocesses, against mosquitto."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.helpers.brokers import RunningBroker, free_port
from tests.helpers.cli import finish, pub, run, start_sub


@pytest.mark.parametrize("version", ["5", "311"])
def test_pub_sub_round_trip(mosquitto: RunningBroker, version: str) -> None:
    sub = start_sub(mosquitto, "-t", "cli/#", "-v", "-C", "4", "-q", "2", "-V", version)
    pub(mosquitto, "-t", "cli/a", "-m", "one", "-V", version)
    pub(mosquitto, "-t", "cli/b", "-m", "two", "-q", "1", "-V", version)
    pub(mosquitto, "-t", "cli/c", "-m", "three", "-q", "2", "-V", version)
    pub(mosquitto, "-t", "cli/d", "-n", "-V", version)
    code, out, err = finish(sub)
    assert code == 0, err
    assert out.splitlines() == [b"cli/a one", b"cli/b two", b"cli/c three", b"cli/d "]
    assert err == b""


def test_pub_from_file_stdin_and_lines(mosquitto: RunningBroker, tmp_path: Path) -> None:
    data = tmp_path / "blob.bin"
    data.write_bytes(bytes(range(256)))
    sub = start_sub(mosquitto, "-t", "in/#", "-F", "json", "-C", "5", "-q", "1")
    pub(mosquitto, "-t", "in/file", "-f", str(data))
    pub(mosquitto, "-t", "in/stdin", "-s", stdin=b"all of\nit")
    pub(mosquitto, "-t", "in/lines", "-l", "-q", "1", stdin=b"first\nsecond\nthird\n")
    code, out, _ = finish(sub)
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["topic"] for r in records] == ["in/file", "in/stdin", "in/lines", "in/lines", "in/lines"]
    assert "payload_base64" in records[0]  # binary payloads are base64 in JSON
    assert records[1]["payload"] == "all of\nit"
    assert [r["payload"] for r in records[2:]] == ["first", "second", "third"]
    assert all({"t", "qos", "retain"} <= r.keys() for r in records)


def test_v5_properties_from_the_command_line(mosquitto: RunningBroker) -> None:
    sub = start_sub(mosquitto, "-t", "p/#", "-F", "json", "-C", "1")
    pub(mosquitto, "-t", "p/x", "-m", "{}", "-D", "publish", "content-type", "application/json",
        "-D", "publish", "user-property", "origin", "cli",
        "-D", "publish", "message-expiry-interval", "60")  # fmt: skip
    _, out, _ = finish(sub)
    record = json.loads(out)
    assert record["properties"]["content_type"] == "application/json"
    assert record["properties"]["user_properties"] == [["origin", "cli"]]
    assert 0 < record["properties"]["message_expiry_interval"] <= 60


def test_retained_only_skip_retained_and_remove_retained(mosquitto: RunningBroker) -> None:
    for topic in ("r/a", "r/b"):
        pub(mosquitto, "-t", topic, "-m", topic, "-r", "-q", "1")
    result = run("sub", "-p", str(mosquitto.port), "-t", "r/#", "--retained-only", "-v")
    assert result.returncode == 0
    assert sorted(result.stdout.splitlines()) == [b"r/a r/a", b"r/b r/b"]
    sub = start_sub(mosquitto, "-t", "r/#", "-R", "-v", "-C", "1")
    pub(mosquitto, "-t", "r/live", "-m", "live")
    _, out, _ = finish(sub)
    assert out == b"r/live live\n"  # the stale retained ones were skipped
    result = run("sub", "-p", str(mosquitto.port), "-t", "r/#", "--retained-only", "--remove-retained")
    assert result.returncode == 0
    result = run("sub", "-p", str(mosquitto.port), "-t", "r/#", "--retained-only")
    assert result.stdout == b""


def test_count_timeout_and_no_newline(mosquitto: RunningBroker) -> None:
    result = run("sub", "-p", str(mosquitto.port), "-t", "quiet", "-W", "0.5")
    assert result.returncode == 27  # as mosquitto_sub: the timeout ended it
    sub = start_sub(mosquitto, "-t", "nn", "-N", "-C", "2")
    pub(mosquitto, "-t", "nn", "-m", "a", "--repeat", "2", "--repeat-delay", "0.05")
    assert finish(sub)[1] == b"aa"


def test_persistent_session_from_the_command_line(mosquitto: RunningBroker) -> None:
    first = start_sub(mosquitto, "-t", "away/#", "-q", "1", "-c", "-i", "cli-away", "-C", "1")
    pub(mosquitto, "-t", "away/x", "-m", "while here", "-q", "1")
    assert finish(first)[1] == b"while here\n"
    pub(mosquitto, "-t", "away/x", "-m", "while away", "-q", "1")
    result = run(
        "sub", "-p", str(mosquitto.port), "-t", "away/#", "-q", "1", "-c", "-i", "cli-away", "-C", "1", "-W", "5"
    )
    assert result.stdout == b"while away\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pub", "-t", "a/#", "-m", "x"], b"contains a wildcard"),
        (["sub", "-t", "a/#/b"], b"'#' must be the last level"),
        (["pub", "-t", "t", "-m", "x", "-V", "4.0"], b"unknown protocol version"),
        (["pub", "-t", "t", "-m", "x", "-L", "http://h"], b"unknown URL scheme"),
        (["pub", "-t", "t", "-m", "x", "-D", "publish", "nope", "1"], b"unknown property"),
        (["pub", "-t", "t", "-f", "/nonexistent/file"], b"No such file or directory"),
        (["pub", "-t", "t", "-m", "x", "--cafile", "/nonexistent/ca.pem"], b"cannot read TLS file"),
    ],
)
def test_bad_input_is_one_line_without_traceback(args: Sequence[str], message: bytes) -> None:
    result = run(*args) if "-L" in args else run(*args, "-p", str(free_port()))
    assert result.returncode != 0
    assert message in result.stderr
    assert b"Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_connection_refused_is_one_line() -> None:
    port = free_port()
    result = run("pub", "-p", str(port), "-t", "t", "-m", "x")
    assert result.returncode == 1
    assert (
        result.stderr.decode().strip()
        == f"mqttchat pub: connection refused by 127.0.0.1:{port}: is a broker running there?"
    )


def test_refused_credentials(mosquitto_factory, tmp_path: Path) -> None:
    passwd = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "bob", "pw"], check=True)
    broker = mosquitto_factory(f"allow_anonymous false\npassword_file {passwd}\n")
    result = run("pub", "-p", str(broker.port), "-t", "t", "-m", "x", "-u", "bob", "-P", "bad")
    assert result.returncode == 1
    assert b"the broker refused the connection: Not authorized (0x87)" in result.stderr  # mosquitto's choice
    ok = run("pub", "-p", str(broker.port), "-t", "t", "-m", "x", "-u", "bob", "-P", "pw")
    assert ok.returncode == 0, ok.stderr


def test_json_output_is_a_recording_the_explorer_replays(mosquitto: RunningBroker, tmp_path: Path) -> None:
    from mqttchat.explorer.recording import load_recording

    sub = start_sub(mosquitto, "-t", "rec/#", "-F", "json", "-C", "2", "-q", "1")
    pub(mosquitto, "-t", "rec/text", "-m", "21.5", "-q", "1", "-D", "publish", "user-property", "unit", "C")
    pub(mosquitto, "-t", "rec/bin", "-f", str(_binary(tmp_path)), "-q", "1")
    code, out, _ = finish(sub)
    assert code == 0
    recording = tmp_path / "rec.jsonl"
    recording.write_bytes(out)
    records = load_recording(recording)
    assert [(r.topic, r.payload, r.qos) for r in records] == [
        ("rec/text", b"21.5", 1),
        ("rec/bin", bytes(range(256)), 1),
    ]
    assert records[0].properties.user_property == (("unit", "C"),)
    assert records[0].t <= records[1].t


def _binary(tmp_path: Path) -> Path:
    path = tmp_path / "blob.bin"
    path.write_bytes(bytes(range(256)))
    return path
