"""Sparkplug B payloads both ways: a payload as a tree of metrics (names, datatypes, values, timestamps, properties,
datasets, templates; aliases resolved with the birth's table), and payloads made of metrics (an edge node's births
and data, NCMD/DCMD writes, the rebirth request).

Values follow the specification's datatypes: signed integers travel in ``uint32``/``uint64`` fields as two's
complement (read back by sign-extending the datatype's width, which also reads the 8- and 16-bit forms some
encoders write), arrays as packed little-endian bytes, booleans arrays as a 4-byte count and MSB-first bits, string
arrays as NUL-terminated UTF-8.
"""

from __future__ import annotations

import datetime
import math
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mqttchat.explorer.decoders.base import AliasLookup, DecodeContext
from mqttchat.explorer.decoders.result import Decoded, DecodeFailure, Node, Scalar, leaf
from mqttchat.explorer.decoders.sparkplug.schema import DataType, message_class
from mqttchat.explorer.decoders.sparkplug.topic import MessageType, SparkplugTopic, id_problem, parse_topic
from mqttchat.explorer.decoders.values import Budget

__all__ = [
    "BDSEQ",
    "REBIRTH",
    "SparkplugDataSet",
    "SparkplugMetric",
    "SparkplugTemplate",
    "command",
    "datatype_name",
    "decode_payload",
    "encode_payload",
    "format_timestamp",
    "parse_metric_value",
    "rebirth_request",
    "write_metric",
]

#: The metric an edge node's NBIRTH and NDEATH carry the birth/death sequence number in.
BDSEQ = "bdSeq"
#: The metric of the rebirth request (NCMD) and of every NBIRTH (with the value false).
REBIRTH = "Node Control/Rebirth"

_INT_BITS = {DataType.Int8: 8, DataType.Int16: 16, DataType.Int32: 32, DataType.Int64: 64}
_UINT_BITS = {DataType.UInt8: 8, DataType.UInt16: 16, DataType.UInt32: 32, DataType.UInt64: 64}
_ARRAY_FORMATS = {
    DataType.Int8Array: "b", DataType.Int16Array: "h", DataType.Int32Array: "i", DataType.Int64Array: "q",
    DataType.UInt8Array: "B", DataType.UInt16Array: "H", DataType.UInt32Array: "I", DataType.UInt64Array: "Q",
    DataType.FloatArray: "f", DataType.DoubleArray: "d", DataType.DateTimeArray: "q",
}  # fmt: skip
_ARRAYS = frozenset((*_ARRAY_FORMATS, DataType.BooleanArray, DataType.StringArray))
#: The value field of a metric for each datatype.
_VALUE_FIELD: dict[DataType, str] = {
    **dict.fromkeys((DataType.Int8, DataType.Int16, DataType.Int32, DataType.UInt8, DataType.UInt16,
                     DataType.UInt32), "int_value"),
    **dict.fromkeys((DataType.Int64, DataType.UInt64, DataType.DateTime), "long_value"),
    DataType.Float: "float_value",
    DataType.Double: "double_value",
    DataType.Boolean: "boolean_value",
    **dict.fromkeys((DataType.String, DataType.Text, DataType.UUID), "string_value"),
    **dict.fromkeys((DataType.Bytes, DataType.File, *_ARRAYS), "bytes_value"),
    DataType.DataSet: "dataset_value",
    DataType.Template: "template_value",
}  # fmt: skip
#: The kind shown for a value whose datatype is not known (a DATA metric of a node whose birth was not seen).
_FIELD_KINDS = {"int_value": "uint32", "long_value": "uint64", "float_value": "float", "double_value": "double",
                "boolean_value": "bool", "string_value": "string", "bytes_value": "bytes",
                "dataset_value": "DataSet", "template_value": "Template", "extension_value": "extension"}  # fmt: skip


#: DataType by value, without the cost of calling the enum.
_DATATYPES: dict[int, DataType] = {member.value: member for member in DataType}


