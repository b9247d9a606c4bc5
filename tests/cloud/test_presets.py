"""Cloud presets: each service's wire result (target, SNI, ALPN, user name, password, URL) against its published
examples, the guards, and the whole connection through a TLS front that checks SNI and ALPN as the services do."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote_plus

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from benchmarks.certs import CertSet
from mqttchat.broker.config import ListenerConfig
from mqttchat.broker.server import Broker
from mqttchat.client import ClientOptions, MQTTClient
from mqttchat.client.proxy import ProxyOptions
from mqttchat.cloud.azure import AzureIdentity, SasTokenSource, parse_connection_string, sas_token
from mqttchat.cloud.jwt import JwtPasswordSource
from mqttchat.cloud.presets import LIMITS, CloudError, CloudSettings, apply, build
from mqttchat.protocol import Connect, Packet, ProtocolVersion
from tests.helpers.brokers import broker_config
from tests.helpers.proxies import Socks5Proxy
from tests.helpers.tls_front import TlsFront, service_certs

AWS = "a1b2c3d4e5f6g7-ats.iot.us-east-1.amazonaws.com"
HUB = "contoso.azure-devices.net"
KEY = base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
AWS_ENV = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------------------------------- AWS IoT Core


def test_aws_certificate_on_8883(certs: CertSet) -> None:
    made = build(CloudSettings("aws-iot", AWS, cert_file=str(certs.client_cert), key_file=str(certs.client_key)))
    assert made.target.url == f"mqtts://{AWS}:8883"
    assert made.tls.alpn == () and made.tls.server_hostname is None  # SNI: the endpoint itself
    assert made.username is None and made.credentials is None


def test_aws_certificate_on_443_offers_the_alpn(certs: CertSet) -> None:
    made = build(
        CloudSettings("aws-iot", AWS, port=443, cert_file=str(certs.client_cert), key_file=str(certs.client_key))
    )
    assert made.target.url == f"mqtts://{AWS}:443"
    assert made.tls.alpn == ("x-amzn-mqtt-ca",)


def test_aws_certificate_is_required() -> None:
    with pytest.raises(CloudError, match="needs the certificate and its key"):
        build(CloudSettings("aws-iot", AWS))


def test_aws_custom_authorizer_user_name() -> None:
    """AWS's documented form: ``username?x-amz-customauthorizer-name=…&token-key=…&…-signature=…``."""
    made = build(
        CloudSettings(
            "aws-iot", AWS, username="device1", authorizer="MyAuthorizer", authorizer_token_name="tokenKeyName",
            authorizer_token="tokenValue", authorizer_signature="c2lnbmF0dXJl+/=",
        )
    )  # fmt: skip
    assert made.target.url == f"mqtts://{AWS}:443"
    assert made.tls.alpn == ("mqtt",)
    assert made.username == (
        "device1?x-amz-customauthorizer-name=MyAuthorizer&tokenKeyName=tokenValue"
        "&x-amz-customauthorizer-signature=c2lnbmF0dXJl%2B%2F%3D"
    )


def test_aws_sigv4_websocket_url_from_environment_and_files(tmp_path: Path) -> None:
    clock = FakeClock(1_440_938_160.0)  # 2015-08-30T12:36:00Z, the signature test suite's time
    made = build(CloudSettings("aws-iot", AWS, websocket=True), AWS_ENV, clock)
    assert made.target.url == f"wss://{AWS}:443/mqtt"
    assert made.credentials is not None
    path = made.credentials.credentials().websocket_path
    assert path is not None and path.startswith("/mqtt?X-Amz-Algorithm=AWS4-HMAC-SHA256&")
    params = dict(parse_qsl(path.partition("?")[2]))
    assert params["X-Amz-Credential"] == "AKIDEXAMPLE/20150830/us-east-1/iotdevicegateway/aws4_request"
    assert params["X-Amz-Date"] == "20150830T123600Z"
    # The shared credentials file, with a session token, and the profile named by AWS_PROFILE.
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[default]\naws_access_key_id = NOTME\naws_secret_access_key = x\n"
        "[lab]\naws_access_key_id = AKIDLAB\naws_secret_access_key = secret\naws_session_token = TOKEN\n"
    )
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(credentials), "AWS_PROFILE": "lab", "HOME": str(tmp_path)}
    made = build(CloudSettings("aws-iot", AWS, websocket=True), env, clock)
    assert made.credentials is not None
    path = made.credentials.credentials().websocket_path or ""
    assert "X-Amz-Credential=AKIDLAB%2F20150830" in path and path.endswith("&X-Amz-Security-Token=TOKEN")
    with pytest.raises(CloudError, match=r"no AWS credentials: .* profile \[default\]"):
        build(CloudSettings("aws-iot", AWS, websocket=True), {"HOME": str(tmp_path / "none")}, clock)


