"""A simulated house for ``mqttchat demo``: devices with retained states, JSON telemetry, binary payloads, and
one device that drops off the network (its will announces it) and comes back; a CBOR EV charger, a solar inverter
sending gzip'd JSON, and a Sparkplug B edge node with two devices (births, data by alias, a device that dies and is
born again, the node's death by its will and its rebirth with the next bdSeq, and a new birth sequence when a host
sends it the ``Node Control/Rebirth`` command).

Every device is a real MQTT client of the embedded broker, so everything the explorer shows went over the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import math
import random
import struct
import time
from dataclasses import dataclass

from mqttchat.client import ClientError, Message, MQTTClient
from mqttchat.explorer.decoders import DecodeContext, DecodeFailure
from mqttchat.explorer.decoders.sparkplug import (
    BDSEQ,
    REBIRTH,
    AliasTable,
    DataType,
    SparkplugDataSet,
    SparkplugMetric,
    SparkplugTemplate,
    decode_payload,
    encode_payload,
)
from mqttchat.protocol import Properties, Will


@dataclass
class Thermometer:
    room: str
    base: float

    def reading(self, t: float) -> dict[str, float]:
        return {
            "temperature": round(self.base + 1.5 * math.sin(t / 30 + len(self.room)) + random.uniform(-0.1, 0.1), 2),
            "humidity": round(45 + 8 * math.sin(t / 50) + random.uniform(-0.5, 0.5), 1),
            "battery": round(max(0.0, 100 - t / 600), 1),
        }


ROOMS = [Thermometer("kitchen", 21.0), Thermometer("living-room", 20.5), Thermometer("bedroom", 18.5),
         Thermometer("office", 22.0), Thermometer("bathroom", 23.0)]  # fmt: skip
LIGHTS = ["kitchen", "living-room", "hall", "garden", "office"]


class House:
    """Runs the simulated devices until :meth:`stop`."""

    def __init__(self, url: str, speed: float = 1.0) -> None:
        self.url = url
        self.speed = speed
        self.clients: list[MQTTClient] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.started = time.time()

    async def start(self) -> None:
        hub = MQTTClient(self.url, client_id="demo-hub", will=Will("house/hub/status", b"offline", 1, True))
        await hub.connect()
        self.clients.append(hub)
        await hub.publish("house/hub/status", "online", 1, retain=True)
        await hub.publish("house/info", json.dumps({"name": "Demo house", "rooms": [r.room for r in ROOMS]}),
                          1, retain=True, content_type="application/json")  # fmt: skip
        for light in LIGHTS:
            await hub.publish(f"house/lights/{light}/state", random.choice(["on", "off"]), 1, retain=True)
        await hub.publish("house/alarm/armed", "false", 1, retain=True)
        await hub.publish("house/energy/tariff", json.dumps({"peak": 0.31, "off_peak": 0.12, "currency": "EUR"}),
                          1, retain=True)  # fmt: skip
        self.tasks = [
            asyncio.create_task(self._telemetry(hub), name="demo telemetry"),
            asyncio.create_task(self._lights(hub), name="demo lights"),
            asyncio.create_task(self._energy(hub), name="demo energy"),
            asyncio.create_task(self._flaky_sensor(), name="demo flaky sensor"),
            asyncio.create_task(self._ev_charger(hub), name="demo EV charger"),
            asyncio.create_task(self._solar(hub), name="demo solar inverter"),
        ]
        self.edge_node = SparkplugEdgeNode(self.url, self.speed)
        self.tasks.append(asyncio.create_task(self.edge_node.run(), name="demo Sparkplug edge node"))

    async def _sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.speed)

    async def _telemetry(self, hub: MQTTClient) -> None:
        props = Properties(content_type="application/json", user_property=[("unit", "celsius")])
        while True:
            t = time.time() - self.started
            for room in ROOMS:
                await hub.publish(f"house/sensors/{room.room}/climate", json.dumps(room.reading(t)), 0,
                                  properties=props)  # fmt: skip
            await self._sleep(1.0)

    async def _lights(self, hub: MQTTClient) -> None:
        while True:
            await self._sleep(random.uniform(2, 5))
            light = random.choice(LIGHTS)
            await hub.publish(f"house/lights/{light}/state", random.choice(["on", "off"]), 1, retain=True)

    async def _energy(self, hub: MQTTClient) -> None:
        counter = 0
        while True:
            counter += 1
            watts = 350 + 200 * math.sin(counter / 10) + random.uniform(-20, 20)
            # A binary frame as a meter would send it: counter, watts, voltage (big-endian).
            frame = struct.pack(">IfH", counter, watts, 230 + random.randint(-3, 3))
            await hub.publish("house/energy/meter/raw", frame, 0)
            await hub.publish("house/energy/power", f"{watts:.0f}", 0)
            await self._sleep(0.5)

    async def _ev_charger(self, hub: MQTTClient) -> None:
        """A wallbox reporting in CBOR (its MQTT 5 content type says so)."""
        import cbor2

        energy = 0.0
        while True:
            power = max(0.0, 7400 + random.uniform(-300, 300)) if int(time.time() / 60) % 2 else 0.0
            energy += power / 3600 / 1000 * 2
            report = {"state": "charging" if power else "idle", "power_w": round(power, 1),
                      "session_kwh": round(energy, 3), "phases": [230, 231, 229], "id": b"\x0b\xad"}  # fmt: skip
            await hub.publish("house/garage/ev-charger", cbor2.dumps(report), 0, content_type="application/cbor")
            await self._sleep(2.0)

    async def _solar(self, hub: MQTTClient) -> None:
        """An inverter that compresses its JSON with gzip (the explorer unpacks it by its magic bytes)."""
        while True:
            t = time.time() - self.started
            watts = max(0.0, 2500 * math.sin(t / 120) + random.uniform(-50, 50))
            strings = [{"string": i + 1, "volts": round(380 + random.uniform(-5, 5), 1),
                        "amps": round(watts / 760, 2)} for i in range(2)]  # fmt: skip
            document = {"power_w": round(watts, 1), "yield_kwh": round(t / 3600 * 1.2, 3), "strings": strings}
            await hub.publish("house/solar/inverter", gzip.compress(json.dumps(document).encode()), 0)
            await self._sleep(3.0)

    async def _flaky_sensor(self) -> None:
        """The garage sensor loses its network every so often: its will marks it offline until it returns."""
        will = Will("house/garage/door-sensor/status", b"offline (connection lost)", 1, True)
        while True:
            sensor = MQTTClient(self.url, client_id="demo-garage-sensor", will=will, reconnect=False, keepalive=5)
            try:
                await sensor.connect()
                await sensor.publish("house/garage/door-sensor/status", "online", 1, retain=True)
                for _ in range(int(random.uniform(15, 25))):
                    await sensor.publish("house/garage/door", random.choice(["open", "closed", "closed"]), 1,
                                         retain=True)  # fmt: skip
                    await self._sleep(1.0)
                if sensor._link is not None:
                    sensor._link.abort()  # no DISCONNECT: the broker publishes the will
                await self._sleep(10.0)
            except ClientError:
                await self._sleep(2.0)
            finally:
                with contextlib.suppress(ClientError):
                    await sensor.disconnect()

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, ClientError):
                await task
        for client in self.clients:
            with contextlib.suppress(ClientError):
                await client.disconnect()


# --------------------------------------------------------------------------------------------------------------
# A Sparkplug B edge node


class SparkplugEdgeNode:
    """The edge node ``Line3`` of group ``Plant1`` with the devices ``Pump1`` and ``Tank1``.

    It registers its NDEATH (with this session's ``bdSeq``) as its will, sends NBIRTH and DBIRTHs (metrics with
    names, datatypes, aliases, properties, a dataset and a template), then DDATA and NDATA by alias with a ``seq``
    that counts up to 255 and wraps. Now and then the tank dies (DDEATH) and is born again (DBIRTH); after a while
    the node loses its connection (the broker publishes its NDEATH) and comes back with the next ``bdSeq``. An NCMD
    ``Node Control/Rebirth`` makes it send its births again; a DCMD writes ``Speed`` or ``Running`` of the pump.
    """

    GROUP = "Plant1"
    NODE = "Line3"

    def __init__(self, url: str, speed: float = 1.0) -> None:
        self.url = url
        self.speed = speed
        self.bdseq = 0
        self.seq = 0
        self.sessions = 0
        self.rebirths = 0
        self.started = time.time()
        self.pump = {"Speed": 1450.0, "Running": True, "Pressure": 3.2, "Flow": 120}
        self.tank = {"Level": 62.0, "Temperature": 18.5}
        self._commands: asyncio.Queue[Message] = asyncio.Queue(maxsize=100)

    def topic(self, kind: str, device: str | None = None) -> str:
        return f"spBv1.0/{self.GROUP}/{kind}/{self.NODE}" + (f"/{device}" if device else "")

    def _next_seq(self) -> int:
        seq = self.seq
        self.seq = (self.seq + 1) % 256
        return seq

    async def _sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.speed)

    def _death(self) -> bytes:
        return encode_payload([SparkplugMetric(BDSEQ, DataType.Int64, self.bdseq)])

    async def run(self) -> None:
        while True:
            will = Will(self.topic("NDEATH"), self._death(), 1, False)
            client = MQTTClient(self.url, client_id="demo-sparkplug-line3", will=will, reconnect=False, keepalive=5)
            try:
                await client.connect()
                client.add_message_handler(self._on_message)
                await client.subscribe(self.topic("NCMD"), self.topic("DCMD", "+"), qos=0)
                self.sessions += 1
                await self._births(client)
                await self._session(client)
                if client._link is not None:
                    client._link.abort()  # no DISCONNECT: the broker publishes the NDEATH will
                await self._sleep(8.0)
            except ClientError:
                await self._sleep(2.0)
            finally:
                with contextlib.suppress(ClientError):
                    await client.disconnect()
            self.bdseq = (self.bdseq + 1) % 256

    def _on_message(self, message: Message) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._commands.put_nowait(message)

    async def _births(self, client: MQTTClient) -> None:
        now = int(time.time() * 1000)
        self.seq = 0
        motor = SparkplugTemplate(
            (SparkplugMetric("RPM", DataType.Int32, 0), SparkplugMetric("Running", DataType.Boolean, False)),
            is_definition=True,
            version="1.0",
            parameters=(("MaxRPM", DataType.Int32, 3000),),
        )
        node_metrics = [
            SparkplugMetric(BDSEQ, DataType.Int64, self.bdseq, timestamp=now),
            SparkplugMetric(REBIRTH, DataType.Boolean, False, timestamp=now),
            SparkplugMetric("Properties/Firmware", DataType.String, "2.4.1", alias=1, timestamp=now),
            SparkplugMetric("Uptime", DataType.Int64, 0, alias=2, timestamp=now),
            SparkplugMetric("_types_/Agitator", DataType.Template, motor, timestamp=now),
        ]
        await client.publish(self.topic("NBIRTH"), encode_payload(node_metrics, timestamp=now, seq=self._next_seq()))
        await self._device_birth(client, "Pump1")
        await self._device_birth(client, "Tank1")

    async def _device_birth(self, client: MQTTClient, device: str) -> None:
        now = int(time.time() * 1000)
        if device == "Pump1":
            metrics = [
                SparkplugMetric("Speed", DataType.Float, self.pump["Speed"], alias=10, timestamp=now,
                                properties={"engUnit": (DataType.String, "rpm")}),
                SparkplugMetric("Running", DataType.Boolean, self.pump["Running"], alias=11, timestamp=now),
                SparkplugMetric("Pressure", DataType.Double, self.pump["Pressure"], alias=12, timestamp=now,
                                properties={"engUnit": (DataType.String, "bar"), "Quality": (DataType.Int32, 192)}),
                SparkplugMetric("Flow", DataType.Int32, self.pump["Flow"], alias=13, timestamp=now),
                SparkplugMetric("Inputs/Counters", DataType.Int16Array, [3, -1, 27], alias=14, timestamp=now),
            ]  # fmt: skip
        else:
            batches = SparkplugDataSet(("Batch", "Litres", "Done"), (DataType.String, DataType.Int32, DataType.Boolean),
                                       (("B-101", 900, True), ("B-102", 450, False)))  # fmt: skip
            agitator = SparkplugTemplate(
                (SparkplugMetric("RPM", DataType.Int32, 60), SparkplugMetric("Running", DataType.Boolean, True)),
                template_ref="_types_/Agitator",
            )
            metrics = [
                SparkplugMetric("Level", DataType.Float, self.tank["Level"], alias=20, timestamp=now,
                                properties={"engUnit": (DataType.String, "%")}),
                SparkplugMetric("Temperature", DataType.Float, self.tank["Temperature"], alias=21, timestamp=now),
                SparkplugMetric("Batches", DataType.DataSet, batches, alias=22, timestamp=now),
                SparkplugMetric("Agitator", DataType.Template, agitator, alias=23, timestamp=now),
            ]  # fmt: skip
        await client.publish(self.topic("DBIRTH", device), encode_payload(metrics, timestamp=now, seq=self._next_seq()))

    async def _session(self, client: MQTTClient) -> None:
        """Data until the connection is to be lost (about a minute at speed 1), answering commands at once."""
        tank_alive = True
        for step in range(random.randint(50, 70)):
            try:
                async with asyncio.timeout(1.0 / self.speed):
                    command = await self._commands.get()
                await self._command(client, command)
                continue
            except TimeoutError:
                pass
            now = int(time.time() * 1000)
            self.pump["Speed"] = round(1450 + 40 * math.sin(step / 5) + random.uniform(-5, 5), 1)
            self.pump["Pressure"] = round(3.2 + random.uniform(-0.2, 0.2), 3)
            data = [SparkplugMetric(None, DataType.Float, self.pump["Speed"], alias=10, timestamp=now),
                    SparkplugMetric(None, DataType.Double, self.pump["Pressure"], alias=12, timestamp=now)]  # fmt: skip
            await client.publish(
                self.topic("DDATA", "Pump1"), encode_payload(data, timestamp=now, seq=self._next_seq())
            )
            if step % 20 == 15:
                tank_alive = False
                await client.publish(self.topic("DDEATH", "Tank1"), encode_payload([], seq=self._next_seq()))
            elif not tank_alive and step % 20 == 19:
                tank_alive = True
                await self._device_birth(client, "Tank1")
            elif tank_alive:
                self.tank["Level"] = round(max(0.0, min(100.0, self.tank["Level"] + random.uniform(-1, 1))), 2)
                level = SparkplugMetric(None, DataType.Float, self.tank["Level"], alias=20, timestamp=now)
                await client.publish(self.topic("DDATA", "Tank1"),
                                     encode_payload([level], timestamp=now, seq=self._next_seq()))  # fmt: skip
            if step % 5 == 0:
                uptime = SparkplugMetric(None, DataType.Int64, int(time.time() - self.started), alias=2, timestamp=now)
                await client.publish(self.topic("NDATA"), encode_payload([uptime], timestamp=now, seq=self._next_seq()))

    async def _command(self, client: MQTTClient, message: Message) -> None:
        """A command from a host: decoded with this node's aliases (a write may name the metric by alias only)."""
        aliases = AliasTable({10: ("Speed", DataType.Float), 11: ("Running", DataType.Boolean)}, {})
        try:
            decoded = decode_payload(message.payload, DecodeContext(message.topic, aliases=aliases))
        except DecodeFailure:
            return
        metrics = decoded.root.children[-1].children if decoded.root.children else ()
        for metric in metrics or ():
            if message.topic == self.topic("NCMD") and metric.name == REBIRTH and metric.value is True:
                self.rebirths += 1
                await self._births(client)
            elif message.topic == self.topic("DCMD", "Pump1") and metric.name in ("Speed", "Running"):
                value = metric.value
                if metric.name == "Speed" and isinstance(value, int | float) and not isinstance(value, bool):
                    self.pump["Speed"] = float(value)
                    kind = DataType.Float
                elif metric.name == "Running" and isinstance(value, bool):
                    self.pump["Running"] = value
                    kind = DataType.Boolean
                else:
                    continue
                alias = 10 if metric.name == "Speed" else 11
                written = SparkplugMetric(None, kind, self.pump[metric.name], alias=alias)
                await client.publish(self.topic("DDATA", "Pump1"), encode_payload([written], seq=self._next_seq()))
