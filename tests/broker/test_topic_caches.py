"""The broker's caches keyed by topic (routing matches, per-client ACL answers) are bounded in bytes.

The scenario with a real broker process and 65 KB topics is the load hardening scenario (benchmarks/hardening/load.py,
``long_topics_run``), whose short form runs in tests/hardening.
"""

from __future__ import annotations

from collections.abc import Iterator

from mqttchat.broker.auth import AccessControl
from mqttchat.broker.core import BrokerCore
from mqttchat.protocol import Publish, Subscription
from tests.helpers.brokers import broker_config
from tests.helpers.memory import bytes_kept

MiB = 1024 * 1024


def _long_topics(name: str, count: int, size: int) -> Iterator[str]:
    """Distinct topics (``name`` keeps each test's apart), each made when asked for: nothing but a cache can keep
    one alive."""
    filler = "x" * (size - 12 - len(name))
    for i in range(count):
        yield f"{name}/{i:05d}/" + filler


def test_routing_distinct_long_topics_nobody_reads_keeps_nothing() -> None:
    """300 distinct 60 KB topics routed to nobody leave less than 1 MiB behind (the match cache kept every topic:
    18 MB here, 650 MB for the issue's 10,000 topics of 65 KB)."""
    core = BrokerCore(broker_config())

    def route() -> None:
        for topic in _long_topics("route", 300, 60_000):
            assert core.publish(Publish(topic, b"p"), None) == 0

    assert bytes_kept(route) < MiB


def test_match_cache_counts_the_matches_it_holds() -> None:
    """With 300 subscribers to '#', each cached match list holds 300 entries: 3,000 distinct short topics must not
    keep 3,000 such lists (about 60 MB before); the cache stays within its byte budget (8 MiB)."""
    core = BrokerCore(broker_config())
    for i in range(300):
        session, _ = core.take_session(f"sub-{i}", True)
        core.subscribe(session, [Subscription("#", 0)], None)

    def route() -> None:
        for i in range(3000):
            assert core.publish(Publish(f"t/{i}", b"p"), None) == 300  # offline QoS 0 subscribers: not queued

    assert bytes_kept(route) < 10 * MiB


def test_routing_cache_still_serves_repeated_topics() -> None:
    core = BrokerCore(broker_config())
    session, _ = core.take_session("s", True)
    core.subscribe(session, [Subscription("a/+", 0)], None)
    for _ in range(3):
        core.publish(Publish("a/b", b"p"), None)
    assert list(core.router._matches.entries) == ["a/b"]


def test_acl_memo_keeps_no_long_topics() -> None:
    """A client subscribed to '#' under an ACL is checked for every topic sent to it: 300 distinct 60 KB topics must
    not stay in its memo (the memo kept 1,024 topics of any length: 18 MB here, 64 MB per client at most)."""
    access = AccessControl.parse("topic read acl/#\n").for_client(None, "c")

    def check() -> None:
        for topic in _long_topics("acl", 300, 60_000):
            assert access.can_receive(topic)

    assert bytes_kept(check) < MiB
    for i in range(5000):  # short topics: memoised, within the entry and byte bounds
        assert access.can_receive(f"acl/{i}") and not access.can_receive(f"b/{i}")
    assert 0 < len(access._receive_cache) <= 1024 and access._receive_cache.bytes <= 128 * 1024