def test_aws_guards_say_what_they_changed() -> None:
    limits = LIMITS["aws-iot"]
    assert limits.publish(2, True) == (1, True, ["AWS IoT Core takes QoS 1 at most: publishing with QoS 1"])
    kept, changes = limits.subscriptions([("#", 0), ("$SYS/#", 0)], default=True)
    assert kept == []
    assert len(changes) == 2 and "subscribing to nothing instead" in changes[0]
    # The user's own '#' is theirs to ask for; QoS capped, and more than 8 filters split into packets.
    kept, changes = limits.subscriptions([("#", 2), *((f"t/{i}", 1) for i in range(9))])
    assert kept[0] == ("#", 1) and len(kept) == 10
    assert changes == [
        "AWS IoT Core takes QoS 1 at most: subscribing to '#' with QoS 1",
        "AWS IoT Core takes 8 topic filters per SUBSCRIBE at most: sending 2",
    ]
    options = apply(ClientOptions(), build(CloudSettings("aws-iot", AWS, authorizer="a")))
    assert options.max_filters_per_subscribe == 8


# ------------------------------------------------------------------------------------------------ Azure IoT Hub


def test_azure_iot_hub_device() -> None:
    """Microsoft's example: hub contoso.azure-devices.net, device MyDevice01."""
    clock = FakeClock()
    made = build(CloudSettings("azure-iot-hub", HUB, client_id="MyDevice01", shared_access_key=KEY), clock=clock)
    assert made.client_id == "MyDevice01"
    assert made.target.url == f"mqtts://{HUB}:8883"
    assert made.version == ProtocolVersion.MQTT_3_1_1
    assert made.default_subscriptions == (("devices/MyDevice01/messages/devicebound/#", 1),)
    assert made.credentials is not None
    given = made.credentials.credentials()
    assert given.username == "contoso.azure-devices.net/MyDevice01/?api-version=2021-04-12"
    expiry = int(clock.now) + 3600
    assert given.expires_at == expiry
    # SharedAccessSignature sr={URL-encoded resource URI}&sig={signature}&se={expiry}: the signature is the
    # HMAC-SHA256, keyed with the decoded key, of the encoded URI and the expiry on two lines.
    resource = "contoso.azure-devices.net/devices/MyDevice01"
    digest = hmac.new(base64.b64decode(KEY), f"{quote_plus(resource)}\n{expiry}".encode(), hashlib.sha256).digest()
    assert given.password == (
        f"SharedAccessSignature sr={quote_plus(resource)}&sig={quote_plus(base64.b64encode(digest).decode())}"
        f"&se={expiry}"
    )


def test_azure_module_identity_and_connection_string() -> None:
    text = f"HostName={HUB};DeviceId=dev1;ModuleId=mod1;SharedAccessKey={KEY}"
    identity, key = parse_connection_string(text)
    assert identity == AzureIdentity(HUB, "dev1", "mod1") and key == KEY
    made = build(CloudSettings("azure-iot-hub", connection_string=text, websocket=True))
    assert made.client_id == "dev1/mod1"
    assert made.target.url == f"wss://{HUB}:443/$iothub/websocket"
    assert made.credentials is not None
    given = made.credentials.credentials()
    assert given.username == f"{HUB}/dev1/mod1/?api-version=2021-04-12"
    assert (given.password or "").startswith(
        f"SharedAccessSignature sr={quote_plus(HUB + '/devices/dev1/modules/mod1')}&"
    )
    with pytest.raises(ValueError, match="DeviceId= is missing"):
        parse_connection_string(f"HostName={HUB};SharedAccessKey={KEY}")
    with pytest.raises(ValueError, match="not base64"):
        sas_token("x", "not base64!", 1)


