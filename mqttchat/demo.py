"""A simulated house for ``mqttchat demo``: devices with retained states, JSON telemetry, binary payloads, and
one device that drops off the network (its will announces it) and comes back.

Every device is a real MQTT client of the embedded broker, so everything the explorer shows went over the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import struct
import time
from dataclasses import dataclass

from mqttchat.client import ClientError, MQTTClient
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
        ]

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
