"""$SYS dialects: mosquitto's, EMQX's per node, VerneMQ's per node, others, and a broker that publishes none.

EMQX and VerneMQ cannot run here: their traffic is synthesised from their documentation (EMQX's "System Topic"
page: ``$SYS/brokers`` and ``$SYS/brokers/${node}/{version,uptime,stats/…,metrics/…,clients/…}``; VerneMQ's
vmq_systree: ``$SYS/<node>/`` then the metric's name split at each ``_``).
"""

from __future__ import annotations

import pytest

from mqttchat.explorer.broker_sys import (
    MAX_FIGURES,
    MAX_NODES,
    NO_SYS_AFTER,
    WATCH_FILTERS,
    BrokerSys,
    Dialect,
    parse_sys_topic,
)
from mqttchat.protocol import matches
from tests.helpers.sys_traffic import EMQX, EMQX4, MOSQUITTO, VERNEMQ


def fed(messages: list[tuple[str, bytes]]) -> BrokerSys:
    sys = BrokerSys()
    for topic, payload in messages:
        assert sys.offer(topic, payload, 1.0), topic
    return sys


def test_mosquitto_dialect_one_broker() -> None:
    sys = fed(MOSQUITTO)
    assert sys.dialect is Dialect.MOSQUITTO
    assert list(sys.nodes) == [""]
    assert sys.nodes[""]["retained messages/count"] == "4021"
    assert sys.retained_count == 4021 and sys.subscription_count == 37 and sys.client_count == 12
    assert sys.topic_count is None  # mosquitto publishes no topic count
    assert sys.status(2.0) == "mosquitto dialect"


def test_emqx_dialect_per_node_with_both_spellings() -> None:
    sys = fed(EMQX)
    assert sys.dialect is Dialect.EMQX
    assert sys.cluster == ("emqx@10.0.0.1", "emqx@10.0.0.2")
    assert sorted(sys.nodes) == ["emqx@10.0.0.1", "emqx@10.0.0.2"]
    assert sys.nodes["emqx@10.0.0.1"]["stats/retained/count"] == "2300000"
    # retained messages and topics are the cluster's on every node: the largest, not the sum; connections add up
    assert sys.retained_count == 2_300_000 and sys.topic_count == 2_400_000
    assert sys.client_count == 3200
    assert sys.not_kept == 1  # the client event is counted, not kept as a figure
    assert "clients/sensor-17/connected" not in sys.nodes["emqx@10.0.0.2"]
    assert sys.status(2.0) == "EMQX dialect, 2 nodes"
    assert fed(EMQX4).retained_count == 120


def test_vernemq_dialect_per_node() -> None:
    sys = fed(VERNEMQ)
    assert sys.dialect is Dialect.VERNEMQ
    assert sorted(sys.nodes) == ["VerneMQ@10.0.0.1", "VerneMQ@10.0.0.2"]
    assert sys.nodes["VerneMQ@10.0.0.1"]["mqtt/publish/received"] == "1000"
    assert sys.retained_count == 88_000 and sys.client_count == 100 and sys.subscription_count == 5000
    assert sys.status(2.0) == "VerneMQ dialect, 2 nodes"


@pytest.mark.parametrize(
    ("topic", "parsed"),
    [
        ("$SYS/broker/bytes/sent", (Dialect.MOSQUITTO, "", "bytes/sent")),
        ("$SYS/brokers", (Dialect.EMQX, "", "nodes")),
        ("$SYS/brokers/emqx@h/stats/topics.max", (Dialect.EMQX, "emqx@h", "stats/topics/max")),
        ("$SYS/VerneMQ@h/queue/processes", (Dialect.VERNEMQ, "VerneMQ@h", "queue/processes")),
        ("$SYS/server/health", (Dialect.OTHER, "", "server/health")),
        ("$SYS/broker/", None),
        ("$SYS/brokers/emqx@h", None),
        ("home/temp", None),
        ("$SYSTEM/x", None),
    ],
)
def test_parse_sys_topic(topic: str, parsed: tuple[Dialect, str, str] | None) -> None:
    assert parse_sys_topic(topic) == parsed


def test_the_watch_takes_each_dialect_but_not_emqx_client_events() -> None:
    for topic, _ in MOSQUITTO + EMQX[:-1] + EMQX4 + VERNEMQ:
        assert any(matches(f, topic) for f in WATCH_FILTERS), topic
    assert not any(matches(f, EMQX[-1][0]) for f in WATCH_FILTERS)


def test_a_broker_that_publishes_no_sys() -> None:
    sys = BrokerSys()
    assert "not watched" in sys.status(0.0)
    sys.watching_since = 100.0
    assert not sys.silent(100.0 + NO_SYS_AFTER - 1)
    assert sys.status(110.0).startswith("waiting for $SYS (10 s")
    assert sys.silent(100.0 + NO_SYS_AFTER)
    assert sys.status(100.0 + NO_SYS_AFTER).startswith("this broker publishes no $SYS")
    refused = BrokerSys(watching_since=1.0, refused="Not authorized")
    assert not refused.silent(1000.0)
    assert refused.status(1000.0) == "the broker refused the $SYS subscription (Not authorized)"


def test_bounded_nodes_figures_and_values() -> None:
    sys = BrokerSys()
    for node in range(MAX_NODES + 5):
        sys.offer(f"$SYS/VerneMQ@n{node}/socket/open", b"1", 0.0)
    assert len(sys.nodes) == MAX_NODES and sys.not_kept == 5
    sys = BrokerSys()
    for index in range(MAX_FIGURES + 3):
        sys.offer(f"$SYS/broker/figure/{index}", b"x" * 10_000, 0.0)
    assert len(sys.nodes[""]) == MAX_FIGURES and sys.not_kept == 3
    assert max(len(value) for value in sys.nodes[""].values()) == 200
