"""A client's session on the broker: subscriptions, QoS flows, the queue of messages waiting for it."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from mqttchat.broker.clock import Timer
from mqttchat.protocol import IncomingFlow, OutgoingFlow, Packet, Publish, Subscription, Will
from mqttchat.protocol.constants import DEFAULT_RECEIVE_MAXIMUM

if TYPE_CHECKING:
    from mqttchat.broker.overload import Congestion

#: Session Expiry Interval meaning "never expires" (MQTT 5, 3.1.2.11.2).
NEVER_EXPIRES = 0xFFFF_FFFF


class SessionConnection(Protocol):
    """What the broker's core asks of the connection a session is attached to.

    :class:`mqttchat.broker.connection.BrokerConnection` is one; the core and the session know it only by this, so
    that the dependencies run one way: connection → core → session.
    """

    #: The connection's MQTT protocol level (4 or 5).
    version: int

    @property
    def writable(self) -> bool:
        """False while the client does not drain its input: QoS 0 messages to it are then dropped."""

    def send(self, packet: Packet) -> None:
        """Queue a control packet for the client."""

    def send_publish(self, packet: Publish, data: bytes | None = None) -> None:
        """Queue an application message; ``data`` is its encoding when the caller already has it."""

    def flush(self) -> None:
        """Write what is queued now."""

    def takeover(self) -> None:
        """Another connection took the session over: end this one."""

    #: The subscribers whose congestion paused this connection (None: it is read); see mqttchat.broker.overload.
    throttled_by: set[Session] | None

    def throttle(self, by: Session) -> None:
        """Stop reading this client until every subscriber that paused it released it (overload protection)."""

    def release(self, by: Session) -> None:
        """``by`` no longer holds this client: read it again once nobody does."""


@dataclass(slots=True)
class SubEntry:
    """One subscription of one session, as stored in the broker's trie."""

    session: Session
    options: Subscription
    subscription_id: int | None = None


class SharedGroup:
    """The members of one shared subscription ``$share/{group}/{filter}``; messages go round-robin."""

    __slots__ = ("filter", "members", "name", "next")

    def __init__(self, name: str, topic_filter: str) -> None:
        self.name = name
        self.filter = topic_filter
        self.members: dict[str, SubEntry] = {}
        self.next = 0

    def pick(self, topic: str) -> SubEntry | None:
        """The next member that may receive ``topic`` (its ACL), preferring one that is connected and not
        congested (see mqttchat.broker.overload: a slow member would pause the publishers while others are idle).

        A member whose rights do not cover the topic is skipped, not chosen and then denied: with filters wider
        than their rights, such members would otherwise swallow their share of the group's messages.
        """
        members = [
            entry for entry in self.members.values()
            if entry.session.access is None or entry.session.access.can_receive(topic)
        ]  # fmt: skip
        if not members:
            return None
        n = len(members)
        for i in range(n):
            entry = members[(self.next + i) % n]
            session = entry.session
            if session.connection is not None and session.congestion is None:
                self.next = (self.next + i + 1) % n
                return entry
        for i in range(n):
            entry = members[(self.next + i) % n]
            if entry.session.connection is not None:
                self.next = (self.next + i + 1) % n
                return entry
        entry = members[self.next % n]
        self.next = (self.next + 1) % n
        return entry


class Session:
    """Everything the broker keeps for one client identifier, connected or not.

    The flows and the queue are created on first use: an idle connection costs only this object.
    """

    __slots__ = (
        "access",
        "authenticated",
        "client_id",
        "congestion",
        "connection",
        "dropped",
        "expiry_handle",
        "expiry_interval",
        "incoming_flow",
        "max_packet_size",
        "outgoing_flow",
        "persistent_id",
        "queue",
        "queued_bytes",
        "stalled",
        "subscriptions",
        "username",
        "version",
        "will",
        "will_handle",
        "window",
    )

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        self.connection: SessionConnection | None = None
        self.subscriptions: dict[str, SubEntry] = {}
        self.outgoing_flow: OutgoingFlow | None = None
        self.incoming_flow: IncomingFlow | None = None
        #: Messages waiting for the client: offline, or beyond the in-flight window.
        #: (publish, expires_at, persistence row id or None)
        self.queue: deque[tuple[Publish, float | None, int | None]] | None = None
        self.queued_bytes = 0
        self.dropped = 0
        #: Overload protection (mqttchat.broker.overload): the congested episode its queue is in, if any, and
        #: whether it was declared stalled (then its queue is bounded by dropping, not by pausing publishers).
        self.congestion: Congestion | None = None
        self.stalled = False
        self.expiry_interval = 0
        self.expiry_handle: Timer | None = None
        self.will: Will | None = None
        self.will_handle: Timer | None = None
        self.username: str | None = None
        #: Whether ``username`` was checked against the password file: only then does the session belong to that
        #: user (another user is refused its client id); an unchecked name is a claim anyone can make.
        self.authenticated = False
        self.access: Any = None
        self.version = 5
        #: The in-flight window towards the client: min(max_inflight_messages, the client's Receive Maximum).
        self.window = DEFAULT_RECEIVE_MAXIMUM
        #: The client's Maximum Packet Size (MQTT 5), 0 when it set none.
        self.max_packet_size = 0
        self.persistent_id: int | None = None

    @property
    def outgoing(self) -> OutgoingFlow:
        flow = self.outgoing_flow
        if flow is None:
            flow = self.outgoing_flow = OutgoingFlow(self.window)
        return flow

    def incoming(self, receive_maximum: int) -> IncomingFlow:
        """The receiving flow, created with ``receive_maximum`` (the broker's) on first use."""
        flow = self.incoming_flow
        if flow is None:
            flow = self.incoming_flow = IncomingFlow(receive_maximum)
        return flow

    def restore_queued(self, message: Publish, expires_at: float | None, row: int | None) -> None:
        """Put back a message that was queued for the client before a restart (persistence), after the others."""
        if self.queue is None:
            self.queue = deque()
        self.queue.append((message, expires_at, row))
        self.queued_bytes += len(message.payload) + len(message.topic)

    @property
    def persistent(self) -> bool:
        return self.expiry_interval > 0

    @property
    def queued(self) -> int:
        return len(self.queue) if self.queue else 0

    @property
    def inflight(self) -> int:
        return len(self.outgoing_flow.inflight) if self.outgoing_flow else 0

    def __repr__(self) -> str:
        state = "online" if self.connection else "offline"
        return f"<Session {self.client_id!r} {state} subs={len(self.subscriptions)} queued={self.queued}>"
