"""Property-based: whatever the bytes, no decoder raises, and every result can be shown, summarised, turned into
JSON and costed; what an encoder made, the decoder reads back."""

from __future__ import annotations

import gzip
import json
import math
import string
from typing import Any

import cbor2
import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mqttchat.explorer.decoders import DECODERS, DecodeContext, DecoderRule, PayloadDecoders, Pipeline
from mqttchat.explorer.decoders.result import DecodeResult
from mqttchat.explorer.decoders.sparkplug import DataType, SparkplugMetric, SparkplugState, encode_payload

#: Every decoder that needs no options.
PLAIN = [name for name, info in DECODERS.items() if not info.required and name != "auto"]
TOPICS = ["t", "spBv1.0/G/NDATA/E", "spBv1.0/G/DBIRTH/E/D", "spBv1.0/STATE/h", "spBv1.0/G/NBIRTH/E"]
CONTENT_TYPES = [None, "application/cbor", "application/msgpack", "application/json", "application/x-protobuf",
                 "application/gzip", "text/plain"]  # fmt: skip


def check(result: DecodeResult) -> None:
    assert isinstance(result.text, str)
    assert isinstance(result.summary(40), str) and len(result.summary(40)) <= 40
    json.dumps(result.to_json())
    assert result.cost > 0
    assert result.ok == (result.root is not None)
    assert all(isinstance(key, str) and math.isfinite(value) for key, value in result.fields.items())


fast = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fast
@given(data=st.binary(max_size=400), name=st.sampled_from(PLAIN), topic=st.sampled_from(TOPICS))
def test_no_decoder_raises_on_any_bytes(data: bytes, name: str, topic: str) -> None:
    check(Pipeline(DecoderRule("#", name)).run(data, DecodeContext(topic)))


@fast
@given(data=st.binary(max_size=400), topic=st.sampled_from(TOPICS), content_type=st.sampled_from(CONTENT_TYPES))
def test_automatic_decoding_never_raises(data: bytes, topic: str, content_type: str | None) -> None:
    check(PayloadDecoders().decode(topic, data, content_type=content_type))


@fast
@given(data=st.binary(max_size=300), name=st.sampled_from(["gzip", "zlib", "base64", "cbor", "msgpack", "json"]))
def test_chains_never_raise(data: bytes, name: str) -> None:
    check(Pipeline(DecoderRule("#", f"{name}+text" if DECODERS[name].transform else name)).run(data, DecodeContext()))
    check(Pipeline(DecoderRule("#", "gzip+" + name)).run(gzip.compress(data), DecodeContext()))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)


@fast
@given(value=json_values)
def test_cbor_and_msgpack_read_back_what_the_libraries_wrote(value: Any) -> None:
    assert Pipeline(DecoderRule("#", "cbor")).run(cbor2.dumps(value), DecodeContext()).to_json() == value
    packed = msgpack.packb(value)
    assert Pipeline(DecoderRule("#", "msgpack")).run(packed, DecodeContext()).to_json() == value


@fast
@given(value=json_values)
def test_json_reads_back_what_json_wrote(value: Any) -> None:
    result = PayloadDecoders().decode("t", json.dumps(value).encode())
    assert result.to_json() == value or isinstance(value, str)  # a JSON string payload may read as text


metric_names = st.text(alphabet=string.ascii_letters + "/ _", min_size=1, max_size=12)
scalars = st.one_of(
    st.tuples(st.just(DataType.Int32), st.integers(-(2**31), 2**31 - 1)),
    st.tuples(st.just(DataType.UInt64), st.integers(0, 2**64 - 1)),
    st.tuples(st.just(DataType.Double), st.floats(allow_nan=False)),
    st.tuples(st.just(DataType.Boolean), st.booleans()),
    st.tuples(st.just(DataType.String), st.text(max_size=10)),
    st.tuples(st.just(DataType.Int16Array), st.lists(st.integers(-(2**15), 2**15 - 1), max_size=5)),
)


@fast
@given(
    metrics=st.lists(st.tuples(metric_names, scalars), max_size=8, unique_by=lambda item: item[0]),
    seq=st.integers(0, 300),
    kind=st.sampled_from(["NBIRTH", "NDATA", "DBIRTH", "DDATA", "NDEATH"]),
    cut=st.integers(0, 5),
)
def test_sparkplug_values_read_back_and_state_never_raises(
    metrics: list[tuple[str, tuple[DataType, Any]]], seq: int, kind: str, cut: int
) -> None:
    data = encode_payload(
        [SparkplugMetric(name, datatype, value, alias=i) for i, (name, (datatype, value)) in enumerate(metrics)],
        seq=seq,
    )
    topic = f"spBv1.0/G/{kind}/E" + ("/D" if kind.startswith("D") else "")
    decoders = PayloadDecoders(sparkplug=SparkplugState())
    observation = decoders.observe(topic, data[: len(data) - cut], 1.0)
    result = decoders.decode(topic, data[: len(data) - cut], observation=observation)
    check(result)
    if cut == 0:
        assert result.ok
        for name, (datatype, value) in metrics:
            if datatype in (DataType.Int32, DataType.UInt64, DataType.Double, DataType.Boolean):
                assert result.fields.get(name) == (float(value) if math.isfinite(value) else None)
