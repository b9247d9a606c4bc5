"""The asyncio MQTT client: transports, keepalive, reconnect, statistics and packet traces around ClientSession.

The reader runs in the event loop's protocol callback: bytes are decoded, acknowledgements queued and
messages handed to the message streams and handlers, all without awaiting anything, so a slow consumer never
delays acknowledgements or keepalive. Writes are batched: everything queued during one event loop iteration
leaves in one ``write()`` (or sooner, past 64 KiB).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from enum import Enum
from typing import Any

from mqttchat.client.credentials import Credentials
from mqttchat.client.errors import (
    AuthenticationFailed,
    BrokerProtocolError,
    ClientError,
    ConnackRefused,
    ConnectError,
    ConnectionLost,
    NotConnected,
    RetriesExhausted,
    SubscriptionRefused,
)
from mqttchat.client.messages import Message, MessageStream, build_message
from mqttchat.client.options import ClientOptions, OverflowPolicy, parse_url
from mqttchat.client.outcomes import SUCCESS_RESULT as _QOS0_RESULT
from mqttchat.client.outcomes import (
    PublishResult,
    VersionFallback,
    closed_before_connack,
    connack_timeout,
    connection_lost,
    disconnected_by_broker,
    keepalive_timeout,
    may_fall_back,
    protocol_failure,
    publish_result,
)
from mqttchat.client.session import (
    AuthMethod,
    BrokerCapabilities,
    ClientSession,
    Connected,
    ConnectRefused,
    PingAnswered,
    Reauthenticated,
    ServerDisconnected,
    SubscribeDone,
    TraceHook,
    UnsubscribeDone,
)
from mqttchat.client.transport import Link, open_link
from mqttchat.protocol import (
    EMPTY_PROPERTIES,
    Completed,
    Packet,
    Properties,
    Publish,
    ReasonCode,
    RemoteProtocolError,
    RetainHandling,
    Subscription,
)
from mqttchat.protocol.constants import ProtocolVersion
from mqttchat.protocol.fastinit import dataclass
from mqttchat.protocol.packets import build_publish
from mqttchat.untrusted import loggable

#: How often (seconds) a connection whose credentials expire looks at its credential source's clock.
RENEW_CHECK_INTERVAL = 1.0

#: A connection that lasted this long (seconds) resets the reconnect backoff.
STABLE_CONNECTION = 10.0

log = logging.getLogger("mqttchat.client")

#: Packets handled per turn of the event loop; the rest of a big read waits for the next turn.
PACKETS_PER_TURN = 500

_FLUSH_THRESHOLD = 64 * 1024

#: A read of less than READ_BATCH bytes that comes within READ_PAUSE seconds of the one before (a stream of small
#: packets) pauses reading for READ_PAUSE, so that the next read takes what arrived meanwhile at once: each read
#: costs system calls and a turn of the event loop whatever it holds. The first packet after a quiet spell is
#: read at once, and acknowledgement flows are never paused (a read the client answered, or while its QoS 1/2
#: publishes are in flight): QoS 0 streams are batched.
READ_PAUSE = 0.001
READ_BATCH = 32 * 1024


#: Connections in a row ended by the same refusal or fault before the client stops reconnecting.
SAME_ERROR_LIMIT = 3

#: DISCONNECT reason codes that say nothing about what we sent: the broker is busy, moving, shutting down...
_TRANSIENT_DISCONNECTS = frozenset(
    {
        ReasonCode.SERVER_BUSY,
        ReasonCode.SERVER_SHUTTING_DOWN,
        ReasonCode.KEEP_ALIVE_TIMEOUT,
        ReasonCode.SESSION_TAKEN_OVER,
        ReasonCode.USE_ANOTHER_SERVER,
        ReasonCode.SERVER_MOVED,
        ReasonCode.CONNECTION_RATE_EXCEEDED,
        ReasonCode.MAXIMUM_CONNECT_TIME,
        ReasonCode.ADMINISTRATIVE_ACTION,
        ReasonCode.QUOTA_EXCEEDED,
        ReasonCode.MESSAGE_RATE_TOO_HIGH,
    }
)


def _rejection_key(error: BaseException) -> tuple[object, ...] | None:
    """What identifies ``error`` as the broker's answer to what we sent (None: a network failure or transient)."""
    if isinstance(error, ConnackRefused):
        return ("connack", error.reason_code)
    if isinstance(error, SubscriptionRefused):
        return ("subscribe", error.topic_filters)
    if isinstance(error, AuthenticationFailed):
        return ("authentication", str(error))
    if isinstance(error, BrokerProtocolError):
        return ("protocol", str(error))
    code = error.reason_code if isinstance(error, ConnectionLost) else None
    if code is not None and code.is_error and code not in _TRANSIENT_DISCONNECTS:
        return ("disconnect", code)
    return None


