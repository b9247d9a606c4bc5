"""Transports: TCP, TLS, WebSocket and secure WebSocket, as one small "link" interface for the client.

A link delivers received bytes to ``sink.link_data`` straight from the event loop's protocol callback (no
queue, no task switch) and writes bytes with :meth:`Link.write`. WebSocket framing uses the sans-I/O layer of
the ``websockets`` library over the same asyncio transport.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from typing import Protocol

from mqttchat.client.errors import WebSocketError
from mqttchat.client.options import Target, TLSOptions
from mqttchat.client.outcomes import connect_failure, is_certificate_failure
from mqttchat.client.proxy import ProxyOptions, open_tunnel
from mqttchat.client.tls import certificate_subject, make_ssl_context, unverified_context

__all__ = ["Link", "LinkSink", "WebSocketLink", "make_ssl_context", "open_link"]


class LinkSink(Protocol):
    """What a link reports to (the client)."""

    def link_data(self, data: bytes) -> None: ...
    def link_lost(self, exc: BaseException | None) -> None: ...
    def link_pause_writing(self) -> None: ...
    def link_resume_writing(self) -> None: ...


class Link:
    """An open connection to the broker."""

    def __init__(self, transport: asyncio.Transport, description: str, protocol: _StreamProtocol | None = None) -> None:
        self.transport = transport
        self.description = description
        self._stream = protocol

    def write(self, data: bytes) -> None:
        self.transport.write(data)
        stream = self._stream
        if stream is not None:
            stream.wrote = stream.wrote_since_ack = True

    def close(self) -> None:
        self.transport.close()

    def abort(self) -> None:
        self.transport.abort()

    @property
    def closing(self) -> bool:
        return self.transport.is_closing()

    @property
    def peer(self) -> str:
        peer = self.transport.get_extra_info("peername")
        return f"{peer[0]}:{peer[1]}" if peer else "?"


#: Linux's TCP_QUICKACK (None elsewhere).
_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


class _StreamProtocol(asyncio.Protocol):
    def __init__(self, sink: LinkSink) -> None:
        self.sink = sink
        self.transport: asyncio.Transport | None = None

    #: The TCP socket to set TCP_QUICKACK on after a read that got no answer (Linux), or None.
    _quickack: socket.socket | None = None
    #: Whether the client wrote since the last read began, and since it last asked for a quick acknowledgement
    #: (its Link sets both).
    wrote = False
    wrote_since_ack = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if _TCP_QUICKACK is not None:
                self._quickack = sock
                self._ack_now()
        # Send MQTT as soon as it is written: batching happens before write(), in the client.
        transport.set_write_buffer_limits(high=256 * 1024)

    def _ack_now(self) -> None:
        """Acknowledge what arrives at once instead of after Linux's delayed-ACK timer (up to 40 ms).

        A broker with Nagle's algorithm on (mosquitto's default) holds a small packet back until the previous one
        is acknowledged: the retained message that follows a SUBACK waited 40 ms. Only a read the client did not
        answer needs it (an answer carries the acknowledgement), and not while the client's own publishes await
        acknowledgements (the next ones carry it; an ACK packet per read cost a QoS 1/2 publisher about a third
        more CPU). It also sends the pending acknowledgement at once.

        And only once after the client wrote: Linux delays acknowledgements (its "ping-pong" mode) when the
        connection looks interactive, which it judges from the client's sending; asking for quick
        acknowledgements leaves that mode, and a client that only receives does not enter it again (a read that
        empties the socket then acknowledges a small segment at once). Asking after every read cost a system
        call per read: a QoS 0 subscriber spent as much CPU on them as on its messages.
        """
        sock = self._quickack
        option = _TCP_QUICKACK
        if sock is not None and option is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, option, 1)
            except OSError:
                self._quickack = None

    def data_received(self, data: bytes) -> None:
        self.wrote = False
        self.sink.link_data(data)
        if not self.wrote and self.wrote_since_ack and not getattr(self.sink, "awaiting_acks", False):
            self.wrote_since_ack = False
            self._ack_now()

    def eof_received(self) -> bool | None:
        return None  # close the transport: MQTT has no half-closed state

    def connection_lost(self, exc: Exception | None) -> None:
        self.sink.link_lost(exc)

    def pause_writing(self) -> None:
        self.sink.link_pause_writing()

    def resume_writing(self) -> None:
        self.sink.link_resume_writing()


class _WebSocketProtocol(_StreamProtocol):
    """MQTT over WebSocket (binary frames, subprotocol ``mqtt``) using websockets' sans-I/O ClientProtocol."""

    def __init__(self, sink: LinkSink, target: Target, path: str | None = None) -> None:
        super().__init__(sink)
        from websockets.client import ClientProtocol
        from websockets.typing import Subprotocol
        from websockets.uri import parse_uri

        host = f"[{target.host}]" if ":" in target.host else target.host
        # ``path``: a signed path and query, which must not appear in messages (``where``).
        uri = parse_uri(f"{'wss' if target.tls else 'ws'}://{host}:{target.port}{path or target.path}")
        self.ws = ClientProtocol(uri, subprotocols=[Subprotocol("mqtt")], max_size=None)
        self.where = target.url
        #: The upgrade succeeded: from then on the client owns the link and hears of its end.
        self.upgraded = False
        self.handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        request = self.ws.connect()
        self.ws.send_request(request)
        self._flush()

    def _flush(self) -> None:
        assert self.transport is not None
        for chunk in self.ws.data_to_send():
            if chunk:
                self.transport.write(chunk)
            else:
                self.transport.write_eof() if self.transport.can_write_eof() else None

    def data_received(self, data: bytes) -> None:
        from websockets.frames import Frame, Opcode
        from websockets.http11 import Response

        self.wrote = False
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Response):
                if self.handshake.done():
                    continue
                if self.ws.handshake_exc is not None:
                    self.handshake.set_exception(
                        WebSocketError(f"{self.where} refused the WebSocket upgrade: {self.ws.handshake_exc}")
                    )
                elif event.headers.get("Sec-WebSocket-Protocol") != "mqtt":
                    self.handshake.set_exception(WebSocketError(f"{self.where} did not accept the 'mqtt' subprotocol"))
                else:
                    self.upgraded = True
                    self.handshake.set_result(None)
            elif isinstance(event, Frame) and event.opcode in (Opcode.BINARY, Opcode.CONT):
                self.sink.link_data(bytes(event.data))
        if not self.wrote and self.wrote_since_ack and not getattr(self.sink, "awaiting_acks", False):
            self.wrote_since_ack = False
            self._ack_now()
        self._flush()
        if self.ws.close_expected() and self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded:
            # open_link reports this (it awaits the handshake); the client never had this link.
            if self.handshake.done():
                return
            reason = f"{self.where} closed the connection during the WebSocket upgrade: is it a WebSocket listener?"
            self.handshake.set_exception(WebSocketError(reason))
            return
        super().connection_lost(exc)


