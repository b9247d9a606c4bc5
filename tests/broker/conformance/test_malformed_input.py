"""Conformance of the broker process (MQTT 3.1.1 and 5.0, paho-mqtt and raw sockets as peers):
malformed and illegal input over raw sockets."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.helpers.brokers import RunningBroker
from tests.helpers.conformance import (
    ASSIGNED_CLIENT_ID,
    CONNACK,
    CONTENT_TYPE,
    DISCONNECT,
    DISCONNECT_PACKET,
    MAXIMUM_PACKET_SIZE,
    PINGREQ_PACKET,
    PUBACK,
    PUBLISH,
    PUBREC,
    RECEIVE_MAXIMUM,
    SESSION_EXPIRY,
    SUBACK,
    SUBSCRIPTION_ID,
    TOPIC_ALIAS,
    V5,
    V311,
    VERSIONS,
    Peers,
    StartBroker,
    connect_packet,
    encode_properties,
    next_packet,
    packet,
    publish_packet,
    publish_x,
    pubrel_packet,
    subscribe_packet,
)


@dataclass(frozen=True)
class Bad:
    """One illegal input. ``codes``: the 5.0 DISCONNECT reason codes allowed after a successful CONNECT.
    ``connack``: the CONNACKs allowed before the close, as (format, code): V311 is the 2-byte 3.1.1 CONNACK with a
    return code, V5 the 5.0 one with a reason code; ``connack_required``: one must be sent. Otherwise the
    connection must close without any reply."""

    version: int
    data: bytes
    connected: bool = True
    codes: frozenset[int] | None = None
    connack: frozenset[tuple[int, int]] = frozenset()
    connack_required: bool = False


def _sub(options: int, topic_filter: str = "a/b") -> bytes:
    return subscribe_packet(1, [(topic_filter, options)], version=V5)


MALFORMED = frozenset({0x81})
PROTOCOL = frozenset({0x82})
EITHER = frozenset({0x81, 0x82})
BAD_VERSION_V311 = frozenset({(V311, 0x01)})

HTTP_GET = b"GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" + b"X-Pad: y\r\n" * 8  # > its "length"
DUPLICATE_CONTENT_TYPE = encode_properties((CONTENT_TYPE, "a"), (CONTENT_TYPE, "b"))

BAD_INPUT = {
    # after a successful CONNECT
    "reserved-type-0-v311": Bad(V311, b"\x00\x00"),
    "reserved-type-0-v5": Bad(V5, b"\x00\x00", codes=EITHER),
    "reserved-type-15-v311": Bad(V311, b"\xf0\x00"),
    "auth-without-method-v5": Bad(V5, b"\xf0\x00", codes=PROTOCOL),
    "publish-qos3-v311": Bad(V311, bytes((0x36,)) + publish_x("a", V311, 1)[1:]),
    "publish-qos3-v5": Bad(V5, bytes((0x36,)) + publish_x("a", V5, 1)[1:], codes=MALFORMED),
    "publish-topic-plus-v311": Bad(V311, publish_x("a/+", V311)),
    "publish-topic-plus-v5": Bad(V5, publish_x("a/+", V5), codes=frozenset({0x81, 0x82, 0x90})),
    "publish-topic-hash-v5": Bad(V5, publish_x("a/#", V5, 1), codes=frozenset({0x81, 0x82, 0x90})),
    "publish-empty-topic-v311": Bad(V311, publish_x("", V311)),
    "publish-empty-topic-no-alias-v5": Bad(V5, publish_x("", V5), codes=PROTOCOL),
    "publish-invalid-utf8-topic-v311": Bad(V311, publish_x(b"a/\xff", V311)),
    "publish-invalid-utf8-topic-v5": Bad(V5, publish_x(b"a/\xff", V5), codes=MALFORMED),
    "publish-null-in-topic-v5": Bad(V5, publish_x(b"a\x00b", V5), codes=MALFORMED),
    "publish-qos1-packet-id-0-v5": Bad(V5, publish_x("a", V5, 1, pid=0), codes=EITHER),
    "remaining-length-5-bytes-v311": Bad(V311, b"\x30\xff\xff\xff\xff\x7f"),
    "remaining-length-5-bytes-v5": Bad(V5, b"\x30\xff\xff\xff\xff\x7f", codes=MALFORMED),
    "second-connect-v311": Bad(V311, connect_packet("again", V311)),
    "second-connect-v5": Bad(V5, connect_packet("again", V5), codes=PROTOCOL),
    "subscribe-no-filters-v311": Bad(V311, b"\x82\x02\x00\x01"),
    "subscribe-no-filters-v5": Bad(V5, b"\x82\x03\x00\x01\x00", codes=PROTOCOL),
    "unsubscribe-no-filters-v5": Bad(V5, b"\xa2\x03\x00\x01\x00", codes=PROTOCOL),
    "subscribe-bad-header-flags-v5": Bad(V5, b"\x80" + _sub(1)[1:], codes=MALFORMED),
    "subscribe-qos3-v311": Bad(V311, subscribe_packet(1, [("a", 3)], version=V311)),
    "subscribe-qos3-v5": Bad(V5, _sub(3), codes=PROTOCOL),  # 5.0 3.8.3.1: a Protocol Error
    "subscribe-reserved-bits-v5": Bad(V5, _sub(0xC1), codes=MALFORMED),
    "subscribe-retain-handling-3-v5": Bad(V5, _sub(0x31), codes=PROTOCOL),
    "subscribe-shared-no-local-v5": Bad(V5, _sub(0x05, "$share/g/a"), codes=PROTOCOL),
    "publish-subscription-identifier-v5": Bad(
        V5, publish_x("a", V5, properties=encode_properties((SUBSCRIPTION_ID, 1))), codes=PROTOCOL
    ),
    "topic-alias-0-v5": Bad(V5, publish_x("a", V5, properties=encode_properties((TOPIC_ALIAS, 0))),
                            codes=frozenset({0x94})),
    "topic-alias-above-maximum-v5": Bad(V5, publish_x("a", V5, properties=encode_properties((TOPIC_ALIAS, 11))),
                                        codes=frozenset({0x94})),
    "topic-alias-unknown-v5": Bad(V5, publish_x("", V5, properties=encode_properties((TOPIC_ALIAS, 3))),
                                  codes=frozenset({0x82, 0x94})),
    "disconnect-sets-expiry-after-0-v5": Bad(V5, packet(0xE0, b"\x00" + encode_properties((SESSION_EXPIRY, 9))),
                                             codes=PROTOCOL),
    "subscribe-subscription-id-0-v5": Bad(V5, subscribe_packet(1, [("a", 1)], properties=encode_properties(
                                          (SUBSCRIPTION_ID, 0))), codes=EITHER),
    "publish-duplicate-property-v5": Bad(V5, publish_x("a", V5, properties=DUPLICATE_CONTENT_TYPE), codes=PROTOCOL),
    # instead of, or in, the CONNECT
    "packet-before-connect": Bad(V5, PINGREQ_PACKET, connected=False),
    "publish-before-connect": Bad(V311, publish_x("a", V311), connected=False),
    "garbage-http": Bad(V5, HTTP_GET, connected=False),
    "garbage-connect": Bad(V5, b"\x10\x05garbage", connected=False),
    "connect-reserved-flag-v311": Bad(V311, connect_packet("r", V311, reserved_flag=True), connected=False),
    "connect-reserved-flag-v5": Bad(V5, connect_packet("r", V5, reserved_flag=True), connected=False,
                                    connack=frozenset({(V5, 0x81)})),
    "connect-will-qos3-v311": Bad(V311, connect_packet("r", V311, will=("w", b"x", 3, False)), connected=False),
    "connect-password-without-user-v311": Bad(V311, connect_packet("r", V311, password="pw"), connected=False),
    "connect-will-topic-wildcard-v311": Bad(V311, connect_packet("r", V311, will=("w/#", b"x", 0, False)),
                                            connected=False),
    "connect-will-topic-wildcard-v5": Bad(V5, connect_packet("r", V5, will=("w/#", b"x", 0, False)), connected=False,
                                          connack=frozenset({(V5, 0x81), (V5, 0x82), (V5, 0x90)})),
    "connect-invalid-utf8-client-id-v311": Bad(V311, connect_packet("r\udcff", V311), connected=False),
    "connect-duplicate-property-v5": Bad(V5, connect_packet("r", V5, properties=encode_properties(
                                         (SESSION_EXPIRY, 1), (SESSION_EXPIRY, 2))), connected=False,
                                         connack=frozenset({(V5, 0x81), (V5, 0x82)})),
    "connect-receive-maximum-0-v5": Bad(V5, connect_packet("r", V5, properties=encode_properties((RECEIVE_MAXIMUM, 0))),
                                        connected=False, connack=frozenset({(V5, 0x81), (V5, 0x82)})),
    "connect-maximum-packet-size-0-v5": Bad(V5, connect_packet("r", V5, properties=encode_properties(
                                            (MAXIMUM_PACKET_SIZE, 0))), connected=False,
                                            connack=frozenset({(V5, 0x81), (V5, 0x82)})),
    "connect-auth-method-v5": Bad(V5, connect_packet("r", V5, properties=encode_properties((0x15, "SCRAM-SHA-1"))),
                                  connected=False, connack=frozenset({(V5, 0x8C), (V5, 0x87)}), connack_required=True),
    "connect-mqtt-level-3": Bad(V311, connect_packet("r", V311, level=3), connected=False,
                                connack=BAD_VERSION_V311, connack_required=True),
    "connect-mqtt-level-6": Bad(V311, connect_packet("r", V311, level=6), connected=False,
                                connack=frozenset({(V311, 0x01), (V5, 0x84)}), connack_required=True),
    "connect-mqisdp-level-3": Bad(V311, connect_packet("r", V311, protocol_name=b"MQIsdp", level=3), connected=False,
                                  connack=BAD_VERSION_V311, connack_required=True),
}  # fmt: skip


@pytest.fixture
def healthy(shared_broker: RunningBroker, peers: Peers) -> Callable[[], None]:
    """A well-behaved paho pair; the returned check proves both still work and were not disconnected."""
    watcher = peers.new(shared_broker, "healthy-watcher", V5)
    sender = peers.new(shared_broker, "healthy-sender", V311)
    watcher.subscribe("alive/#", 1)
    count = 0

    def check() -> None:
        nonlocal count
        count += 1
        sender.publish(f"alive/{count}", b"ok", 1)
        assert watcher.expect_one().topic == f"alive/{count}"
        assert not watcher.disconnected.is_set() and not sender.disconnected.is_set()

    check()
    return check


@pytest.mark.parametrize("case", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_illegal_input_closes_only_that_connection(
    shared_broker: RunningBroker, peers: Peers, healthy: Callable[[], None], case: Bad
) -> None:
    """[MQTT-4.8.0-1 (3.1.1), MQTT-4.13.1-1 (5.0), MQTT-3.1.4-1, MQTT-3.1.2-2] a malformed packet or protocol
    error closes that connection (5.0: after DISCONNECT with the right reason code, or CONNACK for CONNECT
    errors), while other clients keep working."""
    log_start = len(shared_broker.log_text())
    raw = peers.raw_client(shared_broker)
    if case.connected:
        raw.connect("bad", case.version)
    raw.send(case.data)
    packets = raw.read_until_closed()
    if case.connected and case.version == V5:
        assert case.codes is not None
        assert len(packets) == 1 and packets[0].type == DISCONNECT, f"expected one DISCONNECT, got {packets}"
        code = packets[0].reason_code()
        assert code in case.codes, f"DISCONNECT reason {code:#x}, expected one of {sorted(map(hex, case.codes))}"
    elif packets or case.connack_required:
        assert len(packets) == 1 and packets[0].type == CONNACK, f"expected one CONNACK, got {packets}"
        body = packets[0].body
        sent = (V311 if len(body) == 2 else V5, body[1])
        assert sent in case.connack, f"CONNACK {body.hex(' ')}, expected one of {sorted(case.connack)}"
    else:
        assert packets == [], f"expected the connection closed without a reply, got {packets}"
    healthy()
    assert "Traceback" not in shared_broker.log_text()[log_start:]


def test_receive_maximum_exceeded(broker_process: StartBroker, peers: Peers) -> None:
    """[MQTT-3.3.4-9] 5.0 more unacknowledged QoS 2 PUBLISHes than the announced Receive Maximum (2):
    DISCONNECT 0x93."""
    broker = broker_process("receive_maximum = 2")
    raw = peers.raw_client(broker)
    connack = raw.connect("flood", V5)
    assert connack.properties().get(RECEIVE_MAXIMUM) == [2]
    for pid in (1, 2, 3):
        raw.send(publish_x("rm/t", V5, 2, pid))
    packets = raw.read_until_closed()
    assert [p.type for p in packets] == [PUBREC, PUBREC, DISCONNECT], packets
    assert packets[2].reason_code() == 0x93


def test_receive_maximum_counts_only_unacknowledged(broker_process: StartBroker, peers: Peers) -> None:
    """[MQTT-3.3.4-9] 5.0 QoS 2 flows completed with PUBREL/PUBCOMP free their place in the Receive Maximum."""
    broker = broker_process("receive_maximum = 2")
    raw = peers.raw_client(broker)
    raw.connect("steady", V5)
    for pid in range(1, 8):
        raw.send(publish_x("rm/t", V5, 2, pid))
        assert raw.expect(PUBREC).body[:2] == pid.to_bytes(2, "big")
        raw.send(pubrel_packet(pid))
        assert raw.expect(7).body[:2] == pid.to_bytes(2, "big")  # PUBCOMP


@pytest.mark.parametrize("version", VERSIONS)
def test_packet_larger_than_maximum_packet_size(broker_process: StartBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.2.2-15 / 4.13] a packet above the broker's Maximum Packet Size (100, announced to 5.0 clients) closes
    the connection (5.0: DISCONNECT 0x95); a packet of exactly 100 bytes is accepted."""
    broker = broker_process("max_packet_size = 100")
    raw = peers.raw_client(broker)
    connack = raw.connect("big", version)
    if version == V5:
        assert connack.properties().get(MAXIMUM_PACKET_SIZE) == [100]
    overhead = len(publish_x("mp/t", version, 1)) - 1  # the packet without its 1-byte payload
    fits = publish_packet("mp/t", b"x" * (100 - overhead), 1, 1, version=version)
    assert len(fits) == 100
    raw.send(fits)
    assert raw.expect(PUBACK).body[:2] == b"\x00\x01"
    raw.send(publish_packet("mp/t", b"x" * 200, 1, 2, version=version))
    packets = raw.read_until_closed()
    if version == V5:
        assert [(p.type, p.reason_code()) for p in packets] == [(DISCONNECT, 0x95)]
    else:
        assert packets == []