def datatype_name(datatype: int | None) -> str:
    if datatype is None:
        return ""
    known = _DATATYPES.get(datatype)
    return known.name if known is not None else f"datatype {datatype}"


_TIMESTAMPS: dict[int, str] = {}


def format_timestamp(ms: int) -> str:
    """Milliseconds since the epoch as ISO 8601 in UTC (``2024-05-01T12:00:00.123Z``); '' when out of range."""
    text = _TIMESTAMPS.get(ms)
    if text is not None:
        return text
    try:
        moment = time.gmtime(ms // 1000)
    except (OverflowError, ValueError, OSError):
        return ""
    if not 0 < moment.tm_year < 10_000:
        return ""
    text = (f"{moment.tm_year:04d}-{moment.tm_mon:02d}-{moment.tm_mday:02d}T{moment.tm_hour:02d}:"
            f"{moment.tm_min:02d}:{moment.tm_sec:02d}.{ms % 1000:03d}Z")  # fmt: skip
    if len(_TIMESTAMPS) >= 4096:  # metrics of a message, and messages in a row, share their timestamps
        _TIMESTAMPS.clear()
    _TIMESTAMPS[ms] = text
    return text


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _float32(value: float) -> float:
    """A float32 as the shortest decimal that reads back as the same float32 (0.1, not 0.10000000149011612)."""
    if not math.isfinite(value):
        return value
    packed = struct.pack("<f", value)
    for digits in range(6, 10):
        shorter = float(f"{value:.{digits}g}")
        if struct.pack("<f", shorter) == packed:
            return shorter
    return value


# --------------------------------------------------------------------------------------------------------------
# Decoding


class _Decoding:
    """The state of decoding one payload: the node budget, problems found, numeric fields."""

    def __init__(self, aliases: AliasLookup | None, budget: Budget) -> None:
        self.aliases = aliases
        self.budget = budget
        self.problems: list[str] = []
        self.fields: dict[str, float] = {}

    def problem(self, text: str) -> None:
        if len(self.problems) < 20:
            self.problems.append(text)
        elif len(self.problems) == 20:
            self.problems.append("… more problems")


def _typed(datatype: int | None, which: str | None, raw: Any) -> tuple[Scalar, str, str]:
    """(value, kind, note) of a scalar value field read as datatype."""
    if which is None:
        return None, datatype_name(datatype) or "null", "no value"
    kind = datatype_name(datatype) or _FIELD_KINDS.get(which, which)
    if which == "extension_value":
        return None, kind, "extension value"
    known = _DATATYPES.get(datatype) if datatype is not None else None
    if known is not None and known is not DataType.Unknown and _VALUE_FIELD.get(known) != which:
        return _plain(which, raw), kind, f"{which} for a {known.name}"
    if known in _INT_BITS:
        return _signed(raw, _INT_BITS[known]), kind, ""
    if known in _UINT_BITS:
        return raw & ((1 << _UINT_BITS[known]) - 1), kind, ""
    if known is DataType.DateTime:
        return raw, kind, format_timestamp(raw)
    if known in _ARRAYS:
        return bytes(raw), kind, ""
    return _plain(which, raw), kind, ""


def _plain(which: str, raw: Any) -> Scalar:
    if which == "float_value":
        return _float32(raw)
    if which == "bytes_value":
        return bytes(raw)
    if isinstance(raw, bool | int | float | str):
        return raw
    return None


def _array_items(datatype: DataType, data: bytes, dec: _Decoding) -> tuple[list[Scalar], str]:
    """The elements of a packed array and a note when its bytes do not fit the datatype."""
    note = ""
    items: list[Scalar]
    if datatype is DataType.BooleanArray:
        if len(data) < 4:
            return [], "no element count"
        count = int.from_bytes(data[:4], "little")
        bits = data[4:]
        if count > len(bits) * 8:
            note = f"{count} booleans announced, {len(bits) * 8} bits present"
            count = len(bits) * 8
        count = min(count, max(dec.budget.nodes, 0))
        items = [bool(bits[i // 8] >> (7 - i % 8) & 1) for i in range(count)]
    elif datatype is DataType.StringArray:
        parts = data.split(b"\x00")
        if parts and parts[-1] == b"":
            parts.pop()
        else:
            note = "the last string is not NUL-terminated"
        items = [part.decode("utf-8", errors="replace") for part in parts[: max(dec.budget.nodes, 0)]]
    else:
        code = _ARRAY_FORMATS[datatype]
        size = struct.calcsize(code)
        usable = len(data) - len(data) % size
        if usable != len(data):
            note = f"{len(data) - usable} bytes left over"
        usable = min(usable, max(dec.budget.nodes, 0) * size)
        items = list(struct.unpack(f"<{usable // size}{code}", data[:usable]))
        if datatype is DataType.FloatArray:
            items = [_float32(item) for item in items]  # type: ignore[arg-type]
    dec.budget.nodes -= len(items)
    return items, note


def _number(value: Scalar) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int):
        return float(value)
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def _metric_node(metric: Any, dec: _Decoding, prefix: str, depth: int, *, in_template: bool = False) -> Node:
    dec.budget.nodes -= 1
    name: str | None = metric.name if metric.HasField("name") else None
    alias = metric.alias if metric.HasField("alias") else None
    datatype = metric.datatype if metric.HasField("datatype") else None
    if name is None and alias is not None and not in_template:
        found = dec.aliases.lookup(alias) if dec.aliases is not None else None
        if found is not None:
            name, known_type = found
            datatype = datatype if datatype is not None else known_type
        else:
            dec.problem(f"unknown alias {alias}" + ("" if dec.aliases is not None else " (no birth seen)"))
    elif name is not None and datatype is None and dec.aliases is not None and not in_template:
        datatype = _datatype_by_name(dec.aliases, name)
    label = name if name is not None else (f"alias {alias}" if alias is not None else "(no name)")
    which = metric.WhichOneof("value")
    notes: list[str] = []
    if alias is not None:
        notes.append(f"alias {alias}")
    if metric.HasField("timestamp"):
        notes.append(format_timestamp(metric.timestamp) or f"timestamp {metric.timestamp}")
    notes.extend(flag.removeprefix("is_") for flag in ("is_historical", "is_transient") if getattr(metric, flag))
    children: list[Node] = []
    value: Scalar = None
    if metric.is_null:
        kind = datatype_name(datatype) or "null"
        notes.append("null")
    elif which == "dataset_value":
        kind = "DataSet"
        children.extend(_dataset_rows(metric.dataset_value, dec, depth))
    elif which == "template_value":
        template = metric.template_value
        kind = "Template"
        if template.is_definition:
            notes.append("definition")
        elif template.template_ref:
            notes.append(f"instance of {template.template_ref}")
        if depth >= dec.budget.depth:
            dec.budget.cut += 1
        else:
            children.extend(_template_children(template, dec, f"{prefix}{label}/", depth + 1))
    else:
        value, kind, note = _typed(datatype, which, getattr(metric, which) if which else None)
        if note:
            notes.append(note)
        array_type = _DATATYPES.get(datatype) if datatype is not None else None
        if array_type is not None and array_type in _ARRAYS and isinstance(value, bytes) and which == "bytes_value":
            items, note = _array_items(array_type, value, dec)
            if note:
                notes.append(note)
                dec.problem(f"{label}: {note}")
            element = array_type.name.removesuffix("Array")
            children.extend(leaf(str(i), item, element) for i, item in enumerate(items))
            value = None
        else:
            number = _number(value)
            if number is not None:
                dec.fields[prefix + label] = number
    if metric.HasField("properties"):
        children.append(_property_set("properties", metric.properties, dec, depth + 1))
    if metric.HasField("metadata"):
        meta = [leaf(f.name, _plain(f.name, v) if f.name != "size" else v) for f, v in metric.metadata.ListFields()]
        children.append(Node("metadata", None, "MetaData", tuple(meta)))
    if which in ("dataset_value", "template_value") or children:
        return Node(label, value, kind, tuple(children), " · ".join(notes))
    return Node(label, value, kind, None, " · ".join(notes))


def _datatype_by_name(aliases: AliasLookup, name: str) -> int | None:
    by_name = getattr(aliases, "datatype", None)
    return by_name(name) if callable(by_name) else None


def _dataset_rows(dataset: Any, dec: _Decoding, depth: int) -> list[Node]:
    columns = list(dataset.columns)
    types = list(dataset.types)
    if len(columns) != len(types):
        dec.problem(f"a dataset has {len(columns)} columns and {len(types)} types")
    if dataset.HasField("num_of_columns") and dataset.num_of_columns != len(columns):
        dec.problem(f"a dataset says {dataset.num_of_columns} columns and names {len(columns)}")
    rows: list[Node] = []
    for index, row in enumerate(dataset.rows):
        if dec.budget.nodes <= 0:
            dec.budget.cut += len(dataset.rows) - index
            break
        cells: list[Node] = []
        for position, element in enumerate(row.elements):
            dec.budget.nodes -= 1
            column = columns[position] if position < len(columns) else str(position)
            datatype = types[position] if position < len(types) else None
            which = element.WhichOneof("value")
            value, kind, note = _typed(datatype, which, getattr(element, which) if which else None)
            cells.append(leaf(column, value, kind, note))
        rows.append(Node(str(index), None, "Row", tuple(cells)))
    return rows


def _template_children(template: Any, dec: _Decoding, prefix: str, depth: int) -> list[Node]:
    children: list[Node] = []
    if template.HasField("version"):
        children.append(leaf("version", template.version, "string"))
    for member in template.metrics:
        if dec.budget.nodes <= 0:
            dec.budget.cut += 1
            break
        children.append(_metric_node(member, dec, prefix, depth, in_template=True))
    if template.parameters:
        parameters: list[Node] = []
        for parameter in template.parameters:
            dec.budget.nodes -= 1
            which = parameter.WhichOneof("value")
            datatype = parameter.type if parameter.HasField("type") else None
            value, kind, note = _typed(datatype, which, getattr(parameter, which) if which else None)
            parameters.append(leaf(parameter.name or "(no name)", value, kind, note))
        children.append(Node("parameters", None, "Parameters", tuple(parameters)))
    return children


def _property_set(name: str, properties: Any, dec: _Decoding, depth: int) -> Node:
    keys, values = list(properties.keys), list(properties.values)
    if len(keys) != len(values):
        dec.problem(f"a property set has {len(keys)} keys and {len(values)} values")
    children: list[Node] = []
    for key, value in zip(keys, values, strict=False):
        dec.budget.nodes -= 1
        if dec.budget.nodes <= 0 or depth >= dec.budget.depth:
            dec.budget.cut += 1
            break
        datatype = value.type if value.HasField("type") else None
        which = value.WhichOneof("value")
        if value.is_null:
            children.append(leaf(key, None, datatype_name(datatype) or "null", "null"))
        elif which == "propertyset_value":
            children.append(_property_set(key, value.propertyset_value, dec, depth + 1))
        elif which == "propertysets_value":
            sets = [
                _property_set(str(i), item, dec, depth + 2)
                for i, item in enumerate(value.propertysets_value.propertyset)
            ]
            children.append(Node(key, None, "PropertySetList", tuple(sets)))
        else:
            scalar, kind, note = _typed(datatype, which, getattr(value, which) if which else None)
            if key == "Quality" and isinstance(scalar, int):
                note = {0: "BAD", 192: "GOOD", 500: "STALE"}.get(scalar, note)
            children.append(leaf(key, scalar, kind, note))
    return Node(name, None, "PropertySet", tuple(children))


def decode_payload(data: bytes, ctx: DecodeContext) -> Decoded:
    """A Sparkplug B payload as a tree: ``timestamp``, ``seq``, ``uuid``, ``body`` when present, then one node per
    metric named by its name (or the name its alias stands for in ``ctx.aliases``). The numeric fields are the
    metrics' values by metric name (a template's members as ``template/member``).

    Raises:
        DecodeFailure: the payload is not a Sparkplug B payload.
    """
    from google.protobuf.message import DecodeError

    try:
        payload = message_class().FromString(data)
    except DecodeError:
        raise DecodeFailure("not a Sparkplug B payload: the protobuf wire format is corrupt or cut short") from None
    topic = parse_topic(ctx.topic)
    dec = _Decoding(ctx.aliases, Budget(ctx.limits.max_nodes, ctx.limits.max_depth))
    header: list[Node] = []
    if payload.HasField("timestamp"):
        header.append(leaf("timestamp", payload.timestamp, "DateTime", format_timestamp(payload.timestamp)))
    if payload.HasField("seq"):
        header.append(leaf("seq", payload.seq, "UInt64"))
    if payload.HasField("uuid"):
        header.append(leaf("uuid", payload.uuid, "string"))
    if payload.HasField("body"):
        header.append(leaf("body", payload.body, "bytes"))
    metrics: list[Node] = []
    for metric in payload.metrics:
        if dec.budget.nodes <= 0:
            dec.budget.cut += len(payload.metrics) - len(metrics)
            break
        metrics.append(_metric_node(metric, dec, "", 0))
    kind = f"Sparkplug B {topic.message_type.value}" if topic is not None else "Sparkplug B"
    root = Node("", None, kind, (*header, Node("metrics", None, "metrics", tuple(metrics))))
    notes = (*dec.problems, *dec.budget.notes())
    # The rendering is made when first asked for, from what is read here: a closure over the parsed message would
    # keep it (and its arena, which no byte budget sees) alive in every cached result.
    head = _Head(topic, payload)
    return Decoded("sparkplug", root, lambda: _render(root, head), dec.fields, notes,
                   lambda: _summary(metrics))  # fmt: skip


def _summary(metrics: list[Node]) -> str:
    """``Speed = 1450.5, Running = true, …``: the metrics' values on one line."""
    parts: list[str] = []
    size = 0
    for node in metrics:
        part = f"{node.name} = {_shown(node)}" if node.children is None or node.value is not None else node.name
        parts.append(part)
        size += len(part) + 2
        if size > 1000:
            break
    return ", ".join(parts) if parts else "no metrics"


class _Head:
    """What a payload's rendering says before its metrics, read from the parsed message (which is not kept)."""

    __slots__ = ("body", "count", "seq", "timestamp", "topic", "uuid")

    def __init__(self, topic: SparkplugTopic | None, payload: Any) -> None:
        self.topic = topic
        self.seq: int | None = payload.seq if payload.HasField("seq") else None
        self.timestamp: int | None = payload.timestamp if payload.HasField("timestamp") else None
        self.count: int = len(payload.metrics)
        self.uuid: str | None = payload.uuid if payload.HasField("uuid") else None
        self.body: bytes | None = payload.body if payload.HasField("body") else None

    def lines(self) -> list[str]:
        """Message type, seq, time and metric count; uuid; body."""
        head = [self.topic.message_type.value if self.topic is not None else "Sparkplug B"]
        if self.seq is not None:
            head.append(f"seq {self.seq}")
        if self.timestamp is not None:
            head.append(format_timestamp(self.timestamp) or f"timestamp {self.timestamp}")
        head.append(f"{self.count} metric" + ("" if self.count == 1 else "s"))
        lines = ["  ".join(head)]
        if self.uuid is not None:
            lines.append(f"uuid {self.uuid}")
        if self.body is not None:
            lines.append(f"body {len(self.body)} bytes: {self.body[:32].hex(' ')}")
        return lines


def _render(root: Node, head: _Head) -> str:
    lines = head.lines()
    metrics = root.children[-1].children if root.children else ()
    stack: list[tuple[int, Node]] = [(0, node) for node in reversed(metrics or ())]
    while stack and len(lines) < 100_000:
        depth, node = stack.pop()
        pad = "  " * depth
        shown = "" if node.value is None and node.children is not None else f" = {_shown(node)}"
        detail = ", ".join(part for part in (node.kind, node.note) if part)
        lines.append(f"{pad}{node.name}{shown}" + (f"  ({detail})" if detail else ""))
        if node.children:
            stack.extend((depth + 1, child) for child in reversed(node.children))
    return "\n".join(lines)


def _shown(node: Node) -> str:
    value = node.value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value[:32].hex(" ") + (" …" if len(value) > 32 else "")
    if isinstance(value, str):
        return repr(value)
    return str(value)


# --------------------------------------------------------------------------------------------------------------
# Encoding


@dataclass(frozen=True, slots=True)
class SparkplugDataSet:
    """A DataSet value: column names, their datatypes, and rows of values in column order."""

    columns: tuple[str, ...]
    types: tuple[DataType, ...]
    rows: tuple[tuple[Any, ...], ...] = ()


@dataclass(frozen=True, slots=True)
class SparkplugTemplate:
    """A Template value: a definition (``is_definition``) or an instance of one (``template_ref``)."""

    metrics: tuple[SparkplugMetric, ...] = ()
    template_ref: str | None = None
    is_definition: bool = False
    version: str | None = None
    #: (name, datatype, value).
    parameters: tuple[tuple[str, DataType, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class SparkplugMetric:
    """A metric to encode. A value of None is sent as a null value (``is_null``); ``properties`` maps names to
    (datatype, value)."""

    name: str | None
    datatype: DataType
    value: Any = None
    alias: int | None = None
    #: Milliseconds since the epoch.
    timestamp: int | None = None
    properties: Mapping[str, tuple[DataType, Any]] = field(default_factory=dict)
    is_historical: bool = False
    is_transient: bool = False


def _check_int(value: Any, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"a {what} value must be an integer, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"a {what} value must be between {low} and {high}, not {value}")
    return value


def _set_scalar(target: Any, datatype: DataType, value: Any) -> None:
    """Set the value field of a Metric, PropertyValue, DataSetValue or Parameter for datatype."""
    if datatype in _INT_BITS:
        bits = _INT_BITS[datatype]
        number = _check_int(value, -(1 << (bits - 1)), (1 << (bits - 1)) - 1, datatype.name)
        if bits == 64:
            target.long_value = number & (1 << 64) - 1
        else:
            target.int_value = number & 0xFFFF_FFFF
    elif datatype in _UINT_BITS:
        bits = _UINT_BITS[datatype]
        number = _check_int(value, 0, (1 << bits) - 1, datatype.name)
        if bits == 64:
            target.long_value = number
        else:
            target.int_value = number
    elif datatype is DataType.DateTime:
        if isinstance(value, datetime.datetime):
            value = round(value.timestamp() * 1000)
        target.long_value = _check_int(value, 0, (1 << 64) - 1, "DateTime")
    elif datatype in (DataType.Float, DataType.Double):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"a {datatype.name} value must be a number, not {type(value).__name__}")
        if datatype is DataType.Float:
            target.float_value = float(value)
        else:
            target.double_value = float(value)
    elif datatype is DataType.Boolean:
        if not isinstance(value, bool):
            raise ValueError(f"a Boolean value must be true or false, not {type(value).__name__}")
        target.boolean_value = value
    elif datatype in (DataType.String, DataType.Text, DataType.UUID):
        if not isinstance(value, str):
            raise ValueError(f"a {datatype.name} value must be text, not {type(value).__name__}")
        target.string_value = value
    elif datatype in (DataType.Bytes, DataType.File):
        if not isinstance(value, bytes | bytearray):
            raise ValueError(f"a {datatype.name} value must be bytes, not {type(value).__name__}")
        target.bytes_value = bytes(value)
    elif datatype in _ARRAYS:
        target.bytes_value = _pack_array(datatype, value)
    else:
        raise ValueError(f"a {datatype.name} value cannot be written here")


def _pack_array(datatype: DataType, values: Any) -> bytes:
    if not isinstance(values, list | tuple):
        raise ValueError(f"a {datatype.name} value must be a list")
    if datatype is DataType.BooleanArray:
        if not all(isinstance(item, bool) for item in values):
            raise ValueError("a BooleanArray holds true and false only")
        bits = bytearray((len(values) + 7) // 8)
        for i, item in enumerate(values):
            if item:
                bits[i // 8] |= 0x80 >> (i % 8)
        return len(values).to_bytes(4, "little") + bytes(bits)
    if datatype is DataType.StringArray:
        if not all(isinstance(item, str) and "\x00" not in item for item in values):
            raise ValueError("a StringArray holds text without NUL characters")
        return b"".join(item.encode() + b"\x00" for item in values)
    code = _ARRAY_FORMATS[datatype]
    try:
        return struct.pack(f"<{len(values)}{code}", *values)
    except struct.error as exc:
        raise ValueError(f"a {datatype.name} value: {exc}") from None


def _fill_metric(target: Any, metric: SparkplugMetric) -> None:
    if metric.name is not None:
        target.name = metric.name
    if metric.alias is not None:
        target.alias = metric.alias
    if metric.timestamp is not None:
        target.timestamp = metric.timestamp
    target.datatype = int(metric.datatype)
    if metric.is_historical:
        target.is_historical = True
    if metric.is_transient:
        target.is_transient = True
    for key, (datatype, value) in metric.properties.items():
        target.properties.keys.append(key)
        prop = target.properties.values.add(type=int(datatype))
        if value is None:
            prop.is_null = True
        else:
            _set_scalar(prop, datatype, value)
    value = metric.value
    if value is None:
        target.is_null = True
    elif metric.datatype is DataType.DataSet:
        if not isinstance(value, SparkplugDataSet):
            raise ValueError("a DataSet value must be a SparkplugDataSet")
        if len(value.columns) != len(value.types):
            raise ValueError("a DataSet needs as many types as columns")
        dataset = target.dataset_value
        dataset.num_of_columns = len(value.columns)
        dataset.columns.extend(value.columns)
        dataset.types.extend(int(t) for t in value.types)
        for row in value.rows:
            if len(row) != len(value.columns):
                raise ValueError(f"a DataSet row has {len(row)} values for {len(value.columns)} columns")
            pb_row = dataset.rows.add()
            for datatype, cell in zip(value.types, row, strict=True):
                _set_scalar(pb_row.elements.add(), datatype, cell)
    elif metric.datatype is DataType.Template:
        if not isinstance(value, SparkplugTemplate):
            raise ValueError("a Template value must be a SparkplugTemplate")
        template = target.template_value
        template.is_definition = value.is_definition
        if value.template_ref is not None:
            template.template_ref = value.template_ref
        if value.version is not None:
            template.version = value.version
        for member in value.metrics:
            _fill_metric(template.metrics.add(), member)
        for name, datatype, parameter_value in value.parameters:
            parameter = template.parameters.add(name=name, type=int(datatype))
            if parameter_value is not None:
                _set_scalar(parameter, datatype, parameter_value)
    else:
        _set_scalar(target, metric.datatype, value)


def encode_payload(
    metrics: Sequence[SparkplugMetric],
    *,
    timestamp: int | None = None,
    seq: int | None = None,
    uuid: str | None = None,
    body: bytes | None = None,
) -> bytes:
    """A Sparkplug B payload. ``timestamp`` defaults to now (milliseconds since the epoch).

    Raises:
        ValueError: a value does not fit its datatype (the message says which).
    """
    payload = message_class()(timestamp=timestamp if timestamp is not None else int(time.time() * 1000))
    if seq is not None:
        payload.seq = seq
    if uuid is not None:
        payload.uuid = uuid
    if body is not None:
        payload.body = body
    for metric in metrics:
        _fill_metric(payload.metrics.add(), metric)
    return bytes(payload.SerializeToString())


def _command_topic(group: str, edge_node: str, device: str | None) -> str:
    for value, what in ((group, "group id"), (edge_node, "edge node id"), (device, "device id")):
        if value is not None:
            problem = id_problem(value, what)
            if problem is not None:
                raise ValueError(problem)
    kind = MessageType.DCMD if device is not None else MessageType.NCMD
    return str(SparkplugTopic(kind, group, edge_node, device))


def command(
    group: str,
    edge_node: str,
    metrics: Sequence[SparkplugMetric],
    device: str | None = None,
    *,
    timestamp: int | None = None,
) -> tuple[str, bytes]:
    """(topic, payload) of an NCMD (or a DCMD when device is given): a timestamp and the metrics, no ``seq``.
    The specification wants commands published with QoS 0 and without the retain flag.

    Raises:
        ValueError: an id cannot be part of a topic, or a value does not fit its datatype.
    """
    topic = _command_topic(group, edge_node, device)
    return topic, encode_payload(metrics, timestamp=timestamp)


def rebirth_request(group: str, edge_node: str, *, timestamp: int | None = None) -> tuple[str, bytes]:
    """(topic, payload) of the NCMD that asks an edge node for a new birth sequence: the metric
    ``Node Control/Rebirth``, a Boolean with the value true, sent by name (a rebirth never uses an alias)."""
    now = timestamp if timestamp is not None else int(time.time() * 1000)
    return command(group, edge_node, [SparkplugMetric(REBIRTH, DataType.Boolean, True, timestamp=now)], timestamp=now)


def write_metric(
    group: str,
    edge_node: str,
    name: str,
    value: Any,
    datatype: DataType,
    device: str | None = None,
    *,
    alias: int | None = None,
    timestamp: int | None = None,
) -> tuple[str, bytes]:
    """(topic, payload) of an NCMD/DCMD writing one metric. The metric is named, with its datatype; with ``alias``
    it is sent by alias only, as the specification wants of edge nodes that use aliases.

    Raises:
        ValueError: an id cannot be part of a topic, or the value does not fit the datatype.
    """
    now = timestamp if timestamp is not None else int(time.time() * 1000)
    metric = SparkplugMetric(None if alias is not None else name, datatype, value, alias=alias, timestamp=now)
    return command(group, edge_node, [metric], device, timestamp=now)


_TRUE = frozenset({"true", "1", "on", "yes"})
_FALSE = frozenset({"false", "0", "off", "no"})


def parse_metric_value(text: str, datatype: DataType) -> Any:
    """The value a user typed for a metric of datatype: integers (``0x`` too), numbers, true/false (or 1/0,
    on/off, yes/no), text as it is, bytes in hex, DateTime as milliseconds or ISO 8601, arrays as a JSON list.

    Raises:
        ValueError: the text is not a value of that datatype (the message says what is expected).
    """
    stripped = text.strip()
    if datatype in _INT_BITS or datatype in _UINT_BITS:
        try:
            return int(stripped, 0)
        except ValueError:
            raise ValueError(f"a {datatype.name} value is an integer, not {stripped!r}") from None
    if datatype in (DataType.Float, DataType.Double):
        try:
            return float(stripped)
        except ValueError:
            raise ValueError(f"a {datatype.name} value is a number, not {stripped!r}") from None
    if datatype is DataType.Boolean:
        lowered = stripped.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"a Boolean value is true or false, not {stripped!r}")
    if datatype is DataType.DateTime:
        if stripped.isdigit():
            return int(stripped)
        try:
            moment = datetime.datetime.fromisoformat(stripped.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"a DateTime value is milliseconds since 1970 or ISO 8601, not {stripped!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        return round(moment.timestamp() * 1000)
    if datatype in (DataType.Bytes, DataType.File):
        try:
            return bytes.fromhex(stripped.replace(":", " "))
        except ValueError:
            raise ValueError(f"a {datatype.name} value is written in hex, not {stripped!r}") from None
    if datatype in _ARRAYS:
        import json

        try:
            items = json.loads(stripped)
        except ValueError:
            items = None
        if not isinstance(items, list):
            raise ValueError(f"a {datatype.name} value is a JSON list such as [1, 2, 3]")
        return items
    if datatype in (DataType.String, DataType.Text, DataType.UUID):
        return text
    raise ValueError(f"a {datatype.name} value cannot be typed in")