class WebSocketLink(Link):
    def __init__(self, transport: asyncio.Transport, protocol: _WebSocketProtocol, description: str) -> None:
        super().__init__(transport, description, protocol)
        self.protocol = protocol

    def write(self, data: bytes) -> None:
        self.protocol.ws.send_binary(data)
        for chunk in self.protocol.ws.data_to_send():
            self.transport.write(chunk)
        self.protocol.wrote = self.protocol.wrote_since_ack = True

    def close(self) -> None:
        try:
            self.protocol.ws.send_close()
            for chunk in self.protocol.ws.data_to_send():
                if chunk:
                    self.transport.write(chunk)
        except Exception:  # the socket may already be gone; closing is best effort
            pass
        self.transport.close()


async def open_link(
    target: Target,
    tls: TLSOptions | None,
    sink: LinkSink,
    timeout: float,
    proxy: ProxyOptions | None = None,
    websocket_path: str | None = None,
) -> Link:
    """Connect to ``target`` (through ``proxy`` when given) and return the open link (WebSocket upgrade done).

    ``websocket_path`` replaces the target's path in the upgrade request (a presigned URL's path and query).

    Raises:
        ConnectError: HostNotFound, ConnectionRefused, TLSError, WebSocketError, ConnectTimeout, with a message
            that says what happened and to what.
    """
    loop = asyncio.get_running_loop()
    context = make_ssl_context(tls) if target.tls else None
    server_hostname = (tls.server_hostname if tls and tls.server_hostname else target.host) if context else None
    where = target.url + (f" through {proxy}" if proxy is not None else "")
    try:
        async with asyncio.timeout(timeout):
            # Through a proxy: the tunnel's socket, on which TLS and the WebSocket upgrade run as they would direct.
            sock = await open_tunnel(proxy, target.host, target.port) if proxy is not None else None

            async def connect(
                factory: Callable[[], _StreamProtocol],
            ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
                if sock is not None:
                    return await loop.create_connection(
                        factory, sock=sock, ssl=context, server_hostname=server_hostname
                    )
                return await loop.create_connection(
                    factory, target.host, target.port, ssl=context, server_hostname=server_hostname
                )

            if target.websocket:
                transport, made = await connect(lambda: _WebSocketProtocol(sink, target, websocket_path))
                assert isinstance(made, _WebSocketProtocol)
                try:
                    await made.handshake
                except BaseException:
                    transport.abort()
                    raise
                return WebSocketLink(transport, made, where)
            transport, made = await connect(lambda: _StreamProtocol(sink))
            assert isinstance(made, _StreamProtocol)
            return Link(transport, where, made)
    except Exception as exc:
        subject = None
        if is_certificate_failure(exc) and proxy is None:
            subject = await _peer_certificate_subject(target, server_hostname)
        error = connect_failure(exc, target, where, timeout, subject)
        if error is None:
            raise
        raise error from None


async def _peer_certificate_subject(target: Target, server_hostname: str | None) -> str | None:
    """The subject of the certificate a server presents, read with verification off (for error messages)."""
    context = unverified_context()
    try:
        async with asyncio.timeout(5):
            _, writer = await asyncio.open_connection(
                target.host, target.port, ssl=context, server_hostname=server_hostname
            )
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        writer.close()
    except (OSError, TimeoutError, ssl.SSLError):
        return None
    return certificate_subject(der)
