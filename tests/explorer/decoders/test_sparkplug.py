"""Sparkplug B: payloads built with an independent schema (tests/explorer/decoders/sparkplug_schema.py) decoded by
the product; the product's commands decoded by that schema; the host's state model (seq, bdSeq, aliases, births
and deaths)."""

from __future__ import annotations

import gc
import struct
import types
from typing import Any

import pytest
from google.protobuf.message import Message

from mqttchat.explorer.decoders import DecodeContext, PayloadDecoders
from mqttchat.explorer.decoders.result import DecodeResult, Node
from mqttchat.explorer.decoders.sparkplug import (
    DataType,
    SparkplugDataSet,
    SparkplugLimits,
    SparkplugMetric,
    SparkplugState,
    SparkplugTemplate,
    decode_payload,
    encode_payload,
    parse_metric_value,
    parse_topic,
    rebirth_request,
    write_metric,
)
from tests.explorer.decoders import sparkplug_schema as spb

NOW = 1_700_000_000_000


def payload(metrics: list[dict[str, Any]], *, seq: int | None = None, timestamp: int = NOW) -> bytes:
    """A payload made with the independent schema; each metric is the keyword arguments of a Metric."""
    message = spb.Payload()(timestamp=timestamp)
    if seq is not None:
        message.seq = seq
    for fields in metrics:
        metric = message.metrics.add()
        for key, value in fields.items():
            if key == "properties":
                for name, (datatype, field, item) in value.items():
                    metric.properties.keys.append(name)
                    setattr(metric.properties.values.add(type=datatype), field, item)
            elif key == "dataset":
                columns, types, rows = value
                metric.dataset_value.num_of_columns = len(columns)
                metric.dataset_value.columns.extend(columns)
                metric.dataset_value.types.extend(types)
                for row in rows:
                    elements = metric.dataset_value.rows.add().elements
                    for field, item in row:
                        setattr(elements.add(), field, item)
            elif key == "template":
                metric.template_value.CopyFrom(value)
            else:
                setattr(metric, key, value)
    return bytes(message.SerializeToString())


def birth(bdseq: int = 0, seq: int = 0, extra: list[dict[str, Any]] | None = None) -> bytes:
    return payload(
        [
            {"name": "bdSeq", "datatype": spb.INT64, "long_value": bdseq, "timestamp": NOW},
            {"name": "Node Control/Rebirth", "datatype": spb.BOOLEAN, "boolean_value": False, "timestamp": NOW},
            *(extra or []),
        ],
        seq=seq,
    )


def death(bdseq: int) -> bytes:
    return payload([{"name": "bdSeq", "datatype": spb.INT64, "long_value": bdseq}])


def metric(result: DecodeResult, name: str) -> Node:
    assert result.root is not None and result.root.children is not None
    metrics = result.root.children[-1]
    return next(node for node in metrics.children or () if node.name == name)


def decode(topic: str, data: bytes, state: SparkplugState | None = None) -> DecodeResult:
    decoders = PayloadDecoders(sparkplug=state or SparkplugState())
    return decoders.decode(topic, data)


# ------------------------------------------------------------------------------------------------------ decoding


