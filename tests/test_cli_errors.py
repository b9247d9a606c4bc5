"""`mqttchat sub -W`: the deadline covers connecting and subscribing, a broken SUBACK fails at once; connection
errors are one line."""

from __future__ import annotations

import time

from mqttchat.protocol import Packet, ReasonCode, SubAck, Subscribe
from tests.helpers.brokers import RunningBroker
from tests.helpers.cli import run
from tests.helpers.fake_broker import connack_then, fake_broker


def test_no_suback_exits_27_at_the_deadline() -> None:
    with fake_broker(connack_then()) as fake:  # answers CONNECT, never SUBSCRIBE
        started = time.monotonic()
        result = run("sub", "-p", str(fake.port), "-t", "a/#", "-W", "2", timeout=20)
        took = time.monotonic() - started
    assert result.returncode == 27, result.stderr
    assert took < 10, f"took {took:.1f} s"
    assert any(isinstance(p, Subscribe) for p in fake.received)
    assert result.stderr == b""


def test_no_connack_exits_27_at_the_deadline() -> None:
    with fake_broker(lambda packet, version: b"") as fake:
        started = time.monotonic()
        result = run("sub", "-p", str(fake.port), "-t", "a/#", "-W", "1", timeout=20)
        took = time.monotonic() - started
    assert result.returncode == 27, result.stderr
    assert took < 8, f"took {took:.1f} s"  # the connect timeout is 10 s


def test_a_suback_with_the_wrong_number_of_codes_is_one_error_line() -> None:
    def answer(packet: Packet, version: int) -> bytes:
        if isinstance(packet, Subscribe):
            return SubAck(packet.packet_id, (ReasonCode.SUCCESS,) * 2).encode(version)
        return b""

    with fake_broker(connack_then(answer)) as fake:
        result = run("sub", "-p", str(fake.port), "-t", "a/#", "-W", "30", timeout=20)
    assert result.returncode == 1
    lines = result.stderr.decode().splitlines()
    assert lines == ["mqttchat sub: the broker broke the protocol: SUBACK has 2 reason codes for 1 topic filters"]


def test_websocket_url_to_an_mqtt_port_is_one_error_line(mosquitto: RunningBroker) -> None:
    """A plain MQTT listener closes the connection on an HTTP upgrade request: one line, no asyncio noise."""
    result = run("pub", "-L", f"ws://127.0.0.1:{mosquitto.port}/mqtt", "-t", "a", "-m", "b")
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == [
        f"mqttchat pub: ws://127.0.0.1:{mosquitto.port}/mqtt closed the connection during the WebSocket upgrade: "
        "is it a WebSocket listener?"
    ]
