"""Writing messages read from the history store as JSONL (the recording format) or CSV (one column per JSON field).

CSV columns: ``t`` (seconds since the epoch), ``time`` (ISO 8601, UTC) and ``topic``, then one column per field
of the JSON payloads, in the order first met: nested objects joined with dots (``battery.level``), list items
indexed (``values[0]``). A payload that is not a JSON object goes in ``payload`` (its JSON value or its text), a
binary one in ``payload_base64``. At most :data:`MAX_COLUMNS` field columns; fields past that are counted in
:attr:`CsvExport.skipped_fields`. A text cell that a spreadsheet would run as a formula (starting with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return, and not a number) is written with a leading ``'``.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from mqttchat.explorer.history_store import StoredMessage
from mqttchat.explorer.recording import format_line

MAX_COLUMNS = 1000
#: Lists longer than this are one cell (their JSON), not a column per item.
MAX_LIST_ITEMS = 32
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def write_jsonl(messages: Iterable[StoredMessage], out: IO[str] | io.TextIOBase) -> int:
    """Write ``messages`` as recording lines; how many."""
    count = 0
    for m in messages:
        out.write(format_line(m.topic, m.payload, m.qos, m.retain, m.properties, m.t) + "\n")
        count += 1
    return count


def _json_object(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except (ValueError, RecursionError):
        return _NOT_JSON


_NOT_JSON = object()


def flatten(value: Any, prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON value's leaves by dotted path (``{"a": {"b": 1}, "c": [2]}`` → ``{"a.b": 1, "c[0]": 2}``)."""
    out = {} if out is None else out
    if isinstance(value, dict) and value:
        for key, item in value.items():
            flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list) and value and len(value) <= MAX_LIST_ITEMS:
        for index, item in enumerate(value):
            flatten(item, f"{prefix}[{index}]", out)
    else:
        out[prefix or "payload"] = value
    return out


def message_fields(payload: bytes) -> dict[str, Any]:
    """A payload's CSV fields (see the module's description)."""
    value = _json_object(payload)
    if value is _NOT_JSON:
        try:
            return {"payload": payload.decode()}
        except UnicodeDecodeError:
            return {"payload_base64": base64.b64encode(payload).decode("ascii")}
    if isinstance(value, dict) and value:
        return flatten(value)
    return {"payload": value}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else ""
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = str(value)
    if text.startswith(_FORMULA):
        try:
            float(text)
        except ValueError:
            return "'" + text
    return text


@dataclass(slots=True)
class CsvExport:
    """Two passes over the same messages: the columns first, then the rows."""

    columns: list[str] = field(default_factory=list)
    skipped_fields: int = 0
    rows: int = 0

    def write(self, messages: Callable[[], Iterable[StoredMessage]], out: IO[str] | io.TextIOBase) -> int:
        """Write the CSV of what ``messages()`` gives (called twice); how many rows."""
        known: set[str] = set()
        for m in messages():
            for name in message_fields(m.payload):
                if name not in known:
                    if len(self.columns) >= MAX_COLUMNS:
                        self.skipped_fields += 1
                        continue
                    known.add(name)
                    self.columns.append(name)
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["t", "time", "topic", *self.columns])
        for m in messages():
            fields = message_fields(m.payload)
            when = dt.datetime.fromtimestamp(m.t, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            writer.writerow([f"{m.t:.3f}", when, _cell(m.topic), *(_cell(fields.get(c)) for c in self.columns)])
            self.rows += 1
        return self.rows