def test_values_of_every_basic_datatype() -> None:
    data = payload([
        {"name": "i8 (32-bit form)", "datatype": spb.INT8, "int_value": 2**32 - 3},
        {"name": "i8 (8-bit form)", "datatype": spb.INT8, "int_value": 253},
        {"name": "i16", "datatype": spb.INT16, "int_value": 2**32 - 30000},
        {"name": "i32", "datatype": spb.INT32, "int_value": 2**31},
        {"name": "i64", "datatype": spb.INT64, "long_value": 2**64 - 1},
        {"name": "u8", "datatype": spb.UINT8, "int_value": 255},
        {"name": "u64", "datatype": spb.UINT64, "long_value": 2**64 - 1},
        {"name": "f", "datatype": spb.FLOAT, "float_value": 0.1},
        {"name": "d", "datatype": spb.DOUBLE, "double_value": 1e300},
        {"name": "b", "datatype": spb.BOOLEAN, "boolean_value": True},
        {"name": "s", "datatype": spb.STRING, "string_value": "héllo"},
        {"name": "when", "datatype": spb.DATETIME, "long_value": NOW},
        {"name": "raw", "datatype": spb.BYTES, "bytes_value": b"\x00\xff"},
        {"name": "nothing", "datatype": spb.INT32, "is_null": True},
    ], seq=3)  # fmt: skip
    result = decode("spBv1.0/G/DDATA/E/D", data)
    assert result.ok and result.auto and result.decoder == "sparkplug"
    values = {name: metric(result, name).value for name in result.fields}
    assert values == {"i8 (32-bit form)": -3, "i8 (8-bit form)": -3, "i16": -30000, "i32": -(2**31), "i64": -1,
                      "u8": 255, "u64": 2**64 - 1, "f": 0.1, "d": 1e300, "b": True, "when": NOW}  # fmt: skip
    assert metric(result, "s").value == "héllo" and metric(result, "raw").value == b"\x00\xff"
    assert metric(result, "i16").kind == "Int16" and metric(result, "f").kind == "Float"
    assert metric(result, "when").note == "2023-11-14T22:13:20.000Z"
    assert metric(result, "nothing").value is None and "null" in metric(result, "nothing").note
    assert result.text.splitlines()[0] == "DDATA  seq 3  2023-11-14T22:13:20.000Z  14 metrics"
    assert "i16 = -30000  (Int16)" in result.text


def test_arrays_as_the_specification_packs_them() -> None:
    data = payload([
        {"name": "ints", "datatype": spb.INT32_ARRAY, "bytes_value": bytes.fromhex("fffffffffaafcb12")},
        {"name": "flags", "datatype": spb.BOOLEAN_ARRAY, "bytes_value": bytes.fromhex("0c00000034d0")},
        {"name": "words", "datatype": spb.STRING_ARRAY, "bytes_value": b"ABC\x00hello\x00"},
        {"name": "floats", "datatype": spb.FLOAT_ARRAY, "bytes_value": struct.pack("<2f", 1.23, 89.341)},
    ])  # fmt: skip
    result = decode("spBv1.0/G/NDATA/E", data)

    def items(name: str) -> list[Any]:
        return [child.value for child in metric(result, name).children or ()]

    assert items("ints") == [-1, 315338746]
    assert items("flags") == [False, False, True, True, False, True, False, False, True, True, False, True]
    assert items("words") == ["ABC", "hello"]
    assert items("floats") == [1.23, 89.341]
    assert metric(result, "ints").kind == "Int32Array" and metric(result, "ints").children[0].kind == "Int32"  # type: ignore[index]


def test_properties_metadata_datasets_and_templates() -> None:
    template = spb.Payload().Template(template_ref="Motor", is_definition=False, version="1")
    template.metrics.add(name="RPM", datatype=spb.INT32, int_value=1200)
    template.metrics.add(name="Running", datatype=spb.BOOLEAN, boolean_value=True)
    template.parameters.add(name="Max", type=spb.INT32, int_value=3000)
    data = payload([
        {"name": "Temp", "alias": 1, "datatype": spb.FLOAT, "float_value": 21.5, "is_historical": True,
         "properties": {"Quality": (spb.INT32, "int_value", 192), "engUnit": (spb.STRING, "string_value", "C")}},
        {"name": "Table", "datatype": spb.DATASET,
         "dataset": (["id", "name"], [spb.INT8, spb.STRING],
                     [[("int_value", 2**32 - 1), ("string_value", "a")], [("int_value", 2), ("string_value", "b")]])},
        {"name": "Pump", "datatype": spb.TEMPLATE, "template": template},
    ], seq=0)  # fmt: skip
    result = decode("spBv1.0/G/NBIRTH/E", data)
    temp = metric(result, "Temp")
    assert temp.value == 21.5 and "alias 1" in temp.note and "historical" in temp.note
    properties = next(child for child in temp.children or () if child.name == "properties")
    assert [(p.name, p.value, p.kind, p.note) for p in properties.children or ()] == [
        ("Quality", 192, "Int32", "GOOD"), ("engUnit", "C", "String", "")]  # fmt: skip
    rows = metric(result, "Table").children or ()
    assert [[(cell.name, cell.value) for cell in row.children or ()] for row in rows] == [
        [("id", -1), ("name", "a")], [("id", 2), ("name", "b")]]  # fmt: skip
    pump = metric(result, "Pump")
    assert pump.kind == "Template" and "instance of Motor" in pump.note
    assert result.fields["Pump/RPM"] == 1200.0 and result.fields["Pump/Running"] == 1.0
    assert result.fields["Temp"] == 21.5
    assert "Max = 3000  (Int32)" in result.text


