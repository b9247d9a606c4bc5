"""The runtime's bulk publishing without a screen, against the embedded broker: a replay and retained messages set
and cleared, with their progress, their pace and the broker's refusals."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from mqttchat.broker.server import Broker
from mqttchat.client import ClientOptions, MessageStream, MQTTClient, NotConnected, PublishResult, parse_url
from mqttchat.explorer.progress import PublishProgress
from mqttchat.explorer.recording import RecordedMessage
from mqttchat.explorer.retained import BULK_RATE, RetainedMessage
from mqttchat.protocol import Properties
from mqttchat.runtime import Runtime
from tests.helpers.brokers import broker_config


async def received(stream: MessageStream, count: int) -> list[tuple[str, bytes, bool]]:
    got = []
    async with asyncio.timeout(10):
        while len(got) < count:
            message = await stream.get()
            got.append((message.topic, message.payload, message.retain))
    return got


async def test_replay_publishes_each_record_as_it_was(tmp_path: Path) -> None:
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite plant/#\n")
    async with Broker(broker_config(acl_file=acl)) as broker:
        runtime = Runtime(ClientOptions(parse_url(broker.url)), (), embed_broker=False)
        await runtime.start()
        try:
            async with MQTTClient(broker.url, client_id="listener") as listener:
                stream = listener.messages()
                await listener.subscribe("plant/#", qos=1)
                props = Properties(content_type="text/plain")
                records = [
                    RecordedMessage(100.0 + i / 100, f"plant/{i}", str(i).encode(), qos=i % 2, properties=props)
                    for i in range(5)
                ]
                records.insert(2, RecordedMessage(100.0, "office/denied", b"x", qos=1))
                progress = PublishProgress(len(records))
                refusals: list[tuple[str, PublishResult]] = []
                await runtime.replay(records, 0, progress, lambda topic, result: refusals.append((topic, result)))
                got = await received(stream, 5)
            assert [(topic, payload) for topic, payload, _ in got] == [
                (f"plant/{i}", str(i).encode()) for i in range(5)
            ]
            assert (progress.total, progress.done, progress.accepted, progress.refused, progress.ended) == (
                6,
                6,
                5,
                1,
                True,
            )
            assert [topic for topic, _ in refusals] == ["office/denied"]
            assert not refusals[0][1].ok
        finally:
            await runtime.stop()


async def test_retained_messages_set_and_cleared_in_paced_batches() -> None:
    async with Broker(broker_config()) as broker:
        runtime = Runtime(ClientOptions(parse_url(broker.url)), (), embed_broker=False)
        await runtime.start()
        try:
            messages = [RetainedMessage(f"fleet/{i}", b"on", 1) for i in range(BULK_RATE + 3)]
            progress = PublishProgress(len(messages))
            began = time.monotonic()
            await runtime.publish_retained(messages, progress)
            # BULK_RATE messages, a second's pause, then the rest.
            assert time.monotonic() - began >= 1.0
            assert (progress.done, progress.accepted, progress.ended) == (len(messages), len(messages), True)
            async with MQTTClient(broker.url, client_id="probe") as probe:
                stream = probe.messages()
                await probe.subscribe("fleet/#", qos=1)
                got = await received(stream, len(messages))
            assert {topic for topic, _, retain in got if retain} == {m.topic for m in messages}
            cleared = PublishProgress(2)
            await runtime.publish_retained([RetainedMessage("fleet/0", b""), RetainedMessage("fleet/1", b"")], cleared)
            assert cleared.accepted == 2
            async with MQTTClient(broker.url, client_id="probe-again") as probe:
                stream = probe.messages()
                await probe.subscribe("fleet/#", qos=1)
                got = await received(stream, len(messages) - 2)
            assert {topic for topic, _, _ in got} == {m.topic for m in messages[2:]}
        finally:
            await runtime.stop()


async def test_publishing_without_a_connection_stops_and_says_how_far_it_got() -> None:
    runtime = Runtime(ClientOptions(parse_url("mqtt://127.0.0.1:9")), (), embed_broker=False)
    progress = PublishProgress(3)
    with pytest.raises(NotConnected):
        await runtime.publish_retained([RetainedMessage(f"t/{i}", b"x") for i in range(3)], progress)
    assert (progress.done, progress.ended) == (0, True)


def test_a_failed_attempt_is_forgotten_once_connected() -> None:
    """The status bar says why the last attempt failed only until the connection is up, not until start() has
    also subscribed (a screen read in between showed both 'connected' and the old failure)."""
    from mqttchat.client.client import StateChange, Status
    from mqttchat.runtime import ConnectFailure

    runtime = Runtime(ClientOptions(parse_url("mqtt://127.0.0.1:1"), client_id="t"), embed_broker=False)
    runtime.failure = ConnectFailure(ConnectionRefusedError(), 2, None)
    runtime._on_state(StateChange(Status.RECONNECTING, "mqtt://127.0.0.1:1", attempt=1, delay=1.0))
    assert runtime.failure is not None
    runtime._on_state(StateChange(Status.CONNECTED, "mqtt://127.0.0.1:1"))
    assert runtime.failure is None
