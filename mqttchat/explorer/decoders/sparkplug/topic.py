"""Sparkplug B topic names: ``spBv1.0/group_id/MESSAGE_TYPE/edge_node_id[/device_id]`` and
``spBv1.0/STATE/host_id`` (Sparkplug 3.0.0, chapter 4)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["NAMESPACE", "MessageType", "SparkplugTopic", "id_problem", "parse_topic"]

NAMESPACE = "spBv1.0"


class MessageType(Enum):
    NBIRTH = "NBIRTH"
    NDEATH = "NDEATH"
    DBIRTH = "DBIRTH"
    DDEATH = "DDEATH"
    NDATA = "NDATA"
    DDATA = "DDATA"
    NCMD = "NCMD"
    DCMD = "DCMD"
    STATE = "STATE"

    @property
    def is_device(self) -> bool:
        return self.value.startswith("D")

    @property
    def has_seq(self) -> bool:
        """Messages an edge node publishes with a sequence number: all of its own but NDEATH."""
        return self in _WITH_SEQ


_WITH_SEQ = frozenset({MessageType.NBIRTH, MessageType.DBIRTH, MessageType.DDEATH, MessageType.NDATA,
                       MessageType.DDATA})  # fmt: skip
_TYPES = {member.value: member for member in MessageType}


@dataclass(frozen=True, slots=True)
class SparkplugTopic:
    """A parsed Sparkplug topic. For STATE, ``edge_node`` holds the host application's id and ``group`` is empty."""

    message_type: MessageType
    group: str
    edge_node: str
    device: str | None = None

    def __str__(self) -> str:
        if self.message_type is MessageType.STATE:
            return f"{NAMESPACE}/STATE/{self.edge_node}"
        tail = f"/{self.device}" if self.device is not None else ""
        return f"{NAMESPACE}/{self.group}/{self.message_type.value}/{self.edge_node}{tail}"


#: Topics already parsed (a busy plant repeats the same few thousand), within a byte budget.
_PARSED: dict[str, SparkplugTopic | None] = {}
_PARSED_BUDGET = 1024 * 1024
_parsed_bytes = 0


def parse_topic(topic: str) -> SparkplugTopic | None:
    """The Sparkplug B meaning of a topic name, or None when it is not a Sparkplug B topic."""
    global _parsed_bytes
    if not topic.startswith("spBv1.0/"):
        return None
    try:
        return _PARSED[topic]
    except KeyError:
        pass
    parsed = _parse(topic)
    _parsed_bytes += len(topic) + 200
    if _parsed_bytes > _PARSED_BUDGET:
        _PARSED.clear()
        _parsed_bytes = len(topic) + 200
    _PARSED[topic] = parsed
    return parsed


def _parse(topic: str) -> SparkplugTopic | None:
    parts = topic.split("/")
    if len(parts) == 3 and parts[1] == "STATE" and parts[2]:
        return SparkplugTopic(MessageType.STATE, "", parts[2])
    if len(parts) not in (4, 5) or not all(parts[1:]):
        return None
    message_type = _TYPES.get(parts[2])
    if message_type is None or message_type is MessageType.STATE:
        return None
    if message_type.is_device != (len(parts) == 5):
        return None
    return SparkplugTopic(message_type, parts[1], parts[3], parts[4] if len(parts) == 5 else None)


def id_problem(value: str, what: str) -> str | None:
    """What is wrong with a group, edge node or device id (for building topics), or None."""
    if not value:
        return f"the {what} must not be empty"
    if any(char in "/+#" for char in value):
        return f"the {what} must not contain '/', '+' or '#'"
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        return f"the {what} must not contain control characters"
    return None
