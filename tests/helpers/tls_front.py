"""A TLS front for a plain broker: it ends TLS the way a cloud endpoint does, records the SNI name, the ALPN
protocol chosen and the first bytes of each connection (a WebSocket upgrade's request line), and relays to the
broker's plain port.

With ``alpn`` set, a client that offers none of those protocols is refused in the handshake, as AWS IoT Core's
port 443 refuses MQTT without ``x-amzn-mqtt-ca`` or ``mqtt``.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.certs import service_certs
from tests.helpers.relay import LoopbackServer

__all__ = ["TlsFront", "TlsHello", "service_certs"]


@dataclass
class TlsHello:
    server_name: str | None
    alpn: str | None
    first_bytes: bytes = b""


@dataclass
class TlsFront(LoopbackServer):
    upstream_port: int
    certfile: Path
    keyfile: Path
    alpn: tuple[str, ...] = ()
    hellos: list[TlsHello] = field(default_factory=list)
    _names: dict[int, str | None] = field(default_factory=dict)

    async def start(self) -> TlsFront:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certfile, self.keyfile)
        if self.alpn:
            context.set_alpn_protocols(list(self.alpn))

        def on_sni(sock: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
            self._names[id(sock)] = name

        context.sni_callback = on_sni  # type: ignore[assignment]
        await self.listen(context)
        return self

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        hello = TlsHello(self._names.pop(id(ssl_object), None), ssl_object.selected_alpn_protocol())
        self.hellos.append(hello)
        if self.alpn and hello.alpn is None:
            return  # the client offered none of ours
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        first = await reader.read(65536)
        hello.first_bytes = first
        up_writer.write(first)
        await self.relay(reader, writer, up_reader, up_writer)
