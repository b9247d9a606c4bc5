"""The charts model: series fed at ingest, decoded at the flush, bounded, windowed, paused, sampled."""

from __future__ import annotations

import json

import cbor2
import pytest

from mqttchat.explorer.charts import MAX_SERIES, WINDOWS, Charts, Series
from mqttchat.explorer.decoders import DecoderRule, PayloadDecoders
from mqttchat.explorer.decoders.sparkplug import BDSEQ, DataType, SparkplugMetric, encode_payload
from mqttchat.explorer.tree import TopicTree


def test_series_from_history_then_from_what_arrives() -> None:
    tree = TopicTree()
    decoders = PayloadDecoders()
    for i in range(3):
        tree.ingest("a/temp", json.dumps({"t": 20 + i, "s": "x"}).encode(), received_at=100.0 + i)
    charts = Charts()
    node = tree.get("a/temp")
    assert node is not None and node.history is not None
    series = charts.add("a/temp", "t", list(node.history), decoders)
    assert list(series.points) == [(100.0, 20.0), (101.0, 21.0), (102.0, 22.0)]
    assert "a/temp" in charts.topics
    charts.offer("a/temp", b'{"t": 30}', None, None, 110.0)
    charts.offer("a/temp", b'{"s": "no t"}', None, None, 111.0)
    charts.offer("other", b'{"t": 1}', None, None, 112.0)  # not charted: ignored
    version = charts.version
    assert charts.update(decoders)
    assert charts.version > version
    assert series.points[-1] == (110.0, 30.0) and charts.missing == 1
    assert not charts.update(decoders)  # nothing new


def test_decoded_fields_sparkplug_metrics_and_rules() -> None:
    decoders = PayloadDecoders([DecoderRule("dev/#", "cbor")])
    charts = Charts()
    watts = charts.add("dev/meter", "power.w")
    birth = [SparkplugMetric(BDSEQ, DataType.Int64, 0), SparkplugMetric("Speed", DataType.Float, 0.0, alias=7)]
    observation = decoders.observe("spBv1.0/G/NBIRTH/E", encode_payload(birth, seq=0), 1.0)
    data = encode_payload([SparkplugMetric(None, DataType.Float, 1500.5, alias=7)], seq=1)
    observation = decoders.observe("spBv1.0/G/NDATA/E", data, 2.0)
    speed = charts.add("spBv1.0/G/NDATA/E", "Speed")
    charts.offer("dev/meter", cbor2.dumps({"power": {"w": 230.5}}), None, None, 3.0)
    charts.offer("spBv1.0/G/NDATA/E", data, None, observation, 2.0)
    charts.update(decoders)
    assert list(watts.points) == [(3.0, 230.5)]
    assert list(speed.points) == [(2.0, 1500.5)]  # named by the alias of its birth


def test_limits_duplicates_and_removal() -> None:
    charts = Charts()
    for i in range(MAX_SERIES):
        charts.add(f"t/{i}", "")
    with pytest.raises(ValueError, match="at most"):
        charts.add("t/more", "")
    with pytest.raises(ValueError, match="already"):
        charts.add("t/0", "")
    assert charts.remove(0) is not None and "t/0" not in charts.topics
    assert charts.remove(99) is None
    charts.add("t/1", "x")  # a second series of a topic shares its pending messages
    charts.remove(0)
    assert "t/1" in charts.topics


def test_pending_is_bounded_and_counts_what_it_drops() -> None:
    charts = Charts(pending_per_topic=10)
    charts.add("n", "")
    for i in range(25):
        charts.offer("n", str(i).encode(), None, None, float(i))
    charts.update(PayloadDecoders())
    assert charts.dropped == 15
    assert [value for _, value in charts.series[0].points] == [float(i) for i in range(15, 25)]


def test_window_pause_and_span() -> None:
    charts = Charts()
    assert charts.window == WINDOWS[1]
    seen = [charts.next_window() for _ in WINDOWS]
    assert seen == [*WINDOWS[2:], WINDOWS[0], WINDOWS[1]]
    charts.pause(1000.0)
    assert charts.paused and charts.span(5000.0) == (1000.0 - charts.window, 1000.0)
    charts.resume()
    assert charts.span(5000.0) == (5000.0 - charts.window, 5000.0)


def test_window_stats_and_sampling_keep_the_extremes() -> None:
    series = Series("t", "")
    for i in range(10_000):
        series.points.append((float(i), 1000.0 if i == 5_001 else float(i % 7)))
    stats = series.stats(5_000.0, 5_999.0)
    assert stats is not None and stats.count == 1000 and stats.high == 1000.0 and stats.low == 0.0
    sampled = series.sampled(0.0, 10_000.0, 50)
    assert len(sampled) <= 100
    assert (5_001.0, 1000.0) in sampled  # a spike survives
    assert [t for t, _ in sampled] == sorted(t for t, _ in sampled)
    assert series.stats(20_000.0, 30_000.0) is None