def test_no_connect_within_connect_timeout(broker_process: StartBroker, peers: Peers) -> None:
    """[MQTT-3.1.4 / 4.2] a connection that sends no CONNECT is closed after connect_timeout (1 s)."""
    broker = broker_process("connect_timeout = 1")
    raw = peers.raw_client(broker)
    start = time.monotonic()
    assert raw.read_until_closed(timeout=4) == []
    assert 0.8 <= time.monotonic() - start <= 2.0


@pytest.mark.parametrize("version", VERSIONS)
def test_empty_client_id(shared_broker: RunningBroker, peers: Peers, version: int) -> None:
    """[MQTT-3.1.3-6/-8, MQTT-3.2.2-16] an empty client id: 5.0 gets an Assigned Client Identifier; 3.1.1 is
    accepted with clean session 1 and refused (return code 2) with clean session 0."""
    raw = peers.raw_client(shared_broker)
    connack = raw.connect("", version)
    if version == V5:
        assigned = connack.properties().get(ASSIGNED_CLIENT_ID)
        assert assigned and assigned[0], "no Assigned Client Identifier"
        return
    refused = peers.raw_client(shared_broker)
    refused.send(connect_packet("", V311, clean=False))
    assert [(p.type, p.body) for p in refused.read_until_closed()] == [(CONNACK, b"\x00\x02")]


