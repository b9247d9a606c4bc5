"""Overload protection: the publishers feeding a subscriber that falls behind are slowed down, not its messages
dropped.

Theory of operation::

    normal ──queue reaches high water──▶ CONGESTED ──queue back at low water──▶ normal
                                             │                                    ▲
                                             └──stall_timeout──▶ STALLED ─────────┘ (queue back at low water)

A connected subscriber whose queue (the messages beyond its in-flight window) reaches the high-water mark is
*congested*: every publisher whose message is then queued for it is paused. A paused connection is not read (TCP
backpressure: the publisher's writes block once the socket buffers fill), what it had sent already waits unparsed
in its reader, and the acknowledgement of the QoS 1/2 message that paused it is held until it resumes, so that an
MQTT 5 publisher's Receive Maximum credit is not returned meanwhile. When the queue is back down to the low-water
mark the subscriber is relieved and the publishers it paused resume (those no other subscriber holds).

A congested subscriber not back at the low-water mark within ``stall_timeout`` seconds (one that stopped reading,
or reads too slowly to ever catch up) is *stalled*: the publishers it paused resume, and it is handled as without
protection (its queue bounded by max_queued_messages, drops counted) until it is back at the low-water mark. So a
publisher is never held longer than ``stall_timeout`` by one subscriber, well within any keepalive.

Never paused: a publisher by its own subscription (it could not read the acknowledgements that drain it), and
anyone by a subscriber that is itself paused (for the same reason): a pause is only ever made by a connection that
is being read, so pauses never form a cycle in which nobody is read. The keepalive of a paused connection is not
checked (its PINGREQs wait unread behind what it published), and starts afresh when it resumes.

The cost on the routing paths: a length compared when a message is queued, a flag checked when a queue is pumped;
nothing when a message goes straight out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mqttchat.broker.clock import Clock, Timer
from mqttchat.untrusted import loggable

if TYPE_CHECKING:
    from mqttchat.broker.config import BrokerConfig
    from mqttchat.broker.session import Session, SessionConnection

log = logging.getLogger("mqttchat.broker")

#: A high-water mark no queue reaches: overload protection off.
OFF = 1 << 62


def water_marks(config: BrokerConfig) -> tuple[int, int]:
    """The (high, low) water marks in force: the configured ones, the high one below max_queued_messages (a
    smaller queue limit given without marks brings them down with it), the low one below the high one."""
    if not config.overload_protection:
        return OFF, OFF
    high = config.overload_high_water
    limit = config.max_queued_messages
    if limit:
        high = max(1, min(high, limit - 1))
    low = config.overload_low_water
    if low >= high:
        low = high // 2
    return high, low


@dataclass(slots=True, eq=False)
class Congestion:
    """One congested episode of a subscriber: since when, the publishers it paused, its stall deadline."""

    since: float
    timer: Timer
    paused: set[SessionConnection] = field(default_factory=set)


class Overload:
    """The broker's overload protection: which subscribers are congested or stalled, which publishers paused.

    The router calls :meth:`congested` when it queues a message for a connected subscriber whose queue is at the
    high-water mark, and :meth:`relieved` when a congested or stalled subscriber's queue is back at the low-water
    mark; the connection calls :meth:`forget` when a subscriber's connection ends.
    """

    def __init__(self, config: BrokerConfig, clock: Clock) -> None:
        self.clock = clock
        self.enabled = config.overload_protection
        self.high_water, self.low_water = water_marks(config)
        self.stall_timeout = config.overload_stall_timeout
        #: Connected subscribers now congested (their publishers paused) or stalled (handled without protection).
        self.congested: set[Session] = set()
        self.stalled: set[Session] = set()
        #: Pauses of a publisher by a subscriber, and subscribers declared stalled, since the start.
        self.pauses = 0
        self.stalls = 0

    # -- called by the router and the connections ---------------------------------------------------------------

    def congested_by(self, session: Session, sender: Session | None) -> None:
        """A message from ``sender`` was queued for ``session`` (connected), whose queue is at the high-water mark."""
        if session.stalled:
            return
        congestion = session.congestion
        if congestion is None:
            congestion = session.congestion = Congestion(
                self.clock.now(), self.clock.call_later(self.stall_timeout, self._stall, session)
            )
            self.congested.add(session)
        if sender is None or sender is session:
            return  # a will, a retained message, $SYS; or its own message (it must be read to drain its queue)
        conn = session.connection
        if conn is None or conn.throttled_by is not None:
            return  # a subscriber that is not read itself pauses nobody (see the module's docstring)
        publisher = sender.connection
        if publisher is None or publisher in congestion.paused:
            return
        congestion.paused.add(publisher)
        self.pauses += 1
        publisher.throttle(session)

    def relieved(self, session: Session) -> None:
        """``session``'s queue is back at the low-water mark: its publishers resume; a stalled one is no more."""
        if session.stalled:
            session.stalled = False
            self.stalled.discard(session)
            log.info("subscriber %s caught up: no longer stalled", loggable(session.client_id))
        self._release(session)

    def forget(self, session: Session) -> None:
        """``session``'s connection ended: its queue is an offline client's now (bounded, never pausing anyone)."""
        if session.stalled:
            session.stalled = False
            self.stalled.discard(session)
        self._release(session)

    # -- inside -------------------------------------------------------------------------------------------------

    def _release(self, session: Session) -> None:
        congestion = session.congestion
        if congestion is None:
            return
        session.congestion = None
        self.congested.discard(session)
        congestion.timer.cancel()
        for publisher in congestion.paused:
            publisher.release(session)

    def _stall(self, session: Session) -> None:
        congestion = session.congestion
        if congestion is None:
            return
        self.stalls += 1
        log.warning(
            "subscriber %s did not drain its queue (%d messages) for %g s: declared stalled; %d publisher(s) it "
            "paused resume, and its messages beyond max_queued_messages are dropped until it catches up",
            loggable(session.client_id), session.queued, self.stall_timeout, len(congestion.paused),
        )  # fmt: skip
        self._release(session)
        session.stalled = True
        self.stalled.add(session)

    # -- for $SYS and the app -----------------------------------------------------------------------------------

    def paused_publishers(self) -> list[SessionConnection]:
        """The connections paused now (each once, however many subscribers hold it)."""
        seen: dict[int, SessionConnection] = {}
        for session in self.congested:
            congestion = session.congestion
            if congestion is not None:
                for conn in congestion.paused:
                    if conn.throttled_by is not None:
                        seen.setdefault(id(conn), conn)
        return list(seen.values())
