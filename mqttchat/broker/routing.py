"""The broker's routing: subscriptions in a trie, each message matched once and delivered to every session.

Routing happens synchronously in the publisher's ``data_received`` callback: the message is matched against the
trie once, each subscribing session gets its copy (QoS downgraded to the subscription's, subscription identifiers
and retain-as-published applied), sent at once when the client is connected and its in-flight window allows, or
queued, boundedly, otherwise. Nothing awaits in this path, so one slow client never delays another. The router
knows a session's connection only as a :class:`~mqttchat.broker.session.SessionConnection` (it is given bytes to
send), time only through its :class:`~mqttchat.broker.clock.Clock` (message expiry).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mqttchat.broker.clock import Clock
from mqttchat.broker.overload import Overload
from mqttchat.broker.retained import RetainedMessage, RetainedStore
from mqttchat.broker.session import Session, SharedGroup, SubEntry
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


@dataclass(slots=True)
class BrokerStats:
    """The broker's counters (published in $SYS)."""

    messages_received: int = 0
    messages_sent: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    #: Messages dropped: queues full, clients too slow, payload too large, expired while queued.
    messages_dropped: int = 0
    connections_total: int = 0
    connections_refused: int = 0
    protocol_errors: int = 0


class Router:
    """Subscriptions, matching, delivery and the queues of sessions that cannot take a message now.

    Args:
        count_drop: counts (and logs) a message dropped for a session, with why.
    """

    def __init__(
        self,
        config: BrokerConfig,
        stats: BrokerStats,
        clock: Clock,
        retained: RetainedStore,
        count_drop: Callable[..., None],
    ) -> None:
        self.config = config
        self.stats = stats
        self.clock = clock
        self.retained = retained
        self.count_drop = count_drop
        self.persistence: Any = None  # mqttchat.broker.persistence.Store when configured
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
        #: Retained messages due to the subscriptions of the last SUBSCRIBE, sent after its SUBACK.
        self._pending_retained: list[tuple[SubEntry, str]] = []
        #: Overload protection: publishers paused while a connected subscriber's queue is over its high-water mark.
        self.overload = overload = Overload(config, clock)
        self._high_water = overload.high_water
        self._low_water = overload.low_water
        #: The session whose message is being routed (None: a will, $SYS, retained messages after a SUBSCRIBE).
        self._sender: Session | None = None

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
                self.remove_subscription(session, topic_filter)
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
        self._sender = None
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
            if self.remove_subscription(session, topic_filter):
                codes.append(ReasonCode.SUCCESS)
            else:
                codes.append(ReasonCode.NO_SUBSCRIPTION_EXISTED)
        if self.persistence is not None and session.persistent:
            self.persistence.save_subscriptions(session)
        return codes

    def remove_subscription(self, session: Session, topic_filter: str) -> bool:
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

    # ------------------------------------------------------------------------------------------ routing

    def publish(self, message: Publish, sender: Session | None) -> int:
        """Route an application message to every matching subscription; store it if retained.

        Returns the number of sessions it was delivered or queued to.
        """
        self.stats.messages_received += 1
        self._sender = sender
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
            stored_at = self.clock.wall()
            retained = RetainedMessage(message.topic, message.payload, message.qos, props, expires_at, stored_at)
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
                    # pick() prefers a member that is not congested: if this message congests it, the next ones go
                    # to another member, so the publisher is paused only for a member picked already congested
                    # (every connected member is).
                    if picked.session.congestion is None:
                        self._sender = None
                    count += self._deliver_to(picked.session, message, opts.qos, opts.retain_as_published, sub_ids,
                                              expires_at)  # fmt: skip
                    self._sender = sender
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
            if session.connection is not None and self.overload.enabled:
                self.overload.congested_by(session, self._sender)  # (a queue limit in bytes comes first)
            return
        row = None
        store = self.persistence
        if store is not None and session.persistent and message.qos:
            row = store.next_row_id()
            store.add_message(session, row, message, None, expires_at)
        queue.append((message, expires_at, row))
        session.queued_bytes += size
        if len(queue) >= self._high_water and session.connection is not None:
            self.overload.congested_by(session, self._sender)

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
                break
            if message.qos == 0 and not conn.writable:
                break
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
        if (session.congestion is not None or session.stalled) and len(queue) <= self._low_water:
            self.overload.relieved(session)
