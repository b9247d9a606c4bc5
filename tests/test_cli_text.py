"""Text from the network on the command line: what `mqttchat sub` and `pub` write to a terminal and to stderr.

A scripted fake broker sends hostile topics, payloads, properties and reason strings (escape sequences that would
retitle and clear a terminal, C1 controls, bidirectional overrides, newlines); the commands run in a pseudo-terminal
as a user runs them. Nothing the broker sent may reach the terminal as a control character; a pipe gets the bytes.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
import tty

import pytest

from mqttchat.protocol import (
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    Properties,
    PubAck,
    Publish,
    ReasonCode,
    SubAck,
    Subscribe,
)
from tests.helpers.brokers import RunningBroker
from tests.helpers.cli import mqttchat, run
from tests.helpers.fake_broker import connack_then, fake_broker

TITLE = "\x1b]0;TITLE\x1b\\"
CLEAR = "\x1b[2J"
HOSTILE = f"{TITLE}{CLEAR}\x9b31m\u202e[@click=app.quit]x[/]\nforged line"
HOSTILE_TOPIC = f"t/{TITLE}{CLEAR}\u202eevil"
HOSTILE_PAYLOAD = f"payload{TITLE}{CLEAR}\x07\x9b31m\rline 2\n".encode()


def control_characters(data: bytes, allowed: str = "\n") -> list[str]:
    """The control characters (C0 but ``allowed``, DEL, C1) and bidirectional overrides in ``data``."""
    text = data.decode("utf-8", "replace")
    return [
        repr(c)
        for c in text
        if (ord(c) < 0x20 and c not in allowed) or 0x7F <= ord(c) <= 0x9F or 0x202A <= ord(c) <= 0x202E
    ]


def run_in_terminal(args: list[str], timeout: float = 20) -> tuple[int, bytes, bytes]:
    """Run ``args`` with its standard output on a pseudo-terminal (raw mode: bytes as written); (status, out, err)."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    proc = subprocess.Popen(args, stdout=slave, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        _, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return proc.returncode, bytes(out), err


def _hostile_broker(packet: Packet, version: int) -> bytes:
    if isinstance(packet, Subscribe):
        props = Properties(
            content_type=HOSTILE, user_property=[(HOSTILE, HOSTILE)], response_topic="r/" + CLEAR
        ) if version == 5 else Properties()  # fmt: skip
        return SubAck(packet.packet_id, (ReasonCode.SUCCESS,)).encode(version) + Publish(
            HOSTILE_TOPIC, HOSTILE_PAYLOAD, properties=props
        ).encode(version)
    return b""


@pytest.mark.parametrize(
    "args",
    [
        ["-v"],
        [],
        ["-F", "%t %p %C %P %R"],
        ["-F", "%j"],
        ["-F", "json"],
        ["-d", "-v"],
        ["-V", "311", "-v"],
    ],
)
def test_sub_to_a_terminal_shows_hostile_text_without_control_characters(args: list[str]) -> None:
    with fake_broker(connack_then(_hostile_broker)) as fake:
        status, out, err = run_in_terminal(mqttchat("sub", "-p", str(fake.port), "-t", "#", "-C", "1", *args))
    assert status == 0, err
    assert control_characters(out) == []
    assert control_characters(err) == []
    assert b"TITLE" in out  # shown, made visible
    if "-d" in args:
        assert b"PUBLISH" in err and b"TITLE" in err


def test_sub_to_a_pipe_writes_the_bytes_received() -> None:
    with fake_broker(connack_then(_hostile_broker)) as fake:
        result = run("sub", "-p", str(fake.port), "-t", "#", "-C", "1", "-v")
    assert result.returncode == 0
    assert result.stdout == HOSTILE_TOPIC.encode() + b" " + HOSTILE_PAYLOAD + b"\n"


def test_a_refusing_connack_reason_string_is_one_neutral_line() -> None:
    def refuse(packet: Packet, version: int) -> bytes:
        if isinstance(packet, Connect):
            return ConnAck(False, ReasonCode.NOT_AUTHORIZED, Properties(reason_string=HOSTILE)).encode(version)
        return b""

    with fake_broker(refuse) as fake:
        result = run("pub", "-p", str(fake.port), "-t", "t", "-m", "x")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert control_characters(result.stderr) == []
    assert b"Not authorized" in lines[0] and "␛]0;TITLE".encode() in lines[0]


def test_a_disconnect_reason_string_is_one_neutral_line() -> None:
    def disconnect(packet: Packet, version: int) -> bytes:
        if isinstance(packet, Subscribe):
            return Disconnect(ReasonCode.ADMINISTRATIVE_ACTION, Properties(reason_string=HOSTILE)).encode(version)
        return b""

    with fake_broker(connack_then(disconnect)) as fake:
        result = run("sub", "-p", str(fake.port), "-t", "t", "-W", "10")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert control_characters(result.stderr) == []
    assert b"Administrative action" in lines[0]


def test_a_refused_publish_reason_string_is_one_neutral_line() -> None:
    def refuse(packet: Packet, version: int) -> bytes:
        if isinstance(packet, Publish):
            props = Properties(reason_string=HOSTILE)
            return PubAck(packet.packet_id or 1, ReasonCode.NOT_AUTHORIZED, props).encode(version)
        return b""

    with fake_broker(connack_then(refuse)) as fake:
        result = run("pub", "-p", str(fake.port), "-t", "t", "-m", "x", "-q", "1")
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert control_characters(result.stderr) == []
    assert b"refused the message: Not authorized" in result.stderr


def test_percent_big_j_on_a_payload_that_is_not_json_is_one_neutral_line() -> None:
    with fake_broker(connack_then(_hostile_broker)) as fake:
        result = run("sub", "-p", str(fake.port), "-t", "#", "-C", "1", "-F", "%J")
    assert result.returncode == 0
    assert result.stdout == b"\n"
    assert len(result.stderr.splitlines()) == 1
    assert control_characters(result.stderr) == []
    assert b"is not valid JSON" in result.stderr


@pytest.mark.parametrize("template", ["%y", "%-10.5y", "%", "@", "\\", "\\q"])
def test_an_unknown_format_code_is_one_error_line_and_status_1(template: str) -> None:
    result = run("sub", "-p", "1", "-t", "t", "-F", template)
    assert result.returncode == 1
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mqttchat sub: -F: "), lines
    assert b"Traceback" not in result.stderr


def test_the_url_gives_the_topic_as_mosquitto_pub_and_sub_read_it(mosquitto: RunningBroker) -> None:
    url = f"mqtt://127.0.0.1:{mosquitto.port}"
    sub = subprocess.Popen(
        mqttchat("sub", "-L", f"{url}/url/+/t", "-t", "other", "-v", "-C", "2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 15
    while "Received SUBSCRIBE" not in mosquitto.log_text():
        assert time.monotonic() < deadline and sub.poll() is None
        time.sleep(0.02)
    assert run("pub", "-L", f"{url}/url/a/t", "-m", "one").returncode == 0
    assert run("pub", "-L", f"{url}/other", "-m", "two").returncode == 0
    out, err = sub.communicate(timeout=15)
    assert out.splitlines() == [b"url/a/t one", b"other two"], err
    both = run("pub", "-L", f"{url}/a", "-t", "b", "-m", "x")
    assert both.returncode == 2 and b"not both" in both.stderr
    none = run("pub", "-L", url, "-m", "x")
    assert none.returncode == 2 and b"a topic is needed" in none.stderr
