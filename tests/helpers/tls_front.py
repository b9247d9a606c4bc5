"""A TLS front for a plain broker: it ends TLS the way a cloud endpoint does, records the SNI name, the ALPN
protocol chosen and the first bytes of each connection (a WebSocket upgrade's request line), and relays to the
broker's plain port.

With ``alpn`` set, a client that offers none of those protocols is refused in the handshake, as AWS IoT Core's
port 443 refuses MQTT without ``x-amzn-mqtt-ca`` or ``mqtt``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from benchmarks.certs import _ca, _leaf, _write


def service_certs(directory: Path, names: list[str]) -> dict[str, Path]:
    """A CA ("ca"), a server certificate for ``names`` ("cert", "key", as a cloud service would present) and a
    client certificate ("client_cert", "client_key") it signed."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca("service test CA")
    cert_path, key_path = _write(directory, "service", *_leaf(names[0], ca, names, ExtendedKeyUsageOID.SERVER_AUTH))
    client_cert, client_key = _write(directory, "client", *_leaf("device", ca, [], ExtendedKeyUsageOID.CLIENT_AUTH))
    ca_path = directory / "ca.crt"
    ca_path.write_bytes(ca[0].public_bytes(serialization.Encoding.PEM))
    return {"ca": ca_path, "cert": cert_path, "key": key_path, "client_cert": client_cert, "client_key": client_key}


@dataclass
class TlsHello:
    server_name: str | None
    alpn: str | None
    first_bytes: bytes = b""


@dataclass
class TlsFront:
    upstream_port: int
    certfile: Path
    keyfile: Path
    alpn: tuple[str, ...] = ()
    hellos: list[TlsHello] = field(default_factory=list)
    server: asyncio.Server | None = None
    _names: dict[int, str | None] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self) -> TlsFront:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certfile, self.keyfile)
        if self.alpn:
            context.set_alpn_protocols(list(self.alpn))

        def on_sni(sock: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
            self._names[id(sock)] = name

        context.sni_callback = on_sni  # type: ignore[assignment]
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=context)
        return self

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self.server is not None:
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        ssl_object = writer.get_extra_info("ssl_object")
        hello = TlsHello(self._names.pop(id(ssl_object), None), ssl_object.selected_alpn_protocol())
        self.hellos.append(hello)
        try:
            if self.alpn and hello.alpn is None:
                return  # the client offered none of ours
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            first = await reader.read(65536)
            hello.first_bytes = first
            up_writer.write(first)

            async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                with contextlib.suppress(OSError):
                    while data := await src.read(65536):
                        dst.write(data)
                        await dst.drain()
                dst.close()

            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        except (OSError, ssl.SSLError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
