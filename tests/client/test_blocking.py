"""The blocking client (``mqttchat pub``/``sub``'s way to a broker without asyncio): QoS 0/1/2 both ways, MQTT 3.1.1
and 5.0, TLS, refusals, a broker that ends the connection, keepalive and deadlines, against mosquitto and a
scripted fake broker."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from benchmarks.certs import CertSet
from mqttchat.client import ClientOptions, TLSOptions, parse_url
from mqttchat.client.blocking import BlockingClient, supports
from mqttchat.client.errors import (
    BrokerProtocolError,
    ConnackRefused,
    ConnectionLost,
    ConnectionRefused,
    ConnectTimeout,
    SubscriptionRefused,
    TLSError,
)
from mqttchat.client.proxy import ProxyOptions
from mqttchat.protocol import (
    Disconnect,
    Packet,
    PingReq,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    ReasonCode,
    SubAck,
    Subscribe,
    Subscription,
)
from tests.client.test_tls_ws import tls_broker
from tests.helpers.brokers import RunningBroker, free_port
from tests.helpers.fake_broker import Close, connack_then, fake_broker, rabbit_like


def options(port: int, version: int = 5, **overrides: Any) -> ClientOptions:
    return replace(ClientOptions(parse_url(f"mqtt://127.0.0.1:{port}"), version=version, reconnect=False), **overrides)


def connected(port: int, version: int = 5, **overrides: object) -> BlockingClient:
    client = BlockingClient(options(port, version, **overrides))
    assert client.connect(time.monotonic() + 10) is not None
    return client


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_and_receive_at_each_qos(mosquitto: RunningBroker, version: int, qos: int) -> None:
    """A publisher and a subscriber at the same QoS: the publish completes with the broker's acknowledgement,
    the subscriber receives the message once, live and then retained, with its QoS and retain flag."""
    sub = connected(mosquitto.port, version)
    codes = sub.subscribe([Subscription("b/#", qos)], deadline=time.monotonic() + 10)
    assert codes == [ReasonCode(qos)]
    publisher = connected(mosquitto.port, version)
    traced: list[str] = []
    publisher.add_trace_hook(lambda direction, packet, size: traced.append(f"{direction} {type(packet).__name__}"))
    result = publisher.publish("b/x", b"payload", qos, retain=True)
    assert result.ok and not result.downgraded
    publisher.disconnect()
    expected = {0: ["out Publish"], 1: ["out Publish", "in PubAck"], 2: ["out Publish", "in PubRec", "out PubRel",
                                                                          "in PubComp"]}[qos]  # fmt: skip
    assert traced == [*expected, "out Disconnect"]
    message = sub.next_message(time.monotonic() + 10)
    assert message is not None
    assert (message.topic, message.payload, message.qos, message.retain) == ("b/x", b"payload", qos, False)
    assert sub.next_message(time.monotonic() + 0.3) is None  # exactly once
    sub.disconnect()
    again = connected(mosquitto.port, version)
    again.subscribe([Subscription("b/x", qos)])
    retained = again.next_message(time.monotonic() + 10)
    assert retained is not None and retained.retain and retained.payload == b"payload"
    again.publish("b/x", b"", 0, retain=True)  # clear it
    again.disconnect()


def test_incoming_qos_2_is_completed_before_the_next_read_returns() -> None:
    """The QoS 2 handshake towards us (PUBREC for the PUBLISH, PUBCOMP for the PUBREL) is answered while the
    caller waits for messages, and the message is delivered once even when the broker sends it again (DUP)."""
    answered: list[Packet] = []

    def answer(packet: Packet, version: int) -> bytes:
        if isinstance(packet, Subscribe):
            publish = Publish("q2/t", b"once", 2, packet_id=7)
            return SubAck(packet.packet_id, (ReasonCode.GRANTED_QOS_2,)).encode(version) + publish.encode(version)
        if isinstance(packet, PubRec) and not answered:  # the first PUBREC only: then id 7 is free again
            answered.append(packet)
            duplicate = Publish("q2/t", b"once", 2, dup=True, packet_id=7)
            return duplicate.encode(version) + PubRel(7).encode(version)
        return b""

    with fake_broker(connack_then(answer)) as fake:
        client = connected(fake.port)
        client.subscribe([Subscription("q2/#", 2)])
        message = client.next_message(time.monotonic() + 10)
        assert message is not None and (message.payload, message.qos) == (b"once", 2)
        assert client.next_message(time.monotonic() + 0.5) is None
        client.disconnect()
    kinds = [type(p) for p in fake.received]
    assert PubRec in kinds and PubComp in kinds
    assert next(p for p in fake.received if isinstance(p, PubComp)).packet_id == 7


def test_a_refused_publish_has_the_reason_code() -> None:
    def answer(packet: Packet, version: int) -> bytes:
        if isinstance(packet, Publish):
            assert packet.packet_id is not None
            return PubAck(packet.packet_id, ReasonCode.NOT_AUTHORIZED).encode(version)
        return b""

    with fake_broker(connack_then(answer)) as fake:
        client = connected(fake.port)
        result = client.publish("t", b"x", 1)
        client.disconnect()
    assert not result.ok and result.reason_code is ReasonCode.NOT_AUTHORIZED


def test_tls_with_the_right_ca_and_a_failed_verification(
    mosquitto_factory: Callable[..., RunningBroker], certs: CertSet
) -> None:
    broker = tls_broker(mosquitto_factory, certs)
    target = parse_url(f"mqtts://127.0.0.1:{broker.port}")
    good = BlockingClient(ClientOptions(target, tls=TLSOptions(ca_file=str(certs.ca)), reconnect=False))
    assert good.connect() is not None
    good.subscribe([Subscription("tls/t", 1)])
    assert good.publish("tls/t", b"secret", 1).ok
    message = good.next_message(time.monotonic() + 10)
    assert message is not None and message.payload == b"secret"
    good.disconnect()
    bad = BlockingClient(ClientOptions(target, tls=TLSOptions(), reconnect=False))  # the system's CAs only
    with pytest.raises(TLSError, match=r"TLS verification of mqtts://127\.0\.0\.1:.* failed: .*certificate subject: "):
        bad.connect()


def test_refused_credentials_keep_the_reason_code(
    mosquitto_factory: Callable[..., RunningBroker], tmp_path: Path
) -> None:
    passwd = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "bob", "pw"], check=True)
    broker = mosquitto_factory(f"allow_anonymous false\npassword_file {passwd}\n")
    for version, code, words in (
        (5, ReasonCode.NOT_AUTHORIZED, "Not authorized (0x87)"),
        (4, ReasonCode.NOT_AUTHORIZED, "not authorized (MQTT 3.1.1 return code 5)"),  # mosquitto's choices
    ):
        client = BlockingClient(options(broker.port, version, username="bob", password="bad"))
        with pytest.raises(ConnackRefused) as refused:
            client.connect()
        assert refused.value.reason_code is code
        assert words in str(refused.value)


def test_nothing_listening_is_connection_refused() -> None:
    port = free_port()
    with pytest.raises(ConnectionRefused, match=f"connection refused by 127.0.0.1:{port}: is a broker running there"):
        BlockingClient(options(port)).connect()


def test_mqtt_5_refused_falls_back_to_3_1_1() -> None:
    with fake_broker(rabbit_like) as fake:
        client = BlockingClient(options(fake.port, version_fallback=True))
        caps = client.connect()
        assert caps is not None and caps.version == 4
        assert client.version_fallback is not None and "connected with MQTT 3.1.1" in client.version_fallback
        result = client.publish("t", b"x", 2)
        assert result.downgraded  # RabbitMQ answers QoS 2 with PUBACK
        assert client.downgraded_publishes == 1
        client.disconnect()
    assert fake.connections == 2


def test_the_broker_disconnecting_ends_the_wait_with_its_reason() -> None:
    def answer(packet: Packet, version: int) -> bytes:
        if isinstance(packet, Subscribe):
            suback = SubAck(packet.packet_id, (ReasonCode.SUCCESS,)).encode(version)
            return Close(suback + Disconnect(ReasonCode.SERVER_SHUTTING_DOWN).encode(version))
        return b""

    with fake_broker(connack_then(answer)) as fake:
        client = connected(fake.port)
        assert client.subscribe([Subscription("a", 0)]) == [ReasonCode.SUCCESS]
        with pytest.raises(ConnectionLost, match="the broker disconnected: Server shutting down") as lost:
            client.next_message(time.monotonic() + 10)
        assert lost.value.reason_code is ReasonCode.SERVER_SHUTTING_DOWN
        client.disconnect()


def test_a_connection_closed_while_a_publish_waits_fails_it() -> None:
    def answer(packet: Packet, version: int) -> bytes:
        return Close(b"") if isinstance(packet, Publish) else b""

    with fake_broker(connack_then(answer)) as fake:
        client = connected(fake.port)
        started = time.monotonic()
        with pytest.raises(ConnectionLost, match=f"connection to mqtt://127.0.0.1:{fake.port} lost"):
            client.publish("t", b"x", 1)
        assert time.monotonic() - started < 5
        client.disconnect()


def test_a_subscribe_answered_by_closing_is_a_refused_subscription() -> None:
    def answer(packet: Packet, version: int) -> bytes:
        return Close(b"") if isinstance(packet, Subscribe) else b""

    with fake_broker(connack_then(answer)) as fake:
        client = connected(fake.port)
        with pytest.raises(SubscriptionRefused, match="closed the connection in answer to SUBSCRIBE 'secret/#'"):
            client.subscribe([Subscription("secret/#", 1)])


def test_a_malformed_answer_is_a_protocol_error() -> None:
    def answer(packet: Packet, version: int) -> bytes:
        if isinstance(packet, Subscribe):
            return SubAck(packet.packet_id, (ReasonCode.SUCCESS,) * 2).encode(version)
        return b""

    with fake_broker(connack_then(answer)) as fake:
        client = connected(fake.port)
        with pytest.raises(BrokerProtocolError, match="SUBACK has 2 reason codes for 1 topic filters"):
            client.subscribe([Subscription("a", 0)])
    assert isinstance(fake.received[-1], Disconnect)  # MQTT 5: the fault named to the broker
    assert fake.received[-1].reason_code is ReasonCode.PROTOCOL_ERROR


def test_no_connack_is_a_connect_timeout_or_the_deadline() -> None:
    with fake_broker(lambda packet, version: b"") as fake:
        client = BlockingClient(options(fake.port, connect_timeout=0.5))
        with pytest.raises(ConnectTimeout, match=r"sent no CONNACK within 0\.5 s"):
            client.connect()
        assert BlockingClient(options(fake.port)).connect(time.monotonic() + 0.3) is None


def test_keepalive_pings_and_a_dead_broker_is_noticed() -> None:
    """Idle for a keepalive period: PINGREQ; PINGRESP overdue for another: the connection is declared dead."""
    with fake_broker(connack_then()) as fake:  # never answers PINGREQ
        client = connected(fake.port, keepalive=1)
        started = time.monotonic()
        with pytest.raises(ConnectionLost, match=r"no PINGRESP from .* within 1 s") as lost:
            client.next_message(time.monotonic() + 10)
        took = time.monotonic() - started
        assert lost.value.reason_code is ReasonCode.KEEP_ALIVE_TIMEOUT
    assert any(isinstance(p, PingReq) for p in fake.received)
    assert 1.5 < took < 5, took


def test_keepalive_answered_keeps_the_connection(mosquitto: RunningBroker) -> None:
    client = connected(mosquitto.port, keepalive=1)
    client.subscribe([Subscription("idle", 0)])
    assert client.next_message(time.monotonic() + 2.5) is None  # two pings answered meanwhile
    assert client.publish("idle", b"still here", 1).ok
    message = client.next_message(time.monotonic() + 10)
    assert message is not None and message.payload == b"still here"
    client.disconnect()


def test_what_it_serves_and_what_stays_with_the_asyncio_client() -> None:
    plain = options(1883)
    assert supports(plain)
    assert supports(ClientOptions(parse_url("mqtts://broker:8883"), tls=TLSOptions()))
    assert not supports(ClientOptions(parse_url("ws://broker:80/mqtt")))
    assert not supports(options(1883, proxy=ProxyOptions("socks5", "proxy", 1080)))
