"""Load: many clients, slow subscribers that stop reading, junk connections, and a reconnect storm.

One ``mqttchat broker`` process (``max_queued_messages`` bounded) serves, all at once:

* ``clients`` MQTT clients connected, ``publishers`` of them publishing QoS 1 messages, and a few healthy
  subscribers to ``load/#`` that must receive every acknowledged message, in each publisher's order;
* slow subscribers (raw sockets that subscribe to ``load/#`` at QoS 1 and then never read again): the broker must
  bound their queues, count what it drops for them, and keep serving everyone else;
* half-open TCP connections that never send CONNECT and slowloris CONNECTs trickling a byte every 0.5 s: the
  broker must close each at its connect timeout;
* then the broker is restarted, and every client must reconnect (a reconnect storm, with backoff and jitter).

Figures: messages sent, acknowledged, delivered, lost; drops the broker counted; junk connections closed; the
broker's memory high-water mark; how long the storm took and how many came back.

A second scenario attacks the caches keyed by topic: one client publishes QoS 0 to thousands of distinct 65 KB
topic names that nobody subscribes to. Each message is forgotten once routed, so the broker's memory must stay
where it was (caches are bounded in bytes and skip topics too long to be worth caching) and be back there once
the client has left; mosquitto, when installed, takes the same traffic for comparison.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from pathlib import Path
from typing import Any

from benchmarks.hardening.common import BrokerProcess, Deadline, MemoryWatch, Report, broker_process, rss_kib
from benchmarks.peers import mosquitto_process
from mqttchat.client import Message, MQTTClient

SLOW_QUEUE = 500


async def junk_connection(port: int, slowloris: bool, timeout: float) -> bool:
    """Open a connection that never completes CONNECT; True when the broker closed it within ``timeout``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    connect = b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04slow"
    try:
        async with asyncio.timeout(timeout):
            if slowloris:
                for byte in connect[:-1]:  # never the last byte: CONNECT is never complete
                    writer.write(bytes((byte,)))
                    await writer.drain()
                    if await _closed_within(reader, 0.5):
                        return True
            return await _closed_within(reader, timeout)
    except (TimeoutError, ConnectionError):
        return False
    finally:
        writer.transport.abort()


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        data = await asyncio.wait_for(reader.read(1024), seconds)
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return data == b""


