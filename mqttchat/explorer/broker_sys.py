"""What a broker says about itself under ``$SYS``, in the dialect it speaks, or that it says nothing.

Brokers agree on no ``$SYS`` layout (it is a convention, not part of MQTT). Three families are read here:

- **mosquitto** (and the embedded broker, which follows it): ``$SYS/broker/<figure>``, one broker, retained, so
  the figures arrive as soon as one subscribes; ``$SYS/broker/retained messages/count`` counts retained messages.
- **EMQX**: ``$SYS/brokers`` lists the cluster's nodes; each node publishes ``$SYS/brokers/<node>/version``,
  ``uptime``, ``stats/<name>`` and ``metrics/<name>`` (EMQX 4 spells names ``retained/count``, EMQX 5
  ``retained.count``: both are read as ``retained/count``) every ``sys_interval`` (a minute by default), not
  retained; ``$SYS/brokers/<node>/clients/<id>/connected`` are client events, counted but not kept.
- **VerneMQ**: ``$SYS/<node>/<metric>``, one topic level per ``_`` of the metric's name (``retain_messages`` is
  ``$SYS/VerneMQ@10.0.0.1/retain/messages``), every ``systree_interval`` (20 s by default), not retained. Its
  node names are Erlang node names (``name@host``), which is how it is told apart from other layouts.

Anything else under ``$SYS/`` is kept as it comes (dialect "other"). A broker that publishes nothing within
:data:`NO_SYS_AFTER` seconds of subscribing publishes no ``$SYS`` (HiveMQ and RabbitMQ do not), or not to us.

:data:`WATCH_FILTERS` are what the explorer subscribes to for these figures: narrow enough to leave out EMQX's
per-client events, which on a big cluster are a firehose of their own. Memory is bounded: at most
:data:`MAX_NODES` nodes of :data:`MAX_FIGURES` figures each, values cut at :data:`MAX_VALUE` characters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

#: Seconds after subscribing without any $SYS message before the broker is said to publish none: EMQX publishes
#: every minute by default, VerneMQ every 20 s, mosquitto at once (its figures are retained).
NO_SYS_AFTER = 65.0
MAX_NODES = 64
MAX_FIGURES = 400
MAX_VALUE = 200

#: The filters the explorer watches: mosquitto's tree; EMQX's node list, versions, uptimes, statistics and metrics
#: (not its client events); VerneMQ's figures that say how big the broker is and how busy.
WATCH_FILTERS: tuple[str, ...] = (
    "$SYS/broker/#",
    "$SYS/brokers",
    "$SYS/brokers/+/version",
    "$SYS/brokers/+/uptime",
    "$SYS/brokers/+/stats/#",
    "$SYS/brokers/+/metrics/#",
    "$SYS/+/retain/messages",
    "$SYS/+/router/subscriptions",
    "$SYS/+/queue/processes",
    "$SYS/+/mqtt/publish/received",
    "$SYS/+/mqtt/publish/sent",
    "$SYS/+/socket/open",
    "$SYS/+/system/wallclock",
)


class Dialect(Enum):
    MOSQUITTO = "mosquitto"
    EMQX = "EMQX"
    VERNEMQ = "VerneMQ"
    OTHER = "other"


def parse_sys_topic(topic: str) -> tuple[Dialect, str, str] | None:
    """A ``$SYS`` topic as (dialect, node, figure name); the node is "" where the dialect has none. None: not a
    ``$SYS`` topic, or one that names no figure."""
    if not topic.startswith("$SYS/"):
        return None
    rest = topic[5:]
    if rest.startswith("broker/"):
        key = rest[7:]
        return (Dialect.MOSQUITTO, "", key) if key else None
    if rest == "brokers":
        return Dialect.EMQX, "", "nodes"
    if rest.startswith("brokers/"):
        node, _, key = rest[8:].partition("/")
        if not node or not key:
            return None
        return Dialect.EMQX, node, key.replace(".", "/")
    node, sep, key = rest.partition("/")
    if sep and key and "@" in node:  # an Erlang node name: name@host
        return Dialect.VERNEMQ, node, key
    return (Dialect.OTHER, "", rest) if rest else None


#: Where each dialect keeps the figures the explorer compares with what it received, per node.
RETAINED_KEYS = {Dialect.MOSQUITTO: "retained messages/count", Dialect.EMQX: "stats/retained/count",
                 Dialect.VERNEMQ: "retain/messages"}  # fmt: skip
TOPIC_KEYS = {Dialect.EMQX: "stats/topics/count"}
SUBSCRIPTION_KEYS = {Dialect.MOSQUITTO: "subscriptions/count", Dialect.EMQX: "stats/subscriptions/count",
                     Dialect.VERNEMQ: "router/subscriptions"}  # fmt: skip
CLIENT_KEYS = {Dialect.MOSQUITTO: "clients/connected", Dialect.EMQX: "stats/connections/count",
               Dialect.VERNEMQ: "socket/open"}  # fmt: skip
VERSION_KEYS = {Dialect.MOSQUITTO: "version", Dialect.EMQX: "version"}
#: Figures that are the same cluster-wide (each node reports the whole cluster's): the largest is taken, not the sum.
CLUSTER_WIDE = {"stats/retained/count", "retain/messages", "stats/topics/count", "router/subscriptions"}


@dataclass
class BrokerSys:
    """The broker's ``$SYS`` figures, per node, as they arrive."""

    #: The dialect of the first figure received (a broker speaks one); None until one arrives.
    dialect: Dialect | None = None
    #: node → figure name → value (text as published, cut at MAX_VALUE characters). mosquitto's node is "".
    nodes: dict[str, dict[str, str]] = field(default_factory=dict)
    #: The cluster's node list as EMQX publishes it under ``$SYS/brokers``.
    cluster: tuple[str, ...] = ()
    #: Messages received under $SYS, and those not kept (client events, beyond the bounds).
    received: int = 0
    not_kept: int = 0
    #: When the watch was subscribed (the caller's clock) and what the broker answered: None while unanswered,
    #: else whether it granted at least one filter (and the refusal's name when it granted none).
    watching_since: float | None = None
    refused: str | None = None
    #: When the broker granted the watch (its SUBACK).
    subscribed_at: float | None = None
    last_at: float = 0.0
    #: The $SYS topics the broker retains (it counts them among its retained messages, but ``#`` does not bring
    #: them): those that came retained, and every one of mosquitto's; at most MAX_FIGURES.
    retained_sys: set[str] = field(default_factory=set)

    def offer(self, topic: str, payload: bytes, now: float, retained: bool = False) -> bool:
        """Keep one ``$SYS`` message's figure; whether it was one (a ``$SYS`` topic naming a figure)."""
        parsed = parse_sys_topic(topic)
        if parsed is None:
            return False
        if (retained or parsed[0] is Dialect.MOSQUITTO) and len(self.retained_sys) < MAX_FIGURES:
            # mosquitto retains every $SYS/broker/ topic, even one that first comes after the watch subscribed
            self.retained_sys.add(topic)
        dialect, node, key = parsed
        self.received += 1
        self.last_at = now
        if self.dialect is None or (self.dialect is Dialect.OTHER and dialect is not Dialect.OTHER):
            self.dialect = dialect
        value = payload[: MAX_VALUE * 4].decode(errors="replace")[:MAX_VALUE]
        if dialect is Dialect.EMQX and not node:
            self.cluster = tuple(name for name in value.replace(",", " ").split() if name)[:MAX_NODES]
            return True
        if dialect is Dialect.EMQX and key.startswith("clients/"):
            self.not_kept += 1  # a client's connect or disconnect event: one per client, not a figure
            return True
        figures = self.nodes.get(node)
        if figures is None:
            if len(self.nodes) >= MAX_NODES:
                self.not_kept += 1
                return True
            figures = self.nodes[node] = {}
        if key not in figures and len(figures) >= MAX_FIGURES:
            self.not_kept += 1
            return True
        figures[key] = value
        return True

    # ------------------------------------------------------------------------------------------ summaries

    def _number(self, keys: dict[Dialect, str]) -> int | None:
        dialect = self.dialect
        key = keys.get(dialect) if dialect is not None else None
        if key is None:
            return None
        values = []
        for figures in self.nodes.values():
            text = figures.get(key)
            if text is None:
                continue
            try:
                values.append(int(float(text.split()[0])))
            except (ValueError, IndexError):
                continue
        if not values:
            return None
        return max(values) if key in CLUSTER_WIDE or len(values) == 1 else sum(values)

    @property
    def retained_count(self) -> int | None:
        """How many retained messages the broker says it holds, where it says so."""
        return self._number(RETAINED_KEYS)

    @property
    def retained_source(self) -> str:
        """Where the retained count comes from, in words."""
        key = RETAINED_KEYS.get(self.dialect) if self.dialect is not None else None
        return f"its $SYS {key}" if key else "its $SYS"

    @property
    def topic_count(self) -> int | None:
        """How many topics the broker says it routes (EMQX), where it says so."""
        return self._number(TOPIC_KEYS)

    @property
    def subscription_count(self) -> int | None:
        return self._number(SUBSCRIPTION_KEYS)

    @property
    def client_count(self) -> int | None:
        return self._number(CLIENT_KEYS)

    @property
    def node_names(self) -> list[str]:
        """The nodes heard from (and those EMQX lists as the cluster's), in name order; mosquitto's one is ""."""
        return sorted(set(self.nodes) | set(self.cluster))

    def silent(self, now: float) -> bool:
        """Whether the broker published no ``$SYS`` figure within NO_SYS_AFTER seconds of the watch."""
        return (
            not self.received
            and self.refused is None
            and self.watching_since is not None
            and now - self.watching_since >= NO_SYS_AFTER
        )

    def status(self, now: float) -> str:
        """One line: the dialect and nodes, or why there is nothing."""
        if self.dialect is not None:
            nodes = len([name for name in self.node_names if name])
            where = f", {nodes} node{'s' if nodes != 1 else ''}" if nodes else ""
            return f"{self.dialect.value} dialect{where}"
        if self.refused is not None:
            return f"the broker refused the $SYS subscription ({self.refused})"
        if self.watching_since is None:
            return "$SYS not watched (subscribe to $SYS/# to see it)"
        if self.silent(now):
            return (
                f"this broker publishes no $SYS (nothing within {NO_SYS_AFTER:.0f} s; EMQX publishes every minute, "
                "VerneMQ every 20 s, mosquitto at once)"
            )
        return f"waiting for $SYS ({now - self.watching_since:.0f} s; EMQX publishes every minute, VerneMQ every 20 s)"