INVALID_FILTERS = [
    pytest.param(V311, "a/b#", id="v311-hash-not-alone"),
    pytest.param(V311, "a+/b", id="v311-plus-not-alone"),
    pytest.param(V311, "#/a", id="v311-hash-not-last"),
    pytest.param(V311, "", id="v311-empty"),
    pytest.param(V5, "a/b#", id="v5-hash-not-alone"),
    pytest.param(V5, "a/+b", id="v5-plus-not-alone"),
    pytest.param(V5, "a/#/b", id="v5-hash-not-last"),
    pytest.param(V5, "", id="v5-empty"),
    pytest.param(V5, "$share/g", id="v5-share-without-filter"),
    pytest.param(V5, "$share//a", id="v5-share-empty-name"),
    pytest.param(V5, "$share/g+/a", id="v5-share-name-wildcard"),
]


@pytest.mark.parametrize(("version", "topic_filter"), INVALID_FILTERS)
def test_invalid_topic_filter(shared_broker: RunningBroker, peers: Peers, version: int, topic_filter: str) -> None:
    """[MQTT-4.7.1-1/-2, MQTT-4.7.3-1, MQTT-4.8.2-1/-2] an invalid topic filter is refused: a SUBACK failure code
    (3.1.1 0x80, 5.0 >= 0x80) or closing the connection (5.0: after DISCONNECT 0x81/0x82/0x8F)."""
    raw = peers.raw_client(shared_broker)
    raw.connect("filters", version)
    raw.send(subscribe_packet(1, [(topic_filter, 1)], version=version))
    reply = raw.read_packet()
    if reply is not None and reply.type == SUBACK:
        codes = reply.suback_codes(version)
        assert len(codes) == 1 and codes[0] >= 0x80, f"{topic_filter!r} granted: {codes}"
        return
    packets = ([reply] if reply is not None else []) + raw.read_until_closed()
    if version == V5:
        assert [p.type for p in packets] == [DISCONNECT], packets
        assert packets[0].reason_code() in (0x81, 0x82, 0x8F)
    else:
        assert packets == []


