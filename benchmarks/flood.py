"""A rate-controlled publisher for the UI benchmark: ``python -m benchmarks.flood PORT RATE SECONDS TOPICS [KIND]``.

Publishes QoS 0 messages over TOPICS distinct topics at RATE messages a second for SECONDS, then prints how many
it sent. Runs in its own process so that it never competes with the app's event loop.

KIND ``sparkplug``: Sparkplug B instead of JSON, TOPICS being the number of metrics: 10 edge nodes with 10 devices
each share them; each node sends its NBIRTH and DBIRTHs (every metric named, with an alias), then DDATA of 5
metrics by alias, with each node's seq counting up.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from mqttchat.client import MQTTClient


async def flood(port: int, rate: int, seconds: float, topics: int) -> int:
    names = [f"plant/area{i % 20}/line{i // 20 % 50}/sensor{i}" for i in range(topics)]
    sent = 0
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    async with MQTTClient(f"mqtt://127.0.0.1:{port}", client_id="bench-flood") as client:
        start = time.perf_counter()
        while True:
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
            due = int(elapsed * rate)
            while sent < due and sent - due < per_tick:
                payload = json.dumps({"seq": sent, "v": sent % 1000 / 10}).encode()
                client.publish_nowait(names[sent % topics], payload)
                sent += 1
            await asyncio.sleep(tick)
        await client.ping()
    return sent


async def sparkplug_flood(port: int, rate: int, seconds: float, metrics: int) -> int:
    from mqttchat.explorer.decoders.sparkplug import BDSEQ, REBIRTH, DataType, SparkplugMetric, encode_payload

    nodes, devices = 10, 10
    per_device = max(1, metrics // (nodes * devices))
    seqs = [0] * nodes
    sent = 0
    tick = 0.01
    per_tick = max(1, int(rate * tick))

    def seq(node: int) -> int:
        value = seqs[node]
        seqs[node] = (value + 1) % 256
        return value

    async with MQTTClient(f"mqtt://127.0.0.1:{port}", client_id="bench-flood-sparkplug") as client:
        for node in range(nodes):
            birth = [SparkplugMetric(BDSEQ, DataType.Int64, 0), SparkplugMetric(REBIRTH, DataType.Boolean, False)]
            client.publish_nowait(f"spBv1.0/Bench/NBIRTH/node{node}", encode_payload(birth, seq=seq(node)))
            sent += 1
            for device in range(devices):
                born = [
                    SparkplugMetric(f"area{device}/sensor{i}/value", DataType.Double, 0.0, alias=device * 10_000 + i)
                    for i in range(per_device)
                ]
                topic = f"spBv1.0/Bench/DBIRTH/node{node}/device{device}"
                client.publish_nowait(topic, encode_payload(born, seq=seq(node)))
                sent += 1
        await client.ping()
        start = time.perf_counter()
        data = 0
        while True:
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
            due = int(elapsed * rate)
            while data < due and data - due < per_tick:
                node, device = data % nodes, data // nodes % devices
                first = data // (nodes * devices) * 5
                values = [
                    SparkplugMetric(None, DataType.Double, (data + i) % 1000 / 10,
                                    alias=device * 10_000 + (first + i) % per_device)
                    for i in range(5)
                ]  # fmt: skip
                topic = f"spBv1.0/Bench/DDATA/node{node}/device{device}"
                client.publish_nowait(topic, encode_payload(values, seq=seq(node)))
                data += 1
            await asyncio.sleep(tick)
        await client.ping()
    return sent + data


if __name__ == "__main__":
    port, rate, seconds, topics = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    kind = sys.argv[5] if len(sys.argv) > 5 else "json"
    run = sparkplug_flood if kind == "sparkplug" else flood
    print(asyncio.run(run(port, rate, seconds, topics)), flush=True)
