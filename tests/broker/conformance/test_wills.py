"""Conformance of the broker process (MQTT 3.1.1 and 5.0, paho-mqtt and raw sockets as peers):
will messages."""

from __future__ import annotations

import pytest

from tests.helpers.brokers import RunningBroker
from tests.helpers.conformance import (
    V5,
    VERSIONS,
    Peers,
)


@pytest.mark.parametrize("version", VERSIONS)
def test_will_on_unclean_disconnect(broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.1.2-8/-10] the will is published when the connection drops without DISCONNECT, with its QoS and
    payload; RETAIN=1 in the will stores it as a retained message [MQTT-3.1.2-17]."""
    watcher = peers.new(broker, "watcher", version)
    watcher.subscribe("will/#", 2)
    dying = peers.new(broker, "dying", version, will=("will/dying", b"gone", 2, True))
    dying.kill()
    message = watcher.expect_one()
    assert (message.topic, message.payload, message.qos, message.retain) == ("will/dying", b"gone", 2, False)
    late = peers.new(broker, "late", version)
    late.subscribe("will/#", 1)
    message = late.expect_one()
    assert (message.topic, message.payload, message.retain) == ("will/dying", b"gone", True)


@pytest.mark.parametrize("version", VERSIONS)
def test_no_will_on_normal_disconnect(shared_broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.1.2-10, MQTT-3.14.4-3] a normal DISCONNECT (5.0: reason 0x00) deletes the will unpublished."""
    watcher = peers.new(shared_broker, "watcher", version)
    watcher.subscribe("will/#", 1)
    leaving = peers.new(shared_broker, "leaving", version, will=("will/leaving", b"gone", 1, False))
    leaving.disconnect(0)
    watcher.expect_none()


def test_v5_disconnect_with_will_message(shared_broker: RunningBroker, peers: Peers) -> None:
    """[MQTT-3.14.2-1] 5.0 DISCONNECT with reason 0x04 (Disconnect with Will Message) publishes the will."""
    watcher = peers.new(shared_broker, "watcher", V5)
    watcher.subscribe("will/#", 1)
    leaving = peers.new(shared_broker, "leaving", V5, will=("will/leaving", b"bye", 1, False))
    leaving.disconnect(0x04)
    message = watcher.expect_one()
    assert (message.topic, message.payload) == ("will/leaving", b"bye")


def test_v5_disconnect_with_error_reason_publishes_will(shared_broker: RunningBroker, peers: Peers) -> None:
    """[MQTT-3.1.2-8/-10, MQTT-3.14.4-3] only DISCONNECT with reason 0x00 deletes the will: after DISCONNECT 0x80
    (Unspecified error) from the client the will is published."""
    watcher = peers.new(shared_broker, "watcher", V5)
    watcher.subscribe("will/#", 1)
    leaving = peers.new(shared_broker, "leaving", V5, will=("will/error", b"error", 1, False))
    leaving.disconnect(0x80)
    assert watcher.expect_one(timeout=1).payload == b"error"


@pytest.mark.parametrize("version", VERSIONS)
def test_will_on_protocol_error(shared_broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.1.2-8 / 3.1.2.5] the broker closing the connection for a protocol error publishes the will."""
    watcher = peers.new(shared_broker, "watcher", version)
    watcher.subscribe("will/#", 1)
    raw = peers.raw_client(shared_broker)
    raw.connect("faulty", version, will=("will/faulty", b"broke the rules", 1, False))
    raw.send(b"\x00\x00")
    raw.read_until_closed()
    assert watcher.expect_one().payload == b"broke the rules"
