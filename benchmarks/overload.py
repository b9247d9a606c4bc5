"""Overload protection: slow and stalled subscribers, mqttchat's broker beside mosquitto, with default limits.

Run: ``python -m benchmarks.overload [--scale 1.0] [--only mqttchat mosquitto] [--broker-path DIR]``.
Every broker runs in its own process with its default queue and in-flight limits (1,000 queued, 20 in flight per
client, as mosquitto's); one load generator in this process drives them the same way (mqttchat's client publishes
with a window of 1,000 unacknowledged messages, raw-socket MQTT 3.1.1 subscribers receive: see
:class:`benchmarks.broker.LeanSubscriber`). ``--broker-path`` runs mqttchat's broker from another checkout (its
directory first on PYTHONPATH), to compare before and after a change in one run.

Scenarios:
* 1→1 QoS 1, the subscriber acknowledging at most ``--sub-rate`` messages a second (the publisher writes as fast
  as it can): delivered and lost, the publisher's rate (its messages acknowledged per second) beside the
  subscriber's, and the broker's peak resident memory.
* 1→10 QoS 1, nine subscribers that keep up and one that never reads (after its SUBACK): the nine's delivery rate
  beside the same run with only the nine, every one of them complete, the longest wait between two reads of any
  of the nine (a pause until the tenth is declared stalled shows here), the broker's drop count (``$SYS``, which
  for a broker that keeps the nine complete are the stalled one's drops), and its peak memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from benchmarks.broker import PAYLOAD, BrokerProcess, LeanSubscriber
from benchmarks.peers import free_port, serving
from mqttchat.client import MQTTClient, PublishResult

#: Every wait is bounded: a broker that loses messages is given this long without progress, then counted.
IDLE_SECONDS = 3.0


def peak_rss(pid: int) -> int:
    """The process's peak resident memory (VmHWM), bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def start_broker(name: str, tmp: Path, broker_path: str | None) -> Iterator[BrokerProcess]:
    """A broker with its default limits and $SYS every second (to read its drop count)."""
    port = free_port()
    env = dict(os.environ)
    if name.startswith("mqttchat"):
        conf = tmp / f"{name}.toml"
        extra = "overload_protection = false\n" if name == "mqttchat-off" else ""
        conf.write_text(f"sys_interval = 1\nlog_connections = false\n{extra}[[listener]]\nport = {port}\n")
        if broker_path is not None and name == "mqttchat-base":
            env["PYTHONPATH"] = broker_path
        cmd = [sys.executable, "-m", "mqttchat", "broker", "-c", str(conf)]
    elif name == "mosquitto":
        conf = tmp / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nsys_interval 1\n"
            + ("user root\n" if os.geteuid() == 0 else "")
        )
        cmd = ["/usr/sbin/mosquitto", "-c", str(conf)]
    else:
        raise ValueError(name)
    # In the temporary directory: ``python -m`` puts the current directory first on sys.path, which would load
    # the checkout the benchmark was started from instead of --broker-path's.
    with serving(cmd, port, env=env, cwd=tmp) as proc:
        yield BrokerProcess(name, port, proc)


class PacedSubscriber(LeanSubscriber):
    """A LeanSubscriber whose acknowledgements leave at most ``rate`` a second (a slow consumer), or never
    (``rate`` 0: it stops reading after its SUBACK, a stalled one)."""

    def __init__(self, client_id: str, topic: str, total: int, done: asyncio.Future[None], rate: float) -> None:
        super().__init__(client_id, topic, 1, total, done)
        self.rate = rate
        self.acks = bytearray()
        self._real: asyncio.Transport | None = None
        self._pacer: asyncio.Task[None] | None = None
        #: The longest wait between two reads once messages flow (a publisher paused shows here), seconds.
        self.longest_gap = 0.0
        self._last_read = 0.0

    def write(self, data: bytes) -> None:  # the transport LeanSubscriber writes its acknowledgements to
        self.acks += data

    def data_received(self, data: bytes) -> None:
        if not self.subscribed.done():
            super().data_received(data)
            if self.subscribed.done():
                assert self.transport is not None
                if self.rate == 0:
                    self.transport.pause_reading()
                elif self.rate != float("inf"):
                    self._real = self.transport
                    self._pacer = asyncio.get_running_loop().create_task(self._pace())
            return
        now = time.perf_counter()
        if self.count:
            self.longest_gap = max(self.longest_gap, now - self._last_read)
        self._last_read = now
        if self._real is None:
            super().data_received(data)
            return
        real = self.transport
        self.transport = self  # type: ignore[assignment]
        try:
            super().data_received(data)
        finally:
            self.transport = real

    async def _pace(self) -> None:
        allowance = 0.0
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            allowance = min(allowance + (now - last) * self.rate, self.rate * 0.05)
            last = now
            n = min(int(allowance), len(self.acks) // 4)
            if n and self._real is not None and not self._real.is_closing():
                self._real.write(bytes(self.acks[: 4 * n]))
                del self.acks[: 4 * n]
                allowance -= n

    def stop(self) -> None:
        if self._pacer is not None:
            self._pacer.cancel()
        if self.transport is not None:
            self.transport.close()


async def subscriber(broker: BrokerProcess, cid: str, topic: str, total: int, rate: float) -> PacedSubscriber:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    _, sub = await loop.create_connection(
        lambda: PacedSubscriber(cid, topic, total, done, rate), "127.0.0.1", broker.port
    )
    await asyncio.wait_for(sub.subscribed, 10)
    return sub


async def publish_all(pub: MQTTClient, topic: str, n: int) -> float:
    """Publish ``n`` QoS 1 messages, at most 1,000 unacknowledged; seconds until the last was acknowledged (an
    acknowledgement waited for more than 60 s fails the run)."""
    t0 = time.perf_counter()
    pending: deque[asyncio.Future[PublishResult]] = deque()
    for i in range(n):
        future = pub.publish_nowait(topic, b"%08d" % i + PAYLOAD, 1)
        assert future is not None
        pending.append(future)
        if len(pending) >= 1000:
            await asyncio.wait_for(pending.popleft(), 60)
    for waiting in pending:
        await asyncio.wait_for(waiting, 60)
    return time.perf_counter() - t0


async def wait_for(subs: list[PacedSubscriber], total: int) -> None:
    """Until every subscriber has ``total``, or none made progress for IDLE_SECONDS."""
    last = -1
    idle_since = time.perf_counter()
    while True:
        counts = sum(sub.count for sub in subs)
        if counts >= total * len(subs):
            return
        now = time.perf_counter()
        if counts != last:
            last, idle_since = counts, now
        elif now - idle_since > IDLE_SECONDS:
            return
        await asyncio.sleep(0.02)


async def dropped(broker: BrokerProcess) -> int | None:
    """The broker's drop count from $SYS (the next publication after now)."""
    topic = (
        "$SYS/broker/messages/dropped" if broker.name.startswith("mqttchat") else "$SYS/broker/publish/messages/dropped"
    )
    async with MQTTClient(broker.url, client_id="bench-sys", version=4, reconnect=False) as client:
        stream = client.messages()
        await client.subscribe(topic)
        value = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3):
                while True:  # the retained value, then the next publication (after everything above)
                    message = await stream.get()
                    value = int(message.payload)
                    if not message.retain:
                        break
        return value


