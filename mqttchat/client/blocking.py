"""A blocking driver of :class:`ClientSession` over a plain socket (TCP or TLS): no asyncio, no threads.

``mqttchat pub`` and ``mqttchat sub`` start in a fraction of the asyncio client's time with it (asyncio alone takes
longer to import than a short command takes to run). It drives the same sans-I/O session as
:class:`~mqttchat.client.client.MQTTClient` and reports in the same words (:mod:`mqttchat.client.outcomes`): the
same packets, QoS 1/2 flows, MQTT 5 → 3.1.1 fallback, enhanced authentication exchange and errors. It covers one
connection without reconnecting, and only what a command that runs to its end needs: WebSocket, proxies and
credentials renewed on a timer stay with the asyncio client (:func:`supports` says which options it takes).

Theory of operation: every call writes what the session queued, then reads with the socket's timeout set to the
next thing due (the caller's deadline, the connect timeout, the next PINGREQ or the PINGRESP awaited) until what
it waits for has arrived; the events of each read are settled at once (acknowledgements leave before the call
returns), so a caller that reads messages one at a time still answers every QoS 1/2 flow.
"""

from __future__ import annotations

import contextlib
import copy
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from mqttchat.client.errors import ClientError, ConnackRefused, ConnectError, NotConnected
from mqttchat.client.messages import Message, build_message
from mqttchat.client.outcomes import (
    SUCCESS_RESULT,
    PublishResult,
    VersionFallback,
    closed_before_connack,
    connack_timeout,
    connect_failure,
    connection_lost,
    disconnected_by_broker,
    is_certificate_failure,
    keepalive_timeout,
    may_fall_back,
    protocol_failure,
    publish_result,
)
from mqttchat.client.session import (
    BrokerCapabilities,
    ClientSession,
    Connected,
    ConnectRefused,
    PingAnswered,
    ServerDisconnected,
    SubscribeDone,
    TraceHook,
)
from mqttchat.protocol import EMPTY_PROPERTIES, Completed, Properties, Publish, RemoteProtocolError, Subscription
from mqttchat.protocol.packets import build_publish

if TYPE_CHECKING:
    from mqttchat.client.options import ClientOptions
    from mqttchat.protocol import ReasonCode, SubAck

#: Bytes asked of the socket per read.
READ_SIZE = 256 * 1024

#: Linux's TCP_QUICKACK (None elsewhere): see :meth:`BlockingClient._read`.
_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


def supports(options: ClientOptions) -> bool:
    """Whether :class:`BlockingClient` can serve these options (else use the asyncio client)."""
    auth = options.auth
    return (
        not options.target.websocket
        and options.proxy is None
        and options.credentials is None
        and (auth is None or getattr(auth, "expires_at", None) is None)
    )