async def slow_subscriber(port: int, index: int) -> asyncio.StreamWriter:
    """Subscribe to load/# at QoS 1 over a raw socket, read the SUBACK, then never read again."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    cid = b"slow-%04d" % index
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
    writer.write(bytes((0x10, len(body))) + body)
    await reader.readexactly(4)  # CONNACK
    topic = b"load/#"
    body = b"\x00\x01" + len(topic).to_bytes(2, "big") + topic + b"\x01"
    writer.write(bytes((0x82, len(body))) + body)
    await reader.readexactly(5)  # SUBACK
    writer.transport.pause_reading()  # type: ignore[attr-defined]
    return writer


async def load_run(workdir: Path, clients: int, publishers: int, per_publisher: int, rate: float, slow: int,
                   junk: int, seconds: float) -> list[Report]:  # fmt: skip
    traffic = Report("load: clients and publishers")
    slowness = Report("load: slow subscribers")
    junk_report = Report("load: half-open and slowloris connections")
    storm = Report("load: reconnect storm after a broker restart")
    config = (
        f"max_queued_messages = {SLOW_QUEUE}\nmax_inflight_messages = 20\nconnect_timeout = 2\n"
        "max_connections = -1\nsys_interval = 1\n"
    )
    broker = BrokerProcess(workdir / "load", config).start()
    deadline = Deadline(seconds)
    options: dict[str, Any] = {"reconnect_min_delay": 0.2, "reconnect_max_delay": 3.0, "keepalive": 60}
    fleet = [MQTTClient(broker.url, client_id=f"load-{i:04d}", **options) for i in range(clients)]
    healthy = [MQTTClient(broker.url, client_id=f"healthy-{i}", **options) for i in range(3)]
    sys_stats: dict[str, str] = {}
    monitor = MQTTClient(broker.url, client_id="load-monitor", **options)
    received: list[dict[int, list[int]]] = [{} for _ in healthy]
    slow_writers: list[asyncio.StreamWriter] = []
    base_kib = rss_kib(broker.pid)
    memory = MemoryWatch(broker.pid).__enter__()
    try:
        # Connect the fleet in batches; the healthy subscribers and the $SYS monitor first.
        for i, sub in enumerate(healthy):

            def on_message(message: Message, box: dict[int, list[int]] = received[i]) -> None:
                who, _, seq = message.payload.partition(b":")
                box.setdefault(int(who), []).append(int(seq))

            sub.add_message_handler(on_message)
            await sub.connect()
            await sub.subscribe("load/#", qos=1)
        monitor.add_message_handler(
            lambda m: sys_stats.__setitem__(m.topic.removeprefix("$SYS/broker/"), m.payload.decode())
        )
        await monitor.connect()
        await monitor.subscribe("$SYS/broker/#")
        started = time.perf_counter()
        for start in range(0, clients, 100):
            await asyncio.gather(*(c.connect() for c in fleet[start : start + 100]))
        traffic.figures["clients connected"] = sum(c.connected for c in fleet)
        traffic.figures["connect s"] = round(time.perf_counter() - started, 2)
        traffic.check(traffic.figures["clients connected"] == clients, "not every client connected")
        slow_writers.extend([await slow_subscriber(broker.port, i) for i in range(slow)])

        # Traffic, junk connections at the same time.
        acked: dict[int, list[int]] = {i: [] for i in range(publishers)}

        async def publish(index: int) -> None:
            """QoS 1 at ``rate / publishers`` a second each: a load the healthy subscribers can follow."""
            client = fleet[index]
            pending: list[tuple[int, Any]] = []
            loop = asyncio.get_running_loop()
            started = loop.time() + index / rate  # staggered starts
            for seq in range(per_publisher):
                if deadline.expired:
                    break
                due = started + seq * publishers / rate - loop.time()
                if due > 0:
                    await asyncio.sleep(due)
                pending.append((seq, client.publish_nowait(f"load/{index}", b"%d:%d" % (index, seq), 1)))
                if len(pending) >= 20:
                    await _settle(pending, acked[index])
            await _settle(pending, acked[index])

        async def _settle(pending: list[tuple[int, Any]], into: list[int]) -> None:
            for seq, future in pending:
                with contextlib.suppress(Exception):
                    if (await future).ok:
                        into.append(seq)
            pending.clear()

        junk_tasks = [
            asyncio.create_task(junk_connection(broker.port, slowloris=i % 4 == 0, timeout=8)) for i in range(junk)
        ]
        started = time.perf_counter()
        await asyncio.gather(*(publish(i) for i in range(publishers)))
        elapsed = time.perf_counter() - started
        closed = await asyncio.gather(*junk_tasks, return_exceptions=True)
        total_acked = sum(len(v) for v in acked.values())
        settle = Deadline(20)
        while not settle.expired and any(sum(len(v) for v in box.values()) < total_acked for box in received):
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)  # one more $SYS interval
        traffic.figures["publishers"] = publishers
        traffic.figures["target msg/s"] = rate
        traffic.figures["sent"] = publishers * per_publisher
        traffic.figures["acknowledged"] = total_acked
        traffic.figures["acknowledged/s"] = round(total_acked / elapsed)
        for n, box in enumerate(received):
            lost = sum(len(set(acked[p]) - set(box.get(p, []))) for p in acked)
            disorder = sum(sum(1 for a, b in itertools.pairwise(dict.fromkeys(seqs)) if b < a) for seqs in box.values())
            traffic.figures[f"subscriber {n + 1} delivered"] = sum(len(set(v)) for v in box.values())
            traffic.figures[f"subscriber {n + 1} lost"] = lost
            traffic.check(lost == 0, f"subscriber {n + 1} lost {lost} acknowledged message(s)")
            traffic.check(disorder == 0, f"subscriber {n + 1}: {disorder} message(s) out of publisher order")
        traffic.figures["broker RSS peak MiB"] = round(memory.peak_kib / 1024, 1)

        dropped = int(sys_stats.get("messages/dropped", "-1"))
        slowness.figures["slow subscribers"] = slow
        slowness.figures["queue limit"] = SLOW_QUEUE
        slowness.figures["drops counted by the broker"] = dropped
        expected_min = slow * max(0, total_acked - SLOW_QUEUE - 20) * 0.5
        slowness.check(dropped >= expected_min, f"the broker counted {dropped} drops, expected at least "
                                                f"{expected_min:.0f}")  # fmt: skip
        slowness.figures["broker RSS growth MiB"] = round((memory.peak_kib - base_kib) / 1024, 1)
        slowness.check(memory.peak_kib - base_kib < 512 * 1024, "the broker grew by more than 512 MiB")

        junk_report.figures["connections"] = junk
        junk_report.figures["slowloris"] = sum(1 for i in range(junk) if i % 4 == 0)
        junk_report.figures["closed by the broker"] = sum(1 for c in closed if c is True)
        junk_report.check(all(c is True for c in closed), "a junk connection was not closed at the timeout")

        # The storm: restart the broker; everyone reconnects.
        for writer in slow_writers:
            writer.transport.abort()
        memory.__exit__()
        broker.stop()
        await asyncio.sleep(0.5)
        broker.start()
        memory = MemoryWatch(broker.pid).__enter__()
        started = time.perf_counter()
        storm_deadline = Deadline(60)
        everyone = [*fleet, *healthy, monitor]
        while not storm_deadline.expired and not all(c.connected for c in everyone):
            await asyncio.sleep(0.05)
        storm.figures["clients"] = len(everyone)
        storm.figures["reconnected"] = sum(c.connected for c in everyone)
        storm.figures["seconds"] = round(time.perf_counter() - started, 2)
        storm.figures["broker RSS peak MiB"] = round(memory.peak_kib / 1024, 1)
        storm.check(storm.figures["reconnected"] == len(everyone), "not every client came back")
        storm.check(broker.alive(), "the broker died")
    finally:
        memory.__exit__()
        for writer in slow_writers:
            writer.transport.abort()
        for start in range(0, len(fleet), 200):
            await asyncio.gather(*(c.disconnect() for c in fleet[start : start + 200]), return_exceptions=True)
        for client in [*healthy, monitor]:
            with contextlib.suppress(Exception):
                await client.disconnect()
        broker.stop()
    return [traffic, slowness, junk_report, storm]


#: How much a broker may grow while routing (and forgetting) the long topics: what its caches may hold.
TOPIC_CACHE_GROWTH_LIMIT_MIB = 48


def _mqtt_string(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


def _packet(first: int, body: bytes) -> bytes:
    size = len(body)
    length = bytearray()
    while True:
        digit, size = size & 0x7F, size >> 7
        length.append(digit | (0x80 if size else 0))
        if not size:
            return bytes((first, *length)) + body


async def _flood_long_topics(port: int, topics: int, topic_bytes: int, deadline: Deadline) -> int:
    """Publish QoS 0 to ``topics`` distinct topic names of ``topic_bytes`` bytes over a raw socket (no client-side
    cache in the way); return how many the broker had read when its PINGRESP came back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        body = _mqtt_string(b"MQTT") + b"\x04\x02\x00\x3c" + _mqtt_string(b"long-topics")
        writer.write(_packet(0x10, body))
        await asyncio.wait_for(reader.readexactly(4), deadline.left)  # CONNACK
        filler = b"x" * (topic_bytes - 12)
        sent = 0
        for i in range(topics):
            if deadline.expired:
                break
            writer.write(_packet(0x30, _mqtt_string(b"long/%05d/" % i + filler) + b"p"))
            sent += 1
            if i % 16 == 15:
                await writer.drain()
        writer.write(b"\xc0\x00")  # PINGREQ: its answer comes after every PUBLISH before it was handled
        await asyncio.wait_for(reader.readexactly(2), deadline.left)
        writer.write(b"\xe0\x00")  # DISCONNECT
        await writer.drain()
        return sent
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _settled_rss_kib(pid: int, near_kib: int, seconds: float) -> int:
    """The process's RSS once it has come back to within 1 MiB of ``near_kib``, or after ``seconds``."""
    deadline = Deadline(seconds)
    rss = rss_kib(pid)
    while rss > near_kib + 1024 and not deadline.expired:
        await asyncio.sleep(0.1)
        rss = rss_kib(pid)
    return rss


