"""Overload protection (mqttchat.broker.overload): publishers paused while a subscriber's queue is over its high-water
mark, resumed at the low-water mark; a subscriber that does not drain declared stalled; no deadlock, no keepalive
violated. In memory, with the clock moved by hand (tests/helpers/broker_pair.py); one test over real sockets.

The defaults: 1,000 queued and 20 in flight per client, publishers paused at 100 queued, resumed at 50, a
subscriber stalled after 1 s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from mqttchat.broker.server import Broker
from mqttchat.client import MQTTClient
from mqttchat.client.session import Completed, PingAnswered
from mqttchat.protocol import Publish
from tests.helpers.broker_pair import MemoryBroker, MemoryClient
from tests.helpers.reading import start_reading, stop_reading
from tests.helpers.waiting import until

VERSIONS = [pytest.param(4, id="v311"), pytest.param(5, id="v5")]
HIGH, LOW, WINDOW = 100, 50, 20


def burst(client: MemoryClient, count: int, topic: str = "load/x", start: int = 0) -> None:
    """``count`` QoS 1 messages written at once (the client's window is wide enough for all of them)."""
    for i in range(start, start + count):
        client.session.publish(Publish(topic, b"%d" % i, 1))
    client.broker.settle()


def acked(client: MemoryClient) -> int:
    """Acknowledgements the client received since the last call."""
    done = [event for event in client.events if type(event) is Completed]
    client.events = [event for event in client.events if type(event) is not Completed]
    return len(done)


def connect(broker: MemoryBroker, client_id: str, version: int = 5, **options: Any) -> MemoryClient:
    return broker.connect(client_id, version, max_inflight=10_000, **options)


def record_reading(client: MemoryClient, watched: Any) -> list[tuple[bool, int]]:
    """Each pause (False) and resume (True) of ``client``'s connection, with ``watched`` session's queue then."""
    changes: list[tuple[bool, int]] = []
    link = client.link
    original = link.set_reading

    def record(reading: bool) -> None:
        changes.append((reading, watched.queued))
        original(reading)

    link.set_reading = record  # type: ignore[method-assign]
    return changes


@pytest.mark.parametrize("version", VERSIONS)
def test_a_slow_subscriber_gets_everything_and_its_publisher_is_paused(version: int) -> None:
    """3,000 QoS 1 messages written at once to a subscriber that reads nothing yet: the publisher is paused when
    the subscriber's queue reaches 100 (its acknowledgements stop there: it is slowed down), nothing is dropped, and
    once the subscriber reads it gets all 3,000 in order (without protection: 1,980 dropped beyond its queue)."""
    broker = MemoryBroker()
    slow = connect(broker, "slow", version)
    slow.subscribe("load/#", 1)
    pub = connect(broker, "pub", version)
    slow.reading = False
    burst(pub, 3000)
    session = broker.core.sessions["slow"]
    assert not pub.link.reading, "the publisher is still read"
    assert (session.inflight, session.queued, session.dropped) == (WINDOW, HIGH, 0)
    # Acknowledged: the messages before the one that reached the mark (that one's acknowledgement is held).
    assert acked(pub) == WINDOW + HIGH - 1
    assert pub.conn is not None and pub.conn.throttled_by == {session}
    slow.reading = True
    broker.settle()
    assert slow.payloads() == [b"%d" % i for i in range(3000)]
    assert acked(pub) == 3000 - (WINDOW + HIGH - 1)
    assert pub.link.reading and session.dropped == 0 and broker.core.stats.messages_dropped == 0
    assert broker.core.overload.pauses > 1 and not broker.core.overload.congested


def test_the_publisher_is_paused_at_the_high_water_mark_and_resumed_at_the_low_one() -> None:
    """Every pause comes as the queue reaches 100, every resume as it is back down to 50 (a pump sends up to a
    window of 20 at a time: at 50 or just below, never above), until the 3,000 are through."""
    broker = MemoryBroker()
    slow = connect(broker, "slow")
    slow.subscribe("load/#", 1)
    pub = connect(broker, "pub")
    session = broker.core.sessions["slow"]
    changes = record_reading(pub, session)
    slow.reading = False
    burst(pub, 3000)
    slow.reading = True
    broker.settle()
    assert len(slow.payloads()) == 3000
    pauses = [queued for reading, queued in changes if not reading]
    resumes = [queued for reading, queued in changes if reading]
    assert len(pauses) == len(resumes) > 10
    assert set(pauses) == {HIGH}
    assert all(LOW - WINDOW < queued <= LOW for queued in resumes), resumes
    assert [reading for reading, _ in changes] == [False, True] * len(pauses)


def test_a_stalled_subscriber_is_declared_after_its_timeout_and_only_its_messages_are_dropped() -> None:
    """Beside one that reads, a subscriber that reads nothing pauses the publisher for overload_stall_timeout (2 s
    here), not a moment more: then it is stalled, the publisher resumes, the one that reads gets all 3,000, and the
    stalled one's queue stays bounded (1,000) with its drops counted, in $SYS too. Once it reads again it catches up
    and is no longer stalled."""
    broker = MemoryBroker(overload_stall_timeout=2.0)
    stuck = connect(broker, "stuck")
    stuck.subscribe("load/#", 1)
    fine = connect(broker, "fine")
    fine.subscribe("load/#", 1)
    pub = connect(broker, "pub")
    stuck.reading = False
    burst(pub, 3000)
    overload = broker.core.overload
    stuck_session, fine_session = broker.core.sessions["stuck"], broker.core.sessions["fine"]
    assert not pub.link.reading
    assert len(fine.payloads()) == WINDOW + HIGH
    broker.advance(1.9)
    assert not pub.link.reading and not overload.stalled
    assert broker.core.sys_topics()["$SYS/broker/publishers/paused"] == "1"
    broker.advance(0.1)
    assert overload.stalled == {stuck_session} and pub.link.reading
    assert fine.payloads() == [b"%d" % i for i in range(WINDOW + HIGH, 3000)]
    assert (stuck_session.inflight, stuck_session.queued) == (WINDOW, 1000)
    assert stuck_session.dropped == 3000 - 1000 - WINDOW == broker.core.stats.messages_dropped
    assert fine_session.dropped == 0
    sys = broker.core.sys_topics()
    assert (sys["$SYS/broker/subscribers/stalled"], sys["$SYS/broker/publishers/paused"]) == ("1", "0")
    assert acked(pub) == 3000
    # Stalled, it pauses nobody: the next burst goes through at once.
    burst(pub, 500, start=3000)
    assert pub.link.reading and len(fine.payloads()) == 500
    stuck.reading = True
    broker.settle()
    assert len(stuck.payloads()) == 1000 + WINDOW
    assert not overload.stalled and broker.core.sys_topics()["$SYS/broker/subscribers/stalled"] == "0"


@pytest.mark.parametrize("version", VERSIONS)
def test_a_paused_publishers_keepalive_is_not_held_against_it(version: int) -> None:
    """Paused for a minute with a keepalive of 10 s (overload_stall_timeout 300): not disconnected, though its
    PINGREQ waits unread; it is answered once the publisher resumes, and from then on the keepalive counts again
    (15 s of silence after the resume close it)."""
    broker = MemoryBroker(overload_stall_timeout=300)
    slow = connect(broker, "slow", version)
    slow.subscribe("load/#", 1)
    pub = connect(broker, "pub", version, keepalive=10)
    slow.reading = False
    burst(pub, 500)
    assert not pub.link.reading
    pub.ping()
    broker.advance(60)
    assert not pub.closed
    assert not any(isinstance(event, PingAnswered) for event in pub.events)
    slow.reading = True
    broker.settle()
    assert pub.link.reading and any(isinstance(event, PingAnswered) for event in pub.events)
    broker.advance(15)
    assert not pub.closed
    broker.advance(1)
    assert pub.closed


def test_a_client_is_never_paused_by_its_own_subscription() -> None:
    """A client that publishes to a topic it subscribes to, faster than it takes the messages: pausing it would
    leave its acknowledgements unread and its queue full for good. It is not paused; the subscriber is congested
    (and stalled after its timeout), and everything arrives once it reads."""
    broker = MemoryBroker()
    echo = connect(broker, "echo")
    echo.subscribe("echo/#", 1)
    echo.reading = False
    burst(echo, 500, topic="echo/x")
    assert echo.link.reading
    assert broker.core.sessions["echo"].queued == 500 - WINDOW
    echo.reading = True
    broker.settle()
    assert echo.payloads() == [b"%d" % i for i in range(500)]


def test_two_clients_feeding_each_other_do_not_pause_each_other_for_good() -> None:
    """a publishes to what b reads and b to what a reads, neither reading for a while: the first congested pauses
    the other, which, not read, pauses nobody in turn (pauses never form a cycle; its queue is bounded as usual,
    here it holds all 880). Once both read, everything arrives, nothing is dropped, and both are read again,
    before any stall timeout."""
    broker = MemoryBroker()
    a = connect(broker, "a")
    b = connect(broker, "b")
    a.subscribe("to/a", 1)
    b.subscribe("to/b", 1)
    a.reading = b.reading = False
    burst(a, 900, topic="to/b")
    burst(b, 900, topic="to/a")
    assert not a.link.reading and b.link.reading
    a.reading = b.reading = True
    broker.settle()
    assert len(a.payloads()) == len(b.payloads()) == 900
    assert a.link.reading and b.link.reading
    assert broker.core.stats.messages_dropped == 0 and not broker.core.overload.stalls


def test_many_publishers_to_one_slow_subscriber_are_all_paused_and_all_resumed() -> None:
    """Fan-in: five publishers of 400 messages each to one subscriber that reads nothing for a while: each is paused
    as its message meets the congested queue (the queue passes the mark by at most one message each), none is lost,
    all are read again at the end."""
    broker = MemoryBroker()
    slow = connect(broker, "slow")
    slow.subscribe("load/#", 1)
    pubs = [connect(broker, f"pub{n}") for n in range(5)]
    slow.reading = False
    for n, pub in enumerate(pubs):
        burst(pub, 400, topic=f"load/{n}")
    assert not any(pub.link.reading for pub in pubs)
    assert HIGH <= broker.core.sessions["slow"].queued < HIGH + len(pubs)
    assert broker.core.sys_topics()["$SYS/broker/publishers/paused"] == "5"
    slow.reading = True
    broker.settle()
    got = slow.messages()
    assert len(got) == 2000 and broker.core.stats.messages_dropped == 0
    for n in range(5):
        assert [m.payload for m in got if m.topic == f"load/{n}"] == [b"%d" % i for i in range(400)]
    assert all(pub.link.reading for pub in pubs)


def test_a_shared_subscription_passes_a_congested_member_over_instead_of_pausing_the_publisher() -> None:
    """$share/workers/jobs/#: of two members, one reads nothing for a while. Once its queue is at the mark, the
    messages go to the other member instead of pausing the publisher (here 1,000 messages in bursts of 50, which
    the reading member keeps up with); nothing is lost, each message goes to one member only."""
    broker = MemoryBroker()
    slow = connect(broker, "slow")
    quick = connect(broker, "quick")
    slow.subscribe("$share/workers/jobs/#", 1)
    quick.subscribe("$share/workers/jobs/#", 1)
    pub = connect(broker, "pub")
    slow.reading = False
    for start in range(0, 1000, 50):
        burst(pub, 50, topic="jobs/x", start=start)
        assert pub.link.reading
    assert broker.core.sessions["slow"].queued == HIGH
    slow.reading = True
    broker.settle()
    got = sorted(int(p) for p in slow.payloads() + quick.payloads())
    assert got == list(range(1000)) and broker.core.stats.messages_dropped == 0


def test_a_congested_subscriber_that_goes_away_releases_its_publishers() -> None:
    """The subscriber's connection drops: its queue is an offline client's now (bounded, pausing nobody); the
    publisher is read again at once."""
    broker = MemoryBroker()
    slow = connect(broker, "slow", clean_start=False, session_expiry=600)
    slow.subscribe("load/#", 1)
    pub = connect(broker, "pub")
    slow.reading = False
    burst(pub, 3000)
    assert not pub.link.reading
    slow.drop()
    assert pub.link.reading and not broker.core.overload.congested
    assert acked(pub) == 3000


def test_overload_protection_off_drops_as_before() -> None:
    """overload_protection = false: the publisher is never paused, the slow subscriber's queue overflows and the
    drops are counted (the behaviour before protection)."""
    broker = MemoryBroker(overload_protection=False)
    slow = connect(broker, "slow")
    slow.subscribe("load/#", 1)
    pub = connect(broker, "pub")
    slow.reading = False
    burst(pub, 3000)
    assert pub.link.reading and acked(pub) == 3000
    assert broker.core.sessions["slow"].dropped == 3000 - 1000 - WINDOW


async def test_over_sockets_a_slow_subscriber_loses_nothing_and_the_publisher_waits(
    broker_factory: Callable[..., Any],
) -> None:
    """Real sockets, default limits: 6,000 QoS 1 messages published at once to a subscriber that has stopped
    reading pause the publisher's connection (its publishes stop being acknowledged); when the subscriber reads
    again it gets all 6,000 in order and nothing is dropped (without protection: 4,980 dropped)."""
    broker: Broker = await broker_factory(overload_stall_timeout=60)
    async with MQTTClient(broker.url, client_id="slow") as slow, MQTTClient(broker.url, client_id="pub") as pub:
        stream = slow.messages(maxsize=10_000)
        await slow.subscribe("load/#", qos=1)
        stop_reading(slow)
        futures = [pub.publish_nowait("load/x", b"%d" % i, 1) for i in range(6000)]
        await until(lambda: any(conn.throttled_by for conn in broker.connections), what="the publisher paused")
        assert sum(future.done() for future in futures) < 6000
        start_reading(slow)
        async with asyncio.timeout(30):
            await asyncio.gather(*futures)
            got = [await stream.get() for _ in range(6000)]
    assert [m.payload for m in got] == [b"%d" % i for i in range(6000)]
    assert broker.core.stats.messages_dropped == 0


def test_a_big_read_is_routed_over_several_turns() -> None:
    """A read of thousands of small publishes (256 KiB under a flood) is routed PUBLISHES_PER_TURN at a time, one
    batch a turn of the event loop, with the publisher's reading paused in between: an embedded broker shares the
    loop with the app's screen, and routing a whole read at once held it for 100+ ms. Everything arrives, in order,
    and the publisher is read again once its input is handled."""
    from mqttchat.broker.connection import PUBLISHES_PER_TURN

    broker = MemoryBroker()
    watcher = broker.connect("watcher")
    watcher.subscribe("flood/#", 0)
    flood = broker.connect("flood")
    count = PUBLISHES_PER_TURN * 3 + 7
    for i in range(count):
        flood.session.publish(Publish(f"flood/{i % 10}", b"%d" % i, 0))
    assert flood.conn is not None
    flood.conn.data_received(flood.session.data_to_send())  # one read with all of them
    sent = broker.core.stats.messages_sent
    assert sent == PUBLISHES_PER_TURN, "the whole read was routed in one turn"
    assert not flood.link.reading, "read on while the last read waits"
    turns = 1
    while not flood.link.reading:
        broker.clock.run_soon()  # the next turn
        turns += 1
        assert broker.core.stats.messages_sent - sent <= PUBLISHES_PER_TURN
        sent = broker.core.stats.messages_sent
    assert turns == 4 and sent == count  # 3 full turns, then the 7 left and reading resumes
    broker.settle()
    assert watcher.payloads() == [b"%d" % i for i in range(count)]