def test_sas_token_renewal_margin_with_an_injected_clock() -> None:
    clock = FakeClock()
    source = SasTokenSource(AzureIdentity(HUB, "d"), KEY, ttl=600, clock=clock)
    first = source.credentials()
    assert source.renew_before(first) == 60  # a tenth of its life
    clock.now += 100
    second = source.credentials()
    assert second.expires_at == (first.expires_at or 0) + 100 and second.password != first.password


def test_azure_guards() -> None:
    limits = LIMITS["azure-iot-hub"]
    assert limits.publish(1, True) == (
        1, False, ["Azure IoT Hub keeps no retained messages: publishing without the retain flag"]
    )  # fmt: skip
    kept, changes = limits.subscriptions(
        [("#", 0)], default=True, replacement=[("devices/d/messages/devicebound/#", 1)]
    )
    assert kept == [("devices/d/messages/devicebound/#", 1)]
    assert "subscribing to devices/d/messages/devicebound/# instead" in changes[0]


# ----------------------------------------------------------------------------- Event Grid, HiveMQ, EMQX, JWT


def test_event_grid(certs: CertSet) -> None:
    host = "ns1.westeurope-1.ts.eventgrid.azure.net"
    made = build(
        CloudSettings("azure-event-grid", host, username="client1-authn-ID", cert_file=str(certs.client_cert),
                      key_file=str(certs.client_key))
    )  # fmt: skip
    assert made.target.url == f"mqtts://{host}:8883"
    assert made.username == "client1-authn-ID" and made.client_id == "client1-authn-ID"
    assert LIMITS["azure-event-grid"].publish(2, True)[:2] == (1, False)
    with pytest.raises(CloudError, match="authentication name"):
        build(CloudSettings("azure-event-grid", host))


@pytest.mark.parametrize(
    ("kind", "host", "tls_url", "ws_url"),
    [
        ("hivemq-cloud", "abc123.s1.eu.hivemq.cloud", "mqtts://abc123.s1.eu.hivemq.cloud:8883",
         "wss://abc123.s1.eu.hivemq.cloud:8884/mqtt"),
        ("emqx-cloud", "x1y2z3.ala.us-east-1.emqxsl.com", "mqtts://x1y2z3.ala.us-east-1.emqxsl.com:8883",
         "wss://x1y2z3.ala.us-east-1.emqxsl.com:8084/mqtt"),
    ],
)  # fmt: skip
def test_broker_services(kind: str, host: str, tls_url: str, ws_url: str) -> None:
    assert build(CloudSettings(kind, host, username="u", password="p")).target.url == tls_url
    made = build(CloudSettings(kind, host, websocket=True, username="u", password="p"))
    assert made.target.url == ws_url and made.tls.server_hostname is None
    assert apply(ClientOptions(), made).effective_password == "p"
    with pytest.raises(CloudError, match="needs a user name and password"):
        build(CloudSettings(kind, host))


