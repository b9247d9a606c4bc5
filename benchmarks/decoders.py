"""Payload decoders: messages per second for each decoder, Sparkplug B at realistic sizes, and what Sparkplug costs
at ingest.

Run: ``python benchmarks/decoders.py [--seconds S]``. Each row decodes one typical payload again and again through
a :class:`~mqttchat.explorer.decoders.Pipeline` (the work a cache miss does: parse, build the tree, render the
text, collect the numeric fields), in CPU time, best of three rounds. The Sparkplug rows use DDATA messages of 10
and 100 metrics named by alias through a birth's table, and an NBIRTH of 1,000 metrics; ``observe`` is the
state model's per-message work at ingest (parse, seq check), which runs for every ``spBv1.0/`` message while
decoding runs only for what is shown. A cache hit is a dictionary lookup: its row is the service's ``decode()``
with the result cached.
"""

from __future__ import annotations

import argparse
import base64
import gc
import gzip
import json
import struct
import sys
import time
import zlib
from collections.abc import Callable

import cbor2
import msgpack

from mqttchat.explorer.decoders import DecodeContext, DecoderRule, PayloadDecoders, Pipeline
from mqttchat.explorer.decoders.sparkplug import (
    BDSEQ,
    REBIRTH,
    DataType,
    SparkplugMetric,
    SparkplugState,
    encode_payload,
)

READING = {"temperature": 21.5, "humidity": 48.2, "battery": 97, "ok": True, "tags": ["kitchen", "north"],
           "pos": {"lat": 52.37, "lon": 4.89}}  # fmt: skip
READING_JSON = json.dumps(READING).encode()


def rate(run: Callable[[], object], seconds: float) -> float:
    """Best calls per CPU second over three rounds of about seconds/3 each."""
    best = 0.0
    for _ in range(3):
        gc.collect()
        count = 0
        start = time.process_time()
        deadline = start + seconds / 3
        while True:
            for _ in range(50):
                run()
            count += 50
            now = time.process_time()
            if now >= deadline:
                break
        best = max(best, count / (now - start))
    return best


def pipeline(
    decoder: str, data: bytes, topic: str = "t", ctx: DecodeContext | None = None, **options: object
) -> Callable[[], object]:
    rule = DecoderRule("#", decoder, **options) if decoder != "auto" else None  # type: ignore[arg-type]
    runner = Pipeline(rule)
    context = ctx or DecodeContext(topic)
    result = runner.run(data, context)
    assert result.ok, (decoder, result.error)
    return lambda: runner.run(data, context)


def sparkplug_messages(metrics: int) -> tuple[bytes, bytes]:
    """An NBIRTH of ``metrics`` metrics with aliases and a DDATA of all of them by alias."""
    now = int(time.time() * 1000)
    kinds = [(DataType.Float, 21.5), (DataType.Int32, -42), (DataType.Boolean, True), (DataType.Double, 1013.25)]
    birth = [SparkplugMetric(BDSEQ, DataType.Int64, 0), SparkplugMetric(REBIRTH, DataType.Boolean, False)]
    data = []
    for i in range(metrics):
        datatype, value = kinds[i % len(kinds)]
        birth.append(SparkplugMetric(f"Area {i // 50}/Machine {i // 10}/Signal {i}", datatype, value, alias=i + 1,
                                     timestamp=now))  # fmt: skip
        data.append(SparkplugMetric(None, datatype, value, alias=i + 1, timestamp=now))
    return encode_payload(birth, seq=0), encode_payload(data, seq=1)


def rows(seconds: float) -> list[tuple[str, int, float]]:
    out: list[tuple[str, int, float]] = []

    def add(name: str, data: bytes, run: Callable[[], object]) -> None:
        out.append((name, len(data), rate(run, seconds)))

    add("json (auto)", READING_JSON, pipeline("auto", READING_JSON))
    add("text (auto)", b"on", pipeline("auto", b"on"))
    add("binary (auto: hex)", bytes(range(64)), pipeline("auto", bytes(range(64))))
    gz = gzip.compress(READING_JSON)
    add("gzip+json (auto)", gz, pipeline("auto", gz))
    zl = zlib.compress(READING_JSON)
    add("zlib+json", zl, pipeline("zlib+json", zl))
    b64 = base64.b64encode(READING_JSON)
    add("base64+json", b64, pipeline("base64+json", b64))
    cb = cbor2.dumps(READING)
    add("cbor", cb, pipeline("cbor", cb))
    mp = msgpack.packb(READING)
    add("msgpack", mp, pipeline("msgpack", mp))
    frame = struct.pack(">IfH", 7, 351.5, 230)
    add("struct >IfH", frame, pipeline("struct", frame, struct=">IfH", fields=("counter", "watts", "volts")))
    pb = encode_payload([SparkplugMetric("a", DataType.Double, 1.5), SparkplugMetric("b", DataType.String, "x")])
    add("protobuf (raw)", pb, pipeline("protobuf", pb))

    state = SparkplugState()
    for metrics in (10, 100, 1000):
        birth, data = sparkplug_messages(metrics)
        topic = f"spBv1.0/Plant/NBIRTH/Edge{metrics}"
        state.observe(topic, birth, 0.0)
        data_topic = f"spBv1.0/Plant/NDATA/Edge{metrics}"
        observation = state.observe(data_topic, data, 0.0)
        assert observation is not None
        if metrics < 1000:
            ctx = DecodeContext(data_topic, aliases=observation.aliases)
            add(f"sparkplug DDATA {metrics} metrics", data, pipeline("sparkplug", data, ctx=ctx))

            def observe(data: bytes = data, topic: str = data_topic) -> object:
                return state.observe(topic, data, 0.0)

            add(f"sparkplug observe (ingest) {metrics} metrics", data, observe)
        else:
            add(f"sparkplug NBIRTH {metrics} metrics", birth, pipeline("sparkplug", birth, topic=topic))

    decoders = PayloadDecoders()
    decoders.decode("t", READING_JSON)
    add("cache hit (decode, cached)", READING_JSON, lambda: decoders.decode("t", READING_JSON))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="CPU seconds per row (default 1.5)")
    args = parser.parse_args()
    print(f"{'decoder':42} {'bytes':>7} {'messages/s':>12} {'µs each':>9}")
    for name, size, per_second in rows(args.seconds):
        print(f"{name:42} {size:7d} {per_second:12,.0f} {1e6 / per_second:9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
