"""One client connection to the broker: CONNECT handling, packet dispatch, acknowledgements, keepalive.

Theory of operation::

    AWAIT_CONNECT ──CONNECT accepted──▶ CONNECTED ──DISCONNECT / error / timeout / takeover──▶ CLOSED
          │ refused, malformed, timeout                                                          ▲
          └──────────────────────────────────────────────────────────────────────────────────────┘

Everything a client sends is decoded by the protocol core; a violation closes this connection only, with the
reason code the core attached (a CONNACK before the session exists, a DISCONNECT after, for MQTT 5 clients;
3.1.1 has no DISCONNECT from the server, so the connection just closes).

Before login, limits hold from the first byte: the first packet must announce a CONNECT of at most
``MAX_CONNECT_SIZE`` bytes (else the connection closes at its header); while the password is checked the
transport stops reading, and what was already read has its headers checked against ``max_packet_size``; what all
connections not yet logged in hold is bounded by ``PRELOGIN_BUDGET`` (beyond it the largest holder is closed);
connections being authenticated count against ``max_connections``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections import Counter
from collections.abc import Iterator
from enum import Enum
from typing import Protocol

from mqttchat.broker import admission
from mqttchat.broker.admission import OUTBOUND_ALIAS_BYTES, Credentials, Refusal
from mqttchat.broker.auth import SCRAM_MECHANISMS, EnhancedAuth, ScramRefused
from mqttchat.broker.clock import Timer
from mqttchat.broker.core import BrokerCore
from mqttchat.broker.logins import LoginCheck, Verdict
from mqttchat.broker.session import Session
from mqttchat.protocol import (
    EMPTY_PROPERTIES,
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    InboundTopicAliases,
    OutboundTopicAliases,
    Packet,
    PacketReader,
    PingReq,
    PingResp,
    Properties,
    PropertyId,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    ReasonCode,
    RemoteProtocolError,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    UnsupportedProtocolVersion,
)
from mqttchat.protocol.constants import MAX_PACKET_SIZE, PacketType
from mqttchat.protocol.reason_codes import VALID_REASON_CODES, connack_code_v311
from mqttchat.protocol.topics import MAX_TOPIC_LEVELS, too_deep
from mqttchat.untrusted import loggable

log = logging.getLogger("mqttchat.broker")

V5 = 5
#: Beyond this many bytes waiting in the transport, QoS 0 messages to this client are dropped (and counted).
WRITE_BUFFER_LIMIT = 4 * 1024 * 1024

#: The largest CONNECT accepted (or max_packet_size when smaller): more than a client id, a password and a will
#: at their 65,535-byte maxima together. A first packet declaring more is refused at its header.
MAX_CONNECT_SIZE = 256 * 1024
#: Bytes all connections not yet logged in may hold together (partial CONNECTs, input read while a password is
#: checked); beyond it the connection holding the most is closed.
PRELOGIN_BUDGET = 32 * 1024 * 1024
#: Seconds between log lines about connections closed for the pre-login budget.
PRELOGIN_LOG_INTERVAL = 5.0
#: Seconds between two checks of the connections' keepalives.
KEEPALIVE_CHECK = 0.5
#: Application messages handled from one connection's input in one turn of the event loop. A read brings up to
#: 256 KiB (thousands of small publishes, 100 ms of routing); the rest waits in the reader, the connection's
#: reading paused, until the next turn: an embedded broker shares the event loop with the app's screen, and a
#: turn of the loop runs the broker's batch, the app's client's and the screen's refresh together (128 took
#: about 2-4 ms here).
PUBLISHES_PER_TURN = 128
#: The smallest MQTT 5 acknowledgement carrying a reason code (PUBACK with 0x10, No matching subscribers).
_ACK_WITH_REASON_SIZE = 5


class Link(Protocol):
    """The transport under one connection, as the asyncio shell (:mod:`mqttchat.broker.server`) or a test gives it."""

    def write(self, data: bytes) -> None:
        """Send ``data`` to the client."""

    def close(self, graceful: bool) -> None:
        """Close; ``graceful`` (after a goodbye) half-closes, or waits for the client to close, and drains its input
        for a moment, so that a client still sending reads the reason code instead of a reset."""

    def set_reading(self, reading: bool) -> None:
        """Stop or resume reading the client's input (stopped while its password is checked)."""

    def write_buffer_size(self) -> int:
        """Bytes written and not yet taken by the network."""


class State(Enum):
    AWAIT_CONNECT = "await CONNECT"
    #: The password is being checked in a worker thread (PBKDF2 takes milliseconds); the transport is not read.
    AUTHENTICATING = "authenticating"
    CONNECTED = "connected"
    CLOSED = "closed"


_AWAIT_CONNECT = State.AWAIT_CONNECT
_AUTHENTICATING = State.AUTHENTICATING
_CONNECTED = State.CONNECTED
_CLOSED = State.CLOSED
_SUCCESS = ReasonCode.SUCCESS


