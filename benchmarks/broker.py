"""Broker throughput, CPU and memory: mqttchat's broker beside mosquitto (C) and amqtt (Python), in one run.

Run: ``python -m benchmarks.broker [--scale 1.0]`` (needs ``pip install -e '.[bench,test]'`` for amqtt and
``apt-get install -y mosquitto``). Every broker runs in its own process with its limits lifted (no queue or
in-flight caps); one fixed load generator in this process drives all three the same way: mqttchat's client
publishes, and lean raw-socket MQTT 3.1.1 subscribers (:class:`LeanSubscriber`) receive, so that the broker and
not the generator is the bottleneck.

Scenarios:
* 1→1 and 1→10 fan-out at QoS 0 and QoS 1: deliveries per second at the subscribers, and the broker's CPU time
  (from /proc) per delivery. Every subscriber must receive every message, in order.
* 1000 idle connections: time to connect them all, and the broker's resident memory per connection.
* 100k retained messages, then a new ``#`` subscriber: time until it has all of them, and the broker's memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.peers import free_port, serving
from mqttchat.client import Message, MQTTClient

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAYLOAD = b"x" * 56


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class BrokerProcess:
    name: str
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid


@contextlib.contextmanager
def start_broker(name: str, tmp: Path) -> Iterator[BrokerProcess]:
    port = free_port()
    if name == "mqttchat":
        conf = tmp / "mqttchat.toml"
        conf.write_text(
            "max_queued_messages = 0\nmax_inflight_messages = 0\nsys_interval = 0\nlog_connections = false\n"
            f"[[listener]]\nport = {port}\nhost = '127.0.0.1'\n"
        )
        exe = shutil.which("mqttchat")
        cmd = [exe, "broker", "-c", str(conf)] if exe else [sys.executable, "-m", "mqttchat", "broker", "-c", str(conf)]
    elif name == "mosquitto":
        conf = tmp / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 0\n"
            "max_queued_bytes 0\npersistence false\n" + ("user root\n" if os.geteuid() == 0 else "")
        )
        cmd = [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)]
    elif name == "amqtt":
        conf = tmp / "amqtt.yaml"
        conf.write_text(
            f"listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:{port}\n"
            "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n    allow_anonymous: true\n"
        )
        exe = shutil.which("amqtt")
        cmd = [exe, "-c", str(conf)] if exe else [sys.executable, "-m", "amqtt.scripts.broker_script", "-c", str(conf)]
    else:
        raise ValueError(name)
    with serving(cmd, port) as proc:
        yield BrokerProcess(name, port, proc)


@dataclass
class Row:
    values: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


class LeanSubscriber(asyncio.Protocol):
    """A subscriber that costs the load generator as little as possible, so that the broker is what is measured.

    MQTT 3.1.1 over a raw socket: CONNECT, SUBSCRIBE, then PUBLISH packets framed by hand; each payload starts
    with an 8-digit sequence number that must increase by one; QoS 1 messages are acknowledged in one write per
    read. (The full client spends several microseconds a message on objects and handlers, which made the load
    generator, not the broker, the bottleneck of the fan-out rows.)
    """

    def __init__(self, client_id: str, topic: str, qos: int, total: int, done: asyncio.Future[None]) -> None:
        self.client_id = client_id.encode()
        self.topic = topic.encode()
        self.qos = qos
        self.total = total
        self.done = done
        self.subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.count = 0
        self.expected = 0
        self.out_of_order = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(self.client_id).to_bytes(2, "big") + self.client_id
        transport.write(bytes((0x10, len(body))) + body)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError(f"{self.client_id!r}: connection lost"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        n = len(buf)
        pos = 0
        acks = []
        while pos + 2 <= n:
            first = buf[pos]
            length = buf[pos + 1]
            i = pos + 2
            if length & 0x80:
                length &= 0x7F
                shift = 7
                while i < n:
                    byte = buf[i]
                    i += 1
                    length |= (byte & 0x7F) << shift
                    if byte < 0x80:
                        break
                    shift += 7
                else:
                    break
            end = i + length
            if end > n:
                break
            kind = first >> 4
            if kind == 3:
                at = i + 2 + ((buf[i] << 8) | buf[i + 1])
                if first & 0x06:
                    acks.append(b"\x40\x02" + buf[at : at + 2])
                    at += 2
                seq = int(buf[at : at + 8])
                if seq != self.expected:
                    self.out_of_order += 1
                self.expected = seq + 1
                self.count += 1
            elif kind == 2:  # CONNACK: subscribe
                body = b"\x00\x01" + len(self.topic).to_bytes(2, "big") + self.topic + bytes((self.qos,))
                assert self.transport is not None
                self.transport.write(bytes((0x82, len(body))) + body)
            elif kind == 9 and not self.subscribed.done():  # SUBACK
                self.subscribed.set_result(None)
            pos = end
        del buf[:pos]
        if acks:
            assert self.transport is not None
            self.transport.write(b"".join(acks))
        if self.count >= self.total and not self.done.done():
            self.done.set_result(None)


async def fanout(broker: BrokerProcess, subscribers: int, qos: int, n: int, version: int) -> Row:
    """One publisher, ``subscribers`` subscribers; every subscriber must get all ``n`` messages in order."""
    row = Row()
    topic = f"bench/fanout/{subscribers}/{qos}"
    loop = asyncio.get_running_loop()
    subs: list[LeanSubscriber] = []
    dones: list[asyncio.Future[None]] = []
    for i in range(subscribers):
        done: asyncio.Future[None] = loop.create_future()
        _, sub = await loop.create_connection(
            lambda i=i, done=done: LeanSubscriber(f"bench-sub-{i}", topic, qos, n, done),  # type: ignore[misc]
            "127.0.0.1", broker.port,
        )  # fmt: skip
        await asyncio.wait_for(sub.subscribed, 10)
        subs.append(sub)
        dones.append(done)
    total = n * subscribers
    pub = MQTTClient(broker.url, client_id="bench-pub", version=version, reconnect=False)
    await pub.connect()
    cpu0 = cpu_seconds(broker.pid)
    t0 = time.perf_counter()
    pending: deque[object] = deque()
    for i in range(n):
        data = b"%08d" % i + PAYLOAD
        if qos == 0:
            await pub.publish(topic, data)
            if i % 500 == 0:
                await asyncio.sleep(0)  # let acks and deliveries in: a steady, not bursty, load
        else:
            # A sliding window of 1000 unacknowledged messages: a steady pipeline, not bursts and drains.
            pending.append(pub.publish_nowait(topic, data, qos))
            if len(pending) >= 1000:
                await pending.popleft()  # type: ignore[misc]
    for fut in pending:
        await fut  # type: ignore[misc]
    try:
        async with asyncio.timeout(max(60, n / 500)):
            await asyncio.gather(*dones)
    except TimeoutError:
        counted = sum(sub.count for sub in subs)
        row.problems.append(f"received {counted} of {total} deliveries")
    elapsed = time.perf_counter() - t0
    cpu = cpu_seconds(broker.pid) - cpu0
    counted = sum(sub.count for sub in subs)
    out_of_order = sum(sub.out_of_order for sub in subs)
    if out_of_order:
        row.problems.append(f"{out_of_order} deliveries out of order")
    row.values["deliveries/s"] = counted / elapsed
    row.values["cpu µs/delivery"] = cpu / max(counted, 1) * 1e6
    await pub.disconnect()
    for sub in subs:
        assert sub.transport is not None
        sub.transport.close()
    return row


async def idle_connections(broker: BrokerProcess, count: int) -> Row:
    """Connect ``count`` clients that then do nothing (a raw CONNECT each, so the load generator stays light)."""
    row = Row()
    rss0 = rss_bytes(broker.pid)
    writers = []
    t0 = time.perf_counter()
    for i in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", broker.port)
        cid = b"idle-%05d" % i
        body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
        writer.write(bytes((0x10, len(body))) + body)
        writers.append((reader, writer))
        if len(writers) % 100 == 0:
            for r, _ in writers[-100:]:
                await r.readexactly(4)  # CONNACK
    for r, _ in writers[len(writers) // 100 * 100 :]:
        await r.readexactly(4)
    elapsed = time.perf_counter() - t0
    await asyncio.sleep(1.0)
    rss1 = rss_bytes(broker.pid)
    row.values["connect s"] = elapsed
    row.values["KiB/connection"] = (rss1 - rss0) / count / 1024
    for _, w in writers:
        w.close()
    await asyncio.sleep(0.5)
    return row


async def retained(broker: BrokerProcess, count: int) -> Row:
    row = Row()
    async with MQTTClient(broker.url, client_id="bench-retain-pub", version=4, reconnect=False) as pub:
        for i in range(count):
            await pub.publish(f"fleet/{i // 1000}/{i % 1000}/state", b"%08d" % i + PAYLOAD, 0, retain=True)
            if i % 500 == 0:
                await asyncio.sleep(0)
        await pub.ping()
        # Everything published has reached the broker once a QoS 1 message sent after it is acknowledged.
        await pub.publish("fleet/last", b"x", 1, retain=True)
    got = 0
    done = asyncio.get_running_loop().create_future()

    def on_message(message: Message) -> None:
        nonlocal got
        got += 1
        if got == count + 1 and not done.done():
            done.set_result(None)

    rss0 = rss_bytes(broker.pid)
    sub = MQTTClient(broker.url, client_id="bench-retain-sub", version=4, reconnect=False)
    await sub.connect()
    sub.add_message_handler(on_message)
    t0 = time.perf_counter()
    await sub.subscribe("#", qos=0)
    try:
        async with asyncio.timeout(120):
            await done
    except TimeoutError:
        row.problems.append(f"received {got} of {count + 1} retained messages")
    row.values["receive all s"] = time.perf_counter() - t0
    row.values["RSS MiB"] = rss_bytes(broker.pid) / 1024 / 1024
    row.values["RSS growth MiB"] = (rss_bytes(broker.pid) - rss0) / 1024 / 1024
    await sub.disconnect()
    return row


def main() -> int:
    parser = argparse.ArgumentParser(
        description="MQTT broker throughput, CPU and memory: mqttchat vs mosquitto vs amqtt"
    )
    parser.add_argument("--scale", type=float, default=1.0, help="multiply message counts (default 1.0)")
    parser.add_argument("--only", nargs="*", default=["mqttchat", "mosquitto", "amqtt"], help="brokers to run")
    parser.add_argument("--skip", nargs="*", default=[], help="scenarios to skip: fanout idle retained")
    args = parser.parse_args()
    scale = args.scale
    scenarios: list[tuple[str, object]] = []
    if "fanout" not in args.skip:
        for subs, qos in ((1, 0), (10, 0), (1, 1), (10, 1)):
            n = int((100_000 if subs == 1 else 20_000) * scale * (0.5 if qos else 1))
            scenarios.append((f"1→{subs} QoS {qos} ({n * subs // 1000}k deliveries)", ("fanout", subs, qos, n)))
    if "idle" not in args.skip:
        scenarios.append(("1000 idle connections", ("idle", 1000)))
    if "retained" not in args.skip:
        count = int(100_000 * scale)
        scenarios.append((f"{count // 1000}k retained, then '#'", ("retained", count)))

    results: dict[tuple[str, str], Row] = {}
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            for label, spec in scenarios:
                with start_broker(name, Path(tmp)) as broker:
                    kind = spec[0]  # type: ignore[index]
                    if kind == "fanout":
                        _, subs, qos, n = spec  # type: ignore[misc]
                        coro = fanout(broker, subs, qos, n, 4 if name == "amqtt" else 5)
                    elif kind == "idle":
                        coro = idle_connections(broker, spec[1])  # type: ignore[index]
                    else:
                        coro = retained(broker, spec[1])  # type: ignore[index]
                    row = asyncio.run(coro)
                results[(name, label)] = row
                shown = ", ".join(f"{k} {v:,.2f}" if v < 100 else f"{k} {v:,.0f}" for k, v in row.values.items())
                status = "FAILED: " + "; ".join(row.problems) if row.problems else "ok"
                failed |= bool(row.problems)
                print(f"{name:<10} {label:<34} {shown}  [{status}]", flush=True)

    print()
    print("ratios (mqttchat vs peer):")
    for label, _ in scenarios:
        ours = results.get(("mqttchat", label))
        if ours is None:
            continue
        parts = []
        for peer in ("mosquitto", "amqtt"):
            theirs = results.get((peer, label))
            if theirs is None:
                continue
            for key, value in ours.values.items():
                other = theirs.values.get(key)
                if other:
                    parts.append(f"{key} {value / other:.2f}x {peer}")
        print(f"  {label:<34} " + "; ".join(parts))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
