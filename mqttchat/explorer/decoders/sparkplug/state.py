"""What a Sparkplug B host application knows of the edge nodes it hears: groups, edge nodes and devices, online
from their BIRTH and offline from their DEATH; each edge node's alias table (from NBIRTH, and each device's from
its DBIRTH, replaced on a new birth); its ``seq`` (0-255, wrapping) and ``bdSeq`` checked.

Theory of operation (Sparkplug 3.0.0, chapters 5 and 6):

=========  =====================================================================================================
NBIRTH     the node is online; its ``seq`` restarts here (0-255); its ``bdSeq`` metric names the MQTT session; its
           aliases replace the old ones; its devices are offline until their own DBIRTH.
NDATA,     the ``seq`` must be the previous one plus one (255 wraps to 0): anything else is a gap (or a repeat).
DBIRTH,    DBIRTH makes the device online with its own alias table; DDEATH makes it offline. Data of a node or
DDATA,     device whose birth was not seen cannot be given names for its aliases: it is flagged (a rebirth request
DDEATH     fixes it).
NDEATH     the node and its devices go offline, but only when the death's ``bdSeq`` is the current session's: a
           death from an older session (a will delivered late) is stale and ignored.
NCMD,DCMD  commands to the node: no ``seq``, no change of state.
STATE      a host application's ``{"online": true|false, "timestamp": …}``.
=========  =====================================================================================================

:meth:`SparkplugState.observe` is called at ingest for every message on a ``spBv1.0/`` topic (it parses the
payload with the protobuf library's C parser, about 2 µs for ten metrics) and returns what the decoder needs later
to name the message's metrics: the alias table in force when the message arrived. Memory is bounded: a number of
edge nodes and devices, and a byte budget for all alias tables together; what does not fit is counted.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mqttchat.explorer.decoders.sparkplug.codec import BDSEQ, REBIRTH
from mqttchat.explorer.decoders.sparkplug.schema import message_class
from mqttchat.explorer.decoders.sparkplug.topic import MessageType, SparkplugTopic, parse_topic

__all__ = [
    "AliasTable",
    "DeviceState",
    "EdgeNodeState",
    "HostState",
    "MessageAliases",
    "SparkplugLimits",
    "SparkplugObservation",
    "SparkplugState",
]

#: Bytes an alias table entry costs beyond its name (the dict slots, the tuple, the ints).
ALIAS_ENTRY_OVERHEAD = 200
#: Problems remembered per edge node (the counters count them all).
RECENT_PROBLEMS = 20

_generations = itertools.count(1)


class AliasTable:
    """The metric names and datatypes of one birth, by alias and by name. Never changed once made: a new birth
    makes a new table, so a message keeps the table that was in force when it arrived."""

    __slots__ = ("by_alias", "by_name", "cost", "generation")

    def __init__(self, by_alias: dict[int, tuple[str, int]], by_name: dict[str, tuple[int | None, int]]) -> None:
        self.generation = next(_generations)
        self.by_alias = by_alias
        self.by_name = by_name
        self.cost = sum(len(name) + ALIAS_ENTRY_OVERHEAD for name in by_name)

    def lookup(self, alias: int) -> tuple[str, int] | None:
        """(metric name, datatype) of an alias, or None."""
        return self.by_alias.get(alias)

    def datatype(self, name: str) -> int | None:
        entry = self.by_name.get(name)
        return entry[1] if entry is not None else None

    def alias_of(self, name: str) -> int | None:
        entry = self.by_name.get(name)
        return entry[0] if entry is not None else None

    def __len__(self) -> int:
        return len(self.by_name)


class MessageAliases:
    """A device's aliases, then its edge node's (aliases are unique across an edge node's metrics)."""

    __slots__ = ("device", "generation", "node")

    def __init__(self, device: AliasTable | None, node: AliasTable | None) -> None:
        self.device = device
        self.node = node
        self.generation = (device.generation if device is not None else 0) << 32 | (
            node.generation if node is not None else 0
        )

    def lookup(self, alias: int) -> tuple[str, int] | None:
        found = self.device.lookup(alias) if self.device is not None else None
        if found is None and self.node is not None:
            found = self.node.lookup(alias)
        return found

    def datatype(self, name: str) -> int | None:
        found = self.device.datatype(name) if self.device is not None else None
        if found is None and self.node is not None:
            found = self.node.datatype(name)
        return found


@dataclass(frozen=True, slots=True)
class SparkplugLimits:
    max_edge_nodes: int = 10_000
    max_devices_per_node: int = 1_000
    #: All alias tables together, in bytes (names plus :data:`ALIAS_ENTRY_OVERHEAD` each).
    alias_budget: int = 64 * 1024 * 1024


@dataclass(slots=True, eq=False)
class DeviceState:
    device: str
    #: None: neither its DBIRTH nor its DDEATH was seen.
    online: bool | None = None
    born_at: float | None = None
    died_at: float | None = None
    last_seen: float = 0.0
    aliases: AliasTable | None = None
    metrics: int = 0
    #: The aliases its messages are decoded with, made again when a birth changes them.
    chain: MessageAliases | None = None


@dataclass(slots=True, eq=False)
class EdgeNodeState:
    """One edge node: its session (``bdseq``), its last ``seq``, its devices, and what went wrong."""

    group: str
    edge_node: str
    online: bool | None = None
    bdseq: int | None = None
    seq: int | None = None
    born_at: float | None = None
    died_at: float | None = None
    last_seen: float = 0.0
    aliases: AliasTable | None = None
    metrics: int = 0
    devices: dict[str, DeviceState] = field(default_factory=dict)
    seq_gaps: int = 0
    stale_deaths: int = 0
    births: int = 0
    #: (receive time, problem), newest last.
    problems: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=RECENT_PROBLEMS))
    chain: MessageAliases | None = None

    def device_state(self, device: str) -> DeviceState | None:
        return self.devices.get(device)