class BlockingClient:
    """One MQTT connection driven by blocking calls; every call takes an optional deadline (``time.monotonic()``).

    A call that reaches its deadline returns its "not yet" value (:meth:`connect` and :meth:`subscribe` None,
    :meth:`next_message` None); errors are those of the asyncio client (:class:`ConnectError` subclasses while
    connecting, :class:`ConnectionLost` and its subclasses after).
    """

    def __init__(self, options: ClientOptions) -> None:
        self.options = options
        # A method keeps the state of its exchange: each client its own, as MQTTClient does.
        self.session = ClientSession(options, copy.copy(options.auth) if options.auth is not None else None)
        #: QoS 2 publishes the broker acknowledged with PUBACK (delivered at QoS 1).
        self.downgraded_publishes = 0
        #: Why this client speaks MQTT 3.1.1 although it was given 5 (``version_fallback``), or None.
        self.version_fallback: str | None = None
        self._sock: socket.socket | None = None
        self._messages: deque[Message] = deque()
        self._results: dict[object, PublishResult] = {}
        self._subacks: dict[object, SubAck] = {}
        self._capabilities: BrokerCapabilities | None = None
        self._connect_error: ConnectError | None = None
        #: Why the connection ended (raised by the calls that wait on it), or None while it lasts.
        self._lost: ClientError | None = None
        self._last_sent = 0.0
        self._ping_sent: float | None = None
        self._wrote_since_ack = True

    @property
    def target(self) -> str:
        return self.options.target.url

    def add_trace_hook(self, hook: TraceHook) -> None:
        """Call ``hook(direction, packet, size)`` for every packet in and out."""
        self.session.trace = hook

    # ----------------------------------------------------------------------------------------- connecting

    def connect(self, deadline: float | None = None) -> BrokerCapabilities | None:
        """Connect (TCP/TLS, CONNECT, CONNACK); None when ``deadline`` came first.

        Raises:
            ConnectError: see its subclasses; with ``version_fallback``, after trying MQTT 3.1.1 where that fits.
        """
        try:
            return self._connect_once(deadline)
        except ConnectError as exc:
            if not may_fall_back(self.options, self.session, exc):
                raise
            error = exc
        options = self.options
        fallback = VersionFallback(options, error)
        self._use_options(fallback.options)
        try:
            caps = self._connect_once(deadline)
        except ConnectError as second:
            failure = fallback.failed(self.target, second)
            self.version_fallback = fallback.note
            if not fallback.keep:
                self._use_options(options)
            raise failure from None
        fallback.connected(self.target)
        self.version_fallback = fallback.note
        return caps

    def _use_options(self, options: ClientOptions) -> None:
        self.options = options
        self.session.use_options(options)

    def _connect_once(self, deadline: float | None) -> BrokerCapabilities | None:
        timeout = self.options.connect_timeout
        give_up = time.monotonic() + timeout
        if deadline is not None and deadline < give_up:
            give_up = deadline
        self._lost = self._connect_error = self._capabilities = None
        self._sock = self._open(max(0.001, give_up - time.monotonic()))
        session = self.session
        session.start_connection()
        try:
            self._flush()
            arrived = self._wait(lambda: self._capabilities is not None or self._connect_error is not None, give_up)
        except ClientError:  # the connection ended: _connection_ended said why in _connect_error
            arrived = False
            self._connect_error = self._connect_error or closed_before_connack(self.options)
        if self._connect_error is not None:
            self._close()
            session.connection_lost()
            raise self._connect_error
        if not arrived:
            self._close()
            session.connection_lost()
            if deadline is not None and give_up == deadline:
                return None
            raise connack_timeout(self.target, timeout)
        self._ping_sent = None
        return self._capabilities

    def _open(self, timeout: float) -> socket.socket:
        """The connected socket (TLS handshake done), or the ConnectError that says why not."""
        target = self.options.target
        where = target.url
        context = server_hostname = None
        if target.tls:
            from mqttchat.client.tls import make_ssl_context

            tls = self.options.tls
            context = make_ssl_context(tls)
            server_hostname = tls.server_hostname if tls and tls.server_hostname else target.host
        sock: socket.socket | None = None
        try:
            # An ASCII name as bytes: a str would load the IDNA codec first (a millisecond of start-up).
            host = target.host.encode() if target.host.isascii() else target.host
            sock = socket.create_connection((host, target.port), timeout)  # type: ignore[arg-type]
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if context is not None:
                sock = context.wrap_socket(sock, server_hostname=server_hostname)
            return sock
        except Exception as exc:
            if sock is not None:
                sock.close()
            subject = self._certificate_subject(server_hostname) if is_certificate_failure(exc) else None
            error = connect_failure(exc, target, where, timeout, subject)
            if error is None:
                raise
            raise error from None

    def _certificate_subject(self, server_hostname: str | None) -> str | None:
        """The subject of the certificate the broker presents, read with verification off (for error messages)."""
        import ssl

        from mqttchat.client.tls import certificate_subject, unverified_context

        target = self.options.target
        try:
            with (
                socket.create_connection((target.host, target.port), 5) as raw,
                unverified_context().wrap_socket(raw, server_hostname=server_hostname) as sock,
            ):
                return certificate_subject(sock.getpeercert(binary_form=True))
        except (OSError, ssl.SSLError):
            return None

    # ----------------------------------------------------------------------------------------- operations

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        properties: Properties = EMPTY_PROPERTIES,
    ) -> PublishResult:
        """Publish and wait for the broker's acknowledgement (PUBACK at QoS 1, PUBCOMP at QoS 2).

        Raises:
            PublishError, LocalProtocolError: nothing was sent. ConnectionLost: the connection ended first.
        """
        self._check_connected()
        publish = build_publish(topic, payload, qos, retain, False, None, properties)
        if qos == 0:
            self.session.publish(publish)
            self._flush()
            return SUCCESS_RESULT
        token = object()
        self.session.publish(publish, token)
        self._flush()
        self._wait(lambda: token in self._results, None)
        result = self._results.pop(token)
        if result.downgraded:
            self.downgraded_publishes += 1
        return result

    def subscribe(
        self,
        subscriptions: Sequence[Subscription],
        *,
        subscription_identifier: int | None = None,
        user_properties: Iterable[tuple[str, str]] = (),
        deadline: float | None = None,
    ) -> list[ReasonCode] | None:
        """Subscribe; one reason code per filter (the granted QoS, or a failure code); None at ``deadline``."""
        self._check_connected()
        properties = Properties(
            subscription_identifier=subscription_identifier, user_property=list(user_properties) or None
        )
        per_packet = self.options.max_filters_per_subscribe or len(subscriptions)
        tokens = []
        for start in range(0, len(subscriptions), per_packet):
            token = object()
            self.session.subscribe(subscriptions[start : start + per_packet], properties, token)
            tokens.append(token)
        self._flush()
        if not self._wait(lambda: all(t in self._subacks for t in tokens), deadline):
            return None
        return [code for t in tokens for code in self._subacks.pop(t).reason_codes]

    def next_message(self, deadline: float | None = None) -> Message | None:
        """The next message received (acknowledged as its QoS wants); None at ``deadline``.

        Raises:
            ConnectionLost: the connection ended (the broker's DISCONNECT, a protocol error, keepalive...); the
                messages that arrived before are returned first. NotConnected: after :meth:`disconnect`.
        """
        messages = self._messages
        if not messages and not self._wait(lambda: bool(messages), deadline):
            return None
        return messages.popleft()

    def disconnect(self, reason: ReasonCode | None = None) -> None:
        """Send DISCONNECT (when connected) and close."""
        session = self.session
        if self._sock is not None and session.connected:
            if reason is None:
                session.disconnect()
            else:
                session.disconnect(reason)
            with contextlib.suppress(ClientError):  # closing anyway
                self._drain()
                self._flush()
        self._close()
        session.connection_lost()
        if self._lost is None:
            self._lost = NotConnected("the client is closed")

    def _check_connected(self) -> None:
        if self._lost is not None:
            raise self._lost
        if self._sock is None or not self.session.connected:
            raise NotConnected("call connect() first")

    # ----------------------------------------------------------------------------------------- the socket

    def _flush(self) -> None:
        data = self.session.data_to_send()
        if not data or self._sock is None:
            return
        try:
            self._sock.settimeout(self.options.connect_timeout)
            self._sock.sendall(data)
        except OSError as exc:
            self._connection_ended(exc)
            raise self._lost_error() from None
        self._last_sent = time.monotonic()
        self._wrote_since_ack = True

    def _lost_error(self) -> ClientError:
        assert self._lost is not None
        return self._lost

    def _wait(self, done: Callable[[], bool], deadline: float | None) -> bool:
        """Read and settle until ``done()``; False at ``deadline``. Raises the error that ended the connection."""
        while not done():
            if self._lost is not None:
                raise self._lost
            now = time.monotonic()
            timeout = self._keepalive(now)
            if deadline is not None:
                if now >= deadline:
                    return False
                timeout = deadline - now if timeout is None else min(timeout, deadline - now)
            self._read(timeout)
        return True

    def _keepalive(self, now: float) -> float | None:
        """Send PINGREQ when due; end the connection when its PINGRESP is overdue; seconds until the next check."""
        keepalive = self.session.keepalive
        if keepalive <= 0 or not self.session.connected:
            return None
        if self._ping_sent is not None:
            left = self._ping_sent + keepalive - now
            if left <= 0:
                self._close()
                self.session.connection_lost()
                self._lost = keepalive_timeout(self.target, keepalive)
                raise self._lost
            return left
        idle = now - self._last_sent
        if idle >= keepalive:
            self._ping_sent = now
            self.session.ping()
            self._flush()
            return float(keepalive)
        return keepalive - idle

    def _read(self, timeout: float | None) -> None:
        sock = self._sock
        if sock is None:
            self._lost = self._lost or NotConnected("the client is closed")
            return
        try:
            sock.settimeout(timeout)
            data = sock.recv(READ_SIZE)
        except TimeoutError:
            return
        except OSError as exc:
            self._connection_ended(exc)
            return
        if not data:
            self._connection_ended(None)
            return
        self._receive(data)
        if self._sock is None:
            return
        if self.session.pending_bytes:
            self._flush()
        elif self._wrote_since_ack and _TCP_QUICKACK is not None and not self.session.outgoing.inflight:
            # Acknowledge what arrives at once instead of after Linux's delayed-ACK timer (up to 40 ms): a broker
            # with Nagle's algorithm on (mosquitto's default) holds the retained message that follows a SUBACK
            # back until then. Once after each write, as the asyncio transport does (its _ack_now says why).
            self._wrote_since_ack = False
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)

    def _receive(self, data: bytes) -> None:
        session = self.session
        try:
            events = session.receive_data(data)
        except RemoteProtocolError as exc:
            error, connect_error = protocol_failure(exc, self.target, session.version)
            before, session.events_before_error = session.events_before_error, []
            session.failed_tokens = []
            self._settle(before)
            if self._capabilities is None and self._connect_error is None:
                self._connect_error = connect_error
            with contextlib.suppress(ClientError):
                self._flush()  # the DISCONNECT naming the fault (MQTT 5)
            self._close()
            session.connection_lost()
            self._lost = error
            return
        self._settle(events)

    def _settle(self, events: list[Any]) -> None:
        now = time.time()
        for event in events:
            kind = type(event)
            if kind is Publish:
                message = build_message(
                    event.topic, event.payload, event.qos, event.retain, event.dup, event.properties, now,
                    event.packet_id,
                )  # fmt: skip
                self._messages.append(message)
            elif kind is Completed:
                self._results[event.token] = publish_result(event)
            elif kind is SubscribeDone:
                self._subacks[event.token] = event.suback
            elif kind is PingAnswered:
                self._ping_sent = None
            elif kind is Connected:
                self._capabilities = event.capabilities
            elif kind is ConnectRefused:
                self._connect_error = ConnackRefused(
                    event.connack.reason_code, event.connack.properties, self.session.version
                )
            elif kind is ServerDisconnected:
                self._lost = disconnected_by_broker(event.disconnect)
                self._close()
                self.session.connection_lost()

    def _connection_ended(self, exc: BaseException | None) -> None:
        """The socket closed or failed: remember why (see :func:`connection_lost`)."""
        session = self.session
        connecting = session.state.value == "connecting"
        error = connection_lost(session, self.options, exc)
        self._close()
        session.connection_lost()
        if connecting and self._connect_error is None and self._capabilities is None:
            self._connect_error = error if isinstance(error, ConnectError) else closed_before_connack(self.options)
        self._lost = error

    def _drain(self) -> None:
        """Read what the broker sent and we will not handle (closing with unread bytes resets the connection
        instead of closing it, and a broker may then publish our will)."""
        sock = self._sock
        if sock is None:
            return
        try:
            sock.settimeout(0)
            while sock.recv(READ_SIZE):
                pass
        except OSError:
            pass

    def _close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
