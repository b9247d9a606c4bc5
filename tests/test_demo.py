"""``mqttchat demo``'s decodable devices over a real broker: the Sparkplug B edge node (births, data by alias, seq,
a rebirth on NCMD, a write on DCMD, its death by will and its next session), the CBOR charger and the gzip'd JSON
inverter, as the explorer's decoders see them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from mqttchat.broker.server import Broker
from mqttchat.client import Message, MessageStream, MQTTClient
from mqttchat.demo import House, SparkplugEdgeNode
from mqttchat.explorer.decoders import DecodeResult, PayloadDecoders
from mqttchat.explorer.decoders.sparkplug import DataType, rebirth_request, write_metric

EDGE = "spBv1.0/Plant1/{}/Line3"


class Watcher:
    """A host application: every message through PayloadDecoders (observe, then decode), problems collected."""

    def __init__(self, stream: MessageStream) -> None:
        self.stream = stream
        self.decoders = PayloadDecoders()
        self.problems: list[tuple[str, str]] = []
        self.seen: list[tuple[str, DecodeResult]] = []

    async def until(self, condition: Callable[[Message, DecodeResult], bool], timeout: float = 20.0) -> DecodeResult:
        """Take messages in until one satisfies condition (checked after the message was taken in)."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.stream.get()
                observation = self.decoders.observe(message.topic, message.payload, message.received_at)
                if observation is not None:
                    self.problems.extend((message.topic, problem) for problem in observation.problems)
                result = self.decoders.decode(message.topic, message.payload, observation=observation,
                                              content_type=message.properties.content_type)  # fmt: skip
                self.seen.append((message.topic, result))
                if condition(message, result):
                    return result


@pytest.fixture
async def host(broker: Broker) -> AsyncIterator[tuple[MQTTClient, Watcher]]:
    async with MQTTClient(broker.url, client_id="test-host") as client:
        await client.subscribe("spBv1.0/#", "house/#", qos=0)
        yield client, Watcher(client.messages())


@pytest.fixture
async def edge_node(broker: Broker) -> AsyncIterator[SparkplugEdgeNode]:
    node = SparkplugEdgeNode(broker.url, speed=20.0)
    task = asyncio.create_task(node.run())
    yield node
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_sparkplug_edge_node_lifecycle(host: tuple[MQTTClient, Watcher], edge_node: SparkplugEdgeNode) -> None:
    client, watcher = host
    await watcher.until(lambda m, r: m.topic == EDGE.format("DBIRTH") + "/Tank1")
    state = watcher.decoders.sparkplug.edge_node("Plant1", "Line3")
    assert state is not None and state.online is True and state.bdseq == 0
    assert {name: device.online for name, device in state.devices.items()} == {"Pump1": True, "Tank1": True}
    # Data by alias, named by the births.
    data = await watcher.until(lambda m, r: m.topic == EDGE.format("DDATA") + "/Pump1")
    assert set(data.fields) == {"Speed", "Pressure"} and data.notes == ()
    # A rebirth request: the births again, same session (bdSeq), seq from 0 again.
    await client.publish(*rebirth_request("Plant1", "Line3"))
    await watcher.until(lambda m, r: m.topic == EDGE.format("NBIRTH"))
    assert state.births == 2 and state.bdseq == 0 and edge_node.rebirths == 1
    # A write by alias (as an edge node using aliases expects): the pump reports the new speed.
    await client.publish(*write_metric("Plant1", "Line3", "Speed", 999.5, DataType.Float, "Pump1", alias=10))
    await watcher.until(lambda m, r: r.fields.get("Speed") == 999.5)
    # The tank dies and is born again; the node loses its connection: its will (NDEATH, bdSeq 0) arrives.
    await watcher.until(lambda m, r: m.topic == EDGE.format("DDEATH") + "/Tank1")
    assert state.devices["Tank1"].online is False
    session = state.bdseq
    death = await watcher.until(lambda m, r: m.topic == EDGE.format("NDEATH"), timeout=30)
    assert death.fields == {"bdSeq": float(session)}  # the will of the session that was born: not stale
    assert state.online is False and not any(device.online for device in state.devices.values())
    # The next session: the next bdSeq.
    await watcher.until(lambda m, r: m.topic == EDGE.format("NBIRTH"))
    assert state.online is True and state.bdseq == session + 1
    assert watcher.problems == [], watcher.problems
    assert all(result.ok for topic, result in watcher.seen if topic.startswith("spBv1.0/"))


async def test_cbor_charger_and_gzip_inverter(broker: Broker, host: tuple[MQTTClient, Watcher]) -> None:
    _, watcher = host
    house = House(broker.url, speed=20.0)
    await house.start()
    try:
        charger = await watcher.until(lambda m, r: m.topic == "house/garage/ev-charger")
        assert charger.decoder == "cbor" and charger.ok and {"power_w", "session_kwh"} <= set(charger.fields)
        solar = await watcher.until(lambda m, r: m.topic == "house/solar/inverter")
        assert solar.decoder == "gzip+json" and "strings.0.volts" in solar.fields
    finally:
        await house.stop()
