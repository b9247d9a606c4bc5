"""A scripted raw MQTT peer for client tests: it answers each packet with whatever bytes the test wants.

The fake runs its own event loop in a thread, so it serves a ``mqttchat`` subprocess started with
``subprocess.run`` as well as a client in the test's own loop. A script is a function ``(packet, version) ->
bytes`` (``b""``: no answer; :class:`Close`: answer, then close); :func:`connack_then` builds the usual one: a
CONNACK, then the test's answers.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from mqttchat.protocol import (
    ConnAck,
    Connect,
    Packet,
    Properties,
    PubAck,
    Publish,
    ReasonCode,
    RemoteProtocolError,
    SubAck,
    Subscribe,
)
from mqttchat.protocol.reader import PacketReader

Script = Callable[[Packet, int], bytes]


class Close(bytes):
    """What a script returns to write these bytes (often none) and then close the connection."""


def connack_then(answer: Callable[[Packet, int], bytes] | None = None, properties: Properties | None = None) -> Script:
    """CONNACK Success (with ``properties`` for MQTT 5), then ``answer`` for every other packet."""

    def script(packet: Packet, version: int) -> bytes:
        if isinstance(packet, Connect):
            props = properties if properties is not None and version == 5 else Properties()
            return ConnAck(False, properties=props).encode(version)
        return answer(packet, version) if answer is not None else b""

    return script


@dataclass
class FakeBroker:
    """The running fake: its port and every packet it received."""

    port: int = 0
    received: list[Packet] = field(default_factory=list)
    connections: int = 0
    transports: list[asyncio.Transport] = field(default_factory=list)
    loop: asyncio.AbstractEventLoop | None = None

    def drop(self, index: int = -1) -> None:
        """Abort one connection (the latest by default), as a failing network would: no packet, no FIN."""
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.transports[index].abort)


class _Peer(asyncio.Protocol):
    def __init__(self, script: Script, state: FakeBroker) -> None:
        self.script = script
        self.state = state
        self.reader = PacketReader(None)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.state.connections += 1
        self.state.transports.append(transport)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.reader.feed(data)
        try:
            for packet in self.reader:
                self.state.received.append(packet)
                answer = self.script(packet, self.reader.version or 5)
                if answer:
                    self.transport.write(answer)
                if isinstance(answer, Close):
                    self.transport.close()
                    return
        except RemoteProtocolError:
            self.transport.abort()


@contextmanager
def fake_broker(script: Script) -> Iterator[FakeBroker]:
    """Serve ``script`` on a free loopback port until the block ends."""
    state = FakeBroker()
    loop = state.loop = asyncio.new_event_loop()
    ready = threading.Event()
    server: asyncio.Server | None = None

    async def start() -> None:
        nonlocal server
        server = await loop.create_server(lambda: _Peer(script, state), "127.0.0.1", 0)
        state.port = server.sockets[0].getsockname()[1]
        ready.set()

    thread = threading.Thread(target=loop.run_forever, name="fake broker", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    ready.wait(10)
    try:
        yield state
    finally:

        async def stop() -> None:
            assert server is not None
            server.close()
            for transport in state.transports:
                transport.abort()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def rabbit_like(packet: Packet, version: int) -> bytes:
    """RabbitMQ 3.10 as seen on the wire: 3.1.1 only (a 5.0 CONNECT is closed), QoS 2 answered with PUBACK,
    no retained message for a wildcard subscription."""
    if isinstance(packet, Connect):
        return Close(b"") if packet.protocol_version == 5 else ConnAck(False).encode(4)
    if isinstance(packet, Publish) and packet.qos:
        assert packet.packet_id is not None
        return PubAck(packet.packet_id).encode(version)
    if isinstance(packet, Subscribe):
        return SubAck(packet.packet_id, (ReasonCode.GRANTED_QOS_1,) * len(packet.subscriptions)).encode(version)
    return b""
