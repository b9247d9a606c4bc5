"""SOCKS5 and HTTP CONNECT proxies: TCP, TLS, WebSocket and secure WebSocket through test proxies on loopback.

The broker is reached by a name only the proxy can resolve (``broker.test``), so a connection that works proves
the proxy resolved it (remote DNS); the proxies record what they were asked and count the bytes they relayed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from benchmarks.certs import CertSet
from mqttchat.broker.config import ListenerConfig
from mqttchat.broker.server import Broker
from mqttchat.client import ClientOptions, MQTTClient, TLSOptions, parse_url
from mqttchat.client.proxy import (
    ProxyError,
    ProxyOptions,
    bypasses_proxy,
    parse_proxy_url,
    proxy_from_environment,
)
from tests.helpers.brokers import broker_config
from tests.helpers.proxies import HttpConnectProxy, Socks5Proxy

NAME = "broker.test"


@pytest.fixture
async def four_listeners(certs: CertSet) -> AsyncIterator[dict[str, int]]:
    """Our broker listening with mqtt, mqtts, ws and wss, each on a free port: scheme → port."""
    tls = {"certfile": certs.server_cert, "keyfile": certs.server_key}
    listeners = (
        ListenerConfig(port=0),
        ListenerConfig(port=0, **tls),  # type: ignore[arg-type]
        ListenerConfig(port=0, protocol="websockets"),
        ListenerConfig(port=0, protocol="websockets", **tls),  # type: ignore[arg-type]
    )
    async with Broker(broker_config(listeners=listeners)) as broker:
        yield {
            url.split("://")[0]: int(url.rsplit(":", 1)[1].split("/")[0]) for url in (x.url for x in broker.listeners)
        }


async def round_trip(options: ClientOptions) -> None:
    async with MQTTClient(options) as client:
        stream = client.messages()
        await client.subscribe("proxied", qos=1)
        await client.publish("proxied", "through", qos=1)
        async with asyncio.timeout(5):
            assert (await stream.get()).payload == b"through"


@pytest.mark.parametrize("kind", ["socks5", "http"])
@pytest.mark.parametrize("scheme", ["mqtt", "mqtts", "ws", "wss"])
async def test_every_transport_through_each_proxy(
    four_listeners: dict[str, int], certs: CertSet, kind: str, scheme: str
) -> None:
    proxy = await (Socks5Proxy if kind == "socks5" else HttpConnectProxy)(hosts={NAME: "127.0.0.1"}).start()
    try:
        port = four_listeners[scheme]
        target = parse_url(f"{scheme}://{NAME}:{port}/mqtt")
        # The certificate names 127.0.0.1 and localhost: SNI and the check use a name it holds.
        tls = TLSOptions(ca_file=str(certs.ca), server_hostname="localhost") if target.tls else None
        options = ClientOptions(
            target, tls=tls, proxy=ProxyOptions(kind, "127.0.0.1", proxy.port), reconnect=False, client_id="p"
        )
        await round_trip(options)
        # The proxy was asked for the name (it resolved it: this machine cannot), and carried the traffic.
        assert [(r.host, r.port, r.kind) for r in proxy.requests] == [
            (NAME, port, "name" if kind == "socks5" else "http")
        ]
        assert proxy.relayed > 20
    finally:
        await proxy.close()


async def test_socks5_with_a_password(four_listeners: dict[str, int]) -> None:
    proxy = await Socks5Proxy(hosts={NAME: "127.0.0.1"}, credentials=("alice", "s3cret")).start()
    try:
        target = parse_url(f"mqtt://{NAME}:{four_listeners['mqtt']}")
        good = parse_proxy_url(f"socks5h://alice:s3cret@127.0.0.1:{proxy.port}")
        await round_trip(ClientOptions(target, proxy=good, reconnect=False))
        assert proxy.requests[-1].credentials == ("alice", "s3cret")
        bad = parse_proxy_url(f"socks5://alice:wrong@127.0.0.1:{proxy.port}")
        with pytest.raises(ProxyError, match="refused the user name or password"):
            await MQTTClient(ClientOptions(target, proxy=bad, reconnect=False)).connect()
        none = parse_proxy_url(f"socks5://127.0.0.1:{proxy.port}")
        with pytest.raises(ProxyError, match="may need a user name and password"):
            await MQTTClient(ClientOptions(target, proxy=none, reconnect=False)).connect()
    finally:
        await proxy.close()


async def test_http_proxy_with_a_password(four_listeners: dict[str, int]) -> None:
    proxy = await HttpConnectProxy(hosts={NAME: "127.0.0.1"}, credentials=("bob", "pw:with:colons")).start()
    try:
        target = parse_url(f"mqtt://{NAME}:{four_listeners['mqtt']}")
        good = parse_proxy_url(f"http://bob:pw%3Awith%3Acolons@127.0.0.1:{proxy.port}")
        await round_trip(ClientOptions(target, proxy=good, reconnect=False))
        assert proxy.requests[-1].credentials == ("bob", "pw:with:colons")
        with pytest.raises(ProxyError, match="407 Proxy Authentication Required: give a user name"):
            await MQTTClient(ClientOptions(target, proxy=parse_proxy_url(f"127.0.0.1:{proxy.port}"))).connect()
    finally:
        await proxy.close()


@pytest.mark.parametrize("kind", ["socks5", "http"])
async def test_the_proxy_cannot_reach_the_broker(kind: str) -> None:
    proxy = await (Socks5Proxy if kind == "socks5" else HttpConnectProxy)().start()
    try:
        options = ClientOptions(
            parse_url("mqtt://nowhere.test:1883"), proxy=ProxyOptions(kind, "127.0.0.1", proxy.port)
        )
        with pytest.raises(ProxyError, match=r"nowhere\.test:1883"):
            await MQTTClient(options).connect()
        assert proxy.requests[0].host == "nowhere.test"
    finally:
        await proxy.close()


async def test_no_proxy_listening() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    options = ClientOptions(parse_url("mqtt://broker.test"), proxy=ProxyOptions("socks5", "127.0.0.1", port))
    with pytest.raises(ProxyError, match=f"cannot connect to the proxy socks5://127.0.0.1:{port}"):
        await MQTTClient(options).connect()


def test_proxy_urls() -> None:
    assert parse_proxy_url("socks5h://u:p%40ss@proxy.lan") == ProxyOptions("socks5h", "proxy.lan", 1080, "u", "p@ss")
    assert parse_proxy_url("proxy.lan:3128") == ProxyOptions("http", "proxy.lan", 3128)
    assert parse_proxy_url("http://[::1]:8888").url == "http://[::1]:8888"
    with pytest.raises(ValueError, match="unknown proxy scheme 'ftp'"):
        parse_proxy_url("ftp://x")
    with pytest.raises(ValueError, match="bad port"):
        parse_proxy_url("socks5://x:99999")


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "bypass"),
    [
        ("broker.example.com", 8883, "example.com", True),
        ("broker.example.com", 8883, ".example.com", True),
        ("broker.example.com", 8883, "*.example.com", True),
        ("example.com", 8883, "example.com", True),
        ("notexample.com", 8883, "example.com", False),
        ("broker.example.com", 8883, "example.com:1883", False),
        ("broker.example.com", 1883, "example.com:1883", True),
        ("10.1.2.3", 1883, "10.0.0.0/8", True),
        ("11.1.2.3", 1883, "10.0.0.0/8", False),
        ("::1", 1883, "[::1]:1883, other", True),
        ("anything", 1, "*", True),
        ("anything", 1, "", False),
    ],
)
def test_no_proxy(host: str, port: int, no_proxy: str, bypass: bool) -> None:
    assert bypasses_proxy(host, port, no_proxy) is bypass


def test_proxy_from_environment() -> None:
    env = {"ALL_PROXY": "socks5://s:1080", "HTTPS_PROXY": "http://h:3128", "http_proxy": "http://plain:80"}
    assert proxy_from_environment("b", 8883, tls=True, websocket=False, environ=env) == ProxyOptions("socks5", "s")
    assert proxy_from_environment("b", 443, tls=True, websocket=True, environ=env) == ProxyOptions("http", "h", 3128)
    assert proxy_from_environment("b", 80, tls=False, websocket=True, environ=env) == ProxyOptions("http", "plain", 80)
    # Lower case first, as curl reads them.
    env["all_proxy"] = "socks5h://lower"
    assert proxy_from_environment("b", 1883, tls=False, websocket=False, environ=env) == ProxyOptions(
        "socks5h", "lower"
    )
    env["NO_PROXY"] = "b"
    assert proxy_from_environment("b", 1883, tls=False, websocket=False, environ=env) is None
    assert proxy_from_environment("c", 1883, tls=False, websocket=False, environ={}) is None
    with pytest.raises(ValueError, match="ALL_PROXY: unknown proxy scheme"):
        proxy_from_environment("c", 1883, tls=False, websocket=False, environ={"ALL_PROXY": "gopher://x"})


async def test_cli_through_proxy_flag_and_environment(broker: Broker) -> None:
    """``sub`` through ALL_PROXY (SOCKS5), ``pub`` through ``--proxy`` (HTTP CONNECT), ``--proxy none`` direct."""
    import os
    import sys

    socks = await Socks5Proxy(hosts={NAME: "127.0.0.1"}).start()
    http = await HttpConnectProxy(hosts={NAME: "127.0.0.1"}).start()
    env = {**os.environ, "ALL_PROXY": f"socks5://127.0.0.1:{socks.port}", "NO_PROXY": "127.0.0.2"}
    cli = [sys.executable, "-m", "mqttchat"]
    try:
        # A retained message first (so the subscriber needs no wait for its SUBSCRIBE), then the subscriber.
        proxy_arg = f"http://127.0.0.1:{http.port}"
        pub = await asyncio.create_subprocess_exec(
            *cli, "pub", "-h", NAME, "-p", str(broker.port), "--proxy", proxy_arg, "-t", "cli/proxy", "-m", "hi",
            "-r", env=env, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(20):
            _, err = await pub.communicate()
        assert pub.returncode == 0, err
        sub = await asyncio.create_subprocess_exec(
            *cli, "sub", "-h", NAME, "-p", str(broker.port), "-t", "cli/proxy", "-C", "1", "-W", "20",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(20):
            out, err = await sub.communicate()
        assert sub.returncode == 0, err
        assert out == b"hi\n"
        assert [(r.host, r.kind) for r in socks.requests] == [(NAME, "name")]
        assert [(r.host, r.kind) for r in http.requests] == [(NAME, "http")]
        # --proxy none: direct, and this machine cannot resolve the name.
        direct = await asyncio.create_subprocess_exec(
            *cli, "pub", "-h", NAME, "-p", str(broker.port), "--proxy", "none", "-t", "x", "-m", "x",
            env=env, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(20):
            _, err = await direct.communicate()
        assert direct.returncode != 0 and b"cannot resolve host 'broker.test'" in err
        assert len(socks.requests) == 1
    finally:
        await socks.close()
        await http.close()


@pytest.mark.parametrize("kind", ["socks5", "http"])
async def test_real_peers_through_each_proxy(
    mosquitto_factory: Any, amqtt_broker: Any, certs: CertSet, kind: str
) -> None:
    """mosquitto over TLS (its certificate checked, SNI sent through the tunnel) and amqtt over secure WebSocket."""
    mosquitto = mosquitto_factory(f"cafile {certs.ca}\ncertfile {certs.server_cert}\nkeyfile {certs.server_key}\n")
    proxy = await (Socks5Proxy if kind == "socks5" else HttpConnectProxy)(hosts={NAME: "127.0.0.1"}).start()
    try:
        tls = TLSOptions(ca_file=str(certs.ca), server_hostname="localhost")
        via = ProxyOptions(kind, "127.0.0.1", proxy.port)
        # amqtt speaks MQTT 3.1.1 only.
        for url, version in ((f"mqtts://{NAME}:{mosquitto.port}", 5), (f"wss://{NAME}:{amqtt_broker.wss}/mqtt", 4)):
            options = ClientOptions(parse_url(url), version=version, tls=tls, proxy=via, reconnect=False)
            await round_trip(replace(options, client_id=f"real-{version}"))
        assert [(r.host, r.port) for r in proxy.requests] == [(NAME, mosquitto.port), (NAME, amqtt_broker.wss)]
    finally:
        await proxy.close()