def test_mismatched_value_and_datatype_are_shown_not_refused() -> None:
    result = decode("spBv1.0/G/NDATA/E", payload([{"name": "x", "datatype": spb.INT32, "string_value": "oops"}]))
    assert result.ok and metric(result, "x").value == "oops"
    assert metric(result, "x").note == "string_value for a Int32"


@pytest.mark.parametrize("cut", [1, 5, 20])
def test_truncated_payloads_fail_with_the_reason_and_hex(cut: int) -> None:
    data = birth(extra=[{"name": "long name " * 5, "datatype": spb.STRING, "string_value": "v" * 40}])
    result = decode("spBv1.0/G/NBIRTH/E", data[:-cut])
    assert not result.ok and result.error == "sparkplug: not a Sparkplug B payload: the protobuf wire format is " \
                                             "corrupt or cut short"  # fmt: skip
    assert "00000000  " in result.text


def test_json_on_a_sparkplug_topic_falls_back_with_a_note() -> None:
    result = decode("spBv1.0/G/NDATA/E", b'{"not": "sparkplug"}')
    assert result.ok and result.format == "json"
    assert result.notes[0].startswith("sparkplug: not a Sparkplug B payload")


def test_state_topics_are_json_not_sparkplug() -> None:
    state = SparkplugState()
    state.observe("spBv1.0/STATE/scada", b'{"online": true, "timestamp": 5}', 1.0)
    assert state.hosts["scada"].online is True and state.hosts["scada"].timestamp == 5
    assert decode("spBv1.0/STATE/scada", b'{"online": true}').format == "json"
    assert parse_topic("spBv1.0/G/DDATA/E") is None and parse_topic("spBv1.0/G/NDATA/E/D") is None
    assert parse_topic("spBv1.0/G/XDATA/E") is None and parse_topic("spBv1.0//NDATA/E") is None


def test_a_decoded_payload_keeps_no_parsed_protobuf_message() -> None:
    """A cached result holds what it shows, not the library's message (its memory is outside any byte budget)."""
    data = payload([{"name": "Speed", "datatype": spb.FLOAT, "float_value": 1.5}], seq=4)
    result = decode("spBv1.0/G/DDATA/E/D", data)
    seen: set[int] = set()
    stack: list[object] = [result]
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, type):
            continue
        seen.add(id(item))
        assert not isinstance(item, Message), f"the result keeps a {type(item).__qualname__}"
        if isinstance(item, types.FunctionType):  # what a function holds itself, not its module's globals
            stack.extend(cell.cell_contents for cell in item.__closure__ or ())
        else:
            stack.extend(gc.get_referents(item))
    assert "seq 4" in result.text and "Speed = 1.5" in result.text


# ------------------------------------------------------------------------------------------------------- aliases


def test_aliases_from_the_births_name_data_metrics() -> None:
    state = SparkplugState()
    decoders = PayloadDecoders(sparkplug=state)
    node_birth = birth(extra=[{"name": "Line/Speed", "alias": 10, "datatype": spb.INT16, "int_value": 5}])
    decoders.observe("spBv1.0/G/NBIRTH/E", node_birth, 1.0)
    device_birth = payload([{"name": "Temp", "alias": 20, "datatype": spb.FLOAT, "float_value": 20.0}], seq=1)
    decoders.observe("spBv1.0/G/DBIRTH/E/D", device_birth, 2.0)
    node_data = payload([{"alias": 10, "int_value": 2**32 - 7, "timestamp": NOW}], seq=2)
    observation = decoders.observe("spBv1.0/G/NDATA/E", node_data, 3.0)
    result = decoders.decode("spBv1.0/G/NDATA/E", node_data, observation=observation)
    assert result.fields == {"Line/Speed": -7.0} and metric(result, "Line/Speed").kind == "Int16"
    device_data = payload([{"alias": 20, "float_value": 21.25}, {"alias": 99, "int_value": 1}], seq=3)
    observation = decoders.observe("spBv1.0/G/DDATA/E/D", device_data, 4.0)
    result = decoders.decode("spBv1.0/G/DDATA/E/D", device_data, observation=observation)
    assert result.fields["Temp"] == 21.25 and metric(result, "Temp").kind == "Float"
    assert "unknown alias 99" in result.notes


