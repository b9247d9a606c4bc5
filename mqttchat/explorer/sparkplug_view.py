"""What the explorer says about a Sparkplug B topic: its group, edge node and device, their state (online from a
BIRTH, offline from a DEATH), sequence checks and problems, and the metrics a write can name. Plain text; the
screen shows it through ``network_text`` (group, node, device and metric names come from the network)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from mqttchat.explorer.decoders.sparkplug.state import DeviceState, EdgeNodeState, SparkplugState
from mqttchat.explorer.decoders.sparkplug.topic import MessageType, SparkplugTopic, parse_topic
from mqttchat.labels import plural

__all__ = ["SparkplugPlace", "place", "state_word"]


def state_word(online: bool | None) -> str:
    """``online``, ``offline``, or ``unknown`` (neither a birth nor a death seen)."""
    return "unknown" if online is None else "online" if online else "offline"


def _clock(at: float | None) -> str:
    return dt.datetime.fromtimestamp(at).strftime("%H:%M:%S") if at else "?"


@dataclass(frozen=True, slots=True)
class SparkplugPlace:
    """A Sparkplug topic and the state of what it is about (None: not seen yet)."""

    topic: SparkplugTopic
    node: EdgeNodeState | None
    device: DeviceState | None

    @property
    def group(self) -> str:
        return self.topic.group

    @property
    def edge_node(self) -> str:
        return self.topic.edge_node

    @property
    def device_id(self) -> str | None:
        return self.topic.device

    @property
    def is_host(self) -> bool:
        return self.topic.message_type is MessageType.STATE

    @property
    def online(self) -> bool | None:
        """The state of the device the topic names, or else of its edge node."""
        if self.topic.device is not None:
            return self.device.online if self.device is not None else None
        return self.node.online if self.node is not None else None

    def word(self) -> str:
        """One word for the tree's value column: ``online``, ``offline`` or "" (not known)."""
        online = self.online
        return "" if online is None else state_word(online)

    def key(self) -> tuple[object, ...]:
        """Changes whenever what :meth:`lines` says does (a view redraws only then)."""
        node, device = self.node, self.device
        node_key = (
            (node.online, node.bdseq, node.seq, node.births, node.seq_gaps, node.stale_deaths, len(node.problems),
             node.metrics, len(node.devices))
            if node is not None else None
        )  # fmt: skip
        device_key = (device.online, device.metrics, device.born_at) if device is not None else None
        return (node_key, device_key)

    def lines(self) -> list[str]:
        """The state, a line each: the edge node, then the device, then the edge node's recent problems."""
        if self.is_host:
            return [f"host application {self.topic.edge_node}"]
        node = self.node
        out = []
        if node is None:
            out.append(f"edge node {self.group}/{self.edge_node}: no message seen yet")
        else:
            parts = [f"edge node {self.group}/{self.edge_node}: {state_word(node.online)}"]
            if node.online and node.born_at:
                parts.append(f"born {_clock(node.born_at)}")
            elif node.online is False and node.died_at:
                parts.append(f"died {_clock(node.died_at)}")
            if node.bdseq is not None:
                parts.append(f"bdSeq {node.bdseq}")
            if node.seq is not None:
                parts.append(f"seq {node.seq}")
            parts.append(plural(node.metrics, "metric"))
            parts.append(plural(len(node.devices), "device"))
            out.append(", ".join(parts))
            checks = [plural(node.births, "birth")]
            checks.append(plural(node.seq_gaps, "seq gap"))
            checks.append(plural(node.stale_deaths, "stale death"))
            out.append("  " + ", ".join(checks))
        if self.topic.device is not None:
            device = self.device
            if device is None:
                out.append(f"device {self.topic.device}: no message seen yet")
            else:
                parts = [f"device {self.topic.device}: {state_word(device.online)}"]
                if device.online and device.born_at:
                    parts.append(f"born {_clock(device.born_at)}")
                elif device.online is False and device.died_at:
                    parts.append(f"died {_clock(device.died_at)}")
                parts.append(plural(device.metrics, "metric"))
                out.append(", ".join(parts))
        if node is not None and node.problems:
            at, problem = node.problems[-1]
            out.append(f"last problem at {_clock(at)}: {problem}")
        return out

    def metric_names(self) -> list[tuple[str, int]]:
        """The metrics a write can name, with their datatypes: the device's (from its DBIRTH) on a device topic,
        else the edge node's (from its NBIRTH), in birth order."""
        table = None
        if self.topic.device is not None:
            table = self.device.aliases if self.device is not None else None
        elif self.node is not None:
            table = self.node.aliases
        if table is None:
            return []
        return [(name, datatype) for name, (_, datatype) in table.by_name.items()]

    def alias_of(self, name: str) -> int | None:
        table = None
        if self.topic.device is not None:
            table = self.device.aliases if self.device is not None else None
        elif self.node is not None:
            table = self.node.aliases
        return table.alias_of(name) if table is not None else None


def place(state: SparkplugState, topic: str) -> SparkplugPlace | None:
    """What topic is about, or None when it is not a Sparkplug B topic."""
    parsed = parse_topic(topic)
    if parsed is None:
        return None
    if parsed.message_type is MessageType.STATE:
        return SparkplugPlace(parsed, None, None)
    node = state.edge_node(parsed.group, parsed.edge_node)
    device = node.devices.get(parsed.device) if node is not None and parsed.device is not None else None
    return SparkplugPlace(parsed, node, device)