def _verify_jwt(token: str, public: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    def unb64(text: str) -> bytes:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    head, body, signature = token.split(".")
    header, claims = json.loads(unb64(head)), json.loads(unb64(body))
    data, raw = f"{head}.{body}".encode(), unb64(signature)
    if header["alg"] == "RS256":
        public.verify(raw, data, padding.PKCS1v15(), hashes.SHA256())
    else:
        assert len(raw) == 64
        r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        public.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    return header, claims


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_jwt_password(tmp_path: Path, algorithm: str) -> None:
    key: Any = (
        rsa.generate_private_key(65537, 2048) if algorithm == "RS256" else ec.generate_private_key(ec.SECP256R1())
    )
    path = tmp_path / "key.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    clock = FakeClock()
    made = build(
        CloudSettings("hivemq-cloud", "h.hivemq.cloud", username="u", jwt_key_file=str(path), jwt_audience="my-project",
                      jwt_ttl=1200),
        clock=clock,
    )  # fmt: skip
    assert made.credentials is not None
    given = made.credentials.credentials()
    header, claims = _verify_jwt(given.password or "", key.public_key())
    assert header == {"alg": algorithm, "typ": "JWT"}
    assert claims == {"iat": int(clock.now), "exp": int(clock.now) + 1200, "aud": "my-project"}
    assert given.username == "u" and given.expires_at == clock.now + 1200
    assert made.credentials.renew_before(given) == 120
    with pytest.raises(ValueError, match="RSA key signs RS256, not ES256"):
        JwtPasswordSource(rsa.generate_private_key(65537, 2048), algorithm="ES256")


# --------------------------------------------------------------------------- end to end, through a TLS front


@pytest.fixture(scope="module")
def cloud_certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA and a server certificate for the services' host names (as if the service presented it)."""
    return service_certs(tmp_path_factory.mktemp("cloud-certs"), [AWS, HUB, "abc123.s1.eu.hivemq.cloud"])


@pytest.fixture
async def plain_broker() -> AsyncIterator[dict[str, int]]:
    listeners = (ListenerConfig(port=0), ListenerConfig(port=0, protocol="websockets", path=""))
    async with Broker(broker_config(listeners=listeners)) as broker:
        yield {"mqtt": broker.listeners[0].port, "ws": broker.listeners[1].port}


@pytest.fixture
async def socks() -> AsyncIterator[Socks5Proxy]:
    """A SOCKS5 proxy that maps the services' names to loopback: the client connects by the real name, so it
    sends that name in SNI and in the WebSocket request, as it would to the service."""
    proxy = await Socks5Proxy(hosts={AWS: "127.0.0.1", HUB: "127.0.0.1"}).start()
    yield proxy
    await proxy.close()


async def through_front(options: ClientOptions, front: TlsFront, socks: Socks5Proxy, seen: list[Connect]) -> MQTTClient:
    """Connect with a preset's ``options`` to ``front`` (its port in place of the service's), recording CONNECTs."""
    target = replace(options.target, port=front.port)
    proxy = ProxyOptions("socks5", "127.0.0.1", socks.port)
    client = MQTTClient(replace(options, target=target, proxy=proxy, reconnect=False))

    def trace(direction: str, packet: Packet, size: int) -> None:
        if direction == "out" and isinstance(packet, Connect):
            seen.append(packet)

    client.add_trace_hook(trace)
    await client.connect()
    return client


async def test_aws_alpn_on_443_end_to_end(
    cloud_certs: dict[str, Path], plain_broker: dict[str, int], socks: Socks5Proxy
) -> None:
    front = await TlsFront(plain_broker["mqtt"], cloud_certs["cert"], cloud_certs["key"], ("x-amzn-mqtt-ca",)).start()
    seen: list[Connect] = []
    try:
        settings = CloudSettings(
            "aws-iot", AWS, port=443, ca_file=str(cloud_certs["ca"]), cert_file=str(cloud_certs["client_cert"]),
            key_file=str(cloud_certs["client_key"]), client_id="thing1",
        )  # fmt: skip
        made = build(settings)
        client = await through_front(apply(ClientOptions(), made), front, socks, seen)
        await client.disconnect()
        assert [(h.server_name, h.alpn) for h in front.hellos] == [(AWS, "x-amzn-mqtt-ca")]
        assert seen[0].client_id == "thing1"
        # Without the ALPN the front, like the service on 443, does not answer MQTT.
        bare = build(replace(settings, aws_auth="certificate"))
        with pytest.raises(Exception, match="closed the connection before CONNACK"):
            await through_front(apply(ClientOptions(), bare), front, socks, [])
        assert front.hellos[-1].alpn is None
    finally:
        await front.close()


async def test_aws_sigv4_websocket_end_to_end(
    cloud_certs: dict[str, Path], plain_broker: dict[str, int], socks: Socks5Proxy
) -> None:
    front = await TlsFront(plain_broker["ws"], cloud_certs["cert"], cloud_certs["key"]).start()
    try:
        clock = FakeClock(1_440_938_160.0)
        made = build(CloudSettings("aws-iot", AWS, websocket=True, ca_file=str(cloud_certs["ca"])), AWS_ENV, clock)
        client = await through_front(apply(ClientOptions(), made), front, socks, [])
        await client.disconnect()
        hello = front.hellos[0]
        assert hello.server_name == AWS
        request_line = hello.first_bytes.split(b"\r\n", 1)[0].decode()
        assert request_line.startswith("GET /mqtt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F")
        assert "X-Amz-Date=20150830T123600Z" in request_line and "&X-Amz-Signature=" in request_line
        assert f"Host: {AWS}" in hello.first_bytes.decode()
    finally:
        await front.close()


async def test_azure_sas_token_renewed_before_expiry_and_on_reconnect(
    cloud_certs: dict[str, Path], plain_broker: dict[str, int], socks: Socks5Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mqttchat.client.client as client_module

    monkeypatch.setattr(client_module, "RENEW_CHECK_INTERVAL", 0.02)
    front = await TlsFront(plain_broker["mqtt"], cloud_certs["cert"], cloud_certs["key"]).start()
    seen: list[Connect] = []
    try:
        clock = FakeClock()
        made = build(
            CloudSettings("azure-iot-hub", HUB, client_id="dev1", shared_access_key=KEY, sas_ttl=600,
                          ca_file=str(cloud_certs["ca"])),
            clock=clock,
        )  # fmt: skip
        client = await through_front(apply(ClientOptions(), made), front, socks, seen)
        try:
            assert seen[0].username == f"{HUB}/dev1/?api-version=2021-04-12"
            assert seen[0].protocol_version == ProtocolVersion.MQTT_3_1_1 and seen[0].client_id == "dev1"
            first = (seen[0].password or b"").decode()
            assert first.endswith(f"&se={int(clock.now) + 600}")
            # Not yet: 60 s before expiry is the margin.
            clock.now += 530
            await asyncio.sleep(0.1)
            assert len(seen) == 1
            clock.now += 20  # within the margin: the client connects again with a new token, at once
            async with asyncio.timeout(10):
                while len(seen) < 2 or not client.connected:
                    await asyncio.sleep(0.02)
            second = (seen[1].password or b"").decode()
            assert second != first and second.endswith(f"&se={int(clock.now) + 600}")
            assert [h.server_name for h in front.hellos] == [HUB, HUB]
        finally:
            await client.disconnect()
    finally:
        await front.close()


async def test_cli_cloud_preset_with_its_guard(
    cloud_certs: dict[str, Path], plain_broker: dict[str, int], socks: Socks5Proxy
) -> None:
    """``pub --cloud aws-iot --authorizer``: ALPN "mqtt", SNI, the authorizer's user name, QoS 2 lowered and said."""
    import os
    import sys

    front = await TlsFront(plain_broker["mqtt"], cloud_certs["cert"], cloud_certs["key"], ("mqtt",)).start()
    try:
        pub = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mqttchat", "pub", "--cloud", "aws-iot", "-h", AWS, "-p", str(front.port),
            "--authorizer", "MyAuth", "--authorizer-token", "tok=abc", "-u", "dev", "--cafile", str(cloud_certs["ca"]),
            "--proxy", f"socks5://127.0.0.1:{socks.port}", "-t", "t", "-m", "x", "-q", "2", "-d",
            env=os.environ, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(30):
            _, err = await pub.communicate()
        text = err.decode()
        assert pub.returncode == 0, text
        assert "mqttchat pub: AWS IoT Core takes QoS 1 at most: publishing with QoS 1" in text
        assert "dev?x-amz-customauthorizer-name=MyAuth&tok=abc" in text  # the CONNECT in the -d trace
        assert [(h.server_name, h.alpn) for h in front.hellos] == [(AWS, "mqtt")]
    finally:
        await front.close()


async def test_subscribe_is_split_into_packets_of_eight(plain_broker: dict[str, int]) -> None:
    """AWS IoT Core's limit: a subscribe() of 10 filters leaves as SUBSCRIBE packets of 8 and 2; one answer."""
    from mqttchat.client import parse_url
    from mqttchat.protocol import Subscribe

    options = ClientOptions(parse_url(f"mqtt://127.0.0.1:{plain_broker['mqtt']}"), max_filters_per_subscribe=8)
    sent: list[Packet] = []
    async with MQTTClient(options) as client:
        client.add_trace_hook(lambda direction, packet, size: sent.append(packet) if direction == "out" else None)
        codes = await client.subscribe(*(f"t/{i}" for i in range(10)), qos=1)
    assert codes == [1] * 10
    assert [len(p.subscriptions) for p in sent if isinstance(p, Subscribe)] == [8, 2]
