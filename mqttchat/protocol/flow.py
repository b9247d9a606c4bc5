"""QoS flow bookkeeping shared by the client and the broker: pure objects, packets in, packets out.

Theory of operation
-------------------
Each end of a connection is a *sender* of its own PUBLISH packets and a *receiver* of its peer's.

Sender (:class:`OutgoingFlow`), per message of QoS > 0::

    QoS 1:  publish() ──PUBLISH──▶ AWAIT_PUBACK ──PUBACK──▶ completed
    QoS 2:  publish() ──PUBLISH──▶ AWAIT_PUBREC ──PUBREC──▶ AWAIT_PUBCOMP ──PUBCOMP──▶ completed
                                        │ PUBREC with a failure code ──▶ completed (refused)
                                        │ PUBACK (lenient senders only) ──▶ completed at QoS 1
    (lenient senders also complete a QoS 1 message answered by PUBREC, and release it with PUBREL)

A broker that downgrades QoS 2 to 1 (RabbitMQ) answers a QoS 2 PUBLISH with PUBACK. The specification calls that
a protocol error, but the broker *has* taken the message: a client flow (``lenient=True``) completes it as
delivered at QoS 1 (:attr:`Completed.qos`), as MQTT.js does, rather than close the connection and send the
message again. The broker's own flows stay strict.

At most ``receive_maximum`` messages are in flight (the peer's Receive Maximum; a QoS 2 message counts until its
PUBCOMP); the rest wait in order. A packet identifier stays allocated until its flow completes, so no identifier
is reused while in flight. After a reconnect with the session present, :meth:`OutgoingFlow.resume` resends the
unfinished PUBLISH packets with DUP set, in their original order, and the PUBREL packets in the order their
PUBRECs arrived, all with their original identifiers (MQTT 4.4, 4.6) and never more than the new connection's
Receive Maximum at once: the rest are *held* and go out as acknowledgements free the window. When the session is
gone, unacknowledged messages start over as new ones (at least once), while a QoS 2 message whose PUBREC arrived
is complete: the receiver owns it.

Receiver (:class:`IncomingFlow`)::

    QoS 0:  PUBLISH ──▶ deliver
    QoS 1:  PUBLISH ──▶ deliver, PUBACK               (a redelivery is delivered again: at least once)
    QoS 2:  PUBLISH ──▶ deliver, PUBREC, remember id  (a PUBLISH with a remembered id: PUBREC, not delivered)
            PUBREL  ──▶ forget id, PUBCOMP            (an unknown id: PUBCOMP 0x92)

This is the specification's "Method B" of delivering QoS 2 on PUBLISH and storing the identifier until PUBREL,
which gives exactly-once delivery with one stored id per message. A receiver that is sent more than its
Receive Maximum of unfinished QoS 2 messages raises 0x93.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import field
from enum import Enum
from typing import Any

from mqttchat.protocol.constants import DEFAULT_RECEIVE_MAXIMUM, MAX_PACKET_ID
from mqttchat.protocol.errors import LocalProtocolError, RemoteProtocolError
from mqttchat.protocol.fastinit import builder, dataclass
from mqttchat.protocol.packets import (
    Packet,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    build_publish,
    with_packet_id,
)
from mqttchat.protocol.properties import EMPTY_PROPERTIES, Properties
from mqttchat.protocol.reason_codes import ReasonCode


class PacketIdAllocator:
    """Packet identifiers 1..65535; an identifier is never handed out while it is still in use.

    One allocator serves all of a sender's packets that need identifiers (PUBLISH, SUBSCRIBE, UNSUBSCRIBE):
    they share one space.
    """

    __slots__ = ("_next", "_used")

    def __init__(self) -> None:
        self._used: set[int] = set()
        self._next = 1

    def allocate(self) -> int:
        used = self._used
        if len(used) >= MAX_PACKET_ID:
            raise LocalProtocolError("all 65535 packet identifiers are in use")
        pid = self._next
        while pid in used:
            pid = pid % MAX_PACKET_ID + 1
        used.add(pid)
        self._next = pid % MAX_PACKET_ID + 1
        return pid

    def release(self, packet_id: int) -> None:
        self._used.discard(packet_id)

    def claim(self, packet_id: int) -> None:
        """Mark an identifier as in use (when restoring a stored session)."""
        if not 0 < packet_id <= MAX_PACKET_ID:
            raise LocalProtocolError(f"packet identifier {packet_id} is outside 1..65535")
        self._used.add(packet_id)

    def __contains__(self, packet_id: object) -> bool:
        return packet_id in self._used

    def __len__(self) -> int:
        return len(self._used)


class OutgoingState(Enum):
    AWAIT_PUBACK = "await PUBACK"
    AWAIT_PUBREC = "await PUBREC"
    AWAIT_PUBCOMP = "await PUBCOMP"


# Enum members bound once: attribute access on an Enum class is slow in Python 3.11, and these are per message.
_AWAIT_PUBACK = OutgoingState.AWAIT_PUBACK
_AWAIT_PUBREC = OutgoingState.AWAIT_PUBREC
_AWAIT_PUBCOMP = OutgoingState.AWAIT_PUBCOMP
_SUCCESS = ReasonCode.SUCCESS


@dataclass(slots=True)
class InFlight:
    """One outgoing QoS 1/2 message between PUBLISH and its final acknowledgement."""

    publish: Publish
    state: OutgoingState
    token: object = None
    #: The reason code of PUBREC (QoS 2), reported when the flow completes.
    pubrec_reason: ReasonCode = ReasonCode.SUCCESS


@dataclass(frozen=True, slots=True)
class Completed:
    """An outgoing QoS 1/2 message whose flow has ended: acknowledged, or refused by the receiver."""

    token: object
    publish: Publish
    reason_code: ReasonCode
    properties: Properties = EMPTY_PROPERTIES
    #: The QoS of the exchange that completed it: the publish's own, or 1 for a QoS 2 publish answered by PUBACK.
    qos: int = 0

    @property
    def ok(self) -> bool:
        return not self.reason_code.is_error

    @property
    def downgraded(self) -> bool:
        """A QoS 2 publish the receiver acknowledged with PUBACK: delivered at least once, not exactly once."""
        return self.qos == 1 and self.publish.qos == 2


_new_completed = builder(Completed)
_new_inflight = builder(InFlight)


@dataclass(slots=True)
class FlowOutput:
    """What a flow event produced: packets to send now, and flows that completed."""

    packets: list[Packet] = field(default_factory=list)
    completed: list[Completed] = field(default_factory=list)


class OutgoingFlow:
    """The sender side of QoS 1 and QoS 2 for one session.

    Args:
        receive_maximum: how many QoS 1/2 messages may be unacknowledged at once (the peer's Receive Maximum).
        packet_ids: the session's identifier allocator, shared with SUBSCRIBE/UNSUBSCRIBE.
        lenient: accept PUBACK for a QoS 2 message as its completion at QoS 1 (a client facing brokers that
            downgrade QoS 2) instead of raising a protocol error.
    """

    def __init__(
        self,
        receive_maximum: int = DEFAULT_RECEIVE_MAXIMUM,
        packet_ids: PacketIdAllocator | None = None,
        lenient: bool = False,
    ) -> None:
        self.receive_maximum = receive_maximum
        self.lenient = lenient
        self.packet_ids = packet_ids if packet_ids is not None else PacketIdAllocator()
        self.inflight: dict[int, InFlight] = {}
        self.waiting: deque[tuple[Publish, object]] = deque()
        #: Identifiers in ``inflight`` not yet (re)sent on this connection: they wait for the window.
        self.held: deque[int] = deque()

    @property
    def in_window(self) -> int:
        """Messages sent on this connection and not yet completed: what counts against Receive Maximum."""
        return len(self.inflight) - len(self.held)

    @property
    def can_send(self) -> bool:
        """Whether a new QoS 1/2 message would go out now: the window has room and nothing older waits.

        After a reconnect the resent messages are ``held`` until the window takes them; a sender that queues
        messages itself must keep queueing until then, or newer messages would overtake older ones.
        """
        return not self.waiting and not self.held and len(self.inflight) < self.receive_maximum

    def __len__(self) -> int:
        """Messages not yet completed: in flight and waiting for the window."""
        return len(self.inflight) + len(self.waiting)

    def publish(self, publish: Publish, token: object = None) -> Publish | None:
        """Start sending ``publish``: the packet to send now, or None if it waits for the window.

        QoS 0 messages pass straight through (they are not subject to Receive Maximum).
        """
        qos = publish.qos
        if qos == 0:
            return publish
        if self.waiting or self.held or len(self.inflight) >= self.receive_maximum:  # (held empty: in_window)
            self.waiting.append((publish, token))
            return None
        pid = self.packet_ids.allocate()
        packet = build_publish(publish.topic, publish.payload, qos, publish.retain, False, pid, publish.properties)
        self.inflight[pid] = _new_inflight(packet, _AWAIT_PUBACK if qos == 1 else _AWAIT_PUBREC, token, _SUCCESS)
        return packet

    def start_plain(self, topic: str, payload: bytes, qos: int, retain: bool, token: object = None) -> int:
        """:meth:`publish` of a new QoS 1/2 message without properties when :attr:`can_send` (the caller has
        checked): its packet identifier, the message in flight."""
        pid = self.packet_ids.allocate()
        packet = build_publish(topic, payload, qos, retain, False, pid, EMPTY_PROPERTIES)
        self.inflight[pid] = _new_inflight(packet, _AWAIT_PUBACK if qos == 1 else _AWAIT_PUBREC, token, _SUCCESS)
        return pid

    def _start(self, publish: Publish, token: object) -> Publish:
        pid = self.packet_ids.allocate()
        packet = with_packet_id(publish, pid, False)
        state = _AWAIT_PUBACK if publish.qos == 1 else _AWAIT_PUBREC
        self.inflight[pid] = _new_inflight(packet, state, token, _SUCCESS)
        return packet

    def _fill_window(self, out: FlowOutput) -> None:
        held = self.held
        while held and self.in_window < self.receive_maximum:
            entry = self.inflight[held.popleft()]
            out.packets.append(self._resend_packet(entry))
        while self.waiting and not held and self.in_window < self.receive_maximum:
            publish, token = self.waiting.popleft()
            out.packets.append(self._start(publish, token))

    @staticmethod
    def _resend_packet(entry: InFlight) -> Packet:
        if entry.state is _AWAIT_PUBCOMP:
            return PubRel(entry.publish.packet_id or 0)
        return with_packet_id(entry.publish, entry.publish.packet_id, True)

    def _complete(
        self, pid: int, reason: ReasonCode, props: Properties, out: FlowOutput, qos: int | None = None
    ) -> None:
        entry = self.inflight.pop(pid)
        if pid in self.held:
            self.held.remove(pid)
        self.packet_ids.release(pid)
        publish = entry.publish
        out.completed.append(_new_completed(entry.token, publish, reason, props, publish.qos if qos is None else qos))
        self._fill_window(out)

    def settle_puback(self, packet_id: int) -> bool:
        """The fast path of :meth:`receive` for a PUBACK when no message waits for the window.

        Returns True when the PUBACK completed a QoS 1 flow (and nothing else had to happen: no packet to send,
        no window to fill); False when the caller must use :meth:`receive`. The completion is not reported, so
        only a sender that needs no :class:`Completed` for it (a broker session without persistence) uses this.
        """
        if self.waiting or self.held:
            return False
        entry = self.inflight.get(packet_id)
        if entry is None or entry.state is not _AWAIT_PUBACK:
            return False
        del self.inflight[packet_id]
        self.packet_ids.release(packet_id)
        return True

    def receive_puback(self, packet_id: int, reason: ReasonCode, properties: Properties) -> Completed | None:
        """The fast path of :meth:`receive` for a PUBACK completing a QoS 1 flow when no message waits for the
        window: the :class:`Completed`, or None when the caller must use :meth:`receive` (no such flow, a QoS 2
        flow, messages waiting: there may be more to do than completing)."""
        if self.waiting or self.held:
            return None
        entry = self.inflight.get(packet_id)
        if entry is None or entry.state is not _AWAIT_PUBACK:
            return None
        del self.inflight[packet_id]
        self.packet_ids.release(packet_id)
        publish = entry.publish
        return _new_completed(entry.token, publish, reason, properties, publish.qos)

    def settle_plain_acks(self, acks: list[int], start: int, completed: list[Any], replies: list[bytes]) -> int:
        """The fast path of :meth:`receive` for plain acknowledgements (Success, no properties), as
        :meth:`PacketReader.take_plain_acks` gives them (``first_byte << 16 | packet_id``), when no message waits
        for the window: from ``acks[start]`` on, in order, each completed flow's :class:`Completed` is appended
        to ``completed`` and each PUBREL to send (4 bytes) to ``replies``.

        Returns the index of the first acknowledgement it left to :meth:`receive` (one that completes no flow in
        the state it expects: a duplicate, a protocol error, a downgrade), or ``len(acks)`` when it settled all.
        """
        if self.waiting or self.held:
            return start
        inflight = self.inflight
        release = self.packet_ids.release
        append = completed.append
        count = len(acks)
        i = start
        while i < count:
            ack = acks[i]
            pid = ack & 0xFFFF
            entry = inflight.get(pid)
            if entry is None:
                return i
            kind = ack >> 16
            state = entry.state
            if kind == 0x40:
                if state is not _AWAIT_PUBACK:
                    return i
                del inflight[pid]
                release(pid)
                publish = entry.publish
                append(_new_completed(entry.token, publish, _SUCCESS, EMPTY_PROPERTIES, publish.qos))
            elif kind == 0x50:
                if state is not _AWAIT_PUBREC:
                    return i
                entry.state = _AWAIT_PUBCOMP
                entry.pubrec_reason = _SUCCESS
                # Keep inflight in PUBREC order for PUBREL resends (MQTT-4.6.0-4).
                del inflight[pid]
                inflight[pid] = entry
                # PUBREL Success is the same four bytes in 3.1.1 and 5.0.
                replies.append(b"\x62\x02" + pid.to_bytes(2, "big"))
            else:
                if state is not _AWAIT_PUBCOMP:
                    return i
                del inflight[pid]
                release(pid)
                publish = entry.publish
                append(_new_completed(entry.token, publish, entry.pubrec_reason, EMPTY_PROPERTIES, publish.qos))
            i += 1
        return i

    def receive(self, packet: PubAck | PubRec | PubComp) -> FlowOutput:
        """Handle an acknowledgement from the receiver.

        Raises:
            RemoteProtocolError: an acknowledgement of the wrong kind for the message's QoS or state.
        """
        out = FlowOutput()
        pid = packet.packet_id
        entry = self.inflight.get(pid)
        if type(packet) is PubAck:
            if entry is None:
                return out  # a late duplicate of an acknowledgement already handled
            if entry.state is _AWAIT_PUBREC and self.lenient:
                self._complete(pid, packet.reason_code, packet.properties, out, qos=1)  # QoS 2 downgraded
                return out
            if entry.state is not _AWAIT_PUBACK:
                raise RemoteProtocolError(f"PUBACK for packet {pid}, which is a QoS 2 message")
            self._complete(pid, packet.reason_code, packet.properties, out)
        elif type(packet) is PubRec:
            if entry is None:
                out.packets.append(PubRel(pid, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND))
            elif entry.state is _AWAIT_PUBREC:
                if packet.reason_code >= 0x80:
                    self._complete(pid, packet.reason_code, packet.properties, out)
                else:
                    entry.state = _AWAIT_PUBCOMP
                    entry.pubrec_reason = packet.reason_code
                    # Keep inflight in PUBREC order for PUBREL resends (MQTT-4.6.0-4).
                    del self.inflight[pid]
                    self.inflight[pid] = entry
                    out.packets.append(PubRel(pid))
            elif entry.state is _AWAIT_PUBCOMP:
                out.packets.append(PubRel(pid))  # our PUBREL may have crossed a resent PUBREC
            elif self.lenient:
                # A QoS 1 message answered as QoS 2: the receiver has it. Complete it (never send it again) and
                # release the receiver's side; its PUBCOMP finds nothing and is ignored.
                self._complete(pid, packet.reason_code, packet.properties, out)
                if packet.reason_code < 0x80:
                    out.packets.append(PubRel(pid))
            else:
                raise RemoteProtocolError(f"PUBREC for packet {pid}, which is a QoS 1 message")
        elif type(packet) is PubComp:
            if entry is None:
                return out
            if entry.state is not _AWAIT_PUBCOMP:
                raise RemoteProtocolError(f"PUBCOMP for packet {pid} before its PUBREC")
            # The outcome is PUBREC's: once it arrived the receiver owned the message. A PUBCOMP 0x92 after a
            # reconnect only says the receiver had already finished the exchange.
            self._complete(pid, entry.pubrec_reason, packet.properties, out)
        else:
            raise LocalProtocolError(f"OutgoingFlow cannot handle {type(packet).__name__}")
        return out

    def resume(self, session_present: bool, receive_maximum: int | None = None) -> FlowOutput:
        """After a reconnect: what to send before anything new, and flows settled by the loss of the session.

        Args:
            session_present: the peer kept our session (CONNACK Session Present).
            receive_maximum: the peer's Receive Maximum on the new connection.
        """
        if receive_maximum is not None:
            self.receive_maximum = receive_maximum
        out = FlowOutput()
        if session_present:
            # Resend in order, PUBLISHes first (original order) then PUBRELs (PUBREC order), within the window.
            publishes = [p for p, e in self.inflight.items() if e.state is not _AWAIT_PUBCOMP]
            releases = [p for p, e in self.inflight.items() if e.state is _AWAIT_PUBCOMP]
            self.held = deque(publishes + releases)
        else:
            self.held.clear()
            restart: list[tuple[Publish, object]] = []
            for pid, entry in list(self.inflight.items()):
                del self.inflight[pid]
                self.packet_ids.release(pid)
                if entry.state is _AWAIT_PUBCOMP:
                    out.completed.append(
                        Completed(entry.token, entry.publish, entry.pubrec_reason, EMPTY_PROPERTIES, 2)
                    )
                else:
                    restart.append((with_packet_id(entry.publish, None, False), entry.token))
            self.waiting.extendleft(reversed(restart))
        self._fill_window(out)
        return out

    def discard(self, packet_id: int) -> InFlight | None:
        """Forget the message in flight under ``packet_id`` as if it had completed, without a completion (a broker
        that could not send it: larger than the client's Maximum Packet Size). Returns it, or None if unknown."""
        entry = self.inflight.pop(packet_id, None)
        if entry is not None:
            if packet_id in self.held:
                self.held.remove(packet_id)
            self.packet_ids.release(packet_id)
        return entry

    def restore(self, publish: Publish, released: bool = False, token: object = None) -> None:
        """Put back a message that was in flight before a restart (a broker's persistent session), with its packet
        identifier; ``released``: its PUBREC had arrived and PUBREL was sent. Restore in the order to resend:
        unreleased messages in the order sent, then released ones in the order their PUBRECs arrived; then
        :meth:`resume` resends them.

        Raises:
            LocalProtocolError: no packet identifier, or one already in use.
        """
        pid = publish.packet_id
        if pid is None or publish.qos == 0:
            raise LocalProtocolError("only a QoS 1/2 message with a packet identifier can be restored in flight")
        if pid in self.packet_ids:
            raise LocalProtocolError(f"packet identifier {pid} is already in use")
        self.packet_ids.claim(pid)
        state = _AWAIT_PUBACK if publish.qos == 1 else _AWAIT_PUBCOMP if released else _AWAIT_PUBREC
        self.inflight[pid] = InFlight(publish, state, token)

    def abandon(self) -> list[tuple[Publish, object]]:
        """Drop every unfinished message (the session ended for good); return them with their tokens."""
        dropped = [(entry.publish, entry.token) for entry in self.inflight.values()]
        dropped.extend(self.waiting)
        for pid in self.inflight:
            self.packet_ids.release(pid)
        self.inflight.clear()
        self.waiting.clear()
        self.held.clear()
        return dropped

    def __iter__(self) -> Iterator[InFlight]:
        return iter(self.inflight.values())


class IncomingFlow:
    """The receiver side of QoS 1 and QoS 2 for one session.

    Args:
        receive_maximum: the Receive Maximum we announced: how many QoS 2 messages may await PUBREL at once.
    """

    def __init__(self, receive_maximum: int = DEFAULT_RECEIVE_MAXIMUM) -> None:
        self.receive_maximum = receive_maximum
        #: Identifiers of QoS 2 messages delivered whose PUBREL has not arrived.
        self.awaiting_pubrel: dict[int, None] = {}

    def receive_publish(
        self, publish: Publish, reason_code: ReasonCode = ReasonCode.SUCCESS
    ) -> tuple[bool, PubAck | PubRec | None]:
        """Whether to deliver ``publish`` to the application, and the acknowledgement to send.

        Args:
            reason_code: the acknowledgement's reason code; a failure code (e.g. 0x87 Not authorized) refuses
                the message: it is not delivered and, for QoS 2, its identifier is not kept.

        Raises:
            RemoteProtocolError: 0x93 when the sender exceeds our Receive Maximum.
        """
        qos = publish.qos
        refused = reason_code >= 0x80
        if qos == 0:
            return not refused, None
        pid = publish.packet_id
        assert pid is not None
        if qos == 1:
            return not refused, PubAck(pid, reason_code)
        if pid in self.awaiting_pubrel:
            return False, PubRec(pid)  # a duplicate: acknowledged again, delivered once
        if refused:
            return False, PubRec(pid, reason_code)
        if len(self.awaiting_pubrel) >= self.receive_maximum:
            raise RemoteProtocolError(
                f"more than {self.receive_maximum} QoS 2 messages in flight",
                ReasonCode.RECEIVE_MAXIMUM_EXCEEDED,
            )
        self.awaiting_pubrel[pid] = None
        return True, PubRec(pid)

    def restore(self, packet_id: int) -> None:
        """Put back a QoS 2 message delivered before a restart whose PUBREL has not arrived (a broker's persistent
        session): a resent PUBLISH with this identifier is then acknowledged and not delivered again."""
        if not 0 < packet_id <= MAX_PACKET_ID:
            raise LocalProtocolError(f"packet identifier {packet_id} is outside 1..65535")
        self.awaiting_pubrel[packet_id] = None

    def receive_pubrel(self, pubrel: PubRel) -> PubComp:
        """The PUBCOMP answering ``pubrel``; the identifier may then be reused by the sender."""
        pid = pubrel.packet_id
        if pid in self.awaiting_pubrel:
            del self.awaiting_pubrel[pid]
            return PubComp(pid)
        return PubComp(pid, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND)
