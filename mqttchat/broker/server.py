"""The broker as a server: listeners (TCP, TLS, WebSocket, secure WebSocket), timers, start and stop.

``Broker`` runs in any asyncio loop, so the TUI can start one in-process; ``mqttchat broker`` runs one alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from mqttchat.broker.clock import Clock
from mqttchat.broker.connection import MAX_CONNECT_SIZE, BrokerConnection, Connections, State
from mqttchat.broker.core import BrokerCore
from mqttchat.config.toml import ConfigError
from mqttchat.protocol.constants import MAX_PACKET_SIZE

log = logging.getLogger("mqttchat.broker")


#: After a goodbye (DISCONNECT, refusing CONNACK): how long, and how many bytes, of the client's input are read
#: and dropped while it takes the reason in, before the connection is closed anyway.
DRAIN_SECONDS = 2.0
DRAIN_BYTES = 4 * 1024 * 1024


class ThreadRunner:
    """Runs the broker's password checks (mqttchat.broker.logins) in threads of their own, started with the first
    check: PBKDF2 releases the GIL, so the event loop keeps routing messages while it runs."""

    __slots__ = ("_closed", "_executor", "workers")

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    def run(self, check: Callable[[], bool], done: Callable[[bool, BaseException | None], None]) -> None:
        if self._closed:
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="mqttchat-login")
        future = asyncio.get_running_loop().run_in_executor(self._executor, check)

        def finished(future: asyncio.Future[bool]) -> None:
            if self._closed or future.cancelled():
                return
            error = future.exception()
            done(False, error) if error is not None else done(bool(future.result()), None)

        future.add_done_callback(finished)

    def close(self) -> None:
        self._closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


class _TCPProtocol(asyncio.Protocol):
    """Plain or TLS MQTT: bytes straight to the BrokerConnection, whose :class:`~mqttchat.broker.connection.Link`
    this is."""

    __slots__ = ("_drain_timer", "_drained", "conn", "connections", "core", "limit", "listener", "transport")

    def __init__(self, connections: Connections, listener: str, limit: int = -1) -> None:
        self.connections = connections
        self.core = connections.core
        self.listener = listener
        self.limit = limit
        self.conn: BrokerConnection | None = None
        self.transport: asyncio.Transport | None = None
        self._drain_timer: asyncio.TimerHandle | None = None
        self._drained = -1  # -1: not draining

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.conn = BrokerConnection(self.connections, self, where, self.listener, self.limit)

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    def close(self, graceful: bool) -> None:
        """Close; gracefully: send FIN after what is written (where the transport can), then read and drop the
        client's input until it closes too, for at most DRAIN_SECONDS and DRAIN_BYTES. Closing with unread input
        would make the kernel answer with a reset, and the client could lose the reason code it had not read."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not graceful:
            transport.close()
            return
        self._drained = 0
        with contextlib.suppress(Exception):
            transport.resume_reading()
        if transport.can_write_eof():
            try:
                transport.write_eof()
            except OSError:  # the client is gone already (its reset not read yet)
                transport.close()
                return
        self._drain_timer = asyncio.get_running_loop().call_later(DRAIN_SECONDS, transport.close)

    def _drain(self, size: int) -> None:
        self._drained += size
        if self._drained > DRAIN_BYTES and self.transport is not None:
            self.transport.close()

    def set_reading(self, reading: bool) -> None:
        """Stop or resume reading the transport (BrokerConnection does while a password is checked)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if reading:
            transport.resume_reading()
        else:
            transport.pause_reading()

    def data_received(self, data: bytes) -> None:
        if self._drained >= 0:
            self._drain(len(data))
            return
        conn = self.conn
        if conn is not None:
            conn.data_received(data)

    def eof_received(self) -> bool | None:
        return None  # the transport closes: after a goodbye, the client has read it and closed its side

    def connection_lost(self, exc: Exception | None) -> None:
        if self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None
        if self.conn is not None:
            self.conn.connection_lost()
            self.conn = None

    def pause_writing(self) -> None:
        if self.conn is not None:
            self.conn.pause_writing()

    def resume_writing(self) -> None:
        if self.conn is not None:
            self.conn.resume_writing()


class _WebSocketProtocol(_TCPProtocol):
    """MQTT over WebSocket: the HTTP upgrade and framing by websockets' sans-I/O ServerProtocol.

    The MQTT connection exists from the TCP connection on, so that its CONNECT timeout covers the HTTP upgrade
    too (a silent or trickling client is closed after ``connect_timeout``). Until the CONNECT is accepted, a
    WebSocket frame may be no larger than a CONNECT may be (``max_packet_size``, at most ``MAX_CONNECT_SIZE``),
    refused at the frame's header (close code 1009); after it, twice ``max_packet_size`` (a frame may carry more
    than one packet), or unlimited when the packet size is.
    """

    __slots__ = ("_logged_in", "_upgraded", "path", "ws")

    def __init__(self, connections: Connections, listener: str, path: str, limit: int = -1) -> None:
        super().__init__(connections, listener, limit)
        core = connections.core
        from websockets.server import ServerProtocol
        from websockets.typing import Subprotocol

        packet_limit = core.config.max_packet_size or MAX_PACKET_SIZE
        self.ws = ServerProtocol(
            subprotocols=[Subprotocol("mqtt"), Subprotocol("mqttv3.1")], max_size=min(packet_limit, MAX_CONNECT_SIZE)
        )
        self.path = path
        self._upgraded = False
        self._logged_in = False

    def _send_ws(self) -> None:
        transport = self.transport
        assert transport is not None
        for chunk in self.ws.data_to_send():
            if chunk:
                transport.write(chunk)
            elif transport.can_write_eof():
                transport.write_eof()

    def write(self, data: bytes) -> None:
        self.ws.send_binary(data)
        self._send_ws()

    def close(self, graceful: bool) -> None:
        with contextlib.suppress(Exception):
            self.ws.send_close()
            self._send_ws()
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not graceful:
            transport.close()
            return
        # The client answers the close frame and closes (data_received then closes the transport); until then,
        # for at most DRAIN_SECONDS and DRAIN_BYTES, what it still sends is read and dropped.
        self._drained = 0
        with contextlib.suppress(Exception):
            transport.resume_reading()
        self._drain_timer = asyncio.get_running_loop().call_later(DRAIN_SECONDS, transport.close)

    def data_received(self, data: bytes) -> None:
        from websockets.frames import Frame, Opcode
        from websockets.http11 import Request

        if self._drained >= 0:
            self._drain(len(data))
            if self.transport is not None and not self.transport.is_closing():
                with contextlib.suppress(Exception):
                    self.ws.receive_data(data)
                    self.ws.events_received()
                    self._send_ws()
                    if self.ws.close_expected():
                        self.transport.close()
            return

        ws = self.ws
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Request):
                path = event.path.split("?")[0]
                if self.path not in ("", "/") and path != self.path:
                    response = ws.reject(404, f"MQTT is served on {self.path}\n")
                else:
                    response = ws.accept(event)
                ws.send_response(response)
                self._send_ws()
                self._upgraded = response.status_code == 101
            elif isinstance(event, Frame) and event.opcode in (Opcode.BINARY, Opcode.CONT) and self._upgraded:
                conn = self.conn
                if conn is not None:
                    conn.data_received(bytes(event.data))
                    if not self._logged_in and conn.state is State.CONNECTED:
                        self._logged_in = True
                        packet_limit = self.core.config.max_packet_size
                        ws.max_size = 2 * packet_limit if packet_limit else None
        self._send_ws()
        if ws.close_expected() and self.transport is not None:
            self.transport.close()


def server_ssl_context(certfile: str, keyfile: str, cafile: str | None, require_certificate: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    if cafile:
        context.load_verify_locations(cafile)
    context.verify_mode = ssl.CERT_REQUIRED if require_certificate else ssl.CERT_NONE
    return context


@dataclass
class RunningListener:
    host: str
    port: int
    url: str
    server: asyncio.Server


class Broker:
    """The embedded broker.

    >>> async with Broker(config) as broker:   # doctest: +SKIP
    ...     print(broker.listeners[0].url)
    """

    def __init__(self, config: Any = None) -> None:
        from mqttchat.broker.config import default_config

        self.config = config if config is not None else default_config()
        self.core = BrokerCore(self.config)
        self.core.logins.runner = ThreadRunner(self.core.logins.workers)
        #: The open connections (each a BrokerConnection).
        self.connections = Connections(self.core)
        self.listeners: list[RunningListener] = []
        self._tasks: list[asyncio.Task[None]] = []
        #: The loop timer at the core clock's earliest deadline, and that deadline.
        self._due: asyncio.TimerHandle | None = None
        self._due_at = 0.0

    @property
    def url(self) -> str:
        return self.listeners[0].url

    @property
    def port(self) -> int:
        return self.listeners[0].port

    @property
    def stats(self) -> Any:
        return self.core.stats

    async def start(self) -> None:
        config = self.config
        core = self.core
        self._drive(core.clock)
        if config.password_file is not None:
            from mqttchat.broker.auth import PasswordFile

            core.passwords = PasswordFile.load(config.password_file)
        if config.acl_file is not None:
            from mqttchat.broker.auth import AccessControl

            core.acl = AccessControl.load(config.acl_file)
        if config.persistence:
            from mqttchat.broker.persistence import Store

            core.persistence = Store(core, config.persistence_file)
            core.persistence.load()
        loop = asyncio.get_running_loop()
        connections = self.connections
        try:
            for listener in config.listeners:
                context = None
                if listener.tls:
                    context = server_ssl_context(
                        str(listener.certfile), str(listener.keyfile),
                        str(listener.cafile) if listener.cafile else None, listener.require_certificate,
                    )  # fmt: skip
                name = f"{listener.protocol}:{listener.host}:{listener.port}"
                limit = listener.max_connections
                if listener.protocol == "websockets":
                    path = listener.path

                    def factory(name: str = name, path: str = path, limit: int = limit) -> asyncio.Protocol:
                        return _WebSocketProtocol(connections, name, path, limit)
                else:

                    def factory(name: str = name, limit: int = limit) -> asyncio.Protocol:  # type: ignore[misc]
                        return _TCPProtocol(connections, name, limit)

                # The TLS handshake is bounded by connect_timeout too (asyncio's default is 60 s), before the
                # CONNECT's own timeout starts.
                server = await loop.create_server(
                    factory, listener.host, listener.port, ssl=context, reuse_address=True, backlog=1024,
                    ssl_handshake_timeout=config.connect_timeout if context is not None else None,
                )  # fmt: skip
                port = server.sockets[0].getsockname()[1]
                scheme = ("wss" if listener.tls else "ws") if listener.protocol == "websockets" else (
                    "mqtts" if listener.tls else "mqtt")  # fmt: skip
                host = f"[{listener.host}]" if ":" in listener.host else listener.host
                path = listener.path if listener.protocol == "websockets" else ""
                self.listeners.append(RunningListener(listener.host, port, f"{scheme}://{host}:{port}{path}", server))
                log.info("listening on %s", self.listeners[-1].url)
        except BaseException:
            await self.stop()
            raise
        self.connections.watch_keepalives()
        if config.sys_interval:
            self._tasks.append(asyncio.create_task(self._sys_loop(), name="broker $SYS"))

    def reload(self) -> bool:
        """Read the password file and the ACL file again (``mqttchat broker`` does on SIGHUP, as mosquitto does).

        New logins are checked against the new files at once. Connected clients get the new ACL's rights; a
        client whose user left the password file, or whose password changed, is disconnected (MQTT 5: 0x98
        Administrative action) and must log in again. A file that no longer reads keeps the old one in force and
        logs the error with the file and line. Returns True when everything was reloaded.
        """
        from mqttchat.broker.auth import AccessControl, PasswordFile

        config = self.config
        core = self.core
        ok = True
        if config.password_file is not None:
            try:
                passwords = PasswordFile.load(config.password_file)
            except ConfigError as exc:
                log.error("reload: %s; the password file in force stays", exc)
                ok = False
            else:
                old = core.passwords
                if old is not None:
                    passwords.adopt_cache(old)
                core.passwords = passwords
                for conn in list(self.connections):
                    session = conn.session
                    if conn.state is not State.CONNECTED or session is None or not session.authenticated:
                        continue
                    user = session.username
                    assert user is not None
                    if user not in passwords:
                        conn.revoke("its user is no longer in the password file")
                    elif old is not None and old.stored_hash(user) != passwords.stored_hash(user):
                        conn.revoke("its user's password changed")
                log.info("reloaded the password file %s (%d users)", config.password_file, len(passwords))
        if config.acl_file is not None:
            try:
                acl = AccessControl.load(config.acl_file)
            except ConfigError as exc:
                log.error("reload: %s; the ACL in force stays", exc)
                ok = False
            else:
                core.acl = acl
                for session in core.sessions.values():
                    session.access = acl.for_client(session.username, session.client_id)
                log.info("reloaded the ACL file %s", config.acl_file)
        return ok

    def _drive(self, clock: Clock) -> None:
        """Run the core's clock in this loop: its deferred work after each callback that produced some, its timers
        with one loop timer at the earliest deadline."""
        loop = asyncio.get_running_loop()
        clock.wake = lambda: loop.call_soon(clock.run_soon)
        clock.rearm = self._rearm
        if clock.pending:
            loop.call_soon(clock.run_soon)
        deadline = clock.next_deadline()
        if deadline is not None:
            self._rearm(deadline)

    def _rearm(self, when: float) -> None:
        if self._due is not None:
            if self._due_at <= when:
                return
            self._due.cancel()
        self._due_at = when
        self._due = asyncio.get_running_loop().call_later(max(0.0, when - self.core.clock.now()), self._run_due)

    def _run_due(self) -> None:
        self._due = None
        clock = self.core.clock
        clock.run_due()
        deadline = clock.next_deadline()
        if deadline is not None:
            self._rearm(deadline)

    async def _sys_loop(self) -> None:
        while True:
            self.core.publish_sys()
            await asyncio.sleep(self.config.sys_interval)

    async def stop(self) -> None:
        """Stop listening, tell MQTT 5 clients the server is shutting down, persist, close."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        # One turn of the loop: connections whose client went away hear of it before the goodbyes below.
        await asyncio.sleep(0)
        for listener in self.listeners:
            listener.server.close()
        self.core.stopping = True
        for conn in list(self.connections):
            conn.shutdown()
        for listener in self.listeners:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(listener.server.wait_closed(), 2)
        self.listeners.clear()
        self.core.logins.close()
        self.core.log_drops()  # the drops counted since the last warning
        self.connections.log_overbudget()  # and the connections closed for the pre-login budget
        if self.core.persistence is not None:
            self.core.persistence.close()
        # Timers left (will delays, session expiries) do not outlive the broker.
        self.connections.stop_watching()
        self.core.clock.rearm = None
        if self._due is not None:
            self._due.cancel()
            self._due = None

    async def __aenter__(self) -> Broker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
