"""A fault-injecting MQTT proxy on loopback: frames packets in both directions and can drop, cut or stall."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

UP = "client->broker"
DOWN = "broker->client"


def split_packets(buf: bytearray) -> list[bytes]:
    """Remove and return the whole MQTT packets at the start of ``buf`` (framing only, no decoding)."""
    out: list[bytes] = []
    while len(buf) >= 2:
        length = 0
        shift = 0
        i = 1
        while True:
            if i >= len(buf):
                return out
            byte = buf[i]
            length |= (byte & 0x7F) << shift
            i += 1
            if byte < 0x80:
                break
            shift += 7
        end = i + length
        if end > len(buf):
            return out
        out.append(bytes(buf[:end]))
        del buf[:end]
    return out


@dataclass
class Rule:
    """Cut the connection instead of forwarding the ``nth`` packet of ``packet_type`` going ``direction``."""

    direction: str
    packet_type: int
    nth: int = 1
    seen: int = 0
    fired: bool = False


@dataclass
class FaultProxy:
    upstream_port: int
    port: int = 0
    rules: list[Rule] = field(default_factory=list)
    stalled: bool = False
    connections: int = 0
    cuts: int = 0
    log: list[tuple[str, int]] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    on_packet: Callable[[str, bytes], None] | None = None

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def cut_on(self, direction: str, packet_type: int, nth: int = 1) -> Rule:
        rule = Rule(direction, packet_type, nth)
        self.rules.append(rule)
        return rule

    def cut_all(self) -> None:
        """Drop every open connection at once, as a failing network does."""
        for writer in list(self._writers):
            writer.transport.abort()
        self.cuts += 1

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            broker_reader, broker_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers |= {client_writer, broker_writer}
        pair = (client_writer, broker_writer)
        await asyncio.gather(
            self._pump(client_reader, broker_writer, UP, pair),
            self._pump(broker_reader, client_writer, DOWN, pair),
            return_exceptions=True,
        )
        self._writers -= {client_writer, broker_writer}

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        direction: str,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        buf = bytearray()
        try:
            while True:
                data = await reader.read(65_536)
                if not data:
                    break
                buf += data
                for packet in split_packets(buf):
                    ptype = packet[0] >> 4
                    self.log.append((direction, ptype))
                    if self.on_packet is not None:
                        self.on_packet(direction, packet)
                    for rule in self.rules:
                        if not rule.fired and rule.direction == direction and rule.packet_type == ptype:
                            rule.seen += 1
                            if rule.seen == rule.nth:
                                rule.fired = True
                                self.cuts += 1
                                for w in pair:
                                    w.transport.abort()
                                return
                    if not self.stalled:
                        writer.write(packet)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            for w in pair:
                with contextlib.suppress(Exception):
                    w.transport.abort()

    async def close(self) -> None:
        self.cut_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
