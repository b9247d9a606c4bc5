"""Conformance of the broker process (MQTT 3.1.1 and 5.0, paho-mqtt and raw sockets as peers):
the password file and the ACL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.brokers import RunningBroker, run_mqttchat_broker
from tests.helpers.conformance import (
    CONNACK,
    SUBACK,
    V5,
    VERSIONS,
    Peers,
    RawClient,
    broker_with_sys,
    connect_packet,
    no_crash,
    packet,
    persistent,
    subscribe_packet,
    utf8,
)


@pytest.fixture(scope="module")
def secure_broker(security: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    """One broker with the password file and ACL, for the tests that leave nothing behind."""
    with run_mqttchat_broker(tmp_path_factory.mktemp("secure-broker"), security) as running:
        yield running
        no_crash(running)


def _raw_connack(broker: RunningBroker, version: int, client_id: str = "auth", **kwargs: Any) -> int:
    raw = RawClient(broker.port)
    try:
        raw.send(connect_packet(client_id, version, **kwargs))
        packets = raw.read_until_closed()
    finally:
        raw.close()
    assert len(packets) == 1 and packets[0].type == CONNACK, packets
    assert packets[0].body[0] == 0, "a refusing CONNACK has session present 0 [MQTT-3.2.2-4/-6]"
    return packets[0].reason_code(version)


@pytest.mark.parametrize("version", VERSIONS)
def test_wrong_password_and_anonymous_refused(secure_broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.1.4-2 / 3.2.2.2] a wrong password or unknown user is refused (5.0: 0x86, 3.1.1: 4 or 5), an anonymous
    client with allow_anonymous = false too (5.0: 0x86/0x87); the right password is accepted."""
    bad_credentials = {0x86} if version == V5 else {4, 5}
    not_authorized = {0x86, 0x87} if version == V5 else {4, 5}
    assert _raw_connack(secure_broker, version, username="alice", password="wrong") in bad_credentials
    assert _raw_connack(secure_broker, version, username="mallory", password="wonderland") in bad_credentials
    assert _raw_connack(secure_broker, version) in not_authorized
    alice = peers.new(secure_broker, "alice", version, username="alice", password="wonderland")
    assert alice.connack_reason is not None and alice.connack_reason.value == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_client_id_of_another_users_session_refused(secure_broker: RunningBroker, peers: Peers, version: int) -> None:
    """With passwords, a client id whose session belongs to another user is refused (5.0: 0x87, 3.1.1: 5), whether
    its owner is connected or away: no one can close someone's connection or discard their queued messages by
    taking their client id. The owner still resumes, and takes over its own older connection."""
    refused = 0x87 if version == V5 else 5
    bob = peers.new(secure_broker, f"bobs-device-{version}", version, username="bob", password="builder",
                    **persistent(version))  # fmt: skip
    bob.subscribe("home/#", 1)
    args = {"username": "alice", "password": "wonderland"}
    assert _raw_connack(secure_broker, version, client_id=f"bobs-device-{version}", **args) == refused
    assert _raw_connack(secure_broker, version, client_id=f"bobs-device-{version}", clean=False, **args) == refused
    alice = peers.new(secure_broker, "alice-pub", version, username="alice", password="wonderland")
    assert alice.publish("home/alice/x", b"still here", 1) == 0
    assert [m.payload for m in bob.expect(1)] == [b"still here"]  # bob was not disconnected
    bob.disconnect()
    assert alice.publish("home/alice/x", b"queued for bob", 1) == 0
    assert _raw_connack(secure_broker, version, client_id=f"bobs-device-{version}", **args) == refused
    again = peers.new(secure_broker, f"bobs-device-{version}", version, username="bob", password="builder",
                      **persistent(version))  # fmt: skip
    assert again.session_present
    assert [m.payload for m in again.expect(1)] == [b"queued for bob"]