def test_a_rebirth_replaces_the_aliases_and_old_messages_keep_theirs() -> None:
    decoders = PayloadDecoders()
    decoders.observe("spBv1.0/G/NBIRTH/E", birth(extra=[{"name": "Old", "alias": 1, "datatype": spb.INT32}]), 1.0)
    data = payload([{"alias": 1, "int_value": 5}], seq=1)
    before = decoders.observe("spBv1.0/G/NDATA/E", data, 2.0)
    assert decoders.decode("spBv1.0/G/NDATA/E", data, observation=before).fields == {"Old": 5.0}
    decoders.observe("spBv1.0/G/NBIRTH/E", birth(extra=[{"name": "New", "alias": 1, "datatype": spb.INT32}]), 3.0)
    after = decoders.observe("spBv1.0/G/NDATA/E", payload([{"alias": 1, "int_value": 5}], seq=1), 4.0)
    # Equal bytes, different births: the cache keeps them apart.
    assert decoders.decode("spBv1.0/G/NDATA/E", data, observation=after).fields == {"New": 5.0}
    assert decoders.decode("spBv1.0/G/NDATA/E", data, observation=before).fields == {"Old": 5.0}
    assert decoders.decode("spBv1.0/G/NDATA/E", data).fields == {"New": 5.0}  # the aliases in force now


def test_data_before_any_birth_is_flagged_and_aliases_stay_numbers() -> None:
    decoders = PayloadDecoders()
    data = payload([{"alias": 7, "double_value": 1.5}], seq=40)
    observation = decoders.observe("spBv1.0/G/NDATA/E", data, 1.0)
    assert observation is not None and "request a rebirth" in observation.problems[0]
    result = decoders.decode("spBv1.0/G/NDATA/E", data, observation=observation)
    assert result.fields == {"alias 7": 1.5} and "unknown alias 7 (no birth seen)" in result.notes


# ------------------------------------------------------------------------------------------------- state: seq, bdSeq


def test_seq_wraps_and_gaps_and_repeats_are_flagged() -> None:
    state = SparkplugState()
    state.observe("spBv1.0/G/NBIRTH/E", birth(seq=254), 1.0)
    assert state.observe("spBv1.0/G/NDATA/E", payload([], seq=255), 2.0).problems == ()  # type: ignore[union-attr]
    assert state.observe("spBv1.0/G/DDATA/E/D", payload([], seq=0), 3.0).problems == ()  # type: ignore[union-attr]
    assert state.observe("spBv1.0/G/NDATA/E", payload([], seq=3), 4.0).problems == (  # type: ignore[union-attr]
        "seq gap: expected 1, got 3",
    )
    assert state.observe("spBv1.0/G/NDATA/E", payload([], seq=3), 5.0).problems == ("seq 3 repeated",)  # type: ignore[union-attr]
    assert state.observe("spBv1.0/G/NDATA/E", payload([]), 6.0).problems == ("NDATA without a seq",)  # type: ignore[union-attr]
    assert state.observe("spBv1.0/G/NDATA/E", payload([], seq=300), 7.0).problems[0].endswith("(0-255)")  # type: ignore[union-attr]
    node = state.edge_node("G", "E")
    assert node is not None and node.seq_gaps == 2 and len(node.problems) == 4
    # A birth restarts the count without a gap.
    assert state.observe("spBv1.0/G/NBIRTH/E", birth(seq=17), 8.0).problems == ()  # type: ignore[union-attr]
    assert state.observe("spBv1.0/G/NDATA/E", payload([], seq=18), 9.0).problems == ()  # type: ignore[union-attr]


