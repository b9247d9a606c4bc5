"""The broker's core: sessions, the subscription trie, routing, retained messages, wills and statistics.

Routing happens synchronously in the publisher's ``data_received`` callback: the message is matched against the
trie once, each subscribing session gets its copy (QoS downgraded to the subscription's, subscription identifiers
and retain-as-published applied), sent at once when the client is connected and its in-flight window allows, or
queued, boundedly, otherwise. Nothing awaits in this path, so one slow client never delays another.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mqttchat import __version__
from mqttchat.broker.clock import Clock, Timer
from mqttchat.broker.logins import LoginChecks
from mqttchat.broker.retained import RetainedMessage, RetainedStore
from mqttchat.broker.session import NEVER_EXPIRES, Session, SharedGroup, SubEntry
from mqttchat.protocol import (
    EMPTY_PROPERTIES,
    PropertyId,
    Publish,
    ReasonCode,
    RetainHandling,
    Subscription,
    SubscriptionTrie,
    parse_shared_subscription,
)
from mqttchat.protocol.cache import BoundedCache
from mqttchat.protocol.topics import MAX_TOPIC_LEVELS, too_deep
from mqttchat.untrusted import loggable

if TYPE_CHECKING:
    from mqttchat.broker.config import BrokerConfig

log = logging.getLogger("mqttchat.broker")

_STRIP_ON_FORWARD = (PropertyId.TOPIC_ALIAS, PropertyId.SUBSCRIPTION_IDENTIFIER)
#: Seconds between two warnings about dropped messages, and how many clients one warning names.
DROP_LOG_INTERVAL = 5.0
_DROP_LOG_CLIENTS = 5


@dataclass(slots=True)
class BrokerStats:
    messages_received: int = 0
    messages_sent: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    #: Messages dropped: queues full, clients too slow, payload too large, expired while queued.
    messages_dropped: int = 0
    connections_total: int = 0
    connections_refused: int = 0
    protocol_errors: int = 0


class BrokerCore:
    """State and routing of the broker, independent of listeners and sockets."""

    def __init__(self, config: BrokerConfig, clock: Clock | None = None) -> None:
        self.config = config
        #: Time, deadlines and deferred work (run by the asyncio shell, or by a test that moves time itself).
        self.clock = clock if clock is not None else Clock()
        self.sessions: dict[str, Session] = {}
        self.trie: SubscriptionTrie[Any, Any] = SubscriptionTrie()
        #: topic → trie matches, for topics published again and again; cleared on any subscription change. Keyed by
        #: what clients publish: bounded in bytes (a match costs about 64), long topics not cached.
        self._matches: BoundedCache[str, list[tuple[Any, Any]]] = BoundedCache(10_000, 8 * 1024 * 1024)
        self._matched = self._matches.entries.get
        #: The last message sent and its encoding per protocol version, so that a fan-out encodes it once:
        #: QoS 0 copies are identical; QoS 1/2 copies differ only in the packet identifier (see _encoded).
        self._encoded_for: Publish | None = None
        self._encodings: dict[int, tuple[bytes, int]] = {}
        self.shared: dict[tuple[str, str], SharedGroup] = {}
        self.retained = RetainedStore()
        self.stats = BrokerStats()
        self.started_at = time.time()
        self.passwords: Any = None  # mqttchat.broker.auth.PasswordFile when configured
        self.acl: Any = None  # mqttchat.broker.auth.AccessControl when configured
        self.persistence: Any = None  # mqttchat.broker.persistence.Store when configured
        #: Set while the broker shuts down: connections it closes keep their wills (see connection_ended).
        self.stopping = False
        #: Password checks, bounded and rate-limited per source (threads start with the first check).
        self.logins = LoginChecks()
        #: Drops not logged yet, per client id: [count, the latest reason, its drops in all]; logged together at
        #: most once per drop_log_interval seconds (see count_drop).
        self._drops_pending: dict[str, list[Any]] = {}
        self._drops_since = 0.0
        self._drop_log_at = -DROP_LOG_INTERVAL
        self._drop_log_handle: Timer | None = None
        self.drop_log_interval = DROP_LOG_INTERVAL

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
            self._remove_subscription(session, topic_filter)
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
                    persistence.save_will(session, due=time.time() + delay)
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

    # ------------------------------------------------------------------------------------------ subscriptions

    def subscribe(
        self, session: Session, subscriptions: Iterable[Subscription], subscription_id: int | None
    ) -> list[ReasonCode]:
        config = self.config
        codes: list[ReasonCode] = []
        retained_to_send: list[tuple[SubEntry, str]] = []
        for sub in subscriptions:
            topic_filter = sub.topic_filter
            shared = parse_shared_subscription(topic_filter) if session.version == 5 else None
            inner = shared.topic_filter if shared else topic_filter
            if too_deep(inner):
                codes.append(ReasonCode.TOPIC_FILTER_INVALID)
                log.info("subscription of %s refused: its filter has more than %d levels",
                         loggable(session.client_id), MAX_TOPIC_LEVELS)  # fmt: skip
                continue
            access = session.access
            if access is not None and not access.can_subscribe(inner):
                codes.append(ReasonCode.NOT_AUTHORIZED)
                log.info("subscription of '%s' to '%s' refused by the ACL", loggable(session.client_id),
                         loggable(topic_filter))  # fmt: skip
                continue
            qos = min(sub.qos, config.maximum_qos)
            granted = Subscription(topic_filter, qos, sub.no_local, sub.retain_as_published, sub.retain_handling)
            existed = topic_filter in session.subscriptions
            entry = SubEntry(session, granted, subscription_id)
            if existed:
                self._remove_subscription(session, topic_filter)
            session.subscriptions[topic_filter] = entry
            if shared is not None:
                key = (shared.group, inner)
                group = self.shared.get(key)
                if group is None:
                    group = self.shared[key] = SharedGroup(shared.group, inner)
                    self.trie.add(inner, ("$share", shared.group), group)
                    self._matches.clear()
                group.members[session.client_id] = entry
            else:
                self.trie.add(topic_filter, session.client_id, entry)
                self._matches.clear()
                rh = sub.retain_handling
                if rh == RetainHandling.SEND_ON_SUBSCRIBE or (
                    rh == RetainHandling.SEND_IF_NEW_SUBSCRIPTION and not existed
                ):
                    retained_to_send.append((entry, topic_filter))
            codes.append(ReasonCode(qos))
        if self.persistence is not None and session.persistent:
            self.persistence.save_subscriptions(session)
        self._pending_retained = retained_to_send
        return codes

    _pending_retained: list[tuple[SubEntry, str]] = []

    def restore_subscription(self, session: Session, sub: Subscription, subscription_id: int | None) -> None:
        """Put back a subscription restored from persistence (it was authorized when made)."""
        entry = SubEntry(session, sub, subscription_id)
        session.subscriptions[sub.topic_filter] = entry
        shared = parse_shared_subscription(sub.topic_filter) if session.version == 5 else None
        if shared is not None:
            key = (shared.group, shared.topic_filter)
            group = self.shared.get(key)
            if group is None:
                group = self.shared[key] = SharedGroup(shared.group, shared.topic_filter)
                self.trie.add(shared.topic_filter, ("$share", shared.group), group)
            group.members[session.client_id] = entry
        else:
            self.trie.add(sub.topic_filter, session.client_id, entry)
        self._matches.clear()

    def send_retained(self) -> None:
        """Deliver the retained messages due to the subscriptions just acknowledged (after the SUBACK)."""
        pending = self._pending_retained
        self._pending_retained = []
        now = self.clock.now()
        for entry, topic_filter in pending:
            session = entry.session
            access = session.access
            for message in self.retained.match(topic_filter, now):
                if access is not None and not access.can_receive(message.topic):
                    continue
                qos = min(message.qos, entry.options.qos)
                props = message.properties
                if message.expires_at is not None:
                    props = props.replace(message_expiry_interval=max(1, int(message.expires_at - now)))
                if entry.subscription_id is not None and session.version == 5:
                    props = props.replace(subscription_identifier=(entry.subscription_id,))
                self.deliver(session, Publish(message.topic, message.payload, qos, True, False, None, props),
                             message.expires_at)  # fmt: skip

    def unsubscribe(self, session: Session, topic_filters: Iterable[str]) -> list[ReasonCode]:
        codes = []
        for topic_filter in topic_filters:
            if self._remove_subscription(session, topic_filter):
                codes.append(ReasonCode.SUCCESS)
            else:
                codes.append(ReasonCode.NO_SUBSCRIPTION_EXISTED)
        if self.persistence is not None and session.persistent:
            self.persistence.save_subscriptions(session)
        return codes

    def _remove_subscription(self, session: Session, topic_filter: str) -> bool:
        entry = session.subscriptions.pop(topic_filter, None)
        if entry is None:
            return False
        self._matches.clear()
        shared = parse_shared_subscription(topic_filter) if session.version == 5 else None
        if shared is not None:
            key = (shared.group, shared.topic_filter)
            group = self.shared.get(key)
            if group is not None:
                group.members.pop(session.client_id, None)
                if not group.members:
                    del self.shared[key]
                    self.trie.remove(shared.topic_filter, ("$share", shared.group))
        else:
            self.trie.remove(topic_filter, session.client_id)
        return True

    @property
    def subscription_count(self) -> int:
        return sum(len(s.subscriptions) for s in self.sessions.values())

    # ------------------------------------------------------------------------------------------ routing

    def publish(self, message: Publish, sender: Session | None) -> int:
        """Route an application message to every matching subscription; store it if retained.

        Returns the number of sessions it was delivered or queued to.
        """
        self.stats.messages_received += 1
        props = message.properties
        expires_at: float | None = None
        if props is not EMPTY_PROPERTIES:
            if props.topic_alias is not None or props.subscription_identifier:
                props = props.without(*_STRIP_ON_FORWARD)
                message = Publish(message.topic, message.payload, message.qos, message.retain, False, None, props)
            expiry = props.message_expiry_interval
            if expiry is not None:
                expires_at = self.clock.now() + expiry
        if message.retain and self.config.retain_available:
            retained = RetainedMessage(message.topic, message.payload, message.qos, props, expires_at, time.time())
            self.retained.set(retained)
            if self.persistence is not None:
                self.persistence.save_retained(retained)
        topic = message.topic
        matched = self._matched(topic)
        if matched is None:
            matched = self.trie.match(topic)
            self._matches.put(topic, matched, 64 * len(matched))
        if not matched:
            return 0
        if len(matched) == 1:
            key, entry = matched[0]
            if type(key) is str:
                opts = entry.options
                session = entry.session
                if opts.no_local and session is sender:
                    return 0
                sub_id = entry.subscription_id
                return self._deliver_to(session, message, opts.qos, opts.retain_as_published,
                                        [sub_id] if sub_id else [], expires_at)  # fmt: skip
        # Several matches: one copy per session for its own subscriptions, at the highest granted QoS, with every
        # subscription identifier; each shared subscription delivers its own copy to one member (MQTT 5.0 4.8.2),
        # which may be a session that also got the first copy.
        best: dict[str, tuple[SubEntry, int, bool, list[int]]] = {}
        count = 0
        for key, value in matched:
            if type(key) is str:
                entry = value
            else:
                picked = value.pick(topic)
                if picked is None:
                    continue
                opts = picked.options
                if not (opts.no_local and picked.session is sender):
                    sub_ids = [picked.subscription_id] if picked.subscription_id else []
                    count += self._deliver_to(picked.session, message, opts.qos, opts.retain_as_published, sub_ids,
                                              expires_at)  # fmt: skip
                continue
            session = entry.session
            opts = entry.options
            if opts.no_local and session is sender:
                continue
            current = best.get(session.client_id)
            sub_id = entry.subscription_id
            if current is None:
                best[session.client_id] = (entry, opts.qos, opts.retain_as_published, [sub_id] if sub_id else [])
            else:
                ids = current[3]
                if sub_id:
                    ids.append(sub_id)
                best[session.client_id] = (
                    current[0],
                    max(current[1], opts.qos),
                    current[2] or opts.retain_as_published,
                    ids,
                )
        for entry, qos, rap, ids in best.values():
            count += self._deliver_to(entry.session, message, qos, rap, ids, expires_at)
        return count

    def _deliver_to(
        self, session: Session, message: Publish, qos: int, rap: bool, sub_ids: list[int], expires_at: float | None
    ) -> int:
        access = session.access
        if access is not None and not access.can_receive(message.topic):
            return 0
        qos = min(qos, message.qos)
        retain = message.retain and rap
        props = message.properties
        if sub_ids and session.version == 5:
            props = props.replace(subscription_identifier=tuple(sub_ids))
        if qos == message.qos and retain == message.retain and props is message.properties:
            out = message
        else:
            out = Publish(message.topic, message.payload, qos, retain, False, None, props)
        self.deliver(session, out, expires_at)
        return 1

    def deliver(self, session: Session, message: Publish, expires_at: float | None = None) -> None:
        """Send ``message`` to the session now if possible, else queue it (bounded; drops are counted)."""
        conn = session.connection
        if conn is not None and not session.queue:
            if message.qos == 0:
                if conn.writable:
                    conn.send_publish(message, self._encoded(message, message, conn.version))
                else:
                    self.count_drop(session, "its connection is not draining")
                return
            flow = session.outgoing
            if flow.can_send:
                store = self.persistence
                row = store.next_row_id() if store is not None and session.persistent else None
                packet = flow.publish(message, row)
                assert packet is not None
                if row is not None:
                    store.add_message(session, row, packet, packet.packet_id, expires_at)
                conn.send_publish(packet, self._encoded(message, packet, conn.version))
                return
        self.enqueue(session, message, expires_at)

    def _encoded(self, message: Publish, packet: Publish, version: int) -> bytes:
        """``packet`` (``message`` as sent to one subscriber) encoded, reusing the last encoding of ``message``.

        The first copy is encoded in full; later copies of the same message object for the same protocol version
        reuse those bytes, with the packet identifier spliced in for QoS 1/2 (nothing else differs).
        """
        if message is not self._encoded_for:
            self._encoded_for = message
            self._encodings.clear()
        known = self._encodings.get(version)
        if known is None:
            data = packet.encode(version)
            # Where the packet identifier sits: after the fixed header and the length-prefixed topic name.
            header = 2
            while data[header - 1] & 0x80:
                header += 1
            self._encodings[version] = (data, header + 2 + ((data[header] << 8) | data[header + 1]))
            return data
        data, at = known
        if packet.qos == 0:
            return data
        return data[:at] + packet.packet_id.to_bytes(2, "big") + data[at + 2 :]  # type: ignore[union-attr]

    def enqueue(self, session: Session, message: Publish, expires_at: float | None) -> None:
        config = self.config
        if message.qos == 0 and (session.connection is None and not config.queue_qos0_messages):
            return  # QoS 0 is not queued for an offline client (unless queue_qos0_messages)
        queue = session.queue
        if queue is None:
            queue = session.queue = deque()
        size = len(message.payload) + len(message.topic)
        if (config.max_queued_messages and len(queue) >= config.max_queued_messages) or (
            config.max_queued_bytes and session.queued_bytes + size > config.max_queued_bytes
        ):
            self.count_drop(session, "its queue is full")
            return
        row = None
        store = self.persistence
        if store is not None and session.persistent and message.qos:
            row = store.next_row_id()
            store.add_message(session, row, message, None, expires_at)
        queue.append((message, expires_at, row))
        session.queued_bytes += size

    def pump(self, session: Session) -> None:
        """Send queued messages while the client is connected and its in-flight window allows."""
        conn = session.connection
        queue = session.queue
        if conn is None or not queue:
            return
        flow = session.outgoing
        now = self.clock.now()
        while queue:
            message, expires_at, row = queue[0]
            if message.qos and not flow.can_send:
                return
            if message.qos == 0 and not conn.writable:
                return
            queue.popleft()
            session.queued_bytes -= len(message.payload) + len(message.topic)
            access = session.access
            if access is not None and not access.can_receive(message.topic):
                # Defence in depth: what was queued under other rights is not sent under these.
                if row is not None and self.persistence is not None:
                    self.persistence.delete_messages([row])
                continue
            if expires_at is not None:
                remaining = expires_at - now
                if remaining <= 0:
                    self.count_drop(session, "it expired while queued", log_it=False)
                    if row is not None and self.persistence is not None:
                        self.persistence.delete_messages([row])
                    continue
                props = message.properties.replace(message_expiry_interval=max(1, int(remaining)))
                message = Publish(message.topic, message.payload, message.qos, message.retain, False, None, props)
            if message.qos == 0:
                conn.send_publish(message)
            else:
                packet = flow.publish(message, row)
                assert packet is not None
                if row is not None and self.persistence is not None:
                    self.persistence.set_packet_id(row, packet.packet_id)
                conn.send_publish(packet)

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
            "$SYS/broker/uptime": f"{int(time.time() - self.started_at)} seconds",
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
        }

    def publish_sys(self) -> None:
        for topic, value in self.sys_topics().items():
            self.publish(Publish(topic, value.encode(), 0, True), None)