@pytest.mark.parametrize("version", VERSIONS)
def test_acl_subscribe_refused(secure_broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.9.3 / 3.2.2] a SUBSCRIBE the ACL forbids gets a failure in SUBACK (5.0: 0x87, 3.1.1: 0x80); allowed
    filters in the same session are granted."""
    bob = peers.new(secure_broker, "bob", version, username="bob", password="builder")
    refused = 0x87 if version == V5 else 0x80
    assert bob.subscribe("home/#", 1) == [1]
    assert bob.subscribe("secret/#", 1) == [refused]
    assert bob.subscribe("home/+/temp", 2) == [2]


@pytest.mark.parametrize("version", VERSIONS)
def test_acl_wide_filter_granted_and_filtered(secure_broker: RunningBroker, peers: Peers, version: int) -> None:
    """A filter wider than the user's rights is granted (as mosquitto does) and thinned per message: bob (read
    home/#, chat/#) subscribed to `#` gets what alice publishes to home/... but not to vault/ (write-only for
    her), live or retained."""
    admin = peers.new(secure_broker, "alice-wide", version, username="alice", password="wonderland")
    assert admin.publish("vault/retained", b"retained secret", 1, retain=True) in (0, 0x10)
    assert admin.publish("home/retained", b"retained home", 1, retain=True) in (0, 0x10)
    bob = peers.new(secure_broker, "bob-wide", version, username="bob", password="builder")
    assert bob.subscribe("#", 1) == [1]
    assert [(m.topic, m.payload) for m in bob.expect(1)] == [("home/retained", b"retained home")]
    assert admin.publish("vault/x", b"secret", 1) in (0, 0x10)  # 0x10: no subscriber may read it
    assert admin.publish("home/x", b"home", 1) == 0
    assert [(m.topic, m.payload) for m in bob.expect(1)] == [("home/x", b"home")]
    bob.expect_none()
    for topic in ("vault/retained", "home/retained"):
        admin.publish(topic, b"", 1, retain=True)


@pytest.mark.parametrize("version", VERSIONS)
def test_suback_and_unsuback_codes_in_order(secure_broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.9.3-1, MQTT-3.11.3-1] a SUBSCRIBE with three filters gets one SUBACK code per filter, in order (granted
    QoS or a failure); UNSUBSCRIBE with two filters gets an UNSUBACK (5.0: 0x00 and 0x11 No subscription existed)."""
    raw = peers.raw_client(secure_broker)
    raw.connect("multi", version, username="bob", password="builder")
    raw.send(subscribe_packet(7, [("home/#", 1), ("secret/#", 2), ("home/x", 2)], version=version))
    suback = raw.expect(SUBACK)
    assert suback.body[:2] == b"\x00\x07"
    assert suback.suback_codes(version) == [1, 0x87 if version == V5 else 0x80, 2]
    raw.send(packet(0xA2, b"\x00\x08" + (b"\x00" if version == V5 else b"") + utf8("home/#") + utf8("none/#")))
    unsuback = raw.expect(11)
    assert unsuback.body[:2] == b"\x00\x08"
    if version == V5:
        assert unsuback.body[3:] == b"\x00\x11"
    else:
        assert unsuback.body == b"\x00\x08"


@pytest.mark.parametrize("version", VERSIONS)
def test_acl_publish_not_forwarded(secure_broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.3.5-2] a PUBLISH the ACL forbids is not forwarded (5.0 QoS 1: PUBACK 0x87; 3.1.1: acknowledged
    normally), an allowed one is."""
    alice = peers.new(secure_broker, "alice", version, username="alice", password="wonderland")
    alice.subscribe("home/#", 1)
    bob = peers.new(secure_broker, "bob", version, username="bob", password="builder")
    assert bob.publish("home/kitchen", b"forbidden", 1) == (0x87 if version == V5 else 0)
    assert bob.publish("home/bob/desk", b"allowed", 1) == 0
    assert [(m.topic, m.payload) for m in alice.expect(1)] == [("home/bob/desk", b"allowed")]


@pytest.mark.parametrize("version", VERSIONS)
def test_acl_username_pattern(secure_broker: RunningBroker, peers: Peers, version: int) -> None:
    """ACL `pattern write chat/%u/#`: alice may publish to chat/alice/x but not to chat/bob/x."""
    bob = peers.new(secure_broker, "bob", version, username="bob", password="builder")
    assert bob.subscribe("chat/#", 1) == [1]
    alice = peers.new(secure_broker, "alice", version, username="alice", password="wonderland")
    assert alice.publish("chat/bob/x", b"impostor", 1) == (0x87 if version == V5 else 0)
    assert alice.publish("chat/alice/x", b"hello", 1) == 0
    assert [(m.topic, m.payload) for m in bob.expect(1)] == [("chat/alice/x", b"hello")]


@pytest.mark.parametrize("version", VERSIONS)
def test_acl_applies_to_wills(secure_broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.1.2-8 / 5.4.2] a will is published with its client's rights: bob's will on home/kitchen (no write
    access) is dropped, his will on home/bob/gone (write access) reaches alice."""
    alice = peers.new(secure_broker, "alice", version, username="alice", password="wonderland")
    alice.subscribe("home/#", 1)
    forbidden = peers.new(secure_broker, "bob1", version, username="bob", password="builder",
                          will=("home/kitchen", b"forbidden will", 1, False))  # fmt: skip
    forbidden.kill()
    alice.expect_none()
    allowed = peers.new(secure_broker, "bob2", version, username="bob", password="builder",
                        will=("home/bob/gone", b"allowed will", 1, False))  # fmt: skip
    allowed.kill()
    assert [(m.topic, m.payload) for m in alice.expect(1)] == [("home/bob/gone", b"allowed will")]


@pytest.mark.parametrize("version", VERSIONS)
def test_acl_sys_access(tmp_path: Path, security: str, peers: Peers, version: int) -> None:
    """ACL `topic read $SYS/#` lets alice subscribe to and receive $SYS topics; bob (no rule) is refused."""
    with broker_with_sys(tmp_path / "b", security) as broker:
        alice = peers.new(broker, "alice", version, username="alice", password="wonderland")
        bob = peers.new(broker, "bob", version, username="bob", password="builder")
        assert alice.subscribe("$SYS/broker/version", 0) == [0]
        assert bob.subscribe("$SYS/#", 0) == [0x87 if version == V5 else 0x80]
        message = alice.expect_one()
        assert message.topic == "$SYS/broker/version" and message.payload.startswith(b"mqttchat")
