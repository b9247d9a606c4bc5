"""A rate-controlled publisher for the UI benchmark: ``python -m benchmarks.flood PORT RATE SECONDS TOPICS``.

Publishes QoS 0 messages over TOPICS distinct topics at RATE messages a second for SECONDS, then prints how many
it sent. Runs in its own process so that it never competes with the app's event loop.
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


if __name__ == "__main__":
    port, rate, seconds, topics = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    print(asyncio.run(flood(port, rate, seconds, topics)), flush=True)