async def _long_topic_figures(report: Report, name: str, port: int, pid: int, topics: int, topic_bytes: int,
                              seconds: float) -> tuple[int, int, int]:  # fmt: skip
    base = rss_kib(pid)
    with MemoryWatch(pid) as memory:
        sent = await _flood_long_topics(port, topics, topic_bytes, Deadline(seconds))
    after = await _settled_rss_kib(pid, base, 5)
    report.figures[f"{name} RSS before MiB"] = round(base / 1024, 1)
    report.figures[f"{name} RSS peak MiB"] = round(memory.peak_kib / 1024, 1)
    report.figures[f"{name} RSS after the client left MiB"] = round(after / 1024, 1)
    return sent, memory.peak_kib - base, after - base


async def long_topics_run(workdir: Path, topics: int, topic_bytes: int, seconds: float) -> Report:
    """Issue 13, item 3: distinct long topic names nobody reads must not accumulate in the broker's caches."""
    report = Report("load: distinct 65 KB topics nobody subscribes to")
    report.figures["topics"] = topics
    report.figures["topic KB"] = round(topic_bytes / 1000)
    with broker_process(workdir / "long-topics") as broker:
        sent, growth, left = await _long_topic_figures(report, "mqttchat", broker.port, broker.pid, topics,
                                                       topic_bytes, seconds)  # fmt: skip
        report.check(broker.alive(), "the broker died")
    report.figures["sent MB"] = round(sent * topic_bytes / 1e6)
    report.check(sent == topics, f"only {sent} of {topics} messages were sent within {seconds:.0f} s")
    report.check(growth < TOPIC_CACHE_GROWTH_LIMIT_MIB * 1024,
                 f"the broker grew by {growth / 1024:.0f} MiB (at most {TOPIC_CACHE_GROWTH_LIMIT_MIB})")  # fmt: skip
    report.check(left < 16 * 1024, f"the broker still held {left / 1024:.0f} MiB more once the client had left")
    with contextlib.suppress(SystemExit), mosquitto_process() as (port, proc):
        await _long_topic_figures(report, "mosquitto", port, proc.pid, topics, topic_bytes, seconds)
    return report


async def run(long: bool, workdir: Path) -> list[Report]:
    if long:
        reports = await load_run(workdir, clients=1000, publishers=200, per_publisher=500, rate=2000, slow=20,
                                 junk=400, seconds=600)  # fmt: skip
        return [*reports, await long_topics_run(workdir, topics=10_000, topic_bytes=65_000, seconds=300)]
    reports = await load_run(workdir, clients=1000, publishers=200, per_publisher=20, rate=1000, slow=5, junk=40,
                             seconds=40)  # fmt: skip
    return [*reports, await long_topics_run(workdir, topics=2_000, topic_bytes=65_000, seconds=60)]
