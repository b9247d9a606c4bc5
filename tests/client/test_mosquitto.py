"""The client against Debian's mosquitto: every QoS both ways, retained, will, sessions, properties, options."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from mqttchat.client import (
    ConnackRefused,
    ConnectionRefused,
    HostNotFound,
    Message,
    MessageStream,
    MQTTClient,
)
from mqttchat.protocol import Properties, ReasonCode, RetainHandling, Will
from tests.helpers.brokers import RunningBroker

VERSIONS = [pytest.param(5, id="v5"), pytest.param(4, id="v311")]


async def next_message(stream: MessageStream, timeout: float = 5.0) -> Message:
    async with asyncio.timeout(timeout):
        return await stream.get()


async def no_message(stream: MessageStream, wait: float = 0.3) -> None:
    await asyncio.sleep(wait)
    assert len(stream) == 0, f"unexpected message {stream.get_nowait()}"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("sub_qos", [0, 1, 2])
@pytest.mark.parametrize("pub_qos", [0, 1, 2])
async def test_every_qos_both_ways(mosquitto: RunningBroker, version: int, pub_qos: int, sub_qos: int) -> None:
    async with (
        MQTTClient(mosquitto.url, version=version, client_id="sub") as sub,
        MQTTClient(mosquitto.url, version=version, client_id="pub") as pub,
    ):
        assert await sub.subscribe("qos/#", qos=sub_qos) == [ReasonCode(sub_qos)]
        stream = sub.messages()
        for i in range(20):
            result = await pub.publish(f"qos/{i % 3}", f"m{i}", qos=pub_qos)
            assert result.ok
        got = [await next_message(stream) for _ in range(20)]
        assert [m.payload for m in got] == [f"m{i}".encode() for i in range(20)]  # in order
        assert {m.qos for m in got} == {min(pub_qos, sub_qos)}
        await no_message(stream, 0.1)


@pytest.mark.parametrize("version", VERSIONS)
async def test_retained_messages(mosquitto: RunningBroker, version: int) -> None:
    async with MQTTClient(mosquitto.url, version=version) as client:
        await client.publish("home/hall/light", "on", qos=1, retain=True)
        await client.publish("home/hall/door", "closed", qos=1, retain=True)
        stream = client.messages()
        await client.subscribe("home/#", qos=1)
        got = {(await next_message(stream)).topic for _ in range(2)}
        assert got == {"home/hall/light", "home/hall/door"}
        await client.publish("home/hall/light", b"", qos=1, retain=True)  # an empty payload deletes it
        await next_message(stream)  # the delete itself is delivered live
        await client.unsubscribe("home/#")
        await client.subscribe("home/#", qos=1)
        (only,) = [await next_message(stream)]
        assert only.topic == "home/hall/door" and only.retain
        await no_message(stream)


@pytest.mark.parametrize("version", VERSIONS)
async def test_will_on_unclean_disconnect_only(mosquitto: RunningBroker, version: int) -> None:
    async with MQTTClient(mosquitto.url, version=version, client_id="watcher") as watcher:
        await watcher.subscribe("status/#", qos=1)
        stream = watcher.messages()
        will = Will("status/device", b"offline", 1, False)
        clean = MQTTClient(mosquitto.url, version=version, client_id="clean", will=will, reconnect=False)
        await clean.connect()
        await clean.disconnect()
        await no_message(stream, 0.5)
        crash = MQTTClient(mosquitto.url, version=version, client_id="crash", will=will, reconnect=False)
        await crash.connect()
        assert crash._link is not None
        crash._link.abort()  # the network drops: no DISCONNECT
        message = await next_message(stream)
        assert (message.topic, message.payload) == ("status/device", b"offline")
        await crash.disconnect()


async def test_disconnect_with_will_message_v5(mosquitto: RunningBroker) -> None:
    async with MQTTClient(mosquitto.url, client_id="watcher") as watcher:
        await watcher.subscribe("status/#")
        stream = watcher.messages()
        client = MQTTClient(mosquitto.url, will=Will("status/x", b"bye"), reconnect=False)
        await client.connect()
        await client.disconnect(ReasonCode.DISCONNECT_WITH_WILL_MESSAGE)
        assert (await next_message(stream)).payload == b"bye"


@pytest.mark.parametrize("version", VERSIONS)
async def test_persistent_session_receives_what_was_sent_while_offline(mosquitto: RunningBroker, version: int) -> None:
    persistent = {"clean_start": False, "session_expiry": 3600} if version == 5 else {"clean_start": False}
    first = MQTTClient(mosquitto.url, version=version, client_id="away", **persistent)
    await first.connect()
    await first.subscribe("chat/#", qos=2)
    await first.disconnect()
    async with MQTTClient(mosquitto.url, version=version) as pub:
        for i in range(10):
            await pub.publish("chat/room", f"{i}", qos=1 + i % 2)
    again = MQTTClient(mosquitto.url, version=version, client_id="away", **persistent)
    stream = again.messages()
    caps = await again.connect()
    assert caps.session_present
    got = [(await next_message(stream)).payload for _ in range(10)]
    assert got == [str(i).encode() for i in range(10)]
    await again.disconnect()


async def test_v5_properties_round_trip(mosquitto: RunningBroker) -> None:
    async with MQTTClient(mosquitto.url) as client:
        await client.subscribe("props/#", qos=1, subscription_identifier=42)
        stream = client.messages()
        sent = Properties(
            content_type="application/json",
            response_topic="props/reply",
            correlation_data=b"\x01\x02",
            message_expiry_interval=300,
            payload_format_indicator=1,
            user_property=[("a", "1"), ("a", "2"), ("b", "ü")],
        )
        await client.publish("props/x", '{"t": 21.5}', qos=1, properties=sent)
        message = await next_message(stream)
        p = message.properties
        assert p.content_type == "application/json"
        assert p.response_topic == "props/reply"
        assert p.correlation_data == b"\x01\x02"
        assert 290 <= (p.message_expiry_interval or 0) <= 300
        assert p.payload_format_indicator == 1
        assert p.user_property == (("a", "1"), ("a", "2"), ("b", "ü"))
        assert message.subscription_identifiers == (42,)


async def test_subscription_options(mosquitto: RunningBroker) -> None:
    async with MQTTClient(mosquitto.url) as client:
        stream = client.messages()
        await client.subscribe("nl/#", qos=1, no_local=True)
        await client.publish("nl/x", "mine", qos=1)
        await no_message(stream)
        await client.publish("rap/x", "kept", qos=1, retain=True)
        await client.subscribe("rap/#", qos=1, retain_as_published=True)
        assert (await next_message(stream)).retain  # retained delivery
        await client.publish("rap/x", "live", qos=1, retain=True)
        live = await next_message(stream)
        assert live.payload == b"live" and live.retain  # retain flag kept on live delivery
        await client.subscribe("rap/#", qos=1, retain_handling=RetainHandling.DO_NOT_SEND)
        await no_message(stream)
        await client.subscribe("rap/#", qos=1, retain_handling=RetainHandling.SEND_IF_NEW_SUBSCRIPTION)
        await no_message(stream)  # not new: nothing
        await client.subscribe("rap/+", qos=1, retain_handling=RetainHandling.SEND_IF_NEW_SUBSCRIPTION)
        assert (await next_message(stream)).payload == b"live"


async def test_broker_capabilities_and_assigned_client_id(mosquitto: RunningBroker) -> None:
    async with MQTTClient(mosquitto.url, client_id="") as client:
        caps = client.capabilities
        assert caps is not None
        assert caps.assigned_client_identifier
        assert client.client_id == caps.assigned_client_identifier
        assert caps.maximum_qos == 2 and caps.retain_available
        assert await client.ping() < 1.0


async def test_unsubscribe_reports_per_filter(mosquitto: RunningBroker) -> None:
    async with MQTTClient(mosquitto.url) as client:
        await client.subscribe("a/#", "b/+", qos=1)
        codes = await client.unsubscribe("a/#", "never/subscribed")
        assert codes == [ReasonCode.SUCCESS, ReasonCode.NO_SUBSCRIPTION_EXISTED]


@pytest.mark.parametrize("version", VERSIONS)
async def test_username_and_password(mosquitto_factory: Callable[..., RunningBroker], tmp_path, version: int) -> None:
    import subprocess

    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "alice", "s3cret"], check=True)
    broker = mosquitto_factory(f"allow_anonymous false\npassword_file {passwd}\n")
    async with MQTTClient(broker.url, version=version, username="alice", password="s3cret") as client:
        assert client.connected
    async with MQTTClient(f"mqtt://alice:s3cret@127.0.0.1:{broker.port}", version=version) as client:
        assert client.connected  # credentials from the URL
    for user, password in (("alice", "wrong"), (None, None)):
        bad = MQTTClient(broker.url, version=version, username=user, password=password)
        with pytest.raises(ConnackRefused) as info:
            await bad.connect()
        assert info.value.reason_code in (ReasonCode.BAD_USER_NAME_OR_PASSWORD, ReasonCode.NOT_AUTHORIZED)
        assert "refused" in str(info.value)


async def test_connection_errors_say_what_happened() -> None:
    from tests.helpers.brokers import free_port

    port = free_port()
    with pytest.raises(ConnectionRefused, match=rf"127\.0\.0\.1:{port}"):
        await MQTTClient(f"mqtt://127.0.0.1:{port}").connect()
    with pytest.raises(HostNotFound, match=r"no-such-host\.invalid"):
        await MQTTClient("mqtt://no-such-host.invalid:1883").connect()


async def test_slow_consumer_never_stalls_acks(mosquitto: RunningBroker) -> None:
    async with MQTTClient(mosquitto.url, client_id="slow") as slow, MQTTClient(mosquitto.url) as pub:
        stream = slow.messages(maxsize=10)
        newest = slow.messages(maxsize=10, overflow="drop_newest")
        await slow.subscribe("flood/#", qos=1)
        results = await asyncio.gather(*(pub.publish("flood/x", str(i), qos=1) for i in range(200)))
        assert all(r.ok for r in results)
        await asyncio.sleep(0.3)
        assert await slow.ping() < 1.0  # keepalive traffic is answered while nobody reads the stream
        assert stream.dropped == 190 and len(stream) == 10
        assert [m.payload for m in [stream.get_nowait() for _ in range(10)]] == [
            str(i).encode() for i in range(190, 200)
        ]  # type: ignore[union-attr]
        assert [newest.get_nowait().payload for _ in range(10)] == [str(i).encode() for i in range(10)]  # type: ignore[union-attr]
        assert slow.sync_stats().dropped == 380


async def test_packet_trace_hook(mosquitto: RunningBroker) -> None:
    seen: list[tuple[str, str, int]] = []
    client = MQTTClient(mosquitto.url)
    client.add_trace_hook(lambda direction, packet, size: seen.append((direction, type(packet).__name__, size)))
    await client.connect()
    await client.subscribe("t", qos=1)
    await client.publish("t", "x", qos=1)
    await asyncio.sleep(0.1)
    await client.disconnect()
    kinds = [(d, k) for d, k, _ in seen]
    for expected in [("out", "Connect"), ("in", "ConnAck"), ("out", "Subscribe"), ("in", "SubAck"),
                     ("out", "Publish"), ("in", "PubAck"), ("in", "Publish"), ("out", "PubAck"),
                     ("out", "Disconnect")]:  # fmt: skip
        assert expected in kinds
    assert all(size >= 2 for _, _, size in seen)
