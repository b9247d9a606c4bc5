"""Conformance of the broker process (MQTT 3.1.1 and 5.0, paho-mqtt and raw sockets as peers):
limits."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.helpers.brokers import RunningBroker, free_port
from tests.helpers.conformance import (
    CONNACK,
    DISCONNECT,
    MAXIMUM_PACKET_SIZE,
    PUBLISH,
    PUBREL,
    QUIET,
    RECEIVE_MAXIMUM,
    SERVER_KEEP_ALIVE,
    SUBACK,
    TIMEOUT,
    TOPIC_ALIAS,
    TOPIC_ALIAS_MAXIMUM,
    V5,
    V311,
    VERSIONS,
    Peers,
    RawClient,
    StartBroker,
    broker_with_sys,
    connect_packet,
    encode_properties,
    packet,
    persistent,
    publish_packet,
    publish_x,
    subscribe_packet,
)
from tests.helpers.waiting import until_sync


@pytest.mark.parametrize("version", VERSIONS)
def test_max_connections(broker_process: StartBroker, peers: Peers, version: int) -> None:
    """max_connections = 2: a third client is refused (5.0: CONNACK 0x89 Server busy; 3.1.1: return code 3
    Server unavailable), and accepted again once one left."""
    broker = broker_process("max_connections = 2")
    first = peers.new(broker, "one", version)
    peers.new(broker, "two", version)
    raw = peers.raw_client(broker)
    raw.send(connect_packet("three", version))
    packets = raw.read_until_closed()
    assert len(packets) == 1 and packets[0].type == CONNACK
    assert packets[0].reason_code(version) == (0x89 if version == V5 else 3)
    first.disconnect()
    until_sync(lambda: _connects(broker, version))


def _connects(broker: RunningBroker, version: int) -> bool:
    raw = RawClient(broker.port)
    try:
        raw.send(connect_packet("later", version))
        connack = raw.read_packet()
        return connack is not None and connack.reason_code(version) == 0
    finally:
        raw.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_max_queued_messages(tmp_path: Path, peers: Peers, version: int) -> None:
    """max_queued_messages = 5: an offline persistent session gets at most 5 of 10 messages, in order; the drops
    are counted in $SYS/broker/messages/dropped."""
    with broker_with_sys(tmp_path / "b", "max_queued_messages = 5") as broker:
        sub = peers.new(broker, "queued", version, **persistent(version))
        sub.subscribe("q/#", 1)
        sub.disconnect()
        pub = peers.new(broker, "pub", version)
        for i in range(10):
            pub.publish("q/t", f"{i}".encode(), 1)
        back = peers.new(broker, "queued", version, **persistent(version))
        got = [int(m.payload) for m in back.expect(5)]
        assert got == sorted(got)
        back.expect_none(0.3)
        monitor = peers.new(broker, "monitor", version)
        monitor.subscribe("$SYS/broker/messages/dropped", 0)
        values: list[bytes] = []
        deadline = time.monotonic() + 3
        while b"5" not in values and time.monotonic() < deadline:
            values.append(monitor.expect_one(timeout=3).payload)
        assert values[-1] == b"5", values


@pytest.mark.parametrize("version", VERSIONS)
def test_message_size_limit(broker_process: StartBroker, peers: Peers, version: int) -> None:
    """message_size_limit = 16: a larger payload is not forwarded (5.0 QoS 1: PUBACK with an error reason code);
    one of exactly 16 bytes is."""
    broker = broker_process("message_size_limit = 16")
    sub = peers.new(broker, "sub", version)
    sub.subscribe("sz/#", 1)
    pub = peers.new(broker, "pub", version)
    assert pub.publish("sz/ok", b"x" * 16, 1) == 0
    rc = pub.publish("sz/big", b"x" * 17, 1)
    if version == V5:
        assert rc >= 0x80
    pub.publish("sz/big0", b"x" * 17, 0)
    pub.publish("sz/fence", b"fence", 1)
    assert [m.topic for m in sub.expect(2)] == ["sz/ok", "sz/fence"]


def test_maximum_qos_1_announced_and_enforced(broker_process: StartBroker, peers: Peers) -> None:
    """[MQTT-3.2.2-9/-10/-11] maximum_qos = 1: announced in CONNACK, subscriptions granted at most QoS 1 (also
    to 3.1.1), and a QoS 2 PUBLISH from a 5.0 client gets DISCONNECT 0x9B."""
    broker = broker_process("maximum_qos = 1")
    v5 = peers.new(broker, "v5", V5)
    assert v5.connack_properties is not None and getattr(v5.connack_properties, "MaximumQoS", None) == 1
    assert v5.subscribe("mq/#", 2) == [1]
    v311 = peers.new(broker, "v311", V311)
    assert v311.subscribe("mq/#", 2) == [1]
    raw = peers.raw_client(broker)
    raw.connect("qos2", V5)
    raw.send(publish_x("mq/t", V5, 2))
    packets = raw.read_until_closed()
    assert [(p.type, p.reason_code()) for p in packets] == [(DISCONNECT, 0x9B)]
    v5.publish("mq/fence", b"fence", 1)
    assert [m.topic for m in v5.expect(1)] == ["mq/fence"]
    assert [(m.topic, m.qos) for m in v311.expect(1)] == [("mq/fence", 1)]


def test_retain_not_available_announced_and_enforced(broker_process: StartBroker, peers: Peers) -> None:
    """[MQTT-3.2.2-13/-14] retain_available = false: CONNACK Retain Available 0, a retained PUBLISH gets
    DISCONNECT 0x9A and is not forwarded."""
    broker = broker_process("retain_available = false")
    sub = peers.new(broker, "sub", V5)
    assert sub.connack_properties is not None and getattr(sub.connack_properties, "RetainAvailable", None) == 0
    sub.subscribe("ra/#", 1)
    raw = peers.raw_client(broker)
    raw.connect("retainer", V5)
    raw.send(publish_packet("ra/t", b"keep", 1, retain=True))
    packets = raw.read_until_closed()
    assert [(p.type, p.reason_code()) for p in packets] == [(DISCONNECT, 0x9A)]
    sub.publish("ra/fence", b"fence", 1)
    assert [m.topic for m in sub.expect(1)] == ["ra/fence"]


@pytest.mark.parametrize("version", VERSIONS)
def test_listener_max_connections(broker_process: StartBroker, peers: Peers, version: int) -> None:
    """[[listener]] max_connections = 1: a second client on that listener is refused (5.0: CONNACK 0x89, 3.1.1:
    return code 3), while another listener still accepts clients."""
    port = free_port()
    broker = broker_process(f"[[listener]]\nport = {port}\nhost = '127.0.0.1'\nmax_connections = 1\n")
    peers.new(port, "first", version)
    peers.new(broker, "other-listener", version)
    raw = peers.raw_client(port)
    raw.send(connect_packet("second", version))
    packets = raw.read_until_closed(timeout=1)
    assert [(p.type, p.reason_code(version)) for p in packets] == [(CONNACK, 0x89 if version == V5 else 3)]


@pytest.mark.parametrize(("config", "will", "code"), [
    pytest.param("maximum_qos = 1", ("w/q", b"x", 2, False), 0x9B, id="will-qos-2-with-maximum-qos-1"),
    pytest.param("retain_available = false", ("w/r", b"x", 0, True), 0x9A, id="will-retain-without-retain"),
])  # fmt: skip
def test_will_beyond_capabilities_refused(
    broker_process: StartBroker, peers: Peers, config: str, will: tuple[str, bytes, int, bool], code: int
) -> None:
    """[MQTT-3.2.2-12, MQTT-3.2.2-13] a 5.0 CONNECT whose will needs a QoS or retain the broker announced it lacks is
    refused (CONNACK 0x9B QoS not supported / 0x9A Retain not supported)."""
    broker = broker_process(config)
    raw = peers.raw_client(broker)
    raw.send(connect_packet("willing", V5, will=will))
    packets = raw.read_until_closed(timeout=1)
    assert [(p.type, p.reason_code()) for p in packets] == [(CONNACK, code)]


def test_v311_keepalive_not_lowered_below_the_clients(broker_process: StartBroker, peers: Peers) -> None:
    """[MQTT-3.1.2-24 (3.1.1)] a 3.1.1 client may stay silent for its whole Keep Alive (60 s); 3.1.1 has no Server
    Keep Alive, so max_keepalive = 1 must not get it disconnected after 1.5 s."""
    broker = broker_process("max_keepalive = 1")
    raw = peers.raw_client(broker)
    raw.connect("patient", V311, keepalive=60)
    with pytest.raises(TimeoutError):
        raw.read_packet(timeout=2.2)


def test_client_receive_maximum_respected(shared_broker: RunningBroker, peers: Peers) -> None:
    """[MQTT-3.3.4-7/-8] the broker sends a 5.0 client no more unacknowledged QoS 1 PUBLISHes than its Receive
    Maximum (2), and sends the next one when a PUBACK frees a place."""
    raw = peers.raw_client(shared_broker)
    raw.connect("slow", V5, properties=encode_properties((RECEIVE_MAXIMUM, 2)))
    raw.send(subscribe_packet(1, [("rx/#", 1)]))
    raw.expect(SUBACK)
    pub = peers.new(shared_broker, "pub", V5)
    for i in range(4):
        pub.publish("rx/t", f"{i}".encode(), 1)
    first, second = raw.expect(PUBLISH), raw.expect(PUBLISH)
    with pytest.raises(TimeoutError):
        raw.read_packet(timeout=QUIET)
    raw.send(packet(0x40, first.body[6:8]))  # PUBACK for the first ("rx/t" is 6 bytes with its length)
    third = raw.expect(PUBLISH)
    assert [p.publish_parts()[2] for p in (first, second, third)] == [b"0", b"1", b"2"]
    assert third.body[6:8] != second.body[6:8], "a packet identifier still in use was reused [MQTT-2.2.1-3]"


def test_client_receive_maximum_counts_qos2_until_pubcomp(shared_broker: RunningBroker, peers: Peers) -> None:
    """[MQTT-3.3.4-7/-8] with the client's Receive Maximum 1, a QoS 2 delivery holds the only place until PUBCOMP
    (not PUBREC); a PUBREC with a failure reason code (0x80) frees it at once."""
    raw = peers.raw_client(shared_broker)
    raw.connect("one-at-a-time", V5, properties=encode_properties((RECEIVE_MAXIMUM, 1)))
    raw.send(subscribe_packet(1, [("rq/#", 2)]))
    raw.expect(SUBACK)
    pub = peers.new(shared_broker, "pub", V5)
    for payload in (b"a", b"b", b"c"):
        pub.publish("rq/t", payload, 2)
    first = raw.expect(PUBLISH)
    raw.send(packet(0x50, first.body[6:8]))  # PUBREC
    assert raw.expect(PUBREL).body[:2] == first.body[6:8]
    with pytest.raises(TimeoutError):
        raw.read_packet(timeout=QUIET)  # nothing more before PUBCOMP
    raw.send(packet(0x70, first.body[6:8]))  # PUBCOMP
    second = raw.expect(PUBLISH)
    raw.send(packet(0x50, second.body[6:8] + b"\x80\x00"))  # PUBREC 0x80: the flow ends here
    third = raw.expect(PUBLISH)
    assert [p.publish_parts()[2] for p in (first, second, third)] == [b"a", b"b", b"c"]


def test_topic_aliases_off(broker_process: StartBroker, peers: Peers) -> None:
    """[MQTT-3.2.2-17/-18, MQTT-3.3.2-9] max_topic_alias = 0: no Topic Alias Maximum in CONNACK, and a PUBLISH with
    a Topic Alias gets DISCONNECT 0x94."""
    broker = broker_process("max_topic_alias = 0")
    raw = peers.raw_client(broker)
    assert TOPIC_ALIAS_MAXIMUM not in raw.connect("aliaser", V5).properties()
    raw.send(publish_x("a", V5, properties=encode_properties((TOPIC_ALIAS, 1))))
    assert [(p.type, p.reason_code()) for p in raw.read_until_closed()] == [(DISCONNECT, 0x94)]


def test_client_maximum_packet_size_respected(shared_broker: RunningBroker, peers: Peers) -> None:
    """[MQTT-3.1.2-24/-25] the broker never sends a 5.0 client a packet above its Maximum Packet Size (64): the
    message is dropped for that client, smaller ones still arrive."""
    raw = peers.raw_client(shared_broker)
    raw.connect("small", V5, properties=encode_properties((MAXIMUM_PACKET_SIZE, 64)))
    raw.send(subscribe_packet(1, [("mx/#", 1)]))
    raw.expect(SUBACK)
    pub = peers.new(shared_broker, "pub", V5)
    pub.publish("mx/big", b"x" * 100, 1)
    pub.publish("mx/small", b"y", 1)
    message = raw.expect(PUBLISH)
    assert message.publish_parts()[0] == "mx/small"


def test_server_keep_alive(broker_process: StartBroker, peers: Peers) -> None:
    """[MQTT-3.2.2-21] max_keepalive = 5: a 5.0 client asking for 60 s (or 0) is told Server Keep Alive 5."""
    broker = broker_process("max_keepalive = 5")
    for keepalive in (60, 0):
        raw = peers.raw_client(broker)
        assert raw.connect(f"ka{keepalive}", V5, keepalive=keepalive).properties().get(SERVER_KEEP_ALIVE) == [5]
    paho = peers.new(broker, "paho", V5, keepalive=60)
    assert paho.connack_properties is not None and getattr(paho.connack_properties, "ServerKeepAlive", None) == 5


@pytest.mark.parametrize("version", VERSIONS)
def test_zero_length_client_id_refused_when_disallowed(broker_process: StartBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.1.3-9 (3.1.1) / 3.1.3-8 (5.0)] allow_zero_length_clientid = false: an empty client id gets CONNACK
    0x85 Client Identifier not valid (3.1.1: return code 2)."""
    broker = broker_process("allow_zero_length_clientid = false")
    raw = peers.raw_client(broker)
    raw.send(connect_packet("", version))
    packets = raw.read_until_closed()
    assert [(p.type, p.reason_code(version)) for p in packets] == [(CONNACK, 0x85 if version == V5 else 2)]


@pytest.mark.parametrize("version", VERSIONS)
def test_broker_shutdown_disconnects_clients(broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-4.13 / 3.14] the broker stopping closes every connection; 5.0 clients get DISCONNECT 0x8B."""
    client = peers.new(broker, "client", version)
    broker.stop()
    assert client.disconnected.wait(TIMEOUT)
    if version == V5:
        assert client.disconnect_reason is not None and client.disconnect_reason.value == 0x8B
