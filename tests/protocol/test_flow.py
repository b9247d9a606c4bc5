"""QoS flows: a client-side and a broker-side flow wired together through the codec, with no I/O."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from mqttchat.protocol import (
    Completed,
    IncomingFlow,
    LocalProtocolError,
    OutgoingFlow,
    Packet,
    PacketIdAllocator,
    PacketReader,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    ReasonCode,
    RemoteProtocolError,
)


@dataclass
class Link:
    """A sender's OutgoingFlow and a receiver's IncomingFlow joined by a simulated TCP connection.

    Packets travel as bytes through a PacketReader on each side. ``cut()`` loses everything in transit in both
    directions, as a dropped TCP connection does; ``reconnect()`` resumes the sender's session.
    """

    version: int = 5
    window: int = 65_535
    sender: OutgoingFlow = field(init=False)
    receiver: IncomingFlow = field(init=False)
    to_receiver: list[bytes] = field(default_factory=list)
    to_sender: list[bytes] = field(default_factory=list)
    delivered: list[Publish] = field(default_factory=list)
    completed: list[Completed] = field(default_factory=list)
    connected: bool = True

    def __post_init__(self) -> None:
        self.sender = OutgoingFlow(self.window)
        self.receiver = IncomingFlow()
        self._new_readers()

    def _new_readers(self) -> None:
        self.receiver_reader = PacketReader(self.version)
        self.sender_reader = PacketReader(self.version)

    def _send(self, queue: list[bytes], packets: list[Packet]) -> None:
        if self.connected:
            queue.extend(p.encode(self.version) for p in packets)

    def publish(self, message: Publish, token: object = None) -> None:
        packet = self.sender.publish(message, token)
        if packet is not None:
            self._send(self.to_receiver, [packet])

    def step_receiver(self) -> bool:
        """Deliver one packet to the receiver; False if none was in transit."""
        if not self.to_receiver:
            return False
        (packet,) = self.receiver_reader.read(self.to_receiver.pop(0))
        if isinstance(packet, Publish):
            deliver, ack = self.receiver.receive_publish(packet)
            if deliver:
                self.delivered.append(packet)
            if ack is not None:
                self._send(self.to_sender, [ack])
        else:
            assert isinstance(packet, PubRel)
            self._send(self.to_sender, [self.receiver.receive_pubrel(packet)])
        return True

    def step_sender(self) -> bool:
        if not self.to_sender:
            return False
        (packet,) = self.sender_reader.read(self.to_sender.pop(0))
        assert isinstance(packet, PubAck | PubRec | PubComp)
        out = self.sender.receive(packet)
        self.completed.extend(out.completed)
        self._send(self.to_receiver, out.packets)
        return True

    def run(self) -> None:
        while self.step_receiver() or self.step_sender():
            pass

    def cut(self) -> None:
        self.to_receiver.clear()
        self.to_sender.clear()
        self.connected = False

    def reconnect(self, session_present: bool = True) -> None:
        self.connected = True
        self._new_readers()
        if not session_present:
            self.receiver = IncomingFlow()
        out = self.sender.resume(session_present)
        self.completed.extend(out.completed)
        self._send(self.to_receiver, out.packets)


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_each_qos_completes(version: int, qos: int) -> None:
    link = Link(version)
    link.publish(Publish("t", b"m", qos), token="m")
    link.run()
    assert [p.payload for p in link.delivered] == [b"m"]
    if qos:
        assert [(c.token, c.ok, c.reason_code) for c in link.completed] == [("m", True, ReasonCode.SUCCESS)]
        assert not link.sender.inflight
        assert len(link.sender.packet_ids) == 0
        assert not link.receiver.awaiting_pubrel


def _drive_until(link: Link, packet_type: type[Packet]) -> None:
    """Run the exchange until a packet of ``packet_type`` is the next in transit, then cut the connection."""
    while True:
        for queue in (link.to_receiver, link.to_sender):
            if queue and type(PacketReader(link.version).read(queue[0])[0]) is packet_type:
                link.cut()
                return
        assert link.step_receiver() or link.step_sender(), f"no {packet_type.__name__} was ever sent"


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("lost", [Publish, PubRec, PubRel, PubComp])
def test_qos2_reconnect_at_each_step_delivers_exactly_once(version: int, lost: type[Packet]) -> None:
    link = Link(version)
    link.publish(Publish("t", b"once", 2), token=1)
    _drive_until(link, lost)
    link.reconnect(session_present=True)
    link.run()
    assert [p.payload for p in link.delivered] == [b"once"]
    assert [(c.token, c.ok) for c in link.completed] == [(1, True)]
    assert not link.sender.inflight
    assert not link.receiver.awaiting_pubrel


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("lost", [Publish, PubAck])
def test_qos1_reconnect_delivers_at_least_once(version: int, lost: type[Packet]) -> None:
    link = Link(version)
    link.publish(Publish("t", b"m", 1), token=1)
    _drive_until(link, lost)
    link.reconnect()
    link.run()
    assert [p.payload for p in link.delivered] == [b"m"] * (2 if lost is PubAck else 1)
    if lost is PubAck:
        assert link.delivered[1].dup
    assert [(c.token, c.ok) for c in link.completed] == [(1, True)]


def test_resent_packets_keep_their_identifiers_and_order() -> None:
    link = Link()
    for i in range(5):
        link.publish(Publish("t", bytes([i]), 1 + i % 2), token=i)
    link.step_receiver()
    link.step_receiver()
    link.step_sender()  # PUBACK of message 0
    link.step_sender()  # PUBREC of message 1 -> PUBREL in transit
    original_ids = [e.publish.packet_id for e in link.sender]
    link.cut()
    link.reconnect()
    resent = [PacketReader(5).read(b)[0] for b in link.to_receiver]
    # PUBLISHes in their original order, then PUBRELs in the order their PUBRECs arrived (MQTT 4.6).
    assert [type(p).__name__ for p in resent] == ["Publish", "Publish", "Publish", "PubRel"]
    assert [p.packet_id for p in resent] == original_ids  # type: ignore[attr-defined]
    assert all(p.dup for p in resent if isinstance(p, Publish))
    link.run()
    assert [p.payload for p in link.delivered] == [bytes([i]) for i in range(5)]


def test_session_lost_restarts_unacknowledged_and_settles_released() -> None:
    link = Link()
    link.publish(Publish("t", b"q2", 2), token="q2")
    link.publish(Publish("t", b"q1", 1), token="q1")
    link.step_receiver()  # q2 delivered, PUBREC queued
    link.step_sender()  # PUBREC handled: q2 now awaits PUBCOMP, receiver owns it
    link.cut()
    link.reconnect(session_present=False)
    link.run()
    assert sorted(str(c.token) for c in link.completed) == ["q1", "q2"]
    assert [p.payload for p in link.delivered] == [b"q2", b"q1"]
    assert not link.delivered[1].dup  # restarted as a new message


def test_receive_maximum_window() -> None:
    link = Link(window=3)
    for i in range(10):
        link.publish(Publish("t", bytes([i]), 1), token=i)
    assert len(link.to_receiver) == 3
    assert len(link.sender.inflight) == 3
    assert len(link.sender.waiting) == 7
    assert len(link.sender) == 10
    link.run()
    assert [p.payload for p in link.delivered] == [bytes([i]) for i in range(10)]
    assert [c.token for c in link.completed] == list(range(10))


def test_qos0_bypasses_the_window() -> None:
    flow = OutgoingFlow(receive_maximum=1)
    assert flow.publish(Publish("t", b"", 1)) is not None
    assert flow.publish(Publish("t", b"", 1)) is None
    assert flow.publish(Publish("t", b"", 0)) == Publish("t", b"", 0)


def test_pubrec_failure_ends_the_flow_and_frees_the_identifier() -> None:
    sender = OutgoingFlow()
    packet = sender.publish(Publish("t", b"", 2), token="x")
    assert packet is not None and packet.packet_id is not None
    out = sender.receive(PubRec(packet.packet_id, ReasonCode.NOT_AUTHORIZED))
    assert out.packets == []
    assert [(c.token, c.reason_code, c.ok) for c in out.completed] == [("x", ReasonCode.NOT_AUTHORIZED, False)]
    assert packet.packet_id not in sender.packet_ids


def test_receiver_refusal_is_not_delivered_and_not_remembered() -> None:
    receiver = IncomingFlow()
    deliver, ack = receiver.receive_publish(Publish("t", b"", 2, packet_id=1), ReasonCode.NOT_AUTHORIZED)
    assert not deliver
    assert ack == PubRec(1, ReasonCode.NOT_AUTHORIZED)
    assert not receiver.awaiting_pubrel
    deliver, ack = receiver.receive_publish(Publish("t", b"", 1, packet_id=2), ReasonCode.NOT_AUTHORIZED)
    assert not deliver
    assert ack == PubAck(2, ReasonCode.NOT_AUTHORIZED)


def test_wrong_acknowledgements_are_protocol_errors() -> None:
    sender = OutgoingFlow()
    q1 = sender.publish(Publish("t", b"", 1))
    q2 = sender.publish(Publish("t", b"", 2))
    assert q1 is not None and q2 is not None and q1.packet_id and q2.packet_id
    with pytest.raises(RemoteProtocolError):
        sender.receive(PubAck(q2.packet_id))
    with pytest.raises(RemoteProtocolError):
        sender.receive(PubRec(q1.packet_id))
    with pytest.raises(RemoteProtocolError):
        sender.receive(PubComp(q2.packet_id))  # before PUBREC


def test_unknown_identifiers() -> None:
    sender = OutgoingFlow()
    assert sender.receive(PubAck(99)).packets == []  # late duplicate: ignored
    assert sender.receive(PubComp(99)).packets == []
    assert sender.receive(PubRec(99)).packets == [PubRel(99, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND)]
    receiver = IncomingFlow()
    assert receiver.receive_pubrel(PubRel(5)) == PubComp(5, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND)


def test_incoming_receive_maximum_exceeded() -> None:
    receiver = IncomingFlow(receive_maximum=2)
    receiver.receive_publish(Publish("t", b"", 2, packet_id=1))
    receiver.receive_publish(Publish("t", b"", 2, packet_id=2))
    receiver.receive_publish(Publish("t", b"", 2, False, True, 2))  # a duplicate does not count
    with pytest.raises(RemoteProtocolError) as info:
        receiver.receive_publish(Publish("t", b"", 2, packet_id=3))
    assert info.value.reason_code == ReasonCode.RECEIVE_MAXIMUM_EXCEEDED


def test_packet_identifiers_are_never_reused_in_flight() -> None:
    ids = PacketIdAllocator()
    first = [ids.allocate() for _ in range(65_535)]
    assert sorted(first) == list(range(1, 65_536))
    with pytest.raises(LocalProtocolError):
        ids.allocate()
    ids.release(40_000)
    assert ids.allocate() == 40_000
    ids.release(7)
    ids.release(8)
    assert ids.allocate() == 7
    assert ids.allocate() == 8


def test_allocator_skips_claimed_identifiers_and_wraps() -> None:
    ids = PacketIdAllocator()
    ids.claim(1)
    ids.claim(2)
    assert ids.allocate() == 3
    for pid in range(4, 65_536):
        ids.claim(pid)
    ids.release(1)
    assert ids.allocate() == 1  # wrapped around past 65535
    with pytest.raises(LocalProtocolError):
        ids.claim(0)


def test_abandon_returns_everything_unfinished() -> None:
    sender = OutgoingFlow(receive_maximum=1)
    sender.publish(Publish("t", b"a", 1), "a")
    sender.publish(Publish("t", b"b", 1), "b")
    assert [token for _, token in sender.abandon()] == ["a", "b"]
    assert len(sender) == 0
    assert len(sender.packet_ids) == 0


@pytest.mark.parametrize("seed", range(25))
def test_random_cuts_and_reconnects(seed: int) -> None:
    """Hundreds of QoS 1 and 2 messages over a link cut at random moments: nothing acknowledged is lost, QoS 2
    arrives exactly once, and first deliveries keep the publisher's order."""
    rng = random.Random(seed)
    version = rng.choice([4, 5])
    link = Link(version, window=rng.choice([1, 3, 20, 65_535]))
    messages = [Publish("t", i.to_bytes(2, "big"), rng.choice([1, 2])) for i in range(300)]
    next_message = 0
    cuts = 0
    for _ in range(100_000):
        idle = link.connected and not link.to_receiver and not link.to_sender
        if next_message == len(messages) and idle and not link.sender.inflight and not link.sender.waiting:
            break
        roll = rng.random()
        if not link.connected:
            link.reconnect()
        elif roll < 0.02:
            link.cut()
            cuts += 1
        elif roll < 0.4 and next_message < len(messages):
            link.publish(messages[next_message], token=next_message)
            next_message += 1
        elif roll < 0.7:
            link.step_receiver() or link.step_sender()
        else:
            link.step_sender() or link.step_receiver()
        if link.connected and not link.to_receiver and not link.to_sender and link.sender.inflight and roll > 0.98:
            # Nothing in transit but unfinished flows: only a reconnect resends them (MQTT 5 forbids resending
            # on a live connection), so simulate the broker noticing a dead link.
            link.cut()
    assert next_message == len(messages)
    assert cuts > 0
    assert sorted(c.token for c in link.completed) == list(range(300))  # type: ignore[type-var]
    assert all(c.ok for c in link.completed)
    payloads = [p.payload for p in link.delivered]
    first_seen = list(dict.fromkeys(payloads))
    assert first_seen == [m.payload for m in messages]  # every message, in order
    for message in messages:
        if message.qos == 2:
            assert payloads.count(message.payload) == 1, "QoS 2 delivered more than once"
    assert not link.receiver.awaiting_pubrel
    assert len(link.sender.packet_ids) == 0


