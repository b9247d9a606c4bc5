"""TLS with generated certificates (and each way it fails), and MQTT over WebSocket."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from benchmarks.certs import CertSet
from mqttchat.client import ClientOptions, ConnectError, MQTTClient, TLSError, TLSOptions, parse_url
from tests.helpers.brokers import AmqttPorts, RunningBroker


def tls_broker(
    factory: Callable[..., RunningBroker], certs: CertSet, cert: str = "server", extra: str = ""
) -> RunningBroker:
    cert_file, key_file = getattr(certs, cert + "_cert"), getattr(certs, cert + "_key")
    return factory(f"cafile {certs.ca}\ncertfile {cert_file}\nkeyfile {key_file}\n{extra}")


def client(broker: RunningBroker, tls: TLSOptions, host: str = "127.0.0.1") -> MQTTClient:
    return MQTTClient(ClientOptions(parse_url(f"mqtts://{host}:{broker.port}"), tls=tls, reconnect=False))


async def test_tls_with_the_right_ca(mosquitto_factory: Callable[..., RunningBroker], certs: CertSet) -> None:
    broker = tls_broker(mosquitto_factory, certs)
    async with client(broker, TLSOptions(ca_file=str(certs.ca))) as c:
        await c.subscribe("t", qos=1)
        stream = c.messages()
        await c.publish("t", "secret", qos=1)
        async with asyncio.timeout(5):
            assert (await stream.get()).payload == b"secret"


@pytest.mark.parametrize(
    ("cert", "ca", "reason"),
    [
        ("server", "other_ca", "self-signed certificate in certificate chain"),  # mosquitto sends its CA
        ("expired", "ca", "certificate has expired"),
        ("wrong_host", "ca", "address mismatch, certificate is not valid for '127.0.0.1'"),
        ("self_signed", "ca", "self-signed certificate"),
    ],
)
async def test_tls_verification_failures_are_explained(
    mosquitto_factory: Callable[..., RunningBroker], certs: CertSet, cert: str, ca: str, reason: str
) -> None:
    broker = tls_broker(mosquitto_factory, certs, cert)
    with pytest.raises(TLSError) as info:
        await client(broker, TLSOptions(ca_file=str(getattr(certs, ca)))).connect()
    assert reason in info.value.reason
    assert reason in str(info.value)
    assert info.value.subject and "CN=" in info.value.subject  # the certificate the server presented
    assert "CN=" in str(info.value)


async def test_insecure_skips_verification(mosquitto_factory: Callable[..., RunningBroker], certs: CertSet) -> None:
    broker = tls_broker(mosquitto_factory, certs, "self_signed")
    async with client(broker, TLSOptions(insecure=True)) as c:
        assert c.connected


async def test_sni_name_differs_from_the_address(
    mosquitto_factory: Callable[..., RunningBroker], certs: CertSet
) -> None:
    broker = tls_broker(mosquitto_factory, certs, "wrong_host")
    options = TLSOptions(ca_file=str(certs.ca), server_hostname="broker.example.org")
    async with client(broker, options) as c:
        assert c.connected


async def test_client_certificate(mosquitto_factory: Callable[..., RunningBroker], certs: CertSet) -> None:
    broker = tls_broker(mosquitto_factory, certs, extra="require_certificate true\n")
    with_cert = TLSOptions(ca_file=str(certs.ca), cert_file=str(certs.client_cert), key_file=str(certs.client_key))
    async with client(broker, with_cert) as c:
        assert c.connected
    # With TLS 1.3 the refusal comes after the handshake: either the alert is read (TLSError "certificate
    # required") or the socket closes first; either way the error mentions the certificate.
    with pytest.raises(ConnectError, match="certificate"):
        await client(broker, TLSOptions(ca_file=str(certs.ca))).connect()


async def test_missing_tls_file_is_a_clear_error(certs: CertSet) -> None:
    with pytest.raises(TLSError, match=r"cannot read TLS file /nonexistent/ca\.pem"):
        await MQTTClient(
            ClientOptions(parse_url("mqtts://127.0.0.1:1"), tls=TLSOptions(ca_file="/nonexistent/ca.pem"))
        ).connect()


async def test_websocket_v5_refused_by_a_311_only_broker(amqtt_broker: AmqttPorts) -> None:
    """amqtt speaks only MQTT 3.1.1: it answers a 5.0 CONNECT with a 3.1.1 CONNACK "unacceptable protocol
    version", and we say so; with the fallback on, the client connects with 3.1.1."""
    url = f"ws://127.0.0.1:{amqtt_broker.ws}/mqtt"
    with pytest.raises(ConnectError, match=r"it does not take MQTT 5\.0: connect with MQTT 3\.1\.1"):
        await MQTTClient(url, version=5, reconnect=False).connect()
    async with MQTTClient(url, version=5, version_fallback=True, reconnect=False) as client:
        assert client.session.version == 4 and client.version_fallback is not None


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
async def test_websocket_with_amqtt(amqtt_broker: AmqttPorts, certs: CertSet, secure: bool) -> None:
    url = f"wss://127.0.0.1:{amqtt_broker.wss}/mqtt" if secure else f"ws://127.0.0.1:{amqtt_broker.ws}/mqtt"
    tls = TLSOptions(ca_file=str(certs.ca)) if secure else None
    options = ClientOptions(parse_url(url), version=4, tls=tls)
    async with (
        MQTTClient(options, client_id=f"ws-sub-{secure}") as sub,
        MQTTClient(options, client_id=f"ws-pub-{secure}") as pub,
    ):
        await sub.subscribe("ws/#", qos=2)
        stream = sub.messages()
        big = bytes(range(256)) * 400  # 100 KiB: several WebSocket frames' worth
        for qos in (0, 1, 2):
            assert (await pub.publish(f"ws/{qos}", big, qos=qos)).ok
        async with asyncio.timeout(10):
            got = [await stream.get() for _ in range(3)]
        assert [m.topic for m in got] == ["ws/0", "ws/1", "ws/2"]
        assert all(m.payload == big for m in got)


async def test_websocket_wrong_path_or_port_is_explained(amqtt_broker: AmqttPorts) -> None:
    with pytest.raises(ConnectError, match="is it a WebSocket listener"):
        await MQTTClient(f"ws://127.0.0.1:{amqtt_broker.tcp}/mqtt", version=4, connect_timeout=3).connect()