class Connections:
    """The broker's open connections, the bytes those not logged in yet hold (see ``PRELOGIN_BUDGET``), and their
    keepalive: every ``KEEPALIVE_CHECK`` seconds, a client silent for 1.5 times its keepalive is disconnected."""

    __slots__ = ("_keepalive_timer", "_overbudget_timer", "core", "open", "overbudget", "prelogin_bytes")

    def __init__(self, core: BrokerCore) -> None:
        self.core = core
        self.open: set[BrokerConnection] = set()
        #: Bytes held by connections not logged in yet (see BrokerConnection._count_prelogin).
        self.prelogin_bytes = 0
        self._keepalive_timer: Timer | None = None
        #: Connections closed for the pre-login budget and not logged yet, per source address: a flood of them is
        #: logged as one line per PRELOGIN_LOG_INTERVAL, not a line per connection.
        self.overbudget: Counter[str] = Counter()
        self._overbudget_timer: Timer | None = None

    def closed_over_budget(self, conn: BrokerConnection) -> None:
        """Log that ``conn`` was closed for the pre-login budget: the first at once, the rest summed up."""
        if self._overbudget_timer is None:
            log.warning(
                "closing connection from %s: %d bytes held before login; all connections not logged in hold %d "
                "(at most %d)", conn.peer, conn._held, self.prelogin_bytes, PRELOGIN_BUDGET,
            )  # fmt: skip
            self._overbudget_timer = self.core.clock.call_later(PRELOGIN_LOG_INTERVAL, self.log_overbudget)
        else:
            self.overbudget[conn.source] += 1

    def log_overbudget(self) -> None:
        """Log the connections closed for the pre-login budget since the last line (at most every interval)."""
        self._overbudget_timer = None
        if not self.overbudget:
            return
        worst = ", ".join(f"{count} from {where}" for where, count in self.overbudget.most_common(3))
        log.warning(
            "closed %d more connections holding too much before login (at most %d bytes for all; %s%s)",
            sum(self.overbudget.values()), PRELOGIN_BUDGET, worst, ", ..." if len(self.overbudget) > 3 else "",
        )  # fmt: skip
        self.overbudget.clear()
        self._overbudget_timer = self.core.clock.call_later(PRELOGIN_LOG_INTERVAL, self.log_overbudget)

    def watch_keepalives(self) -> None:
        """Start checking keepalives (until :meth:`stop_watching`)."""
        if self._keepalive_timer is None:
            self._keepalive_timer = self.core.clock.call_later(KEEPALIVE_CHECK, self._check_keepalives)

    def stop_watching(self) -> None:
        if self._keepalive_timer is not None:
            self._keepalive_timer.cancel()
            self._keepalive_timer = None

    def _check_keepalives(self) -> None:
        clock = self.core.clock
        now = clock.now()
        for conn in list(self.open):
            # A connection paused by overload protection is not read: its PINGREQs wait (see its release()).
            if (
                conn.state is _CONNECTED
                and conn.keepalive
                and now - conn.last_received > 1.5 * conn.keepalive
                and conn.throttled_by is None
            ):
                conn.keepalive_expired()
        self._keepalive_timer = clock.call_later(KEEPALIVE_CHECK, self._check_keepalives)

    def __iter__(self) -> Iterator[BrokerConnection]:
        return iter(self.open)

    def __len__(self) -> int:
        return len(self.open)