@dataclass(slots=True, eq=False)
class HostState:
    """A host application's STATE message."""

    host_id: str
    online: bool | None
    timestamp: int | None
    last_seen: float


class SparkplugObservation:
    """What :meth:`SparkplugState.observe` learnt from one message: keep it with the message to decode it later
    with the aliases that were in force when it arrived (never changed once made; a plain class with slots, made
    for every Sparkplug message at ingest, where a frozen dataclass would cost a few microseconds more).

    ``aliases``: the device's, then its edge node's, alias table (None: no birth seen). ``problems``: what is wrong
    with this message (a seq gap, a stale death, data before any birth, a payload that is not Sparkplug B).
    """

    __slots__ = ("aliases", "problems", "seq", "topic")

    def __init__(
        self,
        topic: SparkplugTopic,
        aliases: MessageAliases | None,
        seq: int | None,
        problems: tuple[str, ...] = (),
    ) -> None:
        self.topic = topic
        self.aliases = aliases
        self.seq = seq
        self.problems = problems

    def __repr__(self) -> str:
        return f"<SparkplugObservation {self.topic} seq={self.seq} problems={self.problems!r}>"


class SparkplugState:
    """Groups, edge nodes, devices and host applications as the messages seen so far describe them."""

    def __init__(self, limits: SparkplugLimits | None = None) -> None:
        self.limits = limits or SparkplugLimits()
        #: (group, edge node id) → state, in the order first seen.
        self.nodes: dict[tuple[str, str], EdgeNodeState] = {}
        self.hosts: dict[str, HostState] = {}
        self.alias_bytes = 0
        #: What did not fit the limits: edge nodes and devices not tracked, aliases not kept.
        self.dropped_nodes = 0
        self.dropped_devices = 0
        self.dropped_aliases = 0
        #: Payloads on Sparkplug topics that were not Sparkplug B.
        self.malformed = 0
        self._changed: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------------------------------------ queries

    def groups(self) -> dict[str, list[EdgeNodeState]]:
        """Group id → its edge nodes, in the order first seen."""
        out: dict[str, list[EdgeNodeState]] = {}
        for (group, _), node in self.nodes.items():
            out.setdefault(group, []).append(node)
        return out

    def edge_node(self, group: str, edge_node: str) -> EdgeNodeState | None:
        return self.nodes.get((group, edge_node))

    def aliases_for(self, topic: str) -> MessageAliases | None:
        """The aliases in force now for a Sparkplug topic's node (and device), or None."""
        parsed = parse_topic(topic)
        if parsed is None:
            return None
        node = self.nodes.get((parsed.group, parsed.edge_node))
        if node is None:
            return None
        device = node.devices.get(parsed.device) if parsed.device is not None else None
        return self._chain(node, device)

    def take_changed(self) -> set[tuple[str, str]]:
        """(group, edge node id) of the nodes whose state changed since the last call (for a UI refresh)."""
        changed, self._changed = self._changed, set()
        return changed

    def __iter__(self) -> Iterator[EdgeNodeState]:
        return iter(self.nodes.values())

    # ------------------------------------------------------------------------------------------------ ingest

    def observe(self, topic: str, payload: bytes, received_at: float) -> SparkplugObservation | None:
        """Take one message in. None when the topic is not a Sparkplug B topic. Never raises on bad input."""
        parsed = parse_topic(topic)
        if parsed is None:
            return None
        kind = parsed.message_type
        if kind is MessageType.STATE:
            self._host_state(parsed, payload, received_at)
            return SparkplugObservation(parsed, None, None)
        try:
            message = message_class().FromString(payload)
        except _decode_error():
            self.malformed += 1
            return SparkplugObservation(parsed, None, None, ("not a Sparkplug B payload",))
        node = self._node(parsed.group, parsed.edge_node)
        if node is None:
            return SparkplugObservation(parsed, None, None, ("too many edge nodes to track",))
        node.last_seen = received_at
        problems: list[str] = []
        seq = message.seq if message.HasField("seq") else None
        if kind in (MessageType.NCMD, MessageType.DCMD):
            if seq is not None:
                problems.append("a command carries a seq (it must not)")
            device = node.devices.get(parsed.device) if parsed.device is not None else None
            return SparkplugObservation(parsed, self._chain(node, device), seq, tuple(problems))
        if kind is MessageType.NDEATH:
            self._node_death(node, message, received_at, problems)
        elif kind is MessageType.NBIRTH:
            self._check_seq(node, seq, kind, problems, birth=True)
            self._node_birth(node, message, received_at, problems)
        else:
            self._check_seq(node, seq, kind, problems, birth=False)
            if parsed.device is not None:
                self._device_message(node, parsed.device, kind, message, received_at, problems)
            elif node.aliases is None and kind is MessageType.NDATA:
                problems.append("data before any NBIRTH was seen: aliases and datatypes unknown (request a rebirth)")
        for problem in problems:
            node.problems.append((received_at, problem))
        device_state = node.devices.get(parsed.device) if parsed.device is not None else None
        return SparkplugObservation(parsed, self._chain(node, device_state), seq, tuple(problems))

    def _chain(self, node: EdgeNodeState, device: DeviceState | None) -> MessageAliases | None:
        device_aliases = device.aliases if device is not None else None
        if device_aliases is None and node.aliases is None:
            return None
        holder: DeviceState | EdgeNodeState = device if device is not None else node
        chain = holder.chain
        if chain is None or chain.device is not device_aliases or chain.node is not node.aliases:
            chain = holder.chain = MessageAliases(device_aliases, node.aliases)
        return chain

    def _node(self, group: str, edge_node: str) -> EdgeNodeState | None:
        key = (group, edge_node)
        node = self.nodes.get(key)
        if node is None:
            if len(self.nodes) >= self.limits.max_edge_nodes:
                self.dropped_nodes += 1
                return None
            node = self.nodes[key] = EdgeNodeState(group, edge_node)
        self._changed.add(key)
        return node

    def _check_seq(
        self, node: EdgeNodeState, seq: int | None, kind: MessageType, problems: list[str], *, birth: bool
    ) -> None:
        if seq is None:
            problems.append(f"{kind.value} without a seq")
            return
        if seq > 255:
            problems.append(f"{kind.value} seq {seq} is out of range (0-255)")
            return
        if not birth and node.seq is not None:
            expected = (node.seq + 1) % 256
            if seq == node.seq:
                problems.append(f"seq {seq} repeated")
                node.seq_gaps += 1
            elif seq != expected:
                problems.append(f"seq gap: expected {expected}, got {seq}")
                node.seq_gaps += 1
        node.seq = seq

    def _table(self, metrics: Any, old: AliasTable | None, problems: list[str]) -> tuple[AliasTable, int]:
        """The alias table of a birth's metrics (within the alias budget) and the number of metrics."""
        if old is not None:
            self.alias_bytes -= old.cost
        by_alias: dict[int, tuple[str, int]] = {}
        by_name: dict[str, tuple[int | None, int]] = {}
        room = self.limits.alias_budget - self.alias_bytes
        used = 0
        count = 0
        for metric in metrics:
            count += 1
            if not metric.HasField("name"):
                problems.append("a birth metric without a name")
                continue
            name = metric.name
            cost = len(name) + ALIAS_ENTRY_OVERHEAD
            if used + cost > room:
                self.dropped_aliases += 1
                continue
            used += cost
            alias = metric.alias if metric.HasField("alias") else None
            datatype = metric.datatype
            by_name[name] = (alias, datatype)
            if alias is not None:
                if alias in by_alias and by_alias[alias][0] != name:
                    problems.append(f"alias {alias} given to both {by_alias[alias][0]!r} and {name!r}")
                by_alias[alias] = (name, datatype)
        table = AliasTable(by_alias, by_name)
        self.alias_bytes += table.cost
        return table, count

    def _node_birth(self, node: EdgeNodeState, message: Any, received_at: float, problems: list[str]) -> None:
        names = set()
        bdseq: int | None = None
        for metric in message.metrics:
            names.add(metric.name)
            if metric.name == BDSEQ:
                bdseq = _integer(metric)
        if bdseq is None:
            problems.append("NBIRTH without a bdSeq metric")
        if REBIRTH not in names:
            problems.append(f"NBIRTH without the {REBIRTH!r} metric")
        node.aliases, node.metrics = self._table(message.metrics, node.aliases, problems)
        node.online = True
        node.bdseq = bdseq
        node.born_at = received_at
        node.births += 1
        for device in node.devices.values():  # they must send their DBIRTH again after this NBIRTH
            if device.online:
                device.online = False
            if device.aliases is not None:
                self.alias_bytes -= device.aliases.cost
                device.aliases = None

    def _node_death(self, node: EdgeNodeState, message: Any, received_at: float, problems: list[str]) -> None:
        bdseq = next((_integer(metric) for metric in message.metrics if metric.name == BDSEQ), None)
        if message.HasField("seq"):
            problems.append("NDEATH carries a seq (it must not)")
        if bdseq is None:
            problems.append("NDEATH without a bdSeq metric")
        elif node.bdseq is not None and bdseq != node.bdseq:
            node.stale_deaths += 1
            problems.append(f"stale NDEATH ignored: bdSeq {bdseq}, the current session's is {node.bdseq}")
            return
        node.online = False
        node.died_at = received_at
        for device in node.devices.values():
            if device.online:
                device.online = False
                device.died_at = received_at

    def _device_message(
        self,
        node: EdgeNodeState,
        device_id: str,
        kind: MessageType,
        message: Any,
        received_at: float,
        problems: list[str],
    ) -> None:
        device = node.devices.get(device_id)
        if device is None:
            if len(node.devices) >= self.limits.max_devices_per_node:
                self.dropped_devices += 1
                problems.append("too many devices to track")
                return
            device = node.devices[device_id] = DeviceState(device_id)
        device.last_seen = received_at
        if kind is MessageType.DBIRTH:
            if node.online is not True:
                problems.append("DBIRTH while its edge node is not known to be online (NBIRTH not seen)")
            device.aliases, device.metrics = self._table(message.metrics, device.aliases, problems)
            device.online = True
            device.born_at = received_at
        elif kind is MessageType.DDEATH:
            device.online = False
            device.died_at = received_at
        elif device.aliases is None and node.aliases is None:
            problems.append("data before any DBIRTH was seen: aliases and datatypes unknown (request a rebirth)")

    def _host_state(self, parsed: SparkplugTopic, payload: bytes, received_at: float) -> None:
        online: bool | None = None
        timestamp: int | None = None
        try:
            document = json.loads(payload)
        except (ValueError, RecursionError):
            document = None
        if isinstance(document, dict):
            if isinstance(document.get("online"), bool):
                online = document["online"]
            if isinstance(document.get("timestamp"), int) and not isinstance(document.get("timestamp"), bool):
                timestamp = document["timestamp"]
        host = self.hosts.get(parsed.edge_node)
        if host is None:
            if len(self.hosts) >= self.limits.max_edge_nodes:
                return
            host = self.hosts[parsed.edge_node] = HostState(parsed.edge_node, online, timestamp, received_at)
        host.online, host.timestamp, host.last_seen = online, timestamp, received_at


def _decode_error() -> type[Exception]:
    """The protobuf library's DecodeError (imported when the first Sparkplug message arrives)."""
    from google.protobuf.message import DecodeError

    return DecodeError


def _integer(metric: Any) -> int | None:
    which = metric.WhichOneof("value")
    if which in ("long_value", "int_value"):
        return int(getattr(metric, which))
    return None
