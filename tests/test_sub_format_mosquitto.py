"""`mqttchat sub -F` against the real `mosquitto_sub -F`: the same messages, the same template, the same bytes.

Both subscribers are connected to one mosquitto before the messages are published, so they receive the same
messages with the same properties (a message expiry is counted down by the broker: published live, both see the
same value). Time codes are compared by shape, the JSON objects as parsed JSON without their time stamps.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.brokers import RunningBroker
from tests.helpers.cli import finish, mqttchat

#: MQTT 5 properties of the first message (mosquitto_pub -D arguments).
PROPERTIES = [
    *("-D", "publish", "content-type", "text/x"),
    *("-D", "publish", "user-property", "k", "v"),
    *("-D", "publish", "user-property", "k2", "v 2"),
    *("-D", "publish", "message-expiry-interval", "300"),
    *("-D", "publish", "payload-format-indicator", "1"),
    *("-D", "publish", "response-topic", "resp/t"),
    *("-D", "publish", "correlation-data", "cd1"),
]
COUNT = 6


@pytest.fixture
def environment() -> Iterator[dict[str, str]]:
    yield {**os.environ, "TZ": "UTC"}


def _publish(broker: RunningBroker, tmp_path: Path) -> None:
    port = str(broker.port)
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00\x01bin")

    def pub(*args: str) -> None:
        subprocess.run(["mosquitto_pub", "-p", port, "-V", "5", *args], check=True, timeout=15)

    pub("-t", "f/a", "-m", "hello world", "-q", "1", *PROPERTIES)
    pub("-t", "f/b", "-m", '{"a": [1, 2], "s": "x"}', "-q", "2")
    pub("-t", "f/c", "-m", 'xy\x1b[2J"q\\')
    pub("-t", "f/d", "-f", str(binary), "-q", "1")
    pub("-t", "f/ünï", "-m", "héllo wörld")
    pub("-t", "f/e", "-m", "1234567890123")


def both(
    broker: RunningBroker, tmp_path: Path, env: dict[str, str], template: str, *extra: str
) -> tuple[list[bytes], list[bytes], bytes, bytes]:
    """The lines mosquitto_sub and mqttchat sub print for the same messages, and their stderr."""
    common = ["-p", str(broker.port), "-t", "f/#", "-q", "2", "-C", str(COUNT), "-W", "20", *extra]
    if "311" not in extra:
        common += ["-D", "subscribe", "subscription-identifier", "42"]
    theirs_args = ["mosquitto_sub", *common]
    ours_args = mqttchat("sub", *common)
    if template:
        theirs_args += ["-F", template]
        ours_args += ["-F", template]
    before = broker.log_text().count("Received SUBSCRIBE")
    procs = [
        subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for args in (theirs_args, ours_args)
    ]
    deadline = time.monotonic() + 15
    while broker.log_text().count("Received SUBSCRIBE") < before + 2:
        assert time.monotonic() < deadline, "the subscribers did not subscribe"
        assert all(p.poll() is None for p in procs), [p.stderr.read() for p in procs if p.stderr]
        time.sleep(0.02)
    _publish(broker, tmp_path)
    (_, theirs, theirs_err), (_, ours, ours_err) = (finish(p) for p in procs)
    return theirs.split(b"\n"), ours.split(b"\n"), theirs_err, ours_err


@pytest.mark.parametrize(
    "template",
    [
        "%t|%p|%q|%r|%l|%m",
        "%x|%X|%10x|%-10x|%010x|%10p|%-10p|%3p|%010p",
        "%A|%C|%E|%F|%R|%S|%P|%D",
        "%5A|%05E|%-5F|%10C|%.3C|%-10.5t|%10.5t|%.2t|%010t|%5R|%5S|%05S",
        "%05l|%-05l|%-5l|%5q|%5r|%%|@@|%-3m|%03m",
        "\\e[31m%t\\e[0m\\t\\0\\\\\\a\\v\\r\\n",
    ],
)
def test_templates_print_what_mosquitto_sub_prints(
    mosquitto: RunningBroker, tmp_path: Path, environment: dict[str, str], template: str
) -> None:
    theirs, ours, theirs_err, ours_err = both(mosquitto, tmp_path, environment, template, "-V", "5")
    assert ours_err == theirs_err == b""
    assert ours == theirs


def test_time_codes_have_mosquitto_subs_shape(
    mosquitto: RunningBroker, tmp_path: Path, environment: dict[str, str]
) -> None:
    template = "%I|%U|@Y-@m-@dT@H:@M:@S.@N|@z|@@"
    theirs, ours, _, _ = both(mosquitto, tmp_path, environment, template, "-V", "5")
    shape = re.compile(
        rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000\|\d{10}\.\d{9}\|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}\|\+0000\|@"
    )
    assert len(theirs) == len(ours) == COUNT + 1
    for mine, other in zip(ours[:-1], theirs[:-1], strict=True):
        assert shape.fullmatch(mine), mine
        assert shape.fullmatch(other), other
        assert abs(float(mine.split(b"|")[1]) - float(other.split(b"|")[1])) < 5  # the same moment, roughly


def _without_time(line: bytes) -> dict[str, object]:
    record = json.loads(line.decode("utf-8", "surrogateescape"))
    tst = record.pop("tst")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z?\+0000", tst), tst
    return record


def test_json_codes_hold_what_mosquitto_subs_hold(
    mosquitto: RunningBroker, tmp_path: Path, environment: dict[str, str]
) -> None:
    theirs, ours, _, _ = both(mosquitto, tmp_path, environment, "%j", "-V", "5")
    # mosquitto_sub puts a payload in a C string: it stops at the first NUL byte (f/d); ours keeps it all.
    their_records = [_without_time(line) for line in theirs[:-1] if b'"f/d"' not in line]
    our_records = [_without_time(line) for line in ours[:-1] if b'"f/d"' not in line]
    assert our_records == their_records
    assert len(our_records) == COUNT - 1
    # byte for byte, apart from the time stamp (mosquitto 2.0.11 writes a stray Z before the offset)
    stamp = re.compile(rb'"tst":"[^"]*"')
    assert [stamp.sub(b"", line) for line in ours if b'"f/d"' not in line] == [
        stamp.sub(b"", line) for line in theirs if b'"f/d"' not in line
    ]


def test_payload_as_json(mosquitto: RunningBroker, tmp_path: Path, environment: dict[str, str]) -> None:
    theirs, ours, theirs_err, ours_err = both(mosquitto, tmp_path, environment, "%J", "-V", "5")
    assert [_without_time(line) for line in ours if line] == [_without_time(line) for line in theirs if line]
    assert [line for line in ours if not line] == [line for line in theirs if not line]  # not JSON: empty lines
    # one line on stderr for each payload that is not JSON, as mosquitto_sub writes
    assert len(ours_err.splitlines()) == len(theirs_err.splitlines()) == 4
    assert b"f/a" in ours_err.splitlines()[0]


@pytest.mark.parametrize("template", ["%t %p", "%t|%q|%r|%m|%A|%E|%S|%P"])
def test_mqtt_311_prints_what_mosquitto_sub_prints(
    mosquitto: RunningBroker, tmp_path: Path, environment: dict[str, str], template: str
) -> None:
    theirs, ours, _, _ = both(mosquitto, tmp_path, environment, template, "-V", "311")
    assert ours == theirs