def _number(value: int | None) -> float:
    return float("nan") if value is None else float(value)


async def slow_subscriber(broker: BrokerProcess, n: int, rate: float) -> dict[str, float]:
    topic = "bench/slow"
    sub = await subscriber(broker, "bench-slow", topic, n, rate)
    async with MQTTClient(broker.url, client_id="bench-pub", reconnect=False) as pub:
        t0 = time.perf_counter()
        pub_seconds = await publish_all(pub, topic, n)
        await wait_for([sub], n)
        sub_seconds = time.perf_counter() - t0
    sub.stop()
    return {
        "delivered": sub.count,
        "lost": n - sub.count,
        "out of order": sub.out_of_order,
        "publisher msg/s": n / pub_seconds,
        "subscriber msg/s": sub.count / sub_seconds,
        "dropped ($SYS)": _number(await dropped(broker)),
        "peak RSS MiB": peak_rss(broker.pid) / 2**20,
    }


async def fanout_with_stalled(broker: BrokerProcess, n: int, stalled: bool) -> dict[str, float]:
    topic = "bench/fanout"
    fast = [await subscriber(broker, f"bench-sub-{i}", topic, n, float("inf")) for i in range(9)]
    stuck = await subscriber(broker, "bench-stalled", topic, n, 0) if stalled else None
    async with MQTTClient(broker.url, client_id="bench-pub", reconnect=False) as pub:
        t0 = time.perf_counter()
        await publish_all(pub, topic, n)
        await wait_for(fast, n)
        seconds = time.perf_counter() - t0
    counts = [sub.count for sub in fast]
    for sub in fast:
        sub.stop()
    row = {
        "nine msg/s each": sum(counts) / 9 / seconds,
        "nine complete": float(sum(count == n for count in counts)),
        "nine lost": float(9 * n - sum(counts)),
        "nine's longest gap s": max(sub.longest_gap for sub in fast),
        "dropped ($SYS)": _number(await dropped(broker)),
        "peak RSS MiB": peak_rss(broker.pid) / 2**20,
    }
    if stuck is not None:
        stuck.stop()
    return row


def show(values: dict[str, float]) -> str:
    return ", ".join(
        f"{k} {v:,.1f}" if isinstance(v, float) and v < 100 else f"{k} {v:,.0f}" for k, v in values.items()
    )


def main() -> int:
    parser = argparse.ArgumentParser(description="Overload protection: slow and stalled subscribers")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply message counts (default 1.0)")
    parser.add_argument("--sub-rate", type=float, default=2000, help="the slow subscriber's messages a second")
    parser.add_argument(
        "--only", nargs="*", default=["mqttchat", "mosquitto"],
        help="brokers: mqttchat, mqttchat-off (protection off), mqttchat-base (from --broker-path), mosquitto",
    )  # fmt: skip
    parser.add_argument("--broker-path", help="run mqttchat-base's broker from this checkout")
    args = parser.parse_args()
    slow_n = int(6000 * args.scale)
    fan_n = int(100_000 * args.scale)
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        print(f"1→1 QoS 1, {slow_n} messages, the subscriber acknowledging {args.sub_rate:g}/s")
        for name in args.only:
            with start_broker(name, Path(tmp), args.broker_path) as broker:
                row = asyncio.run(slow_subscriber(broker, slow_n, args.sub_rate))
            print(f"  {name:<14} {show(row)}", flush=True)
            failed |= name == "mqttchat" and row["lost"] > 0
        print(f"1→10 QoS 1, {fan_n} messages: nine subscribers that keep up, without and with one stalled")
        for name in args.only:
            rows = []
            for stalled in (False, True):
                with start_broker(name, Path(tmp), args.broker_path) as broker:
                    rows.append(asyncio.run(fanout_with_stalled(broker, fan_n, stalled)))
                print(f"  {name:<14} {'with' if stalled else 'without':<7} {show(rows[-1])}", flush=True)
            ratio = rows[1]["nine msg/s each"] / rows[0]["nine msg/s each"]
            print(f"  {name:<14} the nine with a stalled tenth: {ratio:.2f}x their rate without it", flush=True)
            failed |= name == "mqttchat" and rows[1]["nine lost"] > 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
