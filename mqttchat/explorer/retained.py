"""Retained messages as a set: the export/import file, and the pace of publishing many (plain Python, no screen).

An export is a JSON object ``{"retained": [...]}`` with one record per message: ``topic``, ``qos``, and
``payload`` (UTF-8 text) or ``payload_base64`` (anything else). Importing publishes each record as a retained
message; deleting publishes an empty payload. Either goes out at most :data:`BULK_RATE` messages a second.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mqttchat.explorer.tree import TopicTree

__all__ = [
    "BULK_RATE",
    "RetainedFormatError",
    "RetainedMessage",
    "bulk_duration",
    "bulk_pause",
    "dump_retained",
    "export_retained",
    "import_retained",
    "load_retained",
    "retained_messages",
]

#: Retained messages set or cleared in bulk go out at most this many per second, so a broker is never flooded.
BULK_RATE = 200


class RetainedFormatError(ValueError):
    """A file that is not a retained-message export (the message says what is wrong)."""


@dataclass(frozen=True, slots=True)
class RetainedMessage:
    """A retained message to publish (an empty payload clears the topic's)."""

    topic: str
    payload: bytes
    qos: int = 1


def bulk_duration(count: int) -> str:
    """How long sending ``count`` messages at :data:`BULK_RATE` a second takes, in words."""
    if count <= BULK_RATE:
        return "in under a second"
    return f"about {math.ceil(count / BULK_RATE)} s"


def bulk_pause(sent: int) -> float:
    """Seconds to wait after the ``sent``-th message of a bulk publish: a second after every :data:`BULK_RATE`."""
    return 1.0 if sent % BULK_RATE == 0 else 0.0


def retained_messages(tree: TopicTree, topics: Iterable[str]) -> list[RetainedMessage]:
    """The retained messages the explorer holds for ``topics`` (topics without one are left out)."""
    messages = []
    for topic in topics:
        node = tree.get(topic)
        if node is not None and node.retained_entry is not None:
            entry = node.retained_entry
            messages.append(RetainedMessage(topic, entry.payload, entry.qos))
    return messages


def dump_retained(messages: Iterable[RetainedMessage]) -> str:
    """The export file's text."""
    records = []
    for message in messages:
        record: dict[str, Any] = {"topic": message.topic, "qos": message.qos}
        try:
            record["payload"] = message.payload.decode()
        except UnicodeDecodeError:
            record["payload_base64"] = base64.b64encode(message.payload).decode()
        records.append(record)
    return json.dumps({"retained": records}, indent=2, ensure_ascii=False)


def load_retained(text: str) -> list[RetainedMessage]:
    """The messages of an export file's text.

    Raises:
        RetainedFormatError: not JSON, or not an export (no ``retained`` list, a record without a topic or a
            payload, a QoS that is not a number, base64 that does not decode).
    """
    try:
        records = json.loads(text)["retained"]
        messages = []
        for record in records:
            payload = (
                base64.b64decode(record["payload_base64"]) if "payload_base64" in record
                else str(record["payload"]).encode()
            )  # fmt: skip
            messages.append(RetainedMessage(str(record["topic"]), payload, int(record.get("qos", 1))))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RetainedFormatError(str(exc)) from exc
    return messages


def export_retained(path: Path, messages: Iterable[RetainedMessage]) -> None:
    """Write ``messages`` to ``path`` as an export file.

    Raises:
        OSError: the file cannot be written.
    """
    path.write_text(dump_retained(messages))


def import_retained(path: Path) -> list[RetainedMessage]:
    """The messages of the export file at ``path``.

    Raises:
        OSError: the file cannot be read. RetainedFormatError: it is not an export.
    """
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        raise RetainedFormatError(str(exc)) from exc
    return load_retained(text)
