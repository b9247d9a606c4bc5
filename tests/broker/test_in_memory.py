"""Our client session against our broker in memory (tests/helpers/broker_pair.py): timers to the deadline, no sleep.

What the broker does when time passes (keepalive, will delays, session and message expiry, the store across a
restart) is checked here with a clock the test moves: exactly at the deadline, and in no time. These were tests
against a broker process that slept 1.5-2.2 s each; the wire format of what they check stays covered there
(DISCONNECT reason codes, wills, session present, restarts) by tests that do not wait.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mqttchat.client.session import Connected, PingAnswered
from mqttchat.protocol import Properties, ReasonCode, Will
from tests.helpers.broker_pair import MemoryBroker

VERSIONS = [pytest.param(4, id="v311"), pytest.param(5, id="v5")]


@pytest.mark.parametrize("version", VERSIONS)
def test_keepalive_timeout_disconnects_and_publishes_will(version: int) -> None:
    """[MQTT-3.1.2-24/-22] a client silent for more than 1.5 x its keepalive (1 s) is disconnected (5.0: DISCONNECT
    0x8D Keep alive timeout first; 3.1.1 has no DISCONNECT from the server) and its will is published."""
    broker = MemoryBroker()
    watcher = broker.connect("watcher", version)
    assert watcher.subscribe("ka/#", 1) == [ReasonCode.GRANTED_QOS_1]
    silent = broker.connect("silent", version, keepalive=1, will=Will("ka/silent", b"timed out", 1))
    broker.advance(1.5)
    assert not silent.closed, "closed at 1.5 x the keepalive: the limit is 'more than'"
    assert watcher.payloads() == []
    broker.advance(0.5)  # the next keepalive check
    assert silent.closed and silent.link.graceful is (version == 5)
    assert silent.disconnect_reason == (ReasonCode.KEEP_ALIVE_TIMEOUT if version == 5 else None)
    assert watcher.payloads() == [b"timed out"]


@pytest.mark.parametrize("version", VERSIONS)
def test_pingreq_keeps_connection_alive(version: int) -> None:
    """[MQTT-3.12.4-1, MQTT-3.1.2-24] PINGREQ within the keepalive is answered with PINGRESP and keeps the link,
    for as long as it comes (here 10 s with a keepalive of 1 s); without it the link ends."""
    broker = MemoryBroker()
    pinger = broker.connect("pinger", version, keepalive=1)
    for _ in range(25):
        broker.advance(0.4)
        pinger.ping()
    assert not pinger.closed
    assert sum(isinstance(event, PingAnswered) for event in pinger.events) == 25
    broker.advance(2.0)
    assert pinger.closed


def test_a_server_keep_alive_replaces_the_clients() -> None:
    """[MQTT-3.2.2-21] max_keepalive 2: a 5.0 client asking for 60 s (or none) is told 2 s and held to it; a 3.1.1
    client cannot be told, so its own keepalive stands."""
    broker = MemoryBroker(max_keepalive=2)
    told = broker.connect("told", 5, keepalive=60)
    assert isinstance(told.connack, Connected) and told.connack.capabilities.server_keep_alive == 2
    unbounded = broker.connect("unbounded", 5, keepalive=0)
    old = broker.connect("old", 4, keepalive=60)
    broker.advance(3.5)
    assert told.closed and told.disconnect_reason == ReasonCode.KEEP_ALIVE_TIMEOUT
    assert unbounded.closed
    assert not old.closed


def test_session_expiry() -> None:
    """[MQTT-3.1.2-23] 5.0 Session Expiry Interval 1 s: the session survives a reconnect within the second, and is
    gone (no session present, no subscriptions) once the second after the disconnect has passed."""
    broker = MemoryBroker()
    sub = broker.connect("se", clean_start=False, session_expiry=1)
    sub.subscribe("se/#", 1)
    sub.disconnect()
    broker.advance(0.99)
    quick = broker.connect("se", clean_start=False, session_expiry=1)
    assert isinstance(quick.connack, Connected) and quick.connack.capabilities.session_present
    quick.disconnect()
    broker.advance(1.0)
    assert "se" not in broker.core.sessions
    late = broker.connect("se", clean_start=False, session_expiry=1)
    assert isinstance(late.connack, Connected) and not late.connack.capabilities.session_present
    late.subscribe("fence", 1)
    pub = broker.connect("pub")
    pub.publish("se/x", b"old subscription", 1)
    pub.publish("fence", b"fence", 1)
    assert late.payloads() == [b"fence"]


def test_will_delay_and_properties() -> None:
    """[MQTT-3.1.3-9/-10] 5.0 Will Delay Interval 1 s: the will is not sent at once but when the second has passed,
    with its properties and without the Will Delay Interval."""
    broker = MemoryBroker()
    watcher = broker.connect("watcher")
    watcher.subscribe("will/#", 1)
    props = Properties(will_delay_interval=1, content_type="text/plain", user_property=(("k", "v"),),
                       response_topic="will/reply")  # fmt: skip
    dying = broker.connect("dying", will=Will("will/dying", b"late", 1, False, props), session_expiry=60)
    dying.drop()
    broker.advance(0.999)
    assert watcher.messages() == []
    broker.advance(0.001)
    (message,) = watcher.messages()
    assert (message.topic, message.payload) == ("will/dying", b"late")
    got = message.properties
    assert (got.content_type, got.user_property, got.response_topic) == ("text/plain", (("k", "v"),), "will/reply")
    assert got.will_delay_interval is None


def test_will_delay_cancelled_by_reconnect() -> None:
    """[MQTT-3.1.3-9] 5.0 a reconnect to the session within the Will Delay Interval cancels the will."""
    broker = MemoryBroker()
    watcher = broker.connect("watcher")
    watcher.subscribe("will/#", 1)
    will = Will("will/dying", b"x", 1, False, Properties(will_delay_interval=1))
    dying = broker.connect("dying", will=will, clean_start=False, session_expiry=60)
    dying.drop()
    broker.advance(0.9)
    back = broker.connect("dying", clean_start=False, session_expiry=60)
    assert isinstance(back.connack, Connected) and back.connack.capabilities.session_present
    broker.advance(60)
    assert watcher.messages() == []


def test_will_sent_when_the_session_ends_before_its_delay() -> None:
    """[MQTT-3.1.3-9] 5.0 the will goes out when the session ends (expiry 1 s), if that comes before the Will Delay
    Interval (30 s)."""
    broker = MemoryBroker()
    watcher = broker.connect("watcher")
    watcher.subscribe("will/#", 1)
    will = Will("will/dying", b"expired", 1, False, Properties(will_delay_interval=30))
    dying = broker.connect("dying", will=will, session_expiry=1)
    dying.drop()
    broker.advance(0.999)
    assert watcher.payloads() == []
    broker.advance(0.001)
    assert watcher.payloads() == [b"expired"]


def test_message_expiry_retained_and_queued() -> None:
    """[MQTT-3.3.2-5] an expired message is sent neither from the retained store nor from an offline session's
    queue; [MQTT-3.3.2-6] the Message Expiry Interval forwarded is reduced by the time the message waited."""
    broker = MemoryBroker()
    offline = broker.connect("offline", clean_start=False, session_expiry=60)
    offline.subscribe("exp/#", 1)
    offline.disconnect()
    pub = broker.connect("pub")
    pub.publish("exp/short", b"short", 1, retain=True, message_expiry_interval=1)
    pub.publish("exp/long", b"long", 1, retain=True, message_expiry_interval=60)
    broker.advance(1.5)
    new = broker.connect("new")
    new.subscribe("exp/#", 1)
    back = broker.connect("offline", clean_start=False, session_expiry=60)
    for who in (new, back):
        (message,) = who.messages()
        assert message.payload == b"long"
        assert message.properties.message_expiry_interval == 58  # 60 - 1.5, whole seconds left


def test_a_takeover_ends_the_older_connection_with_0x8e() -> None:
    """[MQTT-3.1.4-3] a second connection with the client id takes the session over: the first gets DISCONNECT
    0x8E Session taken over (5.0) and is closed; its will goes out (no delay)."""
    broker = MemoryBroker()
    watcher = broker.connect("watcher")
    watcher.subscribe("will/#", 1)
    first = broker.connect("twin", will=Will("will/twin", b"replaced"))
    second = broker.connect("twin")
    assert first.closed and first.disconnect_reason == ReasonCode.SESSION_TAKEN_OVER
    assert second.connected and not second.closed
    assert watcher.payloads() == [b"replaced"]


def test_clean_sessions_and_expired_state_are_not_kept(tmp_path: Path) -> None:
    """The store keeps neither clean sessions nor a session past its expiry (1 s) nor a deleted retained message,
    and a retained message that expired (1 s) is not delivered after a restart."""
    db = tmp_path / "state.sqlite3"
    broker = MemoryBroker(persistence_file=db)
    clean = broker.connect("clean")
    clean.subscribe("x")
    clean.publish("gone/soon", b"bye", 1, retain=True, message_expiry_interval=1)
    clean.publish("gone/now", b"x", 1, retain=True)
    clean.publish("gone/now", b"", 1, retain=True)  # deleted
    clean.disconnect()
    short = broker.connect("short", clean_start=False, session_expiry=1)
    short.disconnect()
    broker.advance(2.2)
    broker.stop()
    with sqlite3.connect(db) as conn:
        sessions = {row[0] for row in conn.execute("SELECT client_id FROM sessions")}
        retained = {row[0] for row in conn.execute("SELECT topic FROM retained")}
    assert "clean" not in sessions and "short" not in sessions
    assert "gone/now" not in retained
    again = MemoryBroker(broker.clock_source, persistence_file=db)
    reader = again.connect("reader")
    reader.subscribe("gone/#")
    assert reader.messages() == []  # the expired retained message is not delivered after the restart
    again.stop()


def test_a_session_outlives_a_restart_until_its_expiry(tmp_path: Path) -> None:
    """A session kept in the store expires after a restart when the rest of its interval has passed: the time
    before the restart counts (wall clock), so 40 s before and 21 s after end a 60 s session."""
    db = tmp_path / "state.sqlite3"
    broker = MemoryBroker(persistence_file=db)
    member = broker.connect("member", clean_start=False, session_expiry=60)
    member.subscribe("room/#", 1)
    member.disconnect()
    broker.advance(40)
    broker.stop()
    again = MemoryBroker(broker.clock_source, persistence_file=db)
    assert "member" in again.core.sessions
    again.advance(19.9)
    assert "member" in again.core.sessions
    again.advance(0.2)
    assert "member" not in again.core.sessions
    back = again.connect("member", clean_start=False, session_expiry=60)
    assert isinstance(back.connack, Connected) and not back.connack.capabilities.session_present
    again.stop()