def test_births_and_deaths_set_online_and_a_stale_death_is_ignored() -> None:
    state = SparkplugState()
    state.observe("spBv1.0/G/NBIRTH/E", birth(bdseq=4), 1.0)
    state.observe("spBv1.0/G/DBIRTH/E/D1", payload([{"name": "x", "alias": 5, "datatype": spb.INT32}], seq=1), 2.0)
    state.observe("spBv1.0/G/DBIRTH/E/D2", payload([], seq=2), 2.0)
    state.observe("spBv1.0/G/DDEATH/E/D2", payload([], seq=3), 3.0)
    node = state.edge_node("G", "E")
    assert node is not None and node.online is True and node.bdseq == 4
    assert node.devices["D1"].online is True and node.devices["D2"].online is False
    assert state.take_changed() == {("G", "E")} and state.take_changed() == set()
    stale = state.observe("spBv1.0/G/NDEATH/E", death(3), 4.0)
    assert stale is not None and stale.problems == ("stale NDEATH ignored: bdSeq 3, the current session's is 4",)
    assert node.online is True and node.stale_deaths == 1
    state.observe("spBv1.0/G/NDEATH/E", death(4), 5.0)
    assert node.online is False and node.died_at == 5.0 and node.devices["D1"].online is False
    # The next session: a new NBIRTH; the devices stay offline, without aliases, until their DBIRTH.
    state.observe("spBv1.0/G/NBIRTH/E", birth(bdseq=5), 6.0)
    assert node.online is True and node.devices["D1"].online is False and node.devices["D1"].aliases is None
    assert state.aliases_for("spBv1.0/G/DDATA/E/D1").lookup(5) is None  # type: ignore[union-attr]
    assert list(state.groups()) == ["G"] and node.births == 2


def test_births_without_the_required_metrics_are_flagged() -> None:
    state = SparkplugState()
    observation = state.observe("spBv1.0/G/NBIRTH/E", payload([], seq=0), 1.0)
    assert observation is not None and observation.problems == (
        "NBIRTH without a bdSeq metric", "NBIRTH without the 'Node Control/Rebirth' metric")  # fmt: skip
    garbage = state.observe("spBv1.0/G/NDATA/E", b"\x0a\xff", 2.0)
    assert garbage is not None and garbage.problems == ("not a Sparkplug B payload",) and state.malformed == 1
    assert state.observe("plant/G/NDATA/E", b"", 3.0) is None


def test_limits_on_nodes_devices_and_alias_bytes() -> None:
    limits = SparkplugLimits(max_edge_nodes=2, max_devices_per_node=1, alias_budget=2_000)
    state = SparkplugState(limits)
    for name in ("A", "B", "C"):
        state.observe(f"spBv1.0/G/NBIRTH/{name}", birth(), 1.0)
    assert len(state.nodes) == 2 and state.dropped_nodes == 1
    state.observe("spBv1.0/G/DBIRTH/A/D1", payload([], seq=1), 1.0)
    state.observe("spBv1.0/G/DBIRTH/A/D2", payload([], seq=2), 1.0)
    assert state.dropped_devices == 1
    many = [{"name": f"metric {i}", "alias": i, "datatype": spb.INT32} for i in range(100)]
    state.observe("spBv1.0/G/NBIRTH/A", birth(extra=many), 2.0)
    assert state.alias_bytes <= 2_000 and state.dropped_aliases > 0


# -------------------------------------------------------------------------------------------- commands (encoding)


def test_rebirth_request_read_with_the_independent_schema() -> None:
    topic, data = rebirth_request("Plant 1", "Edge-7", timestamp=NOW)
    assert topic == "spBv1.0/Plant 1/NCMD/Edge-7"
    message = spb.Payload().FromString(data)
    assert message.timestamp == NOW and not message.HasField("seq")
    (only,) = message.metrics
    assert (only.name, only.datatype, only.boolean_value, only.HasField("alias")) == (
        "Node Control/Rebirth", spb.BOOLEAN, True, False)  # fmt: skip