@pytest.mark.parametrize("version", VERSIONS)
def test_pipelined_packets_during_password_check(
    broker_process: StartBroker, security: str, peers: Peers, version: int
) -> None:
    """[MQTT-3.1.4 "Clients need not wait for a CONNACK"] CONNECT with a password, SUBSCRIBE and PUBLISH sent at once:
    the packets that arrive while the password is checked are processed, in order, after the CONNACK."""
    broker = broker_process(security)
    raw = peers.raw_client(broker)
    raw.send(connect_packet("pipe", version, username="alice", password="wonderland")
             + subscribe_packet(1, [("home/pipe", 1)], version=version)
             + publish_packet("home/pipe", b"pipelined", 1, 2, version=version))  # fmt: skip
    assert raw.expect(CONNACK).reason_code(version) == 0
    assert raw.expect(SUBACK).suback_codes(version) == [1]
    replies = sorted((next_packet(raw), next_packet(raw)), key=lambda p: p.type)
    assert [p.type for p in replies] == [PUBLISH, PUBACK]
    assert replies[0].publish_parts(version)[2] == b"pipelined"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", ["connect", "connect-password", "publish-qos1"])
def test_replies_not_dropped_by_a_following_disconnect(
    broker_process: StartBroker, security: str, peers: Peers, version: int, case: str
) -> None:
    """[MQTT-3.1.4-4, MQTT-4.3.2-2] a CONNECT (or QoS 1 PUBLISH) followed at once by DISCONNECT still gets its
    CONNACK (PUBACK) before the broker closes the connection, and the message is forwarded."""
    auth = case == "connect-password"
    broker = broker_process(security if auth else "")
    credentials = {"username": "alice", "password": "wonderland"} if auth else {}
    watcher = peers.new(broker, "watcher", version, **credentials)
    watcher.subscribe("home/pipe", 1)
    raw = peers.raw_client(broker)
    if case == "publish-qos1":
        raw.connect("pipe", version)
        raw.send(publish_packet("home/pipe", b"pipelined", 1, 5, version=version) + DISCONNECT_PACKET)
        expected = [(PUBACK, b"\x00\x05")]
    else:
        raw.send(connect_packet("pipe", version, **credentials)
                 + publish_packet("home/pipe", b"pipelined", 0, version=version) + DISCONNECT_PACKET)  # fmt: skip
        expected = [(CONNACK, b"\x00\x00")]
    assert watcher.expect_one().payload == b"pipelined"
    packets = raw.read_until_closed(timeout=2)
    assert [(p.type, p.body[:2]) for p in packets] == expected


@pytest.mark.parametrize("stage", ["connack", "disconnect"])
def test_reason_string_respects_client_maximum_packet_size(
    broker_process: StartBroker, security: str, peers: Peers, stage: str
) -> None:
    """[MQTT-3.2.2-19, MQTT-3.14.2-3, MQTT-3.1.2-24] the broker leaves out a Reason String that would make a CONNACK
    or DISCONNECT larger than the client's Maximum Packet Size (20 bytes)."""
    broker = broker_process(security if stage == "connack" else "")
    small = encode_properties((MAXIMUM_PACKET_SIZE, 20))
    raw = peers.raw_client(broker)
    if stage == "connack":
        raw.send(connect_packet("small", V5, properties=small))  # anonymous: refused with a reason
    else:
        raw.connect("small", V5, properties=small)
        raw.send(publish_x("a/+", V5))  # a protocol error: DISCONNECT
    packets = raw.read_until_closed()
    assert packets and packets[-1].type in (CONNACK, DISCONNECT)
    sizes = [len(p.body) + 2 for p in packets]
    assert max(sizes) <= 20, f"packets of {sizes} bytes sent to a client with Maximum Packet Size 20"
