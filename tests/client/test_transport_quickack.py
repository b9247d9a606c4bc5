"""The client acknowledges TCP data at once (Linux TCP_QUICKACK), so a broker using Nagle's algorithm does not
hold back a packet that follows another (mosquitto's retained message after a SUBACK waited 40 ms); it asks once
after each time it wrote, not after every read."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from mqttchat.client.transport import Link, _StreamProtocol

pytestmark = pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="TCP_QUICKACK is Linux's")


class _Socket:
    family = socket.AF_INET

    def __init__(self) -> None:
        self.options: list[tuple[int, int, int]] = []

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self.options.append((level, option, value))


class _Transport:
    def __init__(self, sock: _Socket) -> None:
        self.sock = sock

    def write(self, data: bytes) -> None:
        pass

    def get_extra_info(self, name: str) -> Any:
        return self.sock if name == "socket" else None

    def set_write_buffer_limits(self, high: int) -> None:
        pass


class _Sink:
    """Answers the reads that start with 0x50 (PUBREC: a PUBREL goes back, as the client's Link marks it)."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.protocol: _StreamProtocol | None = None
        self.awaiting_acks = False

    def link_data(self, data: bytes) -> None:
        self.data.append(data)
        if data[0] == 0x50 and self.protocol is not None:
            self.protocol.wrote = True


def test_an_unanswered_read_is_acknowledged_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    monkeypatch.setattr(asyncio, "Transport", _Transport)  # the protocol checks what it was given
    sock, sink = _Socket(), _Sink()
    protocol = _StreamProtocol(sink)  # type: ignore[arg-type]
    sink.protocol = protocol
    protocol.connection_made(_Transport(sock))  # type: ignore[arg-type]
    quickack = (socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
    assert (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1) in sock.options
    before = sock.options.count(quickack)
    link = Link(_Transport(sock), "test", protocol)  # type: ignore[arg-type]
    link.write(b"\x82...")  # SUBSCRIBE
    protocol.data_received(b"\x90\x03\x00\x01\x00")  # SUBACK: nothing to answer, a retained message may follow
    assert sock.options.count(quickack) == before + 1
    # Until the client writes again, the kernel acknowledges what it receives at once by itself: no system call.
    protocol.data_received(b"\x30\x03\x00\x01r")
    protocol.data_received(b"\x30\x03\x00\x01s")
    assert sock.options.count(quickack) == before + 1
    link.write(b"\xc0\x00")  # PINGREQ: the connection looks interactive again
    protocol.data_received(b"\xd0\x00")
    assert sock.options.count(quickack) == before + 2
    link.write(b"\x30...")
    protocol.data_received(b"\x50\x02\x00\x07")  # PUBREC: the PUBREL written carries the acknowledgement
    assert sock.options.count(quickack) == before + 2
    assert sink.data[-1] == b"\x50\x02\x00\x07"
    sink.awaiting_acks = True  # publishes of ours in flight: their acknowledgements come anyway
    protocol.data_received(b"\x40\x02\x00\x08")
    assert sock.options.count(quickack) == before + 2