class BrokerConnection:
    """The MQTT side of one network connection. Transport-agnostic: its :class:`Link` is given."""

    __slots__ = (
        "_ack_no_match",
        "_acks_held",
        "_aliases",
        "_aliases_out",
        "_clean",
        "_enhanced",
        "_flush_scheduled",
        "_goodbye",
        "_held",
        "_login",
        "_out",
        "_out_limit",
        "_reader",
        "_timer",
        "_yielding",
        "broker",
        "client_id",
        "connections",
        "keepalive",
        "last_received",
        "link",
        "listener",
        "listener_limit",
        "paused",
        "peer",
        "session",
        "state",
        "throttled_by",
        "version",
    )

    def __init__(
        self,
        connections: Connections,
        link: Link,
        peer: str,
        listener: str,
        listener_limit: int = -1,
    ) -> None:
        broker = connections.core
        self.broker = broker
        self.connections = connections
        #: The listener's own max_connections (-1: none).
        self.listener_limit = listener_limit
        self.link = link
        self.peer = peer
        self.listener = listener
        self.state = _AWAIT_CONNECT
        self.version = V5
        self.session: Session | None = None
        self.client_id = ""
        self.keepalive = 0
        self.last_received = broker.clock.now()
        self.paused = False
        #: The subscribers whose congestion paused this connection (overload protection), None while it is read;
        #: and the acknowledgements held meanwhile (an MQTT 5 publisher gets no Receive Maximum credit back).
        self.throttled_by: set[Session] | None = None
        self._acks_held: list[bytes] | None = None
        self._reader = PacketReader(
            None, broker.config.max_packet_size or MAX_PACKET_SIZE, max_connect_size=MAX_CONNECT_SIZE
        )
        self._out: list[bytes] = []
        #: The client's Maximum Packet Size (0: the protocol's), and whether a 5-byte PUBACK (0x10) fits in it.
        self._out_limit = 0
        self._ack_no_match = False
        #: Bytes this connection holds before login, as counted in connections.prelogin_bytes.
        self._held = 0
        self._login: LoginCheck | None = None
        #: MQTT 5 enhanced authentication (SCRAM), from a CONNECT that names a method.
        self._enhanced: EnhancedAuth | None = None
        self._flush_scheduled = False
        #: The rest of a big read waits for the next turn (PUBLISHES_PER_TURN), reading paused meanwhile.
        self._yielding = False
        #: A refusing CONNACK or a DISCONNECT was written: close gracefully, so that the client reads it.
        self._goodbye = False
        self._clean = False
        self._aliases: InboundTopicAliases | None = None
        #: Aliases for the topics we send, when the client's CONNECT accepts them (MQTT 5 Topic Alias Maximum).
        self._aliases_out: OutboundTopicAliases | None = None
        self._timer: Timer | None = broker.clock.call_later(broker.config.connect_timeout, self._connect_timeout)
        connections.open.add(self)
        broker.stats.connections_total += 1
        if broker.passwords is not None and broker.logins.penalised(self.source):
            # A source that spent its failed logins: read its CONNECT a moment later (a flood slows down).
            link.set_reading(False)
            broker.clock.call_later(broker.logins.tarpit, self._tarpit_over)

    @property
    def source(self) -> str:
        """The peer's address without the port: what login rate limits are kept per."""
        peer = self.peer
        return peer.rsplit(":", 1)[0] if ":" in peer else peer

    def _tarpit_over(self) -> None:
        if self.state is _AWAIT_CONNECT:
            self.link.set_reading(True)

    def __repr__(self) -> str:
        return f"<BrokerConnection {self.client_id!r} from {self.peer} {self.state.value}>"

    # ------------------------------------------------------------------------------------------ output

    @property
    def writable(self) -> bool:
        """False while the client does not drain its socket: QoS 0 messages to it are then dropped."""
        if self.paused:
            return self.link.write_buffer_size() < WRITE_BUFFER_LIMIT
        return self.state is _CONNECTED

    def send(self, packet: Packet) -> None:
        data = packet.encode(self.version)
        if self._out_limit and len(data) > self._out_limit:
            fitted = self._fit(packet, data)
            if fitted is None:
                return
            data = fitted
        self._out.append(data)
        self.broker.stats.bytes_sent += len(data)
        self._schedule_flush()

    def send_publish(self, packet: Publish, data: bytes | None = None) -> None:
        """Send an application message; ``data`` is its encoding when the caller already has it."""
        aliases = self._aliases_out
        if aliases is not None:
            sent = aliases.apply(packet)
            if sent is not packet:
                data = sent.encode(self.version)  # this connection's own encoding (the shared one has no alias)
        if data is None:
            data = packet.encode(self.version)
        session = self.session
        limit = session.max_packet_size if session is not None else 0
        if limit and len(data) > limit:
            # Larger than the client's Maximum Packet Size: not sent, handled as if delivered (MQTT 5 3.1.2.11.4).
            self.broker.count_drop(session, "the message is larger than its Maximum Packet Size")  # type: ignore[arg-type]
            if packet.qos and session is not None and session.outgoing_flow is not None:
                pid = packet.packet_id
                entry = session.outgoing_flow.discard(pid) if pid is not None else None
                if entry is not None:
                    store = self.broker.persistence
                    if store is not None and isinstance(entry.token, int):
                        store.delete_messages([entry.token])  # or it would come back after every restart
            return
        self._out.append(data)
        stats = self.broker.stats
        stats.bytes_sent += len(data)
        stats.messages_sent += 1
        self._schedule_flush()

    def _fit(self, packet: Packet, data: bytes) -> bytes | None:
        """``packet`` made to fit the client's Maximum Packet Size [MQTT-3.1.2-24]: an acknowledgement saying
        "no matching subscribers" as a plain success, else without its properties (reason string, user
        properties). When even that does not fit, nothing is sent and the connection closes (None)."""
        limit = self._out_limit
        code = getattr(packet, "reason_code", None)
        if isinstance(packet, (PubAck, PubRec)) and code is ReasonCode.NO_MATCHING_SUBSCRIBERS:
            data = type(packet)(packet.packet_id).encode(self.version)
        elif getattr(packet, "properties", EMPTY_PROPERTIES) is not EMPTY_PROPERTIES:
            data = dataclasses.replace(packet, properties=EMPTY_PROPERTIES).encode(self.version)  # type: ignore[type-var]
        if len(data) <= limit:
            return data
        log.info(
            "closing connection of %s from %s: a %s of %d bytes does not fit in its Maximum Packet Size %d",
            loggable(self.client_id), self.peer, packet.TYPE.name, len(data), limit,
        )  # fmt: skip
        self.broker.clock.call_soon(functools.partial(self.close, False))
        return None

    def _fits(self, data: bytes) -> bool:
        return not self._out_limit or len(data) <= self._out_limit

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.broker.clock.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if out and self.state is not _CLOSED:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            self.link.write(data)
        elif out:
            out.clear()

    # ------------------------------------------------------------------------------------------ input

    def data_received(self, data: bytes) -> None:
        if self.state is _CLOSED:
            return
        broker = self.broker
        broker.stats.bytes_received += len(data)
        now = broker.clock.now
        reader = self._reader
        if self.throttled_by:  # (never an empty set: None once released)
            reader.feed(data)  # read before the transport paused: it waits with the rest (see release())
            return
        budget = PUBLISHES_PER_TURN
        try:
            reader.feed(data)
            while self.state is not _CLOSED and self.state is not _AUTHENTICATING:
                if self.state is _CONNECTED:
                    acked = reader.take_plain_pubacks()
                    if acked:
                        self.last_received = now()
                        self._on_pubacks(acked)
                        continue
                packet = reader.next_packet()
                if packet is None:
                    break
                # Keepalive counts control packets, not bytes: a packet trickled a byte at a time does not
                # keep a connection alive (MQTT-3.1.2-22).
                self.last_received = now()
                kind = type(packet)
                if kind is Publish:
                    self._on_publish(packet)  # type: ignore[arg-type]
                    if self.throttled_by is not None:
                        break  # a subscriber it feeds is congested: what follows waits unparsed in the reader
                    budget -= 1
                    if not budget:
                        if reader.buffered and self.state is _CONNECTED:
                            self._yield_turn()
                        break
                elif kind is PubAck:  # only after CONNECT: the reader accepts nothing else first
                    self._on_ack(packet)  # type: ignore[arg-type]
                else:
                    self._on_control(packet)
            if self.state is _AUTHENTICATING:
                # Read before the transport paused (the rest of the read that brought the CONNECT): its headers
                # are checked now, as they would be if it were read.
                reader.check_next_header()
        except UnsupportedProtocolVersion as exc:
            self._refuse_version(exc)
        except RemoteProtocolError as exc:
            self.protocol_error(exc)
        if self.state is not _CONNECTED:
            self._count_prelogin()
        if self._out:
            self.flush()

    def _count_prelogin(self) -> None:
        """Keep connections.prelogin_bytes up to date with what this connection holds before login; over the budget,
        close the connections holding the most until it holds again."""
        held = self._reader.buffered if self.state is _AWAIT_CONNECT or self.state is _AUTHENTICATING else 0
        connections = self.connections
        if held == self._held:
            return
        connections.prelogin_bytes += held - self._held
        self._held = held
        while connections.prelogin_bytes > PRELOGIN_BUDGET:
            waiting = [c for c in connections.open if c._held and c.state is not _CLOSED]
            if not waiting:
                break
            biggest = max(waiting, key=lambda c: c._held)
            connections.closed_over_budget(biggest)
            biggest.close(clean=False)

    def _on_control(self, packet: Packet) -> None:
        kind = type(packet)
        if self.state is _AWAIT_CONNECT:
            if self._enhanced is not None:  # between CONNECT and CONNACK: the authentication exchange
                self._on_auth(packet)
                return
            assert isinstance(packet, Connect)  # the reader accepts nothing else first
            self._on_connect(packet)
        elif kind is PubAck or kind is PubRec or kind is PubComp:
            self._on_ack(packet)  # type: ignore[arg-type]
        elif kind is PubRel:
            session = self.session
            assert session is not None
            comp = session.incoming(self.broker.config.receive_maximum).receive_pubrel(packet)  # type: ignore[arg-type]
            store = self.broker.persistence
            if store is not None and session.persistent:
                store.qos2_finished(session, comp.packet_id)
                store.after_commit(self, comp)
            else:
                self.send(comp)
        elif kind is Subscribe:
            self._on_subscribe(packet)  # type: ignore[arg-type]
        elif kind is Unsubscribe:
            self._on_unsubscribe(packet)  # type: ignore[arg-type]
        elif kind is PingReq:
            self.send(PingResp())
        elif kind is Disconnect:
            self._on_disconnect(packet)  # type: ignore[arg-type]
        elif kind is Auth:
            self._on_auth(packet)
        else:
            raise RemoteProtocolError(f"a client does not send {kind.__name__}")

    # ------------------------------------------------------------------------------------------ CONNECT

    def _connect_timeout(self) -> None:
        self._timer = None
        if self.state is _AWAIT_CONNECT:
            log.info(
                "closing connection from %s: no CONNECT within %g s", self.peer, self.broker.config.connect_timeout
            )
            self.close(clean=False)

    def _refuse_version(self, exc: UnsupportedProtocolVersion) -> None:
        level = exc.protocol_level or 0
        log.info("refused connection from %s: %s", self.peer, loggable(exc.message))
        self.broker.stats.connections_refused += 1
        if level >= V5:
            self._write_now(ConnAck(False, ReasonCode.UNSUPPORTED_PROTOCOL_VERSION).encode(V5))
        else:
            self._write_now(ConnAck(False, ReasonCode.UNSUPPORTED_PROTOCOL_VERSION).encode(4))  # return code 0x01
        self.close(clean=False)

    def _write_now(self, data: bytes) -> None:
        """Write a goodbye (a refusing CONNACK, a DISCONNECT) after what is queued; the close that follows is then
        graceful (see :meth:`Link.close`)."""
        self.flush()
        self.link.write(data)
        self._goodbye = True

    def _refuse(self, connect: Connect, refusal: Refusal) -> None:
        reason = refusal.reason
        why = refusal.why
        if not refusal.quiet:  # (a flood's refusals are summed up by broker.logins instead)
            log.info("refused '%s' from %s: %s (%s)", loggable(connect.client_id), self.peer, reason.title,
                     loggable(why))  # fmt: skip
        self.broker.stats.connections_refused += 1
        if connect.protocol_version == V5:
            wants_reason = connect.properties.request_problem_information != 0
            props = Properties(reason_string=why) if wants_reason else EMPTY_PROPERTIES
            data = ConnAck(False, reason, props).encode(V5)
            limit = connect.properties.maximum_packet_size
            if limit is not None and len(data) > limit:
                data = ConnAck(False, reason).encode(V5)  # the reason string would not fit: leave it out
            if limit is None or len(data) <= limit:  # else nothing fits: the connection just closes
                self._write_now(data)
        else:
            code = connack_code_v311(reason) if refusal.v311_code is None else refusal.v311_code
            self._write_now(bytes((0x20, 2, 0, code)))
        self.close(clean=False)

    def _on_connect(self, connect: Connect) -> None:
        broker = self.broker
        config = broker.config
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        refusal = admission.check_request(connect, config, SCRAM_MECHANISMS if broker.passwords is not None else ())
        if refusal is not None:
            self._refuse(connect, refusal)
            return
        self.version = connect.protocol_version
        # Connection limits, before any password is checked: connections being authenticated count.
        if config.max_connections >= 0 or self.listener_limit >= 0:
            admitted = [c for c in self.connections.open if c.state is _CONNECTED or c.state is _AUTHENTICATING]
            on_listener = sum(c.listener == self.listener for c in admitted) if self.listener_limit >= 0 else 0
            refusal = admission.check_capacity(config, len(admitted), on_listener, self.listener, self.listener_limit)
            if refusal is not None:
                self._refuse(connect, refusal)
                return
        method = connect.properties.authentication_method
        if method is not None:  # a SCRAM login (check_request refused other methods): the proof is the password
            self._enhanced = EnhancedAuth(broker.passwords, method, connect)
            self._timer = broker.clock.call_later(config.connect_timeout, self._connect_timeout)
            try:
                self.send(self._enhanced.challenge(connect.properties.authentication_data))
            except ScramRefused as exc:
                self._refuse_enhanced(connect, str(exc))
            return
        credentials = admission.check_credentials(connect, config, broker.passwords)
        if isinstance(credentials, Refusal):
            self._refuse(connect, credentials)
            return
        if credentials is Credentials.CHECK_PASSWORD:
            assert connect.username is not None and connect.password is not None
            # PBKDF2 costs milliseconds: checked in a worker thread, few at a time (broker/logins.py); this
            # connection is not read meanwhile.
            result = broker.logins.check(
                broker.passwords, connect.username, connect.password, self.source,
                lambda verdict: self._authenticated(connect, verdict),
            )  # fmt: skip
            if isinstance(result, LoginCheck):
                self.state = _AUTHENTICATING
                self._login = result
                self.link.set_reading(False)
                return
            if result is not Verdict.ACCEPTED:
                self._refuse(connect, admission.login_refusal(result))
                return
        self._accept(connect)

    def _on_auth(self, packet: Packet) -> None:
        """AUTH during a SCRAM login (before CONNACK) or a re-authentication."""
        enhanced = self._enhanced
        if enhanced is None:
            raise RemoteProtocolError("re-authentication is not supported without an authentication method")
        if not isinstance(packet, Auth):
            raise RemoteProtocolError(f"{type(packet).__name__} before the authentication exchange ended")
        connect = enhanced.connect
        try:
            answer = enhanced.on_auth(packet)
        except ScramRefused as exc:
            if connect is None:
                log.info("'%s' from %s failed re-authentication: %s", loggable(self.client_id), self.peer,
                         loggable(str(exc)))  # fmt: skip
                raise RemoteProtocolError("re-authentication failed", ReasonCode.NOT_AUTHORIZED) from None
            self._refuse_enhanced(connect, str(exc))
            return
        if isinstance(answer, Auth):
            self.send(answer)
            return
        username, final = answer
        if connect is None:
            self.send(Auth(ReasonCode.SUCCESS, final))
            return
        if connect.username is not None and connect.username != username:
            self._refuse_enhanced(connect, f"the CONNECT names {connect.username!r}, the SCRAM login {username!r}")
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        enhanced.connect = None
        self._accept(dataclasses.replace(connect, username=username, password=None), final)

    def _refuse_enhanced(self, connect: Connect, why: str) -> None:
        """A SCRAM login refused: the log says why, the client only that it was not authorized."""
        log.info("refused '%s' from %s: SCRAM login failed: %s", loggable(connect.client_id), self.peer,
                 loggable(why))  # fmt: skip
        self._enhanced = None
        self.broker.logins.failed(self.source)
        self._refuse(connect, Refusal(ReasonCode.NOT_AUTHORIZED, "not authorized", quiet=True))

    def _authenticated(self, connect: Connect, verdict: Verdict) -> None:
        if self.state is not _AUTHENTICATING:
            return  # closed meanwhile
        self._login = None
        self.state = _AWAIT_CONNECT
        self.link.set_reading(True)
        if verdict is not Verdict.ACCEPTED:
            self._refuse(connect, admission.login_refusal(verdict))
            return
        self._accept(connect)
        self.data_received(b"")  # handle what arrived while the password was checked
        if self._out:
            self.flush()

    def _accept(self, connect: Connect, auth_properties: Properties | None = None) -> None:
        broker = self.broker
        config = broker.config
        version = connect.protocol_version
        username = connect.username
        # Client identifier.
        client_id = connect.client_id
        assigned = None
        if not client_id:
            if not config.allow_zero_length_clientid or (version != V5 and not connect.clean_start):
                self._refuse(
                    connect, Refusal(ReasonCode.CLIENT_IDENTIFIER_NOT_VALID, "a client identifier is required")
                )
                return
            client_id = assigned = broker.new_client_id()
        access = broker.acl.for_client(username, client_id) if broker.acl is not None else None
        owner = broker.sessions.get(client_id)
        refusal = admission.check_owner(owner, username, broker.passwords)
        if refusal is not None:
            assert owner is not None
            log.warning("client '%s' refused to %s: its session belongs to %s", loggable(client_id),
                        admission.who(username), admission.who(owner.username))  # fmt: skip
            self._refuse(connect, refusal)
            return
        terms = admission.negotiate(connect, config, assigned)
        if terms is None:
            log.info(
                "closing connection of %s from %s: no CONNACK fits in its Maximum Packet Size %d",
                loggable(client_id), self.peer, connect.properties.maximum_packet_size,
            )  # fmt: skip
            self.broker.stats.connections_refused += 1
            self.close(clean=False)
            return
        session, present = broker.take_session(client_id, connect.clean_start, username)
        self.session = session
        self.client_id = client_id
        session.connection = self
        session.version = version
        session.username = username
        # _accept runs for a user name only once its password was checked, when there is a password file.
        session.authenticated = username is not None and broker.passwords is not None
        session.access = access
        session.will = connect.will
        session.expiry_interval = terms.expiry
        window = terms.window
        session.window = window  # a flow created later takes it; a resumed one below
        limit = terms.max_packet_size
        session.max_packet_size = limit
        self._out_limit = limit
        self._ack_no_match = version == V5 and (not limit or limit >= _ACK_WITH_REASON_SIZE)
        self.keepalive = terms.keepalive
        self.state = _CONNECTED
        self._count_prelogin()
        # (MQTT 3.1.1 has no aliases: its connections, often the most numerous, keep none)
        self._aliases = InboundTopicAliases(terms.aliases_in) if version == V5 else None
        self._aliases_out = OutboundTopicAliases(terms.aliases_out, OUTBOUND_ALIAS_BYTES) if terms.aliases_out else None
        props = terms.connack_properties
        if auth_properties is not None:  # SCRAM's server-final message: the proof that we know the password
            props = props.replace(
                authentication_method=auth_properties.authentication_method,
                authentication_data=auth_properties.authentication_data,
            )
        self.send(ConnAck(present, ReasonCode.SUCCESS, props))
        if config.log_connections:
            log.info(
                "%s connected from %s (MQTT %s, %s, keepalive %d%s)", loggable(client_id), self.peer,
                "5.0" if version == V5 else "3.1.1", "session resumed" if present else "new session",
                self.keepalive, f", user '{loggable(username)}'" if username else "",
            )  # fmt: skip
        # Resume: unacknowledged deliveries first (DUP), then the queue.
        if present and session.outgoing_flow is not None:
            out = session.outgoing_flow.resume(True, window)
            for packet in out.packets:
                if type(packet) is Publish:
                    self.send_publish(packet)
                else:
                    self.send(packet)
        broker.pump(session)
        if broker.persistence is not None:
            broker.persistence.session_connected(session)
            broker.persistence.save_will(session)

    # ------------------------------------------------------------------------------------------ PUBLISH

    def _on_publish(self, publish: Publish) -> None:
        session = self.session
        if session is None:
            raise RemoteProtocolError("PUBLISH before CONNECT")
        broker = self.broker
        config = broker.config
        if self.version == V5 and publish.properties is not EMPTY_PROPERTIES:
            assert self._aliases is not None
            publish = self._aliases.resolve(publish)
            props = publish.properties
            if props is not EMPTY_PROPERTIES and PropertyId.SUBSCRIPTION_IDENTIFIER in props:
                raise RemoteProtocolError("a client may not send a Subscription Identifier in PUBLISH")
        qos = publish.qos
        if qos > config.maximum_qos:
            raise RemoteProtocolError(f"QoS {qos} is above the announced maximum", ReasonCode.QOS_NOT_SUPPORTED)
        if publish.retain and not config.retain_available:
            raise RemoteProtocolError("retained messages are not available", ReasonCode.RETAIN_NOT_SUPPORTED)
        reason = _SUCCESS
        access = session.access
        if publish.topic.startswith("$SYS"):
            # The broker's own statistics: clients may read them, never forge them (MQTT 4.7.2).
            reason = ReasonCode.NOT_AUTHORIZED
            log.info("publish by '%s' to '%s' refused: $SYS topics are the broker's", loggable(self.client_id),
                     loggable(publish.topic))  # fmt: skip
        elif too_deep(publish.topic):
            # Each level is a node of the retained store and of routing: see MAX_TOPIC_LEVELS.
            reason = ReasonCode.TOPIC_NAME_INVALID
            log.info("publish by %s refused: its topic has more than %d levels", loggable(self.client_id),
                     MAX_TOPIC_LEVELS)  # fmt: skip
        elif access is not None and not access.can_publish(publish.topic):
            reason = ReasonCode.NOT_AUTHORIZED
            log.info("publish by '%s' to '%s' refused by the ACL", loggable(self.client_id), loggable(publish.topic))
        elif config.message_size_limit and len(publish.payload) > config.message_size_limit:
            reason = ReasonCode.QUOTA_EXCEEDED
            broker.count_drop(session, f"its payload of {len(publish.payload)} bytes exceeds message_size_limit")
        if qos == 0:
            if reason is _SUCCESS:
                broker.publish(publish, session)
            return
        if qos == 1 and reason is _SUCCESS and broker.persistence is None:
            # The common case, without objects: route it, then PUBACK (Success, or No matching subscribers).
            count = broker.publish(publish, session)
            pid = publish.packet_id.to_bytes(2, "big")  # type: ignore[union-attr]
            data = b"\x40\x03" + pid + b"\x10" if count == 0 and self._ack_no_match else b"\x40\x02" + pid
            if self.throttled_by is not None:
                self._hold_ack(data)
                return
            self._out.append(data)
            broker.stats.bytes_sent += len(data)
            self._schedule_flush()
            return
        if self.version != V5 and reason.is_error:
            # MQTT 3.1.1 cannot refuse a message: acknowledge it and drop it, as mosquitto does.
            deliver, ack = session.incoming(broker.config.receive_maximum).receive_publish(publish)
            if ack is not None:
                self.send(ack)
            return
        deliver, ack = session.incoming(broker.config.receive_maximum).receive_publish(publish, reason)
        if deliver and qos == 2 and broker.persistence is not None and session.persistent:
            broker.persistence.qos2_received(session, publish.packet_id)
        if deliver:
            count = broker.publish(publish, session)
            if count == 0 and self._ack_no_match and ack is not None and ack.reason_code is _SUCCESS:
                ack = type(ack)(ack.packet_id, ReasonCode.NO_MATCHING_SUBSCRIBERS)
        if ack is not None:
            if broker.persistence is not None:
                broker.persistence.after_commit(self, ack)
            elif self.throttled_by is not None and self._fits(data := ack.encode(self.version)):
                self._hold_ack(data)
            else:
                self.send(ack)

    def _on_pubacks(self, packet_ids: list[int]) -> None:
        """A run of plain PUBACKs (Success): settle them without packet objects when nothing else is due."""
        session = self.session
        assert session is not None
        flow = session.outgoing_flow
        if flow is None:
            return
        fast = self.broker.persistence is None or not session.persistent
        settle = flow.settle_puback
        for pid in packet_ids:
            if not (fast and settle(pid)):
                self._on_ack(PubAck(pid))
        if session.queue:
            self.broker.pump(session)

    def _on_ack(self, packet: PubAck | PubRec | PubComp) -> None:
        session = self.session
        if session is None:  # between CONNECT and CONNACK (a SCRAM login)
            raise RemoteProtocolError(f"{type(packet).__name__} before CONNACK")
        flow = session.outgoing_flow
        if flow is None:
            return
        if (
            type(packet) is PubAck
            and (self.broker.persistence is None or not session.persistent)
            and flow.settle_puback(packet.packet_id)
        ):
            if session.queue:
                self.broker.pump(session)
            return
        out = flow.receive(packet)
        store = self.broker.persistence
        if store is not None and session.persistent:
            if out.completed:
                store.completed(session, out.completed)
            if type(packet) is PubRec and packet.reason_code < 0x80:
                entry = flow.inflight.get(packet.packet_id)
                if entry is not None and isinstance(entry.token, int):
                    store.released(entry.token)
            # PUBREL only once "released" is on disk: otherwise a crash right after the receiver's PUBCOMP
            # would make us resend the PUBLISH, which the receiver (rightly) takes for a new message.
            for p in out.packets:
                if type(p) is PubRel:
                    store.after_commit(self, p)
                else:
                    self.send(p)
        else:
            for p in out.packets:
                self.send(p)
        self.broker.pump(session)

    # ------------------------------------------------------------------------------------------ (UN)SUBSCRIBE

    def _on_subscribe(self, packet: Subscribe) -> None:
        session = self.session
        assert session is not None
        sub_ids = packet.properties.subscription_identifier
        codes = self.broker.subscribe(session, packet.subscriptions, sub_ids[0] if sub_ids else None)
        self.send(SubAck(packet.packet_id, tuple(codes)))
        self.broker.send_retained()

    def _on_unsubscribe(self, packet: Unsubscribe) -> None:
        session = self.session
        assert session is not None
        codes = self.broker.unsubscribe(session, packet.topic_filters)
        self.send(UnsubAck(packet.packet_id, tuple(codes)))

    # ------------------------------------------------------------------------------------------ ending

    def _on_disconnect(self, packet: Disconnect) -> None:
        session = self.session
        assert session is not None
        expiry = packet.properties.session_expiry_interval
        if expiry is not None:
            if session.expiry_interval == 0 and expiry != 0:
                raise RemoteProtocolError("DISCONNECT may not set a session expiry when CONNECT set none")
            session.expiry_interval = expiry
        # Only a normal disconnection (0x00) discards the will (MQTT 5.0 3.14.4); 0x04 and error codes publish it.
        self.close(clean=packet.reason_code == 0)

    def protocol_error(self, exc: RemoteProtocolError) -> None:
        self.broker.stats.protocol_errors += 1
        log.info(
            "closing connection of '%s' from %s: %s (%s)",
            loggable(self.client_id or "?"),
            self.peer,
            loggable(exc.message),
            exc.reason_code,
        )
        reason = exc.reason_code
        state = self.state
        if state is _AWAIT_CONNECT or state is _AUTHENTICATING:
            # Before CONNACK: a refusing CONNACK for MQTT 5 (the CONNECT's version, or the one the error names).
            if exc.protocol_level == V5 or (state is _AUTHENTICATING and self.version == V5):
                if reason not in VALID_REASON_CODES[PacketType.CONNACK]:
                    reason = ReasonCode.PROTOCOL_ERROR
                self._write_now(ConnAck(False, reason).encode(V5))
        elif self.version == V5 and state is _CONNECTED:
            if reason not in VALID_REASON_CODES[PacketType.DISCONNECT] or not reason.is_error:
                reason = ReasonCode.PROTOCOL_ERROR
            data = Disconnect(reason, Properties(reason_string=exc.message[:200])).encode(V5)
            if not self._fits(data):
                data = Disconnect(reason).encode(V5)  # the reason string would not fit: leave it out
            if self._fits(data):
                self._write_now(data)
        self.close(clean=False)

    def takeover(self) -> None:
        """Another connection took this session over."""
        if self.version == V5 and self.state is _CONNECTED:
            self._say_goodbye(ReasonCode.SESSION_TAKEN_OVER)
        self.close(clean=False, detach=True)

    def keepalive_expired(self) -> None:
        log.info("'%s' from %s: keepalive of %d s expired", loggable(self.client_id), self.peer, self.keepalive)
        if self.version == V5 and self.state is _CONNECTED:
            self._say_goodbye(ReasonCode.KEEP_ALIVE_TIMEOUT)
        self.close(clean=False)

    def shutdown(self) -> None:
        if self.version == V5 and self.state is _CONNECTED:
            self._say_goodbye(ReasonCode.SERVER_SHUTTING_DOWN)
        self.close(clean=True)

    def revoke(self, why: str) -> None:
        """The broker's security changed under this client (a reload removed its user, changed its password):
        DISCONNECT 0x98 Administrative action (MQTT 5) and close."""
        log.info("closing connection of %s from %s: %s", loggable(self.client_id), self.peer, why)
        if self.version == V5 and self.state is _CONNECTED:
            self._say_goodbye(ReasonCode.ADMINISTRATIVE_ACTION)
        self.close(clean=False)

    def _say_goodbye(self, reason: ReasonCode) -> None:
        data = Disconnect(reason).encode(V5)
        if self._fits(data):
            self._write_now(data)

    def close(self, clean: bool, detach: bool = False) -> None:
        """End this connection. ``clean`` suppresses the will; the session lives on per its expiry."""
        if self.state is _CLOSED:
            return
        was_connected = self.state is _CONNECTED
        if self._login is not None:
            self._login.cancel()
            self._login = None
        if self._held:
            self.connections.prelogin_bytes -= self._held
            self._held = 0
        self.flush()  # what was answered before the end (e.g. acknowledgements read with the DISCONNECT) still goes
        self.state = _CLOSED
        self._reader.discard()  # a partial packet (up to the maximum size) is not kept while the transport closes
        self._clean = clean
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # Graceful after a goodbye: the transport half-closes and drains the client's input for a short while, so
        # that a client still sending (PUBRELs, a burst of PUBLISHes) reads the reason code instead of a reset.
        self.link.close(self._goodbye)
        self.connections.open.discard(self)
        session = self.session
        self.throttled_by = None
        self._acks_held = None
        if was_connected and session is not None and session.connection is self:
            if session.congestion is not None or session.stalled:
                self.broker.overload.forget(session)
            if detach:
                session.connection = None  # the session passes to the connection that took it over
            else:
                self.broker.connection_ended(session, clean)
            if self.broker.config.log_connections:
                log.info("%s disconnected%s", loggable(self.client_id), "" if clean else " uncleanly")

    def connection_lost(self) -> None:
        """The transport closed (the peer went away, or we closed it)."""
        self.close(clean=self._clean)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.session is not None:
            self.broker.pump(self.session)

    # ------------------------------------------------------------------------------------------ overload protection

    def throttle(self, by: Session) -> None:
        """Stop reading this client: a subscriber it feeds, ``by``, is congested (mqttchat.broker.overload)."""
        if self.state is not _CONNECTED:
            return
        held = self.throttled_by
        if held is None:
            self.throttled_by = {by}
            self.link.set_reading(False)
            log.debug("paused %s: %s is congested", loggable(self.client_id), loggable(by.client_id))
        else:
            held.add(by)

    def release(self, by: Session) -> None:
        """``by`` is relieved (or stalled, or gone): once no subscriber holds this client, read it again."""
        held = self.throttled_by
        if held is None:
            return
        held.discard(by)
        if held:
            return
        self.throttled_by = None
        if self.state is not _CONNECTED:
            return
        # Its keepalive starts afresh: the PINGREQs it sent while paused are in what is read now.
        self.last_received = self.broker.clock.now()
        self.link.set_reading(True)
        log.debug("resumed %s", loggable(self.client_id))
        acks = self._acks_held
        if acks:
            self._acks_held = None
            self._out.extend(acks)
            self.broker.stats.bytes_sent += sum(len(ack) for ack in acks)
            self._schedule_flush()
        # What it sent before the pause, still unparsed, is handled after this input (not inside another
        # connection's, whose queue just drained).
        self.broker.clock.call_soon(self._resume)

    def _resume(self) -> None:
        if self.throttled_by is None and self.state is _CONNECTED and self._reader.buffered:
            self.data_received(b"")

    def _yield_turn(self) -> None:
        """Leave the rest of the input for the next turn of the event loop (PUBLISHES_PER_TURN), not reading more
        meanwhile: the publisher is held back by TCP, as a congested subscriber holds it back."""
        if not self._yielding:
            self._yielding = True
            self.link.set_reading(False)
            self.broker.clock.call_soon(self._next_turn)

    def _next_turn(self) -> None:
        self._yielding = False
        if self.state is not _CONNECTED or self.throttled_by is not None:
            return  # closed, or paused by a congested subscriber: release() reads it again
        if self._reader.buffered:
            self.data_received(b"")
        if not self._yielding and self.throttled_by is None and self.state is _CONNECTED:
            self.link.set_reading(True)

    def _hold_ack(self, data: bytes) -> None:
        acks = self._acks_held
        if acks is None:
            self._acks_held = [data]
        else:
            acks.append(data)