class Status(Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class StateChange:
    """A change of connection state, for status bars and logs."""

    status: Status
    target: str
    #: Reconnect attempt number (RECONNECTING) and the delay before it, in seconds.
    attempt: int = 0
    delay: float = 0.0
    #: Why the connection ended or an attempt failed.
    error: BaseException | None = None
    capabilities: BrokerCapabilities | None = None


#: The futures the client makes (loop.create_future()): asyncio's C implementation.
_Future = asyncio.Future


@dataclass(slots=True)
class ClientStats:
    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    #: Round-trip time of the last PINGREQ/PINGRESP, in seconds.
    last_rtt: float | None = None
    connects: int = 0
    #: Messages dropped by full message streams (their overflow policy).
    dropped: int = 0


class MQTTClient:
    """An asyncio MQTT 3.1.1 / 5.0 client.

    >>> async with MQTTClient("mqtt://127.0.0.1:1883", client_id="me") as client:   # doctest: +SKIP
    ...     await client.subscribe("home/#", qos=1)
    ...     await client.publish("home/hall/light", b"on", qos=1, retain=True)
    ...     async for message in client.messages():
    ...         print(message.topic, message.payload)
    """

    #: Packets handled per turn of the event loop (PACKETS_PER_TURN): an application whose handlers do more per
    #: message, sharing the loop with a screen, sets fewer.
    packets_per_turn = PACKETS_PER_TURN

    def __init__(
        self, options: ClientOptions | str | None = None, *, auth: AuthMethod | None = None, **overrides: Any
    ) -> None:
        if options is None:
            options = ClientOptions()
        elif isinstance(options, str):
            options = ClientOptions(parse_url(options))
        if overrides:
            options = replace(options, **overrides)
        self.options = options
        if auth is None and options.auth is not None:
            # A method keeps the state of its exchange: each client its own (the app's explorer and chat share
            # their options).
            auth = copy.copy(options.auth)
        self.session = ClientSession(options, auth)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._link: Link | None = None
        self._status = Status.DISCONNECTED
        self._closed = False
        self._connack: asyncio.Future[BrokerCapabilities] | None = None
        self._lost: asyncio.Future[BaseException | None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._keepalive_task: asyncio.Task[None] | None = None
        self._flush_scheduled = False
        self._write_paused = False
        self._reading_paused = False
        self._drain_scheduled = False
        self._can_write: asyncio.Event | None = None
        self._last_sent = 0.0
        self._last_read = 0.0
        self._ping_sent: float | None = None
        self._ping_waiters: list[asyncio.Future[float]] = []
        self._streams: list[MessageStream] = []
        self._handlers: list[Callable[[Message], None]] = []
        self._trace_hooks: list[TraceHook] = []
        self._state_listeners: list[Callable[[StateChange], None]] = []
        self._auth_waiter: asyncio.Future[None] | None = None
        self.stats = ClientStats()
        self.last_disconnect: ServerDisconnected | None = None
        #: QoS 2 publishes the broker acknowledged with PUBACK (delivered at QoS 1).
        self.downgraded_publishes = 0
        #: Why this client speaks MQTT 3.1.1 although it was given 5 (``version_fallback``), or None.
        self.version_fallback: str | None = None

    # ----------------------------------------------------------------------------------------- properties

    @property
    def status(self) -> Status:
        return self._status

    @property
    def connected(self) -> bool:
        return self._status is Status.CONNECTED

    @property
    def capabilities(self) -> BrokerCapabilities | None:
        """What the broker said in its last CONNACK."""
        return self.session.capabilities

    @property
    def client_id(self) -> str:
        """The client identifier in use (the broker's assigned one when ours was empty)."""
        return self.session.client_id

    @property
    def closed(self) -> bool:
        """The client was disconnected for good (by disconnect() or a failure it will not retry)."""
        return self._closed

    def _stopped(self) -> bool:
        # A method, not the attribute: other tasks change it while this one awaits (and mypy narrows attributes).
        return self._closed

    @property
    def target(self) -> str:
        return self.options.target.url

    # ----------------------------------------------------------------------------------------- listeners

    def add_message_handler(self, handler: Callable[[Message], None]) -> Callable[[], None]:
        """Call ``handler`` for every message, from the reader (it must not block). Returns a remover."""
        self._handlers.append(handler)
        return lambda: self._handlers.remove(handler) if handler in self._handlers else None

    def add_trace_hook(self, hook: TraceHook) -> Callable[[], None]:
        """Call ``hook(direction, packet, size)`` for every packet in and out. Returns a remover."""
        self._trace_hooks.append(hook)
        self.session.trace = self._trace

        def remove() -> None:
            if hook in self._trace_hooks:
                self._trace_hooks.remove(hook)
            if not self._trace_hooks:
                self.session.trace = None

        return remove

    def _trace(self, direction: str, packet: Packet, size: int) -> None:
        for hook in list(self._trace_hooks):
            try:
                hook(direction, packet, size)
            except Exception:
                log.exception("packet trace hook failed")

    def add_state_listener(self, listener: Callable[[StateChange], None]) -> Callable[[], None]:
        self._state_listeners.append(listener)
        return lambda: self._state_listeners.remove(listener) if listener in self._state_listeners else None

    def _set_status(self, status: Status, **details: Any) -> None:
        self._status = status
        change = StateChange(status, self.target, **details)
        for listener in list(self._state_listeners):
            try:
                listener(change)
            except Exception:
                log.exception("state listener failed")

    def messages(self, maxsize: int | None = None, overflow: OverflowPolicy | None = None) -> MessageStream:
        """A new stream of every message received from now on (bounded; see :class:`MessageStream`)."""
        stream = MessageStream(
            maxsize or self.options.message_buffer, overflow or self.options.overflow, self._streams.remove
        )
        self._streams.append(stream)
        return stream

    # ----------------------------------------------------------------------------------------- connecting

    async def connect(self) -> BrokerCapabilities:
        """Connect (TCP/TLS/WebSocket, CONNECT, CONNACK) and keep the connection up from then on.

        Raises:
            ConnectError: the first connection failed; see its subclasses. No reconnect is attempted then.
        """
        if self._closed:
            raise ClientError("this client was closed; create a new one")
        if self._status is Status.CONNECTED:
            assert self.session.capabilities is not None
            return self.session.capabilities
        self._loop = asyncio.get_running_loop()
        try:
            caps = await self._connect_once()
        except ConnectError as exc:
            if not self._may_fall_back(exc):
                raise
            caps = await self._fall_back(exc)
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name=f"mqtt supervisor {self.target}")
        return caps

    async def _connect_once(self) -> BrokerCapabilities:
        loop = asyncio.get_running_loop()
        self._set_status(Status.CONNECTING)
        self._lost = loop.create_future()
        self._connack = loop.create_future()
        self._write_paused = False
        self._reading_paused = False
        try:
            o = self.options
            credentials = o.credentials.credentials() if o.credentials is not None else None
            self.session.credentials = credentials
            path = credentials.websocket_path if credentials is not None else None
            self._link = await open_link(o.target, o.tls, self, o.connect_timeout, o.proxy, path)
        except ConnectError as exc:
            self._lost = None
            self._connack = None  # nobody waits for it: a link that failed while opening must not set it
            self._set_status(Status.DISCONNECTED, error=exc)
            raise
        self.session.start_connection()
        self._flush()
        try:
            async with asyncio.timeout(self.options.connect_timeout):
                caps = await self._connack
        except TimeoutError:
            self._abort_link()
            error = connack_timeout(self.target, self.options.connect_timeout)
            self._set_status(Status.DISCONNECTED, error=error)
            raise error from None
        except ClientError as exc:
            self._abort_link()
            self._set_status(Status.DISCONNECTED, error=exc)
            raise
        self.stats.connects += 1
        self._last_sent = loop.time()
        self._ping_sent = None
        self._keepalive_task = asyncio.create_task(self._keepalive(self._link), name="mqtt keepalive")
        if credentials is not None and credentials.expires_at is not None:
            self._renew_task = asyncio.create_task(self._renew(self._link, credentials), name="mqtt renew")
        elif caps.version == ProtocolVersion.MQTT_5 and getattr(self.session.auth, "expires_at", None) is not None:
            self._renew_task = asyncio.create_task(self._reauthenticate_before_expiry(self._link), name="mqtt reauth")
        self._connected_at = time.monotonic()
        self._set_status(Status.CONNECTED, capabilities=caps)
        log.info("connected to %s as %s (MQTT %s)", self.target, loggable(self.client_id), caps.version)
        return caps

    def _may_fall_back(self, error: ConnectError) -> bool:
        return may_fall_back(self.options, self.session, error)

    async def _fall_back(self, error: ConnectError) -> BrokerCapabilities:
        """MQTT 5 was refused or dropped before CONNACK: connect with MQTT 3.1.1 and keep it."""
        options = self.options
        log.info("%s did not accept MQTT 5 (%s): trying MQTT 3.1.1", self.target, error)
        lost = self._lost
        if lost is not None and not lost.done():
            # The refused connection is being closed: its end must be reported before the next one starts.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await asyncio.shield(lost)
        fallback = VersionFallback(options, error)
        self._use_options(fallback.options)
        try:
            caps = await self._connect_once()
        except ConnectError as second:
            failure = fallback.failed(self.target, second)
            self.version_fallback = fallback.note
            if not fallback.keep:
                self._use_options(options)
            raise failure from None
        fallback.connected(self.target)
        self.version_fallback = fallback.note
        log.info("%s", self.version_fallback)
        return caps

    def _use_options(self, options: ClientOptions) -> None:
        self.options = options
        self.session.use_options(options)

    def _abort_link(self) -> None:
        if self._link is not None:
            self._link.abort()

    async def _supervise(self) -> None:
        """Wait for the connection to drop, then reconnect with exponential backoff and jitter.

        A refusal or fault that is the broker's answer to what we send (a CONNACK refusal, a protocol error, a
        DISCONNECT naming our fault, a SUBSCRIBE answered by closing) is counted: when the same one ended
        :data:`SAME_ERROR_LIMIT` connections in a row, reconnecting would only repeat it, so the client stops
        with :class:`RetriesExhausted`. Network failures are never counted: the broker may come back.
        """
        attempt = 0
        repeats = 0
        last_key: tuple[object, ...] | None = None

        def same_again(error: BaseException) -> bool:
            nonlocal repeats, last_key
            key = _rejection_key(error)
            repeats = repeats + 1 if key is not None and key == last_key else (1 if key is not None else 0)
            last_key = key
            if repeats >= SAME_ERROR_LIMIT:
                log.warning("%s: giving up after %d connections ended with: %s", self.target, repeats, error)
                self._finish(RetriesExhausted(error, repeats))
                return True
            return False

        while not self._closed:
            lost = self._lost
            if lost is None:
                return
            error = await asyncio.shield(lost)
            if self._stopped():
                return
            taken_over = isinstance(error, ConnectionLost) and error.reason_code is ReasonCode.SESSION_TAKEN_OVER
            if not (self.options.reconnect or self._renewing) or taken_over:
                # Another connection with our client id replaced this one: reconnecting would replace it in turn,
                # and the two would take turns for ever.
                self._finish(error if isinstance(error, BaseException) else ConnectionLost("connection lost"))
                return
            if time.monotonic() - self._connected_at >= STABLE_CONNECTION:
                attempt = 0
            # else: the last connection did not last; keep backing off (a broker that accepts and then drops
            # us, or another client taking our id over and over, must not become a reconnect storm)
            if error is not None and same_again(error):
                return
            renewing, self._renewing = self._renewing, False
            while not self._closed:
                attempt += 1
                delay = min(self.options.reconnect_max_delay, self.options.reconnect_min_delay * 2 ** (attempt - 1))
                delay *= random.uniform(0.5, 1.0)
                if renewing:  # we closed the connection to present new credentials: connect again at once
                    renewing, delay, attempt = False, 0.0, attempt - 1
                self._set_status(Status.RECONNECTING, attempt=attempt, delay=delay, error=error)
                await asyncio.sleep(delay)
                if self._stopped():
                    return
                try:
                    await self._connect_once()
                    break
                except ConnectError as exc:
                    error = exc
                    log.info("reconnect attempt %d to %s failed: %s", attempt, self.target, loggable(str(exc)))
                    if same_again(exc):
                        return

    def _finish(self, error: BaseException | None) -> None:
        """The client will not connect again: fail what waits for the broker and end the streams."""
        self._closed = True
        failure = error if isinstance(error, ClientError) else NotConnected(str(error) if error else "disconnected")
        abandoned = [t for _, t in self.session.outgoing.abandon()] + [t for _, t in self.session._offline]
        self.session._offline.clear()
        for token in abandoned:
            if isinstance(token, asyncio.Future) and not token.done():
                token.set_exception(failure)
        for pending in list(self.session._pending.values()):
            token = pending.token
            if isinstance(token, asyncio.Future) and not token.done():
                token.set_exception(failure)
        self.session._pending.clear()
        for waiter in self._ping_waiters:
            if not waiter.done():
                waiter.set_exception(failure)
        self._ping_waiters.clear()
        for stream in list(self._streams):
            if error is not None and not isinstance(error, NotConnected):
                stream.fail(failure)
            else:
                stream.close()
        self._set_status(Status.CLOSED, error=error)

    async def disconnect(
        self,
        reason: ReasonCode = ReasonCode.SUCCESS,
        session_expiry: int | None = None,
        properties: Properties = EMPTY_PROPERTIES,
        timeout: float = 5.0,
    ) -> None:
        """Send DISCONNECT and close. Reason 0x04 asks the broker to publish the will anyway (MQTT 5)."""
        if self._closed:
            return
        self._closed = True
        if session_expiry is not None:
            properties = properties.replace(session_expiry_interval=session_expiry)
        link = self._link
        if link is not None and self.session.connected:
            self.session.disconnect(reason, properties)
            self._flush()
            link.close()
            lost = self._lost
            if lost is not None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await asyncio.shield(lost)
        elif link is not None:
            link.abort()
        self.session.connection_lost()
        for task in (self._supervisor, self._keepalive_task, self._renew_task):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        self._finish(None)

    async def __aenter__(self) -> MQTTClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    # ----------------------------------------------------------------------------------------- link callbacks

    @property
    def awaiting_acks(self) -> bool:
        """Whether QoS 1/2 publishes of ours await acknowledgements (the transport then leaves ACKs delayed)."""
        return bool(self.session.outgoing.inflight)

    def link_data(self, data: bytes) -> None:
        session = self.session
        try:
            events = session.receive_data(data, self.packets_per_turn)
        except RemoteProtocolError as exc:
            self._protocol_error(exc)
            return
        if events:
            self._dispatch(events)
        answered = session.pending_bytes > 0
        if answered:
            self._flush()
        link = self._link
        if session.more_buffered:
            # A big read (hundreds of KiB under a flood): the rest on the next turn of the event loop, reading
            # paused meanwhile, so that the application's timers and screen are never held up for long.
            if link is not None and not self._reading_paused:
                self._reading_paused = True
                with contextlib.suppress(Exception):
                    link.transport.pause_reading()
            if not self._drain_scheduled and self._loop is not None:
                self._drain_scheduled = True
                self._loop.call_soon(self._drain_buffered)
        elif self._reading_paused:
            self._reading_paused = False
            if link is not None:
                with contextlib.suppress(Exception):
                    link.transport.resume_reading()
        elif data and link is not None and self._loop is not None:
            now = self._loop.time()
            # Never while acknowledgements flow: a broker keeps few messages in flight towards us (mosquitto and
            # ours 20) and we as many as it allows, so a paused read would hold up either side's next messages.
            if (
                len(data) < READ_BATCH
                and now - self._last_read < READ_PAUSE
                and not answered
                and not session.outgoing.inflight
            ):
                with contextlib.suppress(Exception):
                    link.transport.pause_reading()
                    self._loop.call_later(READ_PAUSE, self._read_again, link)
            self._last_read = now

    def _read_again(self, link: Link) -> None:
        """The end of a pause between small reads (see READ_PAUSE); a big read's pause ends on its own."""
        if link is self._link and not self._reading_paused:
            with contextlib.suppress(Exception):
                link.transport.resume_reading()

    def _protocol_error(self, exc: RemoteProtocolError) -> None:
        """The broker broke the protocol: close, and fail what can no longer be answered, with the reason."""
        session = self.session
        log.warning("protocol error from %s: %s (%s)", self.target, loggable(exc.message), exc.reason_code)
        error, connect_error = protocol_failure(exc, self.target, self.session.version)
        # What arrived before the bad packet in the same read is handled as usual (a QoS 1 message acknowledged
        # in that read is delivered), then the operations the bad packet answered fail with the error.
        before, session.events_before_error = session.events_before_error, []
        failed, session.failed_tokens = session.failed_tokens, []
        if before:
            self._dispatch(before)
        for token in failed:
            if isinstance(token, asyncio.Future) and not token.done():
                token.set_exception(error)
        self._flush()
        if self._link is not None:
            self._link.close()
        self._lost_error = error
        if self._connack is not None and not self._connack.done():
            if isinstance(connect_error, AuthenticationFailed):
                self._lost_error = connect_error
            self._connack.set_exception(connect_error)

    def _dispatch(self, events: list[Any]) -> None:
        now = time.time()
        streams = self._streams
        handlers = self._handlers
        for event in events:
            kind = type(event)
            if kind is Publish:
                if streams or handlers:
                    message = build_message(
                        event.topic, event.payload, event.qos, event.retain, event.dup, event.properties, now,
                        event.packet_id,
                    )  # fmt: skip
                    for stream in streams:
                        stream.put(message)
                    for handler in handlers:
                        try:
                            handler(message)
                        except Exception:
                            log.exception("message handler failed")
            elif kind is Completed:
                # The common answer inline: Success without properties, at the publish's own QoS, to a future
                # still waiting for it; _on_completed for the rest.
                token = event.token
                if (
                    type(token) is _Future
                    and event.reason_code == 0
                    and event.properties is EMPTY_PROPERTIES
                    and event.qos == event.publish.qos
                    and not token.done()
                ):
                    token.set_result(_QOS0_RESULT)
                else:
                    self._on_completed(event)
            else:
                self._on_event(event)

    def _drain_buffered(self) -> None:
        self._drain_scheduled = False
        if self._link is not None and self.session.more_buffered:
            self.link_data(b"")

    def _on_completed(self, completed: Completed) -> None:
        token = completed.token
        result = publish_result(completed)
        if result.downgraded:
            self.downgraded_publishes += 1
            if self.downgraded_publishes == 1:
                log.info("%s acknowledged a QoS 2 publish with PUBACK: it delivers at QoS 1", self.target)
        if isinstance(token, asyncio.Future) and not token.done():
            token.set_result(result)

    def _on_event(self, event: object) -> None:
        if isinstance(event, Connected):
            if self._connack is not None and not self._connack.done():
                self._connack.set_result(event.capabilities)
        elif isinstance(event, ConnectRefused):
            if self._connack is not None and not self._connack.done():
                self._connack.set_exception(
                    ConnackRefused(event.connack.reason_code, event.connack.properties, self.session.version)
                )
        elif isinstance(event, SubscribeDone | UnsubscribeDone):
            token = event.token
            if isinstance(token, asyncio.Future) and not token.done():
                token.set_result(event.suback if isinstance(event, SubscribeDone) else event.unsuback)
        elif isinstance(event, PingAnswered):
            if self._ping_sent is not None and self._loop is not None:
                self.stats.last_rtt = self._loop.time() - self._ping_sent
                self._ping_sent = None
                for waiter in self._ping_waiters:
                    if not waiter.done():
                        waiter.set_result(self.stats.last_rtt)
                self._ping_waiters.clear()
        elif isinstance(event, ServerDisconnected):
            self.last_disconnect = event
            self._lost_error = disconnected_by_broker(event.disconnect)
            log.info("%s", loggable(str(self._lost_error)))
            if self._link is not None:
                # The broker closes the connection after DISCONNECT; one that does not must not keep us waiting.
                self._link.close()
        elif isinstance(event, Reauthenticated) and self._auth_waiter is not None and not self._auth_waiter.done():
            self._auth_waiter.set_result(None)

    _lost_error: ClientError | None = None
    _connected_at = 0.0

    def link_lost(self, exc: BaseException | None) -> None:
        error: BaseException
        if self._lost_error is not None:
            error = self._lost_error
        else:
            error = connection_lost(self.session, self.options, exc)
        self._lost_error = None
        self._link = None
        was_connecting = self.session.state.value == "connecting"
        self.session.connection_lost()
        self._write_paused = False
        self._reading_paused = False
        if self._can_write is not None:
            self._can_write.set()
        if self._connack is not None and not self._connack.done():
            if not isinstance(error, ConnectError):
                error = closed_before_connack(self.options)
            self._connack.set_exception(error)
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
            self._keepalive_task = None
        if self._renew_task is not None and self._renew_task is not asyncio.current_task():
            self._renew_task.cancel()
        self._renew_task = None
        self.stats.bytes_in = self.session.bytes_in
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(error)
        if not self._closed and not was_connecting:
            self._set_status(Status.DISCONNECTED, error=error)

    def link_pause_writing(self) -> None:
        self._write_paused = True
        if self._can_write is None:
            self._can_write = asyncio.Event()
        self._can_write.clear()

    def link_resume_writing(self) -> None:
        self._write_paused = False
        self._reading_paused = False
        if self._can_write is not None:
            self._can_write.set()

    # ----------------------------------------------------------------------------------------- writing

    def _flush(self) -> None:
        self._flush_scheduled = False
        data = self.session.data_to_send()
        if data and self._link is not None:
            self._link.write(data)
            if self._loop is not None:
                self._last_sent = self._loop.time()

    def _schedule_flush(self) -> None:
        if self.session.pending_bytes >= _FLUSH_THRESHOLD:
            self._flush()
        elif not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    async def _writable(self) -> None:
        if self._write_paused and self._can_write is not None:
            await self._can_write.wait()

    # ----------------------------------------------------------------------------------------- operations

    def _check_open(self) -> None:
        if self._closed:
            raise NotConnected("the client is closed")
        if self._loop is None:
            raise NotConnected("call connect() first")

    async def publish(
        self,
        topic: str,
        payload: bytes | str = b"",
        qos: int = 0,
        retain: bool = False,
        properties: Properties = EMPTY_PROPERTIES,
        **property_values: Any,
    ) -> PublishResult:
        """Publish and wait for the broker's acknowledgement (PUBACK at QoS 1, PUBCOMP at QoS 2).

        ``payload`` as ``str`` is sent as UTF-8. Extra keyword arguments are MQTT 5 properties
        (``content_type="application/json"``, ``message_expiry_interval=60``, ...).

        Raises:
            PublishError, QueueFull, LocalProtocolError: nothing was sent. NotConnected: the client closed.
        """
        if self._closed or self._loop is None:
            self._check_open()
        if type(payload) is not bytes and isinstance(payload, str):
            payload = payload.encode()
        if property_values:
            properties = properties.replace(**property_values)
        if qos == 0:
            if self._write_paused:
                await self._writable()
            if properties is EMPTY_PROPERTIES:
                self.session.publish_plain(topic, payload, 0, retain)
            else:
                self.session.publish(build_publish(topic, payload, 0, retain, False, None, properties))
            self._schedule_flush()
            return _QOS0_RESULT
        assert self._loop is not None
        future: asyncio.Future[PublishResult] = self._loop.create_future()
        if properties is EMPTY_PROPERTIES:
            self.session.publish_plain(topic, payload, qos, retain, future)
        else:
            self.session.publish(build_publish(topic, payload, qos, retain, False, None, properties), future)
        self._schedule_flush()
        return await future

    def publish_nowait(
        self, topic: str, payload: bytes = b"", qos: int = 0, retain: bool = False,
        properties: Properties = EMPTY_PROPERTIES,
    ) -> asyncio.Future[PublishResult] | None:  # fmt: skip
        """Queue a publish without waiting; for QoS 1/2 return a future of its result."""
        loop = self._loop
        if self._closed or loop is None:
            self._check_open()
        assert loop is not None
        if qos == 0:
            if properties is EMPTY_PROPERTIES:
                self.session.publish_plain(topic, payload, 0, retain)
            else:
                self.session.publish(build_publish(topic, payload, 0, retain, False, None, properties))
            self._schedule_flush()
            return None
        future: asyncio.Future[PublishResult] = loop.create_future()
        if properties is EMPTY_PROPERTIES:
            self.session.publish_plain(topic, payload, qos, retain, future)
        else:
            self.session.publish(build_publish(topic, payload, qos, retain, False, None, properties), future)
        self._schedule_flush()
        return future

    async def subscribe(
        self,
        *topic_filters: str | Subscription,
        qos: int = 0,
        no_local: bool = False,
        retain_as_published: bool = False,
        retain_handling: RetainHandling = RetainHandling.SEND_ON_SUBSCRIBE,
        subscription_identifier: int | None = None,
        user_properties: Iterable[tuple[str, str]] = (),
    ) -> list[ReasonCode]:
        """Subscribe; return one reason code per filter (the granted QoS, or a failure code)."""
        self._check_open()
        assert self._loop is not None
        subs = [
            f
            if isinstance(f, Subscription)
            else Subscription(f, qos, no_local, retain_as_published, RetainHandling(retain_handling))
            for f in topic_filters
        ]
        if not subs:
            raise ValueError("subscribe() needs at least one topic filter")
        props = Properties(subscription_identifier=subscription_identifier, user_property=list(user_properties) or None)
        # A broker that takes only so many filters per SUBSCRIBE (AWS IoT Core: 8) gets several packets.
        per_packet = self.options.max_filters_per_subscribe or len(subs)
        futures: list[asyncio.Future[Any]] = []
        for start in range(0, len(subs), per_packet):
            future: asyncio.Future[Any] = self._loop.create_future()
            self.session.subscribe(subs[start : start + per_packet], props, future)
            futures.append(future)
        self._schedule_flush()
        return [code for suback in await asyncio.gather(*futures) for code in suback.reason_codes]

    async def unsubscribe(
        self, *topic_filters: str, user_properties: Sequence[tuple[str, str]] = ()
    ) -> list[ReasonCode]:
        """Unsubscribe; return one reason code per filter (MQTT 3.1.1 reports Success for each)."""
        self._check_open()
        assert self._loop is not None
        props = Properties(user_property=list(user_properties) or None)
        future: asyncio.Future[Any] = self._loop.create_future()
        self.session.unsubscribe(list(topic_filters), props, future)
        self._schedule_flush()
        unsuback = await future
        return list(unsuback.reason_codes) or [ReasonCode.SUCCESS] * len(topic_filters)

    async def ping(self) -> float:
        """Send PINGREQ and return the round-trip time in seconds."""
        self._check_open()
        if not self.connected:
            raise NotConnected(f"not connected to {self.target}")
        assert self._loop is not None
        waiter: asyncio.Future[float] = self._loop.create_future()
        self._ping_waiters.append(waiter)
        if self._ping_sent is None:
            self._ping_sent = self._loop.time()
            self.session.ping()
            self._flush()
        return await waiter

    async def reauthenticate(self, timeout: float = 10.0) -> None:
        """MQTT 5 re-authentication with the configured authentication method."""
        self._check_open()
        assert self._loop is not None
        self._auth_waiter = self._loop.create_future()
        self.session.reauthenticate()
        self._flush()
        async with asyncio.timeout(timeout):
            await self._auth_waiter

    # ----------------------------------------------------------------------------------------- keepalive

    async def _keepalive(self, link: Link | None) -> None:
        loop = asyncio.get_running_loop()
        while self._link is link and link is not None:
            keepalive = self.session.keepalive
            if keepalive <= 0:
                return
            now = loop.time()
            if self._ping_sent is not None and now - self._ping_sent >= keepalive:
                self._lost_error = keepalive_timeout(self.target, keepalive)
                log.warning("%s", self._lost_error)
                link.abort()
                return
            idle = now - self._last_sent
            if idle >= keepalive and self._ping_sent is None:
                self._ping_sent = now
                self.session.ping()
                self._flush()
                idle = 0.0
            wait = keepalive - idle
            if self._ping_sent is not None:
                wait = min(wait, keepalive - (loop.time() - self._ping_sent))
            await asyncio.sleep(max(0.05, wait))

    _renew_task: asyncio.Task[None] | None = None
    _renewing = False

    async def _renew(self, link: Link, credentials: Credentials) -> None:
        """Connect again with new credentials before ``credentials`` expire (on the source's clock, which is
        read every :data:`RENEW_CHECK_INTERVAL` seconds: a clock that jumps is noticed)."""
        source = self.options.credentials
        assert source is not None and credentials.expires_at is not None
        due = credentials.expires_at - source.renew_before(credentials)
        while self._link is link:
            left = due - source.now()
            if left <= 0:
                break
            await asyncio.sleep(min(left, RENEW_CHECK_INTERVAL))
        if self._link is not link or self._closed:
            return
        log.info("%s: the %s expires soon: connecting again with a new one", self.target, source.description)
        self._renewing = True
        self.session.disconnect()
        self._flush()
        link.close()

    async def _reauthenticate_before_expiry(self, link: Link) -> None:
        """Re-authenticate (AUTH 0x19) before the authentication method's token expires, as long as ``link``
        lasts; a broker that does not answer in time loses the connection (the client connects again)."""
        auth: Any = self.session.auth
        while self._link is link and auth.expires_at is not None:
            due = auth.expires_at - auth.renew_before()
            left = due - auth.now()
            if left > 0:
                await asyncio.sleep(min(left, RENEW_CHECK_INTERVAL))
                continue
            log.info("%s: the %s token expires soon: re-authenticating", self.target, auth.name)
            try:
                await self.reauthenticate(self.options.connect_timeout)
            except TimeoutError:
                if self._link is link:
                    log.warning("%s did not answer the re-authentication: connecting again", self.target)
                    link.close()
                return

    def sync_stats(self) -> ClientStats:
        """Refresh and return :attr:`stats` from the session's counters."""
        s = self.session
        self.stats.messages_in = s.messages_in
        self.stats.messages_out = s.messages_out
        self.stats.bytes_in = s.bytes_in
        self.stats.bytes_out = s.bytes_out
        self.stats.dropped = sum(stream.dropped for stream in self._streams)
        return self.stats
