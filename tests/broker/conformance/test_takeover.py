"""Conformance of the broker process (MQTT 3.1.1 and 5.0, paho-mqtt and raw sockets as peers):
session takeover."""

from __future__ import annotations

import pytest

from tests.helpers.brokers import RunningBroker
from tests.helpers.conformance import (
    DISCONNECT,
    PUBLISH,
    SESSION_EXPIRY,
    SUBACK,
    TIMEOUT,
    V5,
    VERSIONS,
    Peers,
    encode_properties,
    persistent,
    subscribe_packet,
)


@pytest.mark.parametrize("version", VERSIONS)
def test_session_takeover(broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.1.4-2/-3] a second connection with the same client id closes the first (5.0: DISCONNECT 0x8E), whose
    will is published; the session (persistent) passes to the newcomer with session present 1."""
    watcher = peers.new(broker, "watcher", version)
    watcher.subscribe("will/#", 1)
    first = peers.new(broker, "same", version, will=("will/same", b"taken over", 1, False), **persistent(version))
    first.subscribe("to/#", 1)
    second = peers.new(broker, "same", version, **persistent(version))
    assert second.session_present is True
    assert first.disconnected.wait(TIMEOUT), "the first connection stays open"
    if version == V5:
        assert first.disconnect_reason is not None and first.disconnect_reason.value == 0x8E
    assert watcher.expect_one().payload == b"taken over"
    pub = peers.new(broker, "pub", version)
    pub.publish("to/x", b"to the new one", 1)
    assert second.expect_one().payload == b"to the new one"


@pytest.mark.parametrize("version", VERSIONS)
def test_takeover_resends_unacknowledged(broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-4.4.0-1, MQTT-3.1.4-2/-3] a connection taking over a persistent session gets the QoS 1 PUBLISH the old
    connection left unacknowledged again, DUP=1, same packet identifier."""
    expiry = encode_properties((SESSION_EXPIRY, 60)) if version == V5 else b"\x00"
    old = peers.raw_client(broker)
    old.connect("taken", version, clean=False, properties=expiry)
    old.send(subscribe_packet(1, [("tk/#", 1)], version=version))
    old.expect(SUBACK)
    pub = peers.new(broker, "pub", version)
    pub.publish("tk/t", b"unacked", 1)
    first = old.expect(PUBLISH)
    new = peers.raw_client(broker)
    assert new.connect("taken", version, clean=False, properties=expiry).body[0] & 1, "session present"
    resent = new.expect(PUBLISH)
    assert (resent.flags, resent.body) == (0x0A, first.body)
    packets = old.read_until_closed()
    if version == V5:
        assert [(p.type, p.reason_code()) for p in packets] == [(DISCONNECT, 0x8E)]
