"""The broker with our own client: listeners, limits, accounting, $SYS, and the `mqttchat broker` command."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchmarks.certs import CertSet
from mqttchat.broker.config import ListenerConfig
from mqttchat.broker.server import Broker
from mqttchat.client import ClientOptions, ConnackRefused, MQTTClient, TLSOptions, parse_url
from mqttchat.protocol import Properties, ReasonCode
from tests.helpers.brokers import broker_config
from tests.helpers.reading import stop_reading


async def get(stream: Any, timeout: float = 5.0) -> Any:
    async with asyncio.timeout(timeout):
        return await stream.get()


async def test_versions_talk_to_each_other(broker: Broker) -> None:
    async with (
        MQTTClient(broker.url, version=4, client_id="old") as old,
        MQTTClient(broker.url, client_id="new") as new,
    ):
        old_stream, new_stream = old.messages(), new.messages()
        await old.subscribe("mix/#", qos=2)
        await new.subscribe("mix/#", qos=2)
        await new.publish("mix/a", "from 5", qos=2, properties=Properties(content_type="text/plain"))
        await old.publish("mix/b", "from 3.1.1", qos=1)
        assert [(await get(old_stream)).payload for _ in range(2)] == [b"from 5", b"from 3.1.1"]
        first = await get(new_stream)
        assert first.properties.content_type == "text/plain"
        assert (await get(new_stream)).payload == b"from 3.1.1"


async def test_fan_out_to_mixed_versions_and_qos_reuses_one_encoding_correctly(broker: Broker) -> None:
    """One message to many subscribers is encoded once per version; each copy carries its own packet id."""
    grants = [(5, 0), (5, 1), (5, 2), (4, 0), (4, 1), (4, 2), (5, 1), (4, 2)]
    clients = [MQTTClient(broker.url, version=v, client_id=f"fan-{i}") for i, (v, _) in enumerate(grants)]
    for client in clients:
        await client.connect()
    try:
        streams = [client.messages() for client in clients]
        for i, (client, (_, qos)) in enumerate(zip(clients, grants, strict=True)):
            await client.subscribe(f"private/{i}", qos=2)
            await client.subscribe("fan/#", qos=qos)
        async with MQTTClient(broker.url, client_id="fan-publisher") as publisher:
            for i in range(len(clients)):  # packet ids of the subscribers' sessions drift apart
                for _ in range(i * 3):
                    await publisher.publish(f"private/{i}", "warm-up", qos=1)
            for i, stream in enumerate(streams):
                for _ in range(i * 3):
                    assert (await get(stream)).payload == b"warm-up"
            props = Properties(content_type="text/plain", user_property=[("k", "v")])
            for n in range(40):
                await publisher.publish(f"fan/{n % 3}", f"message {n}", qos=n % 3, properties=props)
        for (version, granted), stream in zip(grants, streams, strict=True):
            got = [await get(stream) for _ in range(40)]
            assert [m.payload for m in got] == [f"message {n}".encode() for n in range(40)]
            assert [m.qos for m in got] == [min(n % 3, granted) for n in range(40)]
            if version == 5:
                assert all(m.properties.user_property == (("k", "v"),) for m in got)
        assert broker.core.stats.messages_dropped == 0
        # Every copy was acknowledged under the packet id it was sent with: nothing is left in flight.
        sessions = [broker.core.sessions[f"fan-{i}"] for i in range(len(clients))]
        async with asyncio.timeout(5):
            while any(session.outgoing.inflight for session in sessions):
                await asyncio.sleep(0.01)
    finally:
        for client in clients:
            await client.disconnect()


async def test_no_matching_subscribers_reason_code(broker: Broker) -> None:
    async with MQTTClient(broker.url) as client:
        result = await client.publish("nobody/listens", "x", qos=1)
        assert result.reason_code == ReasonCode.NO_MATCHING_SUBSCRIBERS and result.ok


async def test_connack_announces_the_configuration(broker_factory: Callable[..., Any]) -> None:
    broker = await broker_factory(maximum_qos=1, retain_available=False, receive_maximum=10, max_packet_size=2048,
                                  max_topic_alias=3, max_keepalive=30)  # fmt: skip
    async with MQTTClient(broker.url, keepalive=120) as client:
        caps = client.capabilities
        assert caps is not None
        assert (caps.maximum_qos, caps.retain_available, caps.receive_maximum) == (1, False, 10)
        assert (caps.maximum_packet_size, caps.topic_alias_maximum, caps.server_keep_alive) == (2048, 3, 30)
        assert client.session.keepalive == 30


async def test_queue_limit_drops_and_counts(broker_factory: Callable[..., Any]) -> None:
    broker = await broker_factory(max_queued_messages=5)
    away = MQTTClient(broker.url, client_id="away", clean_start=False, session_expiry=600)
    await away.connect()
    await away.subscribe("q/#", qos=1)
    await away.disconnect()
    async with MQTTClient(broker.url) as pub:
        for i in range(12):
            await pub.publish("q/x", str(i), qos=1)
    session = broker.core.sessions["away"]
    assert session.queued == 5 and session.dropped == 7
    assert broker.core.stats.messages_dropped == 7
    assert broker.core.sys_topics()["$SYS/broker/messages/dropped"] == "7"
    back = MQTTClient(broker.url, client_id="away", clean_start=False, session_expiry=600)
    stream = back.messages()
    await back.connect()
    assert [(await get(stream)).payload for _ in range(5)] == [str(i).encode() for i in range(5)]
    await back.disconnect()


async def test_slow_subscriber_is_bounded_and_others_keep_going(broker_factory: Callable[..., Any]) -> None:
    broker = await broker_factory(max_queued_messages=100, max_inflight_messages=10)
    stuck = MQTTClient(broker.url, client_id="stuck")
    await stuck.connect()
    await stuck.subscribe("load/#", qos=1)
    stop_reading(stuck)  # stops reading: acknowledgements stop too
    async with MQTTClient(broker.url, client_id="fine") as fine, MQTTClient(broker.url) as pub:
        stream = fine.messages(maxsize=10_000)
        await fine.subscribe("load/#", qos=1)
        for _ in range(1000):
            await pub.publish("load/x", bytes(1000), qos=1)
        got = [await get(stream) for _ in range(1000)]
        assert len(got) == 1000
    session = broker.core.sessions["stuck"]
    assert session.inflight == 10 and session.queued == 100  # bounded
    assert session.dropped == 1000 - 110
    await stuck.disconnect()


async def test_oversized_messages_are_not_sent_to_a_client_that_refuses_them(broker: Broker) -> None:
    async with (
        MQTTClient(broker.url, client_id="small", maximum_packet_size=200) as small,
        MQTTClient(broker.url) as pub,
    ):
        stream = small.messages()
        await small.subscribe("size/#", qos=1)
        await pub.publish("size/big", bytes(500), qos=1)
        await pub.publish("size/small", b"ok", qos=1)
        message = await get(stream)
        assert message.topic == "size/small"
        assert broker.core.sessions["small"].dropped == 1


async def test_unknown_authentication_method_is_refused(broker: Broker) -> None:
    class Method:
        name = "SCRAM-SHA-1"

        def initial_data(self) -> bytes | None:
            return b"x"

        def respond(self, data: bytes | None) -> bytes | None:
            return None

    with pytest.raises(ConnackRefused) as info:
        await MQTTClient(broker.url, auth=Method(), reconnect=False).connect()
    assert info.value.reason_code == ReasonCode.BAD_AUTHENTICATION_METHOD


async def test_sys_topics(broker_factory: Callable[..., Any]) -> None:
    broker = await broker_factory(sys_interval=1)
    async with MQTTClient(broker.url) as client:
        stream = client.messages()
        await client.subscribe("$SYS/broker/#")
        topics = {}
        async with asyncio.timeout(5):
            # The retained values first (published before we connected), then the next publication.
            while len(topics) < 14 or topics.get("$SYS/broker/clients/connected") != "1":
                message = await stream.get()
                topics[message.topic] = message.payload.decode()
        assert topics["$SYS/broker/version"].startswith("mqttchat ")
        assert int(topics["$SYS/broker/clients/connected"]) == 1
        for key in ("uptime", "messages/received", "messages/sent", "bytes/received", "bytes/sent",
                    "retained messages/count", "subscriptions/count", "messages/dropped"):  # fmt: skip
            assert f"$SYS/broker/{key}" in topics
    async with MQTTClient(broker.url) as other:
        stream = other.messages()
        await other.subscribe("#")
        await asyncio.sleep(0.3)
        assert all(not m.topic.startswith("$") for m in [stream.get_nowait() for _ in range(len(stream))])  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", ["mqtts", "ws", "wss"])
async def test_tls_and_websocket_listeners(certs: CertSet, kind: str) -> None:
    tls = kind in ("mqtts", "wss")
    listener = ListenerConfig(
        port=0,
        protocol="websockets" if kind.startswith("ws") else "mqtt",
        certfile=certs.server_cert if tls else None,
        keyfile=certs.server_key if tls else None,
    )
    async with Broker(dataclasses.replace(broker_config(), listeners=(listener,))) as broker:
        assert broker.url.startswith(f"{kind}://")
        options = ClientOptions(parse_url(broker.url), tls=TLSOptions(ca_file=str(certs.ca)) if tls else None)
        async with MQTTClient(options, client_id="a") as a, MQTTClient(options, client_id="b", version=4) as b:
            stream = b.messages()
            await b.subscribe("t", qos=2)
            big = bytes(range(256)) * 1000
            await a.publish("t", big, qos=2)
            assert (await get(stream)).payload == big


async def test_tls_listener_requiring_client_certificates(certs: CertSet) -> None:
    listener = ListenerConfig(port=0, certfile=certs.server_cert, keyfile=certs.server_key, cafile=certs.ca,
                              require_certificate=True)  # fmt: skip
    async with Broker(dataclasses.replace(broker_config(), listeners=(listener,))) as broker:
        with_cert = TLSOptions(ca_file=str(certs.ca), cert_file=str(certs.client_cert), key_file=str(certs.client_key))
        async with MQTTClient(ClientOptions(parse_url(broker.url), tls=with_cert)) as client:
            assert client.connected
        from mqttchat.client import ConnectError

        with pytest.raises(ConnectError, match="certificate"):
            await MQTTClient(ClientOptions(parse_url(broker.url), tls=TLSOptions(ca_file=str(certs.ca)),
                                          reconnect=False)).connect()  # fmt: skip


def test_broker_command_reports_config_errors_with_file_and_line(tmp_path: Path) -> None:
    conf = tmp_path / "broker.toml"
    conf.write_text("allow_anonymous = true\nmax_queued_message = 10\n")
    result = subprocess.run([sys.executable, "-m", "mqttchat", "broker", "-c", str(conf)],
                            capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert result.returncode == 2
    assert f"{conf}:2: max_queued_message: unknown key" in result.stderr
    assert "did you mean 'max_queued_messages'" in result.stderr
    assert "Traceback" not in result.stderr


def test_broker_command_serves_and_stops_on_sigterm(broker_process: Callable[..., Any]) -> None:
    broker = broker_process()
    done = subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-t", "t", "-m", "x", "-q", "1"],
                          capture_output=True, timeout=10, check=False)  # fmt: skip
    assert done.returncode == 0
    broker.stop()
    assert broker.proc.returncode == 0
    log = broker.log_text()
    assert "listening on mqtt://127.0.0.1" in log and "shutting down" in log