def test_write_metric_by_name_and_by_alias() -> None:
    topic, data = write_metric("G", "E", "Setpoint", -5, DataType.Int16, device="Pump 2", timestamp=NOW)
    assert topic == "spBv1.0/G/DCMD/E/Pump 2"
    (written,) = spb.Payload().FromString(data).metrics
    assert (written.name, written.datatype, written.int_value) == ("Setpoint", spb.INT16, 2**32 - 5)
    _, by_alias = write_metric("G", "E", "Setpoint", 7.5, DataType.Double, alias=12, timestamp=NOW)
    (aliased,) = spb.Payload().FromString(by_alias).metrics
    assert not aliased.HasField("name") and aliased.alias == 12 and aliased.double_value == 7.5
    with pytest.raises(ValueError, match="between -32768 and 32767"):
        write_metric("G", "E", "x", 40_000, DataType.Int16)
    with pytest.raises(ValueError, match="must not contain"):
        write_metric("G", "E/x", "x", 1, DataType.Int16)
    with pytest.raises(ValueError, match="true or false"):
        write_metric("G", "E", "x", 1, DataType.Boolean)


def test_encoded_payloads_read_with_the_independent_schema() -> None:
    data = encode_payload(
        [
            SparkplugMetric("ints", DataType.Int32Array, [-1, 315338746], alias=1),
            SparkplugMetric(
                "flags",
                DataType.BooleanArray,
                [False, False, True, True, False, True, False, False, True, True, False, True],
            ),
            SparkplugMetric("table", DataType.DataSet, SparkplugDataSet(("a",), (DataType.Int8,), ((-2,), (3,)))),
            SparkplugMetric(
                "motor",
                DataType.Template,
                SparkplugTemplate((SparkplugMetric("RPM", DataType.Int32, -10),), template_ref="Motor"),
            ),
            SparkplugMetric("q", DataType.Double, 1.5, properties={"Quality": (DataType.Int32, 500)}),
        ],
        timestamp=NOW,
        seq=9,
    )
    message = spb.Payload().FromString(data)
    ints, flags, table, motor, q = message.metrics
    assert ints.bytes_value == bytes.fromhex("fffffffffaafcb12") and ints.alias == 1
    assert flags.bytes_value[:5] == bytes.fromhex("0c00000034") and flags.bytes_value[5] & 0xF0 == 0xD0
    assert [row.elements[0].int_value for row in table.dataset_value.rows] == [2**32 - 2, 3]
    assert motor.template_value.template_ref == "Motor" and motor.template_value.metrics[0].int_value == 2**32 - 10
    assert list(q.properties.keys) == ["Quality"] and q.properties.values[0].int_value == 500
    # And back through the product's decoder.
    result = decode_payload(data, DecodeContext("spBv1.0/G/NBIRTH/E"))
    assert result.fields["motor/RPM"] == -10.0 and metric_value(result.root, "q") == 1.5


def metric_value(root: Node, name: str) -> Any:
    assert root.children is not None
    return next(node.value for node in root.children[-1].children or () if node.name == name)


@pytest.mark.parametrize(
    ("text", "datatype", "value"),
    [("0x10", DataType.UInt8, 16), ("-3", DataType.Int64, -3), ("on", DataType.Boolean, True),
     ("2.5", DataType.Float, 2.5), ("00:ff", DataType.Bytes, b"\x00\xff"), ("[1, 2]", DataType.Int32Array, [1, 2]),
     ("2023-11-14T22:13:20Z", DataType.DateTime, NOW), ("  keep  ", DataType.String, "  keep  ")],
)  # fmt: skip
def test_parse_metric_value(text: str, datatype: DataType, value: object) -> None:
    assert parse_metric_value(text, datatype) == value


def test_parse_metric_value_errors() -> None:
    with pytest.raises(ValueError, match="integer"):
        parse_metric_value("1.5", DataType.Int8)
    with pytest.raises(ValueError, match="true or false"):
        parse_metric_value("maybe", DataType.Boolean)