def test_resume_never_exceeds_the_new_receive_maximum() -> None:
    sender = OutgoingFlow(receive_maximum=10)
    sent = [sender.publish(Publish("t", bytes([i]), 1), i) for i in range(10)]
    assert all(p is not None for p in sent)
    out = sender.resume(True, receive_maximum=2)
    assert [p.payload for p in out.packets] == [b"\x00", b"\x01"]  # type: ignore[attr-defined]
    assert all(p.dup for p in out.packets)  # type: ignore[attr-defined]
    assert sender.publish(Publish("t", b"new", 1), "new") is None  # queued behind the held ones
    ids = [p.packet_id for p in sent]  # type: ignore[union-attr]
    more = sender.receive(PubAck(ids[0]))
    assert [(p.payload, p.dup) for p in more.packets] == [(b"\x02", True)]  # type: ignore[attr-defined]
    sent_later = []
    for pid in ids[1:]:
        more = sender.receive(PubAck(pid))
        sent_later.extend(more.packets)
        assert sender.in_window <= 2
    assert [p.payload for p in sent_later] == [bytes([i]) for i in range(3, 10)] + [b"new"]  # type: ignore[attr-defined]


def test_pubrels_are_resent_in_pubrec_order() -> None:
    sender = OutgoingFlow()
    first = sender.publish(Publish("t", b"1", 2))
    second = sender.publish(Publish("t", b"2", 2))
    assert first is not None and second is not None and first.packet_id and second.packet_id
    sender.receive(PubRec(second.packet_id))
    sender.receive(PubRec(first.packet_id))
    out = sender.resume(True)
    assert out.packets == [PubRel(second.packet_id), PubRel(first.packet_id)]


