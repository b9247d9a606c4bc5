"""The packet inspector's model: a bounded ring of packets, paused or not, read by what is new since last time."""

from __future__ import annotations

from mqttchat.explorer.trace import PacketTrace, TraceRecord
from mqttchat.protocol import PingReq, PingResp


def test_new_records_since_a_total_read_earlier() -> None:
    trace = PacketTrace(size=3)
    trace.add(1.0, "out", PingReq(), 2)
    assert [r.at for r in trace.since(0)] == [1.0]
    seen = trace.total
    trace.add(2.0, "in", PingResp(), 2)
    trace.add(3.0, "out", PingReq(), 2)
    assert [r.at for r in trace.since(seen)] == [2.0, 3.0]
    for at in (4.0, 5.0, 6.0, 7.0):
        trace.add(at, "out", PingReq(), 2)
    # Seven seen since the first read; the ring keeps three.
    assert trace.total == 7 and len(trace) == 3
    assert [r.at for r in trace.since(seen)] == [5.0, 6.0, 7.0]
    assert trace.since(trace.total) == []


def test_paused_packets_are_counted_not_kept() -> None:
    trace = PacketTrace()
    trace.add(1.0, "out", PingReq(), 2)
    trace.paused = True
    seen = trace.total
    trace.add(2.0, "in", PingResp(), 2)
    assert trace.total == 2 and [r.at for r in trace] == [1.0]
    assert trace.since(seen) == []
    trace.paused = False
    seen = trace.total
    trace.add(3.0, "out", PingReq(), 2)
    assert [r.at for r in trace.since(seen)] == [3.0]


def test_records_made_elsewhere() -> None:
    trace = PacketTrace()
    trace.extend([TraceRecord(1.0, "in", PingResp(), 2), TraceRecord(2.0, "out", PingReq(), 2)])
    assert trace.total == len(trace) == 2
