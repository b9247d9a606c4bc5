"""Loopback proxies that frame MQTT packets between clients and a broker, for fault injection.

:class:`PacketProxy` does the plumbing (listen on a free port, open one upstream connection per client, pump
packets both ways, tear everything down); subclasses decide the fate of each packet in :meth:`PacketProxy.forward`.
:class:`FaultProxy` gives tests deterministic faults (cut on the n-th packet of a type, stall, cut everything);
the hardening scenarios' ``ChaosProxy`` (``benchmarks.hardening.faults``) injects random ones.

The tests use these as well (``tests/`` already runs the benchmarks' short hardening forms), so they live here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

#: Directions of a packet through the proxy.
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
class Link:
    """One proxied connection: the writer towards the client and the one towards the broker."""

    client: asyncio.StreamWriter
    broker: asyncio.StreamWriter
    #: Directions that silently discard everything from now on (a lost packet on a stream that then never
    #: delivers again: only keepalive notices).
    black_holes: set[str] = field(default_factory=set)
    #: Loop time until which the link forwards nothing (then it forwards what it held).
    stalled_until: float = 0.0

    def abort(self) -> None:
        """Reset both sides at once, as a failing network does."""
        for writer in (self.client, self.broker):
            with contextlib.suppress(Exception):
                writer.transport.abort()


class Cut(Exception):
    """Raised by :meth:`PacketProxy.forward` to reset the link instead of forwarding the packet."""


class PacketProxy:
    """A proxy on 127.0.0.1 (a free port) in front of the broker at ``upstream_port``."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.connections = 0
        self.links: list[Link] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> PacketProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    async def forward(self, link: Link, direction: str, packet: bytes) -> bool:
        """Whether to forward ``packet`` (it may wait first); raise :class:`Cut` to reset the link."""
        return True

    def abort_all(self) -> None:
        for link in list(self.links):
            link.abort()

    async def close(self) -> None:
        self.abort_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            broker_reader, broker_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_writer.transport.abort()
            return
        link = Link(client_writer, broker_writer)
        self.links.append(link)
        try:
            await asyncio.gather(
                self._pump(client_reader, broker_writer, UP, link),
                self._pump(broker_reader, client_writer, DOWN, link),
                return_exceptions=True,
            )
        except asyncio.CancelledError:
            pass  # the proxy is closing (asyncio would log a cancelled connection handler as an error)
        finally:
            link.abort()
            self.links.remove(link)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: str, link: Link
    ) -> None:
        buf = bytearray()
        try:
            while True:
                data = await reader.read(65_536)
                if not data:
                    break
                buf += data
                for packet in split_packets(buf):
                    if await self.forward(link, direction, packet):
                        writer.write(packet)
                await writer.drain()
        except (Cut, ConnectionError, OSError):
            pass
        finally:
            link.abort()


@dataclass
class Rule:
    """Cut the connection instead of forwarding the ``nth`` packet of ``packet_type`` going ``direction``."""

    direction: str
    packet_type: int
    nth: int = 1
    seen: int = 0
    fired: bool = False


class FaultProxy(PacketProxy):
    """Deterministic faults for tests: cut on a given packet, stall (forward nothing), cut every connection."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self.rules: list[Rule] = []
        #: While True, packets are discarded (the network silently stops delivering: no FIN, no RST).
        self.stalled = False
        self.cuts = 0
        #: (direction, packet type) of every packet seen.
        self.log: list[tuple[str, int]] = []
        self.on_packet: Callable[[str, bytes], None] | None = None

    async def start(self) -> FaultProxy:
        await super().start()
        return self

    def cut_on(self, direction: str, packet_type: int, nth: int = 1) -> Rule:
        rule = Rule(direction, packet_type, nth)
        self.rules.append(rule)
        return rule

    def cut_all(self) -> None:
        """Drop every open connection at once, as a failing network does."""
        self.abort_all()
        self.cuts += 1

    async def forward(self, link: Link, direction: str, packet: bytes) -> bool:
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
                    raise Cut
        return not self.stalled