def test_settle_puback_fast_path_agrees_with_receive() -> None:
    sender = OutgoingFlow(receive_maximum=2)
    first = sender.publish(Publish("t", b"1", qos=1))
    second = sender.publish(Publish("t", b"2", qos=2))
    assert first is not None and second is not None and first.packet_id and second.packet_id
    assert not sender.settle_puback(999)  # unknown id: the caller's slow path ignores it
    assert not sender.settle_puback(second.packet_id)  # a QoS 2 flow: the slow path raises the protocol error
    with pytest.raises(RemoteProtocolError):
        sender.receive(PubAck(second.packet_id))
    assert sender.publish(Publish("t", b"3", qos=1)) is None  # waits for the window
    assert not sender.settle_puback(first.packet_id)  # the window must be refilled: the slow path does that
    out = sender.receive(PubAck(first.packet_id))
    assert [p.payload for p in out.packets] == [b"3"]  # type: ignore[attr-defined]
    third = out.packets[0]
    assert sender.settle_puback(third.packet_id)  # type: ignore[attr-defined]
    assert third.packet_id not in sender.inflight  # type: ignore[attr-defined]
    assert sender.in_window == 1
    assert sender.packet_ids.allocate() == 4  # identifiers keep advancing past the settled one


def test_can_send_is_false_while_resent_messages_are_held() -> None:
    """After a reconnect with a smaller window, held messages go first: a sender must not overtake them."""
    sender = OutgoingFlow(receive_maximum=5)
    for i in range(4):
        assert sender.publish(Publish("t", b"%d" % i, qos=1)) is not None
    assert sender.can_send  # 4 of 5 in flight
    out = sender.resume(True, receive_maximum=2)
    assert [p.payload for p in out.packets] == [b"0", b"1"]  # type: ignore[attr-defined]
    assert not sender.can_send  # two held, window full
    first = out.packets[0]
    done = sender.receive(PubAck(first.packet_id))  # type: ignore[attr-defined]
    assert [p.payload for p in done.packets] == [b"2"]  # type: ignore[attr-defined]
    assert not sender.can_send  # b"3" is still held
    second = out.packets[1]
    sender.receive(PubAck(second.packet_id))  # type: ignore[attr-defined]
    assert not sender.held and not sender.can_send  # window of 2 full with b"2" and b"3"
    assert sender.publish(Publish("t", b"late", qos=1)) is None  # waits behind them, in order


