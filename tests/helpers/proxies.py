"""Small SOCKS5 and HTTP CONNECT proxies on loopback that record what they were asked and relay the bytes.

Each resolves the names it is asked for through its own ``hosts`` table (names the client's machine cannot
resolve), so a test that connects to such a name proves the name went to the proxy, not to a local resolver.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
from dataclasses import dataclass, field

from tests.helpers.relay import LoopbackServer


@dataclass
class ProxyRequest:
    """What a client asked the proxy for."""

    host: str
    port: int
    #: SOCKS5 address type: "name" (the proxy resolves it), "ipv4" or "ipv6"; "http" for CONNECT.
    kind: str
    #: (user, password) the client gave, if any.
    credentials: tuple[str, str] | None = None


@dataclass
class _Proxy(LoopbackServer):
    hosts: dict[str, str] = field(default_factory=dict)
    #: Required (user, password), or None for no authentication.
    credentials: tuple[str, str] | None = None
    requests: list[ProxyRequest] = field(default_factory=list)

    async def start(self) -> _Proxy:
        await self.listen()
        return self

    def resolve(self, host: str) -> str | None:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return self.hosts.get(host)
        return host

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = await self.handshake(reader, writer)
        if upstream is not None:
            await self.relay(reader, writer, *upstream)

    async def handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        raise NotImplementedError


class Socks5Proxy(_Proxy):
    """RFC 1928 CONNECT, with RFC 1929 user/password authentication when ``credentials`` is set."""

    async def handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        version, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        assert version == 5
        given: tuple[str, str] | None = None
        if self.credentials is not None:
            if 2 not in methods:
                writer.write(b"\x05\xff")
                return None
            writer.write(b"\x05\x02")
            _, ulen = await reader.readexactly(2)
            user = (await reader.readexactly(ulen)).decode()
            (plen,) = await reader.readexactly(1)
            password = (await reader.readexactly(plen)).decode()
            given = (user, password)
            ok = given == self.credentials
            writer.write(b"\x01" + (b"\x00" if ok else b"\x01"))
            if not ok:
                self.requests.append(ProxyRequest("", 0, "refused", given))
                return None
        else:
            writer.write(b"\x05\x00")
        _, command, _, kind = await reader.readexactly(4)
        if kind == 1:
            host, label = str(ipaddress.IPv4Address(await reader.readexactly(4))), "ipv4"
        elif kind == 4:
            host, label = str(ipaddress.IPv6Address(await reader.readexactly(16))), "ipv6"
        else:
            (length,) = await reader.readexactly(1)
            host, label = (await reader.readexactly(length)).decode(), "name"
        port = int.from_bytes(await reader.readexactly(2), "big")
        self.requests.append(ProxyRequest(host, port, label, given))
        address = self.resolve(host)
        if command != 1 or address is None:
            writer.write(b"\x05" + (b"\x07" if command != 1 else b"\x04") + b"\x00\x01" + bytes(6))
            return None
        try:
            upstream = await asyncio.open_connection(address, port)
        except OSError:
            writer.write(b"\x05\x05\x00\x01" + bytes(6))
            return None
        writer.write(b"\x05\x00\x00\x01" + bytes(4) + b"\x00\x00")
        return upstream


class HttpConnectProxy(_Proxy):
    """HTTP/1.1 CONNECT, with Basic proxy authentication when ``credentials`` is set."""

    async def handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request, *header_lines = head.split("\r\n")
        method, authority, _ = request.split(" ")
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
        host, _, port_text = authority.rpartition(":")
        host = host.strip("[]")
        given: tuple[str, str] | None = None
        auth = headers.get("proxy-authorization", "")
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            given = (user, password)
        self.requests.append(ProxyRequest(host, int(port_text), "http", given))
        if self.credentials is not None and given != self.credentials:
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            return None
        address = self.resolve(host)
        if method != "CONNECT" or address is None:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return None
        try:
            upstream = await asyncio.open_connection(address, int(port_text))
        except OSError:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return None
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        return upstream
