"""The broker's core: sessions (take-over, expiry, wills), routing (:mod:`mqttchat.broker.routing`), retained
messages, statistics, dropped-message accounting and ``$SYS``; no sockets, time through a
:class:`~mqttchat.broker.clock.Clock`.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

from mqttchat import __version__
from mqttchat.broker.clock import Clock, Timer
from mqttchat.broker.logins import LoginChecks
from mqttchat.broker.retained import RetainedStore
from mqttchat.broker.routing import BrokerStats, Router
from mqttchat.broker.session import NEVER_EXPIRES, Session
from mqttchat.protocol import PropertyId, Publish
from mqttchat.protocol.topics import MAX_TOPIC_LEVELS, too_deep
from mqttchat.untrusted import loggable

if TYPE_CHECKING:
    from mqttchat.broker.config import BrokerConfig

log = logging.getLogger("mqttchat.broker")

#: Seconds between two warnings about dropped messages, and how many clients one warning names.
DROP_LOG_INTERVAL = 5.0
_DROP_LOG_CLIENTS = 5


class BrokerCore:
    """State and routing of the broker, independent of listeners and sockets."""

    def __init__(self, config: BrokerConfig, clock: Clock | None = None) -> None:
        self.config = config
        #: Time, deadlines and deferred work (run by the asyncio shell, or by a test that moves time itself).
        self.clock = clock if clock is not None else Clock()
        self.sessions: dict[str, Session] = {}
        self.retained = RetainedStore()
        self.stats = BrokerStats()
        self.router = router = Router(config, self.stats, self.clock, self.retained, self.count_drop)
        # The router's entry points, bound once (connections call them per packet).
        self.subscribe = router.subscribe
        self.unsubscribe = router.unsubscribe
        self.restore_subscription = router.restore_subscription
        self.send_retained = router.send_retained
        self.publish = router.publish
        self.deliver = router.deliver
        self.pump = router.pump
        #: Overload protection: who is congested, stalled, paused (see mqttchat.broker.overload).
        self.overload = router.overload
        self.started_at = self.clock.wall()
        self.passwords: Any = None  # mqttchat.broker.auth.PasswordFile when configured
        self.acl: Any = None  # mqttchat.broker.auth.AccessControl when configured
        #: Set while the broker shuts down: connections it closes keep their wills (see connection_ended).
        self.stopping = False
        #: Password checks, bounded and rate-limited per source (run where the shell says: threads, see server.py).
        self.logins = LoginChecks()
        #: Drops not logged yet, per client id: [count, the latest reason, its drops in all]; logged together at
        #: most once per drop_log_interval seconds (see count_drop).
        self._drops_pending: dict[str, list[Any]] = {}
        self._drops_since = 0.0
        self._drop_log_at = -DROP_LOG_INTERVAL
        self._drop_log_handle: Timer | None = None
        self.drop_log_interval = DROP_LOG_INTERVAL

    @property
    def persistence(self) -> Any:
        """The store (mqttchat.broker.persistence.Store) when configured, else None."""
        return self.router.persistence

    @persistence.setter
    def persistence(self, store: Any) -> None:
        self.router.persistence = store

    # ------------------------------------------------------------------------------------------ sessions

    def new_client_id(self) -> str:
        while True:
            client_id = f"mqttchat-{secrets.token_hex(8)}"
            if client_id not in self.sessions:
                return client_id

    def take_session(self, client_id: str, clean_start: bool, username: str | None = None) -> tuple[Session, bool]:
        """The session for ``client_id``: the existing one (resumed) or a new one. Returns (session, present).

        A session is resumed only by the user who owns it. With passwords, the connection refuses another user
        before this is called; without them (user names are unchecked claims) another user's connection takes the
        old one over as usual but the session starts afresh, so that its queued messages, in-flight messages and
        subscriptions never reach someone the ACL did not give them to.
        """
        session = self.sessions.get(client_id)
        if session is not None and session.connection is not None and session.expiry_interval == 0:
            # The session was to end with its connection (3.1.1 CleanSession 1, 5.0 Session Expiry 0): taken over,
            # that connection ends, and so does the session; the newcomer starts afresh [MQTT-3.1.2-6].
            clean_start = True
        if session is not None and session.username != username and not clean_start:
            log.warning(
                "client '%s' connected as user '%s': its session belonged to user '%s' and starts afresh",
                loggable(client_id), loggable(username), loggable(session.username),
            )  # fmt: skip
            clean_start = True
        if session is not None:
            old = session.connection
            if old is not None:
                # Session takeover: the newer connection wins (MQTT 5: DISCONNECT 0x8E to the older one). The
                # older connection's will goes out if its delay is 0 or the session ends now (clean start);
                # otherwise a new connection arrived before the delay passed, which cancels it.
                log.info("client '%s' connected again: closing its older connection", loggable(client_id))
                old.takeover()
                will = session.will
                if will is not None:
                    if clean_start or not (will.properties.will_delay_interval or 0):
                        self.publish_will(session)
                    session.will = None
            if session.expiry_handle is not None:
                session.expiry_handle.cancel()
                session.expiry_handle = None
            if session.will_handle is not None:
                # A new connection to the session before the will delay passed: the will is not sent.
                session.will_handle.cancel()
                session.will_handle = None
                session.will = None
            if clean_start:
                self.end_session(session, send_will=False)
                session = None
        if session is None:
            session = Session(client_id)
            self.sessions[client_id] = session
            return session, False
        return session, True

    def end_session(self, session: Session, send_will: bool = True) -> None:
        """Discard a session: its subscriptions, flows and queue. A pending will is sent now (MQTT 5 3.1.3.2.2)."""
        if session.will_handle is not None:
            session.will_handle.cancel()
            session.will_handle = None
        if send_will and session.will is not None and session.connection is None:
            self.publish_will(session)
        if session.expiry_handle is not None:
            session.expiry_handle.cancel()
            session.expiry_handle = None
        for topic_filter in list(session.subscriptions):
            self.router.remove_subscription(session, topic_filter)
        if session.queue:
            session.queue.clear()
        session.queued_bytes = 0
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
        if self.persistence is not None and session.persistent_id is not None:
            self.persistence.delete_session(session)

    def connection_ended(self, session: Session, clean: bool) -> None:
        """The session's connection closed; ``clean`` means DISCONNECT 0x00 (no will)."""
        session.connection = None
        will = session.will
        persistence = self.persistence
        if self.stopping and session.expiry_interval:
            # The broker stops, not the client: a persistent session keeps its will in the store, and the next
            # start publishes it only if the client does not come back (persistence.RESTART_WILL_GRACE).
            will = None
        elif clean:
            session.will = None
            will = None
            if persistence is not None:
                persistence.will_gone(session)
        expiry = session.expiry_interval
        if will is not None:
            delay = will.properties.will_delay_interval or 0
            if delay == 0 or expiry == 0:
                self.publish_will(session)
            elif expiry != NEVER_EXPIRES and expiry < delay:
                pass  # the session ends first: end_session() below (via its timer) sends the will
            else:
                self.publish_will_later(session, delay)
                if persistence is not None:
                    persistence.save_will(session, due=self.clock.wall() + delay)
        if expiry == 0:
            self.end_session(session)
        else:
            if expiry != NEVER_EXPIRES:
                self.expire_later(session, expiry)
            if self.persistence is not None:
                self.persistence.session_disconnected(session)

    def expire_later(self, session: Session, delay: float) -> None:
        """End ``session`` in ``delay`` seconds unless its client comes back (its Session Expiry Interval)."""
        session.expiry_handle = self.clock.call_later(delay, self._expire_session, session)

    def publish_will_later(self, session: Session, delay: float) -> None:
        """Publish ``session``'s will in ``delay`` seconds unless its client comes back (its Will Delay Interval)."""
        session.will_handle = self.clock.call_later(delay, self.publish_will, session)

    def _expire_session(self, session: Session) -> None:
        session.expiry_handle = None
        if session.connection is None and self.sessions.get(session.client_id) is session:
            log.info("session of '%s' expired", loggable(session.client_id))
            self.end_session(session)

    def publish_will(self, session: Session) -> None:
        session.will_handle = None
        will = session.will
        session.will = None
        if will is None:
            return
        if self.persistence is not None:
            self.persistence.will_gone(session)
        access = session.access
        if access is not None and not access.can_publish(will.topic):
            log.info("will of '%s' on '%s' not published: not authorized", loggable(session.client_id),
                     loggable(will.topic))  # fmt: skip
            return
        if too_deep(will.topic):
            log.info("will of %s not published: its topic has more than %d levels", loggable(session.client_id),
                     MAX_TOPIC_LEVELS)  # fmt: skip
            return
        if will.topic.startswith("$SYS"):
            log.info("will of '%s' on '%s' not published: $SYS topics are the broker's", loggable(session.client_id),
                     loggable(will.topic))  # fmt: skip
            return
        props = will.properties.without(PropertyId.WILL_DELAY_INTERVAL)
        self.publish(Publish(will.topic, will.payload, will.qos, will.retain, False, None, props), None)

    @property
    def subscription_count(self) -> int:
        return sum(len(s.subscriptions) for s in self.sessions.values())

    def count_drop(self, session: Session, why: str, log_it: bool = True) -> None:
        """Count one message dropped for ``session``: in its counter, in ``$SYS``, and in the log.

        The log gets at most one warning per ``drop_log_interval`` seconds (a slow subscriber may lose thousands a
        second), naming each client whose messages were dropped since the last one, with its count: the first drop
        after a quiet spell is logged at once, the ones after it when the interval is over, so the warnings add up
        to every drop.
        """
        session.dropped += 1
        self.stats.messages_dropped += 1
        if not log_it:
            return
        pending = self._drops_pending.get(session.client_id)
        if pending is None:
            if not self._drops_pending:
                self._drops_since = self.clock.now()
            self._drops_pending[session.client_id] = [1, why, session.dropped]
        else:
            pending[0] += 1
            pending[1] = why
            pending[2] = session.dropped
        if self._drop_log_handle is not None:
            return
        clock = self.clock
        wait = self._drop_log_at + self.drop_log_interval - clock.now()
        if wait <= 0 or clock.rearm is None:  # (a core nobody drives, in a test or a tool, logs at once)
            self.log_drops()
        else:
            self._drop_log_handle = clock.call_later(wait, self.log_drops)

    def log_drops(self) -> None:
        """Log the drops counted since the last warning (also when the broker stops)."""
        if self._drop_log_handle is not None:
            self._drop_log_handle.cancel()
            self._drop_log_handle = None
        pending, self._drops_pending = self._drops_pending, {}
        if not pending:
            return
        now = self.clock.now()
        self._drop_log_at = now
        worst = sorted(pending.items(), key=lambda item: -item[1][0])
        shown = [
            f"{count} for '{loggable(client_id)}' ({why}; {total} dropped for it in all)"
            for client_id, (count, why, total) in worst[:_DROP_LOG_CLIENTS]
        ]
        rest = worst[_DROP_LOG_CLIENTS:]
        if rest:
            shown.append(f"{sum(entry[0] for _, entry in rest)} for {len(rest)} other client(s)")
        log.warning("dropped %d message(s) in the last %.0f s: %s", sum(entry[0] for entry in pending.values()),
                    now - self._drops_since, "; ".join(shown))  # fmt: skip

    # ------------------------------------------------------------------------------------------ $SYS

    def sys_topics(self) -> dict[str, str]:
        s = self.stats
        connected = sum(1 for sess in self.sessions.values() if sess.connection is not None)
        return {
            "$SYS/broker/version": f"mqttchat {__version__}",
            "$SYS/broker/uptime": f"{int(self.clock.wall() - self.started_at)} seconds",
            "$SYS/broker/clients/connected": str(connected),
            "$SYS/broker/clients/disconnected": str(len(self.sessions) - connected),
            "$SYS/broker/clients/total": str(len(self.sessions)),
            "$SYS/broker/connections/total": str(s.connections_total),
            "$SYS/broker/messages/received": str(s.messages_received),
            "$SYS/broker/messages/sent": str(s.messages_sent),
            "$SYS/broker/messages/dropped": str(s.messages_dropped),
            "$SYS/broker/bytes/received": str(s.bytes_received),
            "$SYS/broker/bytes/sent": str(s.bytes_sent),
            "$SYS/broker/retained messages/count": str(len(self.retained)),
            "$SYS/broker/subscriptions/count": str(self.subscription_count),
            "$SYS/broker/store/messages/count": str(sum(sess.queued for sess in self.sessions.values())),
            # Overload protection (mqttchat's own): publishers paused now, subscribers stalled now.
            "$SYS/broker/publishers/paused": str(len(self.overload.paused_publishers())),
            "$SYS/broker/subscribers/stalled": str(len(self.overload.stalled)),
        }

    def publish_sys(self) -> None:
        for topic, value in self.sys_topics().items():
            self.publish(Publish(topic, value.encode(), 0, True), None)