def test_restored_messages_resume_in_order_with_their_identifiers() -> None:
    """What a broker's store restores after a restart: unreleased messages resent as PUBLISH with DUP, released
    ones as PUBREL, in the order restored; their identifiers stay taken; a QoS 2 id awaiting PUBREL is not
    delivered twice."""
    flow = OutgoingFlow(10)
    flow.restore(Publish("a", b"1", 1, packet_id=7), token="row1")
    flow.restore(Publish("b", b"2", 2, packet_id=3), token="row2")
    flow.restore(Publish("c", b"3", 2, packet_id=9), released=True, token="row3")
    with pytest.raises(LocalProtocolError):
        flow.restore(Publish("d", b"4", 1, packet_id=7))
    assert 7 in flow.packet_ids and flow.packet_ids.allocate() not in (3, 7, 9)
    out = flow.resume(True)
    assert [(type(p).__name__, p.packet_id, getattr(p, "dup", None)) for p in out.packets] == [
        ("Publish", 7, True), ("Publish", 3, True), ("PubRel", 9, None),
    ]  # fmt: skip
    assert flow.receive(PubComp(9)).completed[0].token == "row3"
    incoming = IncomingFlow()
    incoming.restore(5)
    assert incoming.receive_publish(Publish("x", b"", 2, packet_id=5)) == (False, PubRec(5))


def test_discard_forgets_a_message_in_flight_without_completing_it() -> None:
    flow = OutgoingFlow(10)
    packet = flow.publish(Publish("a", b"1", 1), token="t")
    assert packet is not None and packet.packet_id is not None
    entry = flow.discard(packet.packet_id)
    assert entry is not None and entry.token == "t"
    assert len(flow) == 0 and packet.packet_id not in flow.packet_ids
    assert flow.discard(packet.packet_id) is None
