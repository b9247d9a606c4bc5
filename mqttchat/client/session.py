"""The MQTT client's protocol logic, with no I/O: commands in, bytes out; bytes in, events out.

:class:`ClientSession` owns everything a client must remember across connections (packet identifiers, QoS
flows, subscriptions to restore, publishes waiting for a connection) and everything that lives for one
connection (the packet reader, topic aliases, the broker's capabilities). The asyncio shell in
:mod:`mqttchat.client.client` feeds it bytes from the transport, writes :meth:`data_to_send` to it, and keeps
time (keepalive, timeouts, reconnect delays).

Theory of operation::

    DISCONNECTED ──start_connection()──▶ CONNECTING ──CONNACK 0x00──▶ CONNECTED
         ▲                                   │ CONNACK refusal            │ connection_lost() / DISCONNECT
         └───────────────────────────────────┴────────────────────────────┘

On every CONNECTED transition the session resumes its QoS flows (:meth:`OutgoingFlow.resume`), restores its
subscriptions when the broker kept no session, resends unanswered SUBSCRIBE/UNSUBSCRIBE packets and sends the
publishes that waited for the connection.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Protocol

from mqttchat.client.credentials import Credentials
from mqttchat.client.errors import PublishError, QueueFull
from mqttchat.client.options import ClientOptions
from mqttchat.protocol import (
    EMPTY_PROPERTIES,
    Auth,
    Completed,
    ConnAck,
    Connect,
    Disconnect,
    InboundTopicAliases,
    IncomingFlow,
    LocalProtocolError,
    OutboundTopicAliases,
    OutgoingFlow,
    Packet,
    PacketIdAllocator,
    PacketReader,
    PingReq,
    PingResp,
    Properties,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    ReasonCode,
    RemoteProtocolError,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
)
from mqttchat.protocol.constants import MAX_PACKET_SIZE, ProtocolVersion
from mqttchat.protocol.fastinit import dataclass
from mqttchat.protocol.packets import build_publish, encoded_topic_name, fixed_header, with_packet_id

#: MQTT 3.1.1 cannot announce a Receive Maximum; stay within mosquitto's default max_inflight_messages.
V311_DEFAULT_INFLIGHT = 20


class SessionState(Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"


class AuthMethod(Protocol):
    """An MQTT 5 enhanced authentication method (section 4.12), e.g. SCRAM or a token exchange."""

    #: The Authentication Method property, e.g. ``"SCRAM-SHA-256"``.
    name: str

    def initial_data(self) -> bytes | None:
        """Authentication Data for CONNECT (or a re-authentication AUTH)."""

    def respond(self, data: bytes | None) -> bytes | None:
        """Answer a server challenge (AUTH 0x18 Continue authentication) with our next data."""

    # Optional: ``verify(data)`` checks the Authentication Data of the broker's final answer (CONNACK, AUTH 0x00)
    # and raises RemoteProtocolError when it is wrong (a SCRAM server signature); ``expires_at`` (seconds since
    # the epoch, on the method's ``now()``) makes the client re-authenticate ``renew_before()`` seconds before.


@dataclass(frozen=True, slots=True)
class BrokerCapabilities:
    """What the broker said about itself in CONNACK (MQTT 5; defaults are the specification's for 3.1.1)."""

    version: int
    session_present: bool
    #: How many QoS 1/2 publishes the broker accepts in flight from us.
    receive_maximum: int = 65_535
    maximum_qos: int = 2
    retain_available: bool = True
    maximum_packet_size: int | None = None
    topic_alias_maximum: int = 0
    wildcard_subscription_available: bool = True
    subscription_identifier_available: bool = True
    shared_subscription_available: bool = True
    server_keep_alive: int | None = None
    assigned_client_identifier: str | None = None
    reason_string: str | None = None
    server_reference: str | None = None
    response_information: str | None = None
    session_expiry_interval: int | None = None
    authentication_method: str | None = None
    user_properties: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_connack(cls, connack: ConnAck, version: int) -> BrokerCapabilities:
        p = connack.properties
        return cls(
            version=version,
            session_present=connack.session_present,
            receive_maximum=p.receive_maximum or 65_535,
            maximum_qos=2 if p.maximum_qos is None else p.maximum_qos,
            retain_available=p.retain_available != 0,
            maximum_packet_size=p.maximum_packet_size,
            topic_alias_maximum=p.topic_alias_maximum or 0,
            wildcard_subscription_available=p.wildcard_subscription_available != 0,
            subscription_identifier_available=p.subscription_identifier_available != 0,
            shared_subscription_available=p.shared_subscription_available != 0,
            server_keep_alive=p.server_keep_alive,
            assigned_client_identifier=p.assigned_client_identifier,
            reason_string=p.reason_string,
            server_reference=p.server_reference,
            response_information=p.response_information,
            session_expiry_interval=p.session_expiry_interval,
            authentication_method=p.authentication_method,
            user_properties=p.user_property,
        )


# ----------------------------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Connected:
    capabilities: BrokerCapabilities


@dataclass(frozen=True, slots=True)
class ConnectRefused:
    connack: ConnAck


@dataclass(frozen=True, slots=True)
class SubscribeDone:
    token: object
    suback: SubAck


@dataclass(frozen=True, slots=True)
class UnsubscribeDone:
    token: object
    unsuback: UnsubAck


@dataclass(frozen=True, slots=True)
class PingAnswered:
    pass


@dataclass(frozen=True, slots=True)
class ServerDisconnected:
    disconnect: Disconnect


@dataclass(frozen=True, slots=True)
class Reauthenticated:
    auth: Auth


#: What :meth:`ClientSession.receive_data` returns: incoming application messages are the Publish packets.
Event = (
    Publish | Completed | Connected | ConnectRefused | SubscribeDone | UnsubscribeDone | PingAnswered
    | ServerDisconnected | Reauthenticated
)  # fmt: skip

#: A packet trace hook: ``(direction, packet, size_in_bytes)`` with direction ``"in"`` or ``"out"``.
TraceHook = Callable[[str, Packet, int], None]


@dataclass(slots=True)
class _Pending:
    """A SUBSCRIBE or UNSUBSCRIBE waiting for its acknowledgement."""

    packet: Subscribe | Unsubscribe
    token: object


_CONNECTED = SessionState.CONNECTED
_SUCCESS = ReasonCode.SUCCESS
#: The property block of a PUBLISH carrying only Topic Alias n, for the first aliases (the rest are made each time).
_ALIAS_BLOCKS: dict[int, bytes] = {}


def _alias_block(alias: int) -> bytes:
    block = b"\x03\x23" + alias.to_bytes(2, "big")
    if alias <= 1024:
        _ALIAS_BLOCKS[alias] = block
    return block


#: The acknowledgements PacketReader.take_plain_acks gives, by first byte.
_PLAIN_ACKS: dict[int, type[PubAck | PubRec | PubComp]] = {0x40: PubAck, 0x50: PubRec, 0x70: PubComp}


class ClientSession:
    """MQTT client state for one client identity, across connections."""

    def __init__(self, options: ClientOptions, auth: AuthMethod | None = None) -> None:
        self.options = options
        self.version = int(options.version)
        if self.version not in (ProtocolVersion.MQTT_3_1_1, ProtocolVersion.MQTT_5):
            raise ValueError(f"MQTT version {options.version} is not supported: use 5 or 4 (3.1.1)")
        self.auth = auth
        #: The credentials of the connection being made (from ``options.credentials``), set by the client.
        self.credentials: Credentials | None = None
        self.state = SessionState.DISCONNECTED
        self.client_id = options.client_id
        self.packet_ids = PacketIdAllocator()
        self.outgoing = OutgoingFlow(self._inflight_window(None), self.packet_ids, lenient=True)
        self.incoming = IncomingFlow(options.receive_maximum or 65_535)
        #: Subscriptions to restore when the broker kept no session: filter → (options, SUBSCRIBE properties).
        self.subscriptions: dict[str, tuple[Subscription, Properties]] = {}
        self._pending: dict[int, _Pending] = {}
        #: Publishes made while disconnected, in the order they were made.
        self._offline: deque[tuple[Publish, object]] = deque()
        self.capabilities: BrokerCapabilities | None = None
        self.keepalive = options.keepalive
        self.trace: TraceHook | None = None
        self._out: list[bytes] = []
        self._out_size = 0
        #: Whether receive_data stopped at its packet limit with more bytes buffered.
        self.more_buffered = False
        #: After receive_data raised RemoteProtocolError: the events of the same read that came before the bad
        #: packet (still to be handled), and the tokens of the operations the bad packet answered (to be failed
        #: with the error: they will never be answered on this connection).
        self.events_before_error: list[Event] = []
        self.failed_tokens: list[object] = []
        self._reader = PacketReader(self.version, options.maximum_packet_size or MAX_PACKET_SIZE)
        self._aliases_in = InboundTopicAliases(0)
        self._aliases_out = OutboundTopicAliases(0)
        self.connections = 0
        # Statistics, read by the shell and the UI.
        self.messages_in = 0
        self.messages_out = 0
        self.bytes_in = 0
        self.bytes_out = 0

    # ------------------------------------------------------------------------------------------ connection

    def use_options(self, options: ClientOptions) -> None:
        """Change the options (the protocol version after a fallback) between connections."""
        if self.state is not SessionState.DISCONNECTED:
            raise LocalProtocolError("options can change only between connections")
        self.options = options
        self.version = int(options.version)
        self.client_id = options.client_id
        self.keepalive = options.keepalive
        self.outgoing.receive_maximum = self._inflight_window(None)

    @property
    def connected(self) -> bool:
        return self.state is SessionState.CONNECTED

    def _inflight_window(self, caps: BrokerCapabilities | None) -> int:
        configured = self.options.max_inflight
        if self.version == ProtocolVersion.MQTT_5:
            broker = caps.receive_maximum if caps is not None else 65_535
            return min(broker, configured) if configured else broker
        return configured or V311_DEFAULT_INFLIGHT

    def build_connect(self) -> Connect:
        o = self.options
        props = EMPTY_PROPERTIES
        if self.version == ProtocolVersion.MQTT_5:
            values: dict[str, object] = {
                "session_expiry_interval": o.session_expiry or None,
                "receive_maximum": o.receive_maximum,
                "maximum_packet_size": o.maximum_packet_size,
                "topic_alias_maximum": o.topic_alias_maximum or None,
                "request_response_information": 1 if o.request_response_information else None,
                "request_problem_information": None if o.request_problem_information else 0,
                "user_property": o.user_properties or None,
            }
            if self.auth is not None:
                values["authentication_method"] = self.auth.name
                values["authentication_data"] = self.auth.initial_data()
            props = Properties(**values)
        username, password = o.effective_username, o.effective_password
        given = self.credentials
        if given is not None:
            username = given.username if given.username is not None else username
            password = given.password if given.password is not None else password
        return Connect(
            client_id=self.client_id,
            clean_start=o.clean_start if self.connections == 0 else o.clean_start and not self._session_expected(),
            keep_alive=o.keepalive,
            username=username,
            password=password.encode() if password is not None else None,
            will=o.will,
            properties=props,
            protocol_version=self.version,
        )

    def _session_expected(self) -> bool:
        """Whether the broker should still hold our session from the previous connection."""
        if self.version == ProtocolVersion.MQTT_5:
            return bool(self.options.session_expiry)
        return not self.options.clean_start

    def start_connection(self) -> None:
        """A transport is open: reset the per-connection state and queue CONNECT."""
        self.state = SessionState.CONNECTING
        self._reader = PacketReader(self.version, self.options.maximum_packet_size or MAX_PACKET_SIZE)
        self._aliases_in = InboundTopicAliases(self.options.topic_alias_maximum)
        self._aliases_out = OutboundTopicAliases(0)
        self._out.clear()
        self._out_size = 0
        self.more_buffered = False
        connect = self.build_connect()
        self._send(connect)

    def connection_lost(self) -> None:
        """The transport closed. QoS flows and subscriptions are kept for the next connection."""
        self.state = SessionState.DISCONNECTED
        self._out.clear()
        self._out_size = 0
        self.more_buffered = False

    def disconnect(self, reason: ReasonCode = ReasonCode.SUCCESS, properties: Properties = EMPTY_PROPERTIES) -> None:
        """Queue DISCONNECT (0x04 asks the broker to publish our will)."""
        if self.state is not SessionState.DISCONNECTED:
            self._send(Disconnect(reason, properties))
        self.state = SessionState.DISCONNECTED

    def ping(self) -> None:
        self._send(PingReq())

    def reauthenticate(self) -> None:
        """Start an MQTT 5 re-authentication with the configured method."""
        if self.auth is None:
            raise LocalProtocolError("re-authentication needs an authentication method")
        self._send(
            Auth(
                ReasonCode.RE_AUTHENTICATE,
                Properties(authentication_method=self.auth.name, authentication_data=self.auth.initial_data()),
            )
        )

    # ------------------------------------------------------------------------------------------ commands

    def check_publish(self, publish: Publish) -> None:
        """Refuse what the broker said it cannot take (Maximum QoS, Retain Available, Maximum Packet Size)."""
        caps = self.capabilities
        if caps is None:
            return
        if publish.qos > caps.maximum_qos:
            raise PublishError(f"the broker accepts at most QoS {caps.maximum_qos}, not QoS {publish.qos}")
        if publish.retain and not caps.retain_available:
            raise PublishError("the broker does not support retained messages")
        limit = caps.maximum_packet_size
        if limit is not None and len(publish.payload) + 4 * len(publish.topic) + 64 > limit:
            size = len(Publish(publish.topic, publish.payload, publish.qos, packet_id=1 if publish.qos else None,
                               properties=publish.properties).encode(self.version))  # fmt: skip
            if size > limit:
                raise PublishError(f"the message is {size} bytes; the broker accepts at most {limit}")

    def publish_plain(
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False, token: object = None
    ) -> None:
        """``publish(Publish(topic, payload, qos, retain), token)``: a message without properties, the common case,
        goes out without the packet the caller would build (the same bytes and events)."""
        caps = self.capabilities
        if (
            self.state is _CONNECTED
            and self.trace is None
            and caps is not None
            and caps.maximum_packet_size is None
            and (not retain or caps.retain_available)
        ):
            if qos == 0:
                self._send_plain_publish(topic, encoded_topic_name(topic), payload, 0, retain, None)
                return
            outgoing = self.outgoing
            if (
                qos in {1, 2}
                and qos <= caps.maximum_qos
                and not outgoing.waiting
                and not outgoing.held
                and len(outgoing.inflight) < outgoing.receive_maximum
            ):
                head = encoded_topic_name(topic)  # checked before the flow takes an identifier
                pid = outgoing.start_plain(topic, payload, qos, retain, token)
                self._send_plain_publish(topic, head, payload, qos, retain, pid)
                return
        self.publish(build_publish(topic, payload, qos, retain, False, None, EMPTY_PROPERTIES), token)

    def publish(self, publish: Publish, token: object = None) -> None:
        """Send ``publish`` now, or when connected; QoS 1/2 complete with a :class:`Completed` event.

        Raises:
            PublishError: the broker cannot take it. QueueFull: too many publishes wait for a connection.
            LocalProtocolError: the publish itself is invalid (bad topic, QoS, properties).
        """
        if self.capabilities is not None:
            self.check_publish(publish)
        if self.state is not _CONNECTED:
            if len(self._offline) + len(self.outgoing) >= self.options.max_queued_publishes:
                raise QueueFull(f"{self.options.max_queued_publishes} publishes are already waiting for the broker")
            # Refuse an invalid publish now rather than at reconnect (QoS 1/2 get their identifier later).
            (with_packet_id(publish, 1, False) if publish.qos else publish).encode(self.version)
            self._offline.append((publish, token))
            return
        qos = publish.qos
        if (
            publish.properties is EMPTY_PROPERTIES
            and self.trace is None
            and (qos in {1, 2} or (qos == 0 and not publish.dup))
        ):
            # The common case, encoded here without the intermediate packets of the general way below (the same
            # bytes). The topic name is checked before the flow or the aliases remember anything of it.
            topic = publish.topic
            head = encoded_topic_name(topic)
            if qos:
                packet = self.outgoing.publish(publish, token)
                if packet is not None:
                    self._send_plain_publish(topic, head, publish.payload, qos, publish.retain, packet.packet_id)
            else:
                self._send_plain_publish(topic, head, publish.payload, 0, publish.retain, None)
            return
        # Whatever cannot be sent is refused before the flow takes an identifier for it or the aliases map its
        # topic: a publish raising later would stay in flight for ever, and its topic's alias, never sent, would
        # stand for it in the next publish to that topic.
        if publish.properties.topic_alias is not None and self._aliases_out.maximum:
            raise LocalProtocolError("topic aliases are chosen by the connection; do not set one yourself")
        (with_packet_id(publish, 1, False) if qos else publish).encode(self.version)
        if qos == 0:
            self._send_publish(publish)
            return
        packet = self.outgoing.publish(publish, token)
        if packet is not None:
            self._send_publish(packet)

    def subscribe(
        self, subscriptions: Sequence[Subscription], properties: Properties = EMPTY_PROPERTIES, token: object = None
    ) -> int:
        """Queue SUBSCRIBE; its SUBACK completes with a :class:`SubscribeDone` event. Returns the packet id."""
        packet = Subscribe(self.packet_ids.allocate(), tuple(subscriptions), properties)
        try:
            packet.encode(self.version)
        except LocalProtocolError:
            self.packet_ids.release(packet.packet_id)
            raise
        self._pending[packet.packet_id] = _Pending(packet, token)
        for sub in subscriptions:
            self.subscriptions[sub.topic_filter] = (sub, properties)
        if self.connected:
            self._send(packet)
        return packet.packet_id

    def unsubscribe(
        self, topic_filters: Sequence[str], properties: Properties = EMPTY_PROPERTIES, token: object = None
    ) -> int:
        packet = Unsubscribe(self.packet_ids.allocate(), tuple(topic_filters), properties)
        try:
            packet.encode(self.version)
        except LocalProtocolError:
            self.packet_ids.release(packet.packet_id)
            raise
        self._pending[packet.packet_id] = _Pending(packet, token)
        for topic_filter in topic_filters:
            self.subscriptions.pop(topic_filter, None)
        if self.connected:
            self._send(packet)
        return packet.packet_id

    # ------------------------------------------------------------------------------------------ output

    def _send(self, packet: Packet) -> None:
        data = packet.encode(self.version)
        self._out.append(data)
        self._out_size += len(data)
        self.bytes_out += len(data)
        if self.trace is not None:
            self.trace("out", packet, len(data))

    def _send_publish(self, publish: Publish) -> None:
        aliased = self._aliases_out.apply(publish) if self._aliases_out.maximum else publish
        data = aliased.encode(self.version)
        self._out.append(data)
        self._out_size += len(data)
        self.bytes_out += len(data)
        self.messages_out += 1
        if self.trace is not None:
            self.trace("out", aliased, len(data))

    def _send_plain_publish(
        self, topic: str, head: bytes, payload: bytes, qos: int, retain: bool, packet_id: int | None
    ) -> None:
        """Queue a PUBLISH without properties (no DUP), as :meth:`_send_publish` would: ``head`` is the encoded
        topic name, replaced by the empty one when the broker knows the topic's alias. The packet is queued in
        pieces (``data_to_send`` joins them): the payload is copied once."""
        if self.version == 5:
            aliases = self._aliases_out
            alias = aliases.choose(topic) if aliases.maximum else 0
            if alias < 0:
                head = b"\x00\x00"
                props = _ALIAS_BLOCKS.get(-alias) or _alias_block(-alias)
            elif alias:
                props = _ALIAS_BLOCKS.get(alias) or _alias_block(alias)
            else:
                props = b"\x00"
        else:
            props = b""
        size = len(head) + len(props) + len(payload)
        if qos:
            size += 2
            first = 0x31 | (qos << 1) if retain else 0x30 | (qos << 1)
            fixed = bytes((first, size)) if size < 128 else fixed_header(first, size)
            self._out += (fixed, head, packet_id.to_bytes(2, "big"), props, payload)  # type: ignore[union-attr]
        else:
            first = 0x31 if retain else 0x30
            fixed = bytes((first, size)) if size < 128 else fixed_header(first, size)
            self._out += (fixed, head, props, payload)
        size += len(fixed)
        self._out_size += size
        self.bytes_out += size
        self.messages_out += 1

    def data_to_send(self) -> bytes:
        """The bytes queued for the transport (and forget them)."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self._out_size = 0
        return data

    @property
    def pending_bytes(self) -> int:
        """Bytes queued and not yet taken by :meth:`data_to_send`."""
        return self._out_size

    # ------------------------------------------------------------------------------------------ input

    def receive_data(self, data: bytes, max_packets: int = 0) -> list[Event]:
        """Handle bytes from the broker; return what happened. Acknowledgements are queued as data to send.

        ``max_packets`` (0: no limit) stops after that many packets, leaving the rest buffered: ``more_buffered``
        then says so, and a call with ``b""`` goes on (the client spreads a big read over several turns of its
        event loop so that its application never waits long).

        Raises:
            RemoteProtocolError: the broker broke the protocol; a DISCONNECT with the reason code is queued
                (MQTT 5) and the connection must be closed.
        """
        self.bytes_in += len(data)
        reader = self._reader
        reader.feed(data)
        events: list[Event] = []
        trace = self.trace
        left = max_packets or -1
        self.more_buffered = False
        # The packets of a busy connection are handled here without a call each, when nothing watches them (no
        # trace) on an established connection: a PUBLISH at QoS 0 or 1 without properties, and the plain PUBACKs
        # completing QoS 1 flows while nothing waits for the window. Anything else takes the general way below.
        fast = trace is None and self.state is _CONNECTED
        append = events.append
        out = self._out
        outgoing = self.outgoing
        received = 0
        acked = 0
        try:
            while True:
                if left == 0:
                    self.more_buffered = reader.buffered > 0
                    return events
                if fast and outgoing.inflight and not outgoing.waiting and not outgoing.held:
                    acks = reader.take_plain_acks(left if left > 0 else 1 << 30)
                    if acks:
                        left -= len(acks)
                        done = 0
                        while True:
                            queued = len(out)
                            done = outgoing.settle_plain_acks(acks, done, events, out)
                            acked += len(out) - queued
                            if done == len(acks):
                                break
                            # One the fast path leaves (a duplicate, a downgrade...) goes the general way, in order.
                            ack = acks[done]
                            self._on_control(_PLAIN_ACKS[ack >> 16](ack & 0xFFFF), events)
                            done += 1
                        continue
                left -= 1
                packet = reader.next_packet()
                if packet is None:
                    return events
                if fast and type(packet) is Publish and packet.properties is EMPTY_PROPERTIES:
                    qos = packet.qos
                    if qos == 0:
                        received += 1
                        append(packet)
                        continue
                    if qos == 1:
                        # PUBACK Success is the same four bytes in 3.1.1 and 5.0.
                        out.append(b"\x40\x02" + packet.packet_id.to_bytes(2, "big"))  # type: ignore[union-attr]
                        acked += 1
                        received += 1
                        append(packet)
                        continue
                if trace is not None:
                    trace("in", packet, reader.last_size)
                if type(packet) is Publish:
                    self._on_publish(packet, events)
                else:
                    self._on_control(packet, events)
                    fast = trace is None and self.state is _CONNECTED
        except RemoteProtocolError as exc:
            if self.version == ProtocolVersion.MQTT_5 and self.state is SessionState.CONNECTED:
                self._send(Disconnect(exc.reason_code, Properties(reason_string=exc.message[:200])))
            self.state = SessionState.DISCONNECTED
            self.events_before_error = events
            raise
        finally:
            self.messages_in += received
            if acked:
                self._out_size += 4 * acked
                self.bytes_out += 4 * acked

    def _on_publish(self, publish: Publish, events: list[Event]) -> None:
        if self.state is not SessionState.CONNECTED:
            raise RemoteProtocolError("PUBLISH before CONNACK")
        if publish.properties is not EMPTY_PROPERTIES:
            publish = self._aliases_in.resolve(publish)
        self.messages_in += 1
        qos = publish.qos
        if qos == 0:
            events.append(publish)
            return
        if qos == 1 and self.trace is None:
            # The common case, without objects: PUBACK Success is the same four bytes in 3.1.1 and 5.0.
            data = b"\x40\x02" + publish.packet_id.to_bytes(2, "big")  # type: ignore[union-attr]
            self._out.append(data)
            self._out_size += 4
            self.bytes_out += 4
            events.append(publish)
            return
        deliver, ack = self.incoming.receive_publish(publish)
        if ack is not None:
            self._send(ack)
        if deliver:
            events.append(publish)

    def _on_control(self, packet: Packet, events: list[Event]) -> None:
        kind = type(packet)
        if kind is PubAck or kind is PubRec or kind is PubComp:
            out = self.outgoing.receive(packet)  # type: ignore[arg-type]
            for p in out.packets:
                if type(p) is Publish:
                    self._send_publish(p)
                else:
                    self._send(p)
            events.extend(out.completed)
        elif kind is PubRel:
            self._send(self.incoming.receive_pubrel(packet))  # type: ignore[arg-type]
        elif kind is SubAck or kind is UnsubAck:
            self._on_ack(packet, events)  # type: ignore[arg-type]
        elif kind is PingResp:
            events.append(PingAnswered())
        elif kind is ConnAck:
            self._on_connack(packet, events)  # type: ignore[arg-type]
        elif kind is Disconnect:
            self.state = SessionState.DISCONNECTED
            events.append(ServerDisconnected(packet))  # type: ignore[arg-type]
        elif kind is Auth:
            self._on_auth(packet, events)  # type: ignore[arg-type]
        else:
            raise RemoteProtocolError(f"a broker does not send {type(packet).__name__}")

    def _on_ack(self, packet: SubAck | UnsubAck, events: list[Event]) -> None:
        pending = self._pending.pop(packet.packet_id, None)
        if pending is None:
            return  # an answer to a request from an earlier connection that was already resent and answered
        self.packet_ids.release(packet.packet_id)
        if isinstance(packet, SubAck):
            assert isinstance(pending.packet, Subscribe)
            subs = pending.packet.subscriptions
            if len(packet.reason_codes) != len(subs):
                # This subscribe will never be answered properly: its caller gets the error (it is not resent).
                for sub in subs:
                    self.subscriptions.pop(sub.topic_filter, None)
                self.failed_tokens.append(pending.token)
                raise RemoteProtocolError(
                    f"SUBACK has {len(packet.reason_codes)} reason codes for {len(subs)} topic filters"
                )
            for sub, code in zip(subs, packet.reason_codes, strict=True):
                if code.is_error:
                    self.subscriptions.pop(sub.topic_filter, None)
            events.append(SubscribeDone(pending.token, packet))
        else:
            events.append(UnsubscribeDone(pending.token, packet))

    def _on_connack(self, connack: ConnAck, events: list[Event]) -> None:
        if self.state is not SessionState.CONNECTING:
            raise RemoteProtocolError("CONNACK on an established connection")
        if connack.reason_code.is_error:
            self.state = SessionState.DISCONNECTED
            events.append(ConnectRefused(connack))
            return
        if self.auth is not None and self.version == ProtocolVersion.MQTT_5:
            self._verify_auth(connack.properties.authentication_data)
        caps = BrokerCapabilities.from_connack(connack, self.version)
        self.capabilities = caps
        self.state = SessionState.CONNECTED
        self.connections += 1
        if caps.assigned_client_identifier:
            self.client_id = caps.assigned_client_identifier
        if caps.server_keep_alive is not None:
            self.keepalive = caps.server_keep_alive
        if self.options.use_topic_aliases and caps.topic_alias_maximum:
            self._aliases_out = OutboundTopicAliases(caps.topic_alias_maximum)
        events.append(Connected(caps))
        # Restore what the broker no longer knows, then resend what it may not have received.
        if not connack.session_present:
            self.incoming = IncomingFlow(self.options.receive_maximum or 65_535)
            self._resubscribe()
        for pending in self._pending.values():
            self._send(pending.packet)
        out = self.outgoing.resume(connack.session_present, self._inflight_window(caps))
        for p in out.packets:
            if type(p) is Publish:
                self._send_publish(p)
            else:
                self._send(p)
        events.extend(out.completed)
        # Then what was published while disconnected, in order (QoS 0 overtakes only a full QoS 1/2 window).
        while self._offline:
            publish, token = self._offline.popleft()
            if publish.qos == 0:
                self._send_publish(publish)
            else:
                packet = self.outgoing.publish(publish, token)
                if packet is not None:
                    self._send_publish(packet)

    def _resubscribe(self) -> None:
        pending_filters = {
            sub.topic_filter
            for p in self._pending.values()
            if isinstance(p.packet, Subscribe)
            for sub in p.packet.subscriptions
        }
        groups: dict[Properties, list[Subscription]] = {}
        for sub, props in self.subscriptions.values():
            if sub.topic_filter not in pending_filters:
                groups.setdefault(props, []).append(sub)
        for props, subs in groups.items():
            packet = Subscribe(self.packet_ids.allocate(), tuple(subs), props)
            self._pending[packet.packet_id] = _Pending(packet, None)

    def _verify_auth(self, data: bytes | None) -> None:
        verify = getattr(self.auth, "verify", None)
        if verify is not None:
            verify(data)

    def _on_auth(self, auth: Auth, events: list[Event]) -> None:
        if self.auth is None or auth.properties.authentication_method != self.auth.name:
            raise RemoteProtocolError("AUTH for an authentication method we did not ask for")
        if auth.reason_code == ReasonCode.CONTINUE_AUTHENTICATION:
            data = self.auth.respond(auth.properties.authentication_data)
            self._send(
                Auth(
                    ReasonCode.CONTINUE_AUTHENTICATION,
                    Properties(authentication_method=self.auth.name, authentication_data=data),
                )
            )
        elif auth.reason_code == ReasonCode.SUCCESS:
            if self.state is not SessionState.CONNECTED:
                raise RemoteProtocolError("AUTH Success before CONNACK")
            self._verify_auth(auth.properties.authentication_data)
            events.append(Reauthenticated(auth))
        else:
            raise RemoteProtocolError("the broker may not ask the client to re-authenticate")
