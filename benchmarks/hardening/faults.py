"""Fault injection: QoS 1 and QoS 2 traffic through a chaotic link, and a broker killed (-9) and restarted.

Two publishers (MQTT 5 at QoS 1, MQTT 3.1.1 at QoS 2) and two persistent subscribers (MQTT 5 granted QoS 2,
MQTT 3.1.1 granted QoS 1) talk to ``mqttchat broker`` (persistence on) through :class:`ChaosProxy`, which delays
packets and, at random moments, cuts a connection, drops a packet and everything after it (a black hole that only
keepalive can detect), half-closes one direction, or stalls a link. In the ``crash`` run the broker is also
killed with SIGKILL now and then and restarted on the same port from its persistence file.

At the end, for each subscriber: every message whose publish was acknowledged was delivered (lost = 0), the
order of first deliveries follows each publisher's order, and a QoS 2 message granted at QoS 2 arrived exactly
once (duplicates counted for QoS 1, where they are allowed).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.hardening.common import BrokerProcess, Deadline, MemoryWatch, Report
from benchmarks.netlab import DOWN, UP, Link, PacketProxy
from mqttchat.client import Message, MQTTClient


class ChaosProxy(PacketProxy):
    """A loopback proxy between MQTT clients and a broker that injects faults, reproducibly from ``seed``."""

    def __init__(self, upstream_port: int, seed: int, max_delay: float = 0.02, delay_rate: float = 0.02) -> None:
        super().__init__(upstream_port)
        self.rng = random.Random(seed)
        self.max_delay = max_delay
        self.delay_rate = delay_rate
        self.counts = {"delays": 0, "cuts": 0, "drops": 0, "half-closes": 0, "stalls": 0}

    async def start(self) -> ChaosProxy:
        await super().start()
        return self

    def inject(self) -> str | None:
        """Apply one random fault to one random open link; return its name."""
        if not self.links:
            return None
        link = self.rng.choice(self.links)
        roll = self.rng.random()
        if roll < 0.45:
            link.abort()
            kind = "cuts"
        elif roll < 0.65:
            link.black_holes.add(self.rng.choice((UP, DOWN)))
            kind = "drops"
        elif roll < 0.8:
            writer = self.rng.choice((link.client, link.broker))
            with contextlib.suppress(Exception):
                if writer.can_write_eof():
                    writer.write_eof()
            link.black_holes.add(DOWN if writer is link.client else UP)
            kind = "half-closes"
        else:
            link.stalled_until = asyncio.get_running_loop().time() + self.rng.uniform(0.2, 1.5)
            kind = "stalls"
        self.counts[kind] += 1
        return kind

    async def forward(self, link: Link, direction: str, packet: bytes) -> bool:
        now = asyncio.get_running_loop().time()
        if link.stalled_until > now:
            await asyncio.sleep(link.stalled_until - now)
        if direction in link.black_holes:
            return False
        if self.rng.random() < self.delay_rate:
            self.counts["delays"] += 1
            await asyncio.sleep(self.rng.uniform(0, self.max_delay))
        return True


@dataclass
class Tally:
    """What one subscriber received from one publisher."""

    first_seen: list[int] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)
    copies: int = 0

    def add(self, seq: int) -> None:
        self.copies += 1
        if seq not in self.seen:
            self.seen.add(seq)
            self.first_seen.append(seq)


async def publish_all(client: MQTTClient, prefix: str, count: int, qos: int, window: int, rate: float,
                      deadline: Deadline, acked: set[int], failed: list[int]) -> None:  # fmt: skip
    """Publish ``count`` messages, ``rate`` a second, with at most ``window`` unacknowledged; record which were
    acknowledged (the pace spreads the traffic over the faults)."""
    gate = asyncio.Semaphore(window)
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def one(seq: int) -> None:
        try:
            result = await asyncio.wait_for(client.publish(f"chaos/{prefix}", f"{prefix}:{seq}", qos=qos),
                                            timeout=max(deadline.left, 0.1))  # fmt: skip
            if result.ok:
                acked.add(seq)
            else:
                failed.append(seq)
        except Exception:  # not acknowledged in time, or refused: it may or may not be delivered
            failed.append(seq)
        finally:
            gate.release()

    tasks = []
    for seq in range(count):
        if deadline.expired:
            break
        due = started + seq / rate - loop.time()
        if due > 0:
            await asyncio.sleep(due)
        await gate.acquire()
        tasks.append(asyncio.create_task(one(seq)))
    await asyncio.gather(*tasks)


async def chaos_run(name: str, workdir: Path, messages: int, seconds: float, kills: int, seed: int) -> Report:
    report = Report(name)
    rng = random.Random(seed)
    directory = workdir / f"faults-{seed}"
    state = directory / "state.sqlite3"
    broker = BrokerProcess(directory, f"persistence = true\npersistence_file = {str(state)!r}\n"
                                      "max_queued_messages = 0\nmax_inflight_messages = 0\n").start()  # fmt: skip
    proxy = await ChaosProxy(broker.port, seed).start()
    common: dict[str, Any] = {
        "keepalive": 1, "reconnect_min_delay": 0.05, "reconnect_max_delay": 0.4, "clean_start": False
    }  # fmt: skip
    subs = {
        "v5-qos2": MQTTClient(proxy.url, client_id="chaos-sub-5", session_expiry=3600, **common),
        "v311-qos1": MQTTClient(proxy.url, client_id="chaos-sub-4", version=4, **common),
    }
    granted = {"v5-qos2": 2, "v311-qos1": 1}
    pubs = {
        "A": (MQTTClient(proxy.url, client_id="chaos-pub-a", session_expiry=3600, **common), 1),
        "B": (MQTTClient(proxy.url, client_id="chaos-pub-b", version=4, **common), 2),
    }
    tallies = {(s, p): Tally() for s in subs for p in pubs}

    def receiver(sub_name: str):  # type: ignore[no-untyped-def]
        def on_message(message: Message) -> None:
            prefix, _, seq = message.payload.decode().partition(":")
            tallies[(sub_name, prefix)].add(int(seq))

        return on_message

    deadline = Deadline(seconds)
    acked: dict[str, set[int]] = {p: set() for p in pubs}
    failed: dict[str, list[int]] = {p: [] for p in pubs}
    killed = 0
    memory = MemoryWatch(broker.pid)
    try:
        for sub_name, client in subs.items():
            client.add_message_handler(receiver(sub_name))
            await client.connect()
            await client.subscribe("chaos/#", qos=granted[sub_name])
        for client, _ in pubs.values():
            await client.connect()

        async def chaos() -> None:
            nonlocal killed, memory
            kill_at = sorted(rng.uniform(0.1, 0.9) * seconds * 0.6 for _ in range(kills))
            started = asyncio.get_running_loop().time()
            while True:
                await asyncio.sleep(rng.uniform(0.15, 0.5))
                proxy.inject()
                if kill_at and asyncio.get_running_loop().time() - started >= kill_at[0]:
                    kill_at.pop(0)
                    memory.__exit__()
                    broker.kill()
                    killed += 1
                    await asyncio.sleep(rng.uniform(0.1, 0.5))
                    broker.start()
                    memory = MemoryWatch(broker.pid).__enter__()

        memory.__enter__()
        chaos_task = asyncio.create_task(chaos())
        per_publisher = messages // len(pubs)
        rate = per_publisher / (seconds * 0.6)
        await asyncio.gather(*(
            publish_all(client, prefix, per_publisher, qos, 50, rate, deadline, acked[prefix], failed[prefix])
            for prefix, (client, qos) in pubs.items()
        ))  # fmt: skip
        chaos_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await chaos_task
        # Let the link heal, then wait for every acknowledged message to arrive.
        settle = Deadline(30)
        while not settle.expired:
            if all(acked[p] <= tallies[(s, p)].seen for s in subs for p in pubs):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # late duplicates, if any, show up now
    finally:
        memory.__exit__()
        for client in [*subs.values(), *(c for c, _ in pubs.values())]:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 5)
        await proxy.close()
        broker.stop()

    sent = sum(len(acked[p]) + len(failed[p]) for p in pubs)
    report.figures["sent"] = sent
    report.figures["acknowledged"] = sum(len(a) for a in acked.values())
    for sub_name in subs:
        delivered = sum(len(tallies[(sub_name, p)].seen) for p in pubs)
        lost = sum(len(acked[p] - tallies[(sub_name, p)].seen) for p in pubs)
        out_of_order = 0
        examples: list[str] = []
        for p in pubs:
            seq = tallies[(sub_name, p)].first_seen
            for i, (a, b) in enumerate(itertools.pairwise(seq)):
                if b < a:
                    out_of_order += 1
                    if len(examples) < 3:
                        examples.append(f"{p}:{b} after {p}:{a} (first seen: ...{seq[max(0, i - 3) : i + 4]}...)")
        report.figures[f"{sub_name} delivered"] = delivered
        report.figures[f"{sub_name} duplicated (QoS 1 publisher)"] = tallies[(sub_name, "A")].copies - len(
            tallies[(sub_name, "A")].seen
        )
        report.figures[f"{sub_name} duplicated (QoS 2 publisher)"] = tallies[(sub_name, "B")].copies - len(
            tallies[(sub_name, "B")].seen
        )
        report.figures[f"{sub_name} lost"] = lost
        report.check(lost == 0, f"{sub_name}: {lost} acknowledged message(s) never delivered")
        report.check(out_of_order == 0, f"{sub_name}: {out_of_order} message(s) out of publisher order: "
                                        + "; ".join(examples))  # fmt: skip
    qos2 = tallies[("v5-qos2", "B")]
    report.check(qos2.copies == len(qos2.seen), f"QoS 2 delivered twice: {qos2.copies - len(qos2.seen)} time(s)")
    report.figures["connections"] = proxy.connections
    for kind, count in proxy.counts.items():
        report.figures[kind] = count
    report.figures["broker kills"] = killed
    report.figures["broker RSS peak MiB"] = round(memory.peak_kib / 1024, 1)
    report.check(report.figures["acknowledged"] > 0, "nothing was acknowledged")  # type: ignore[operator]
    return report


async def run(long: bool, workdir: Path) -> list[Report]:
    if long:
        return [
            await chaos_run("faults: chaotic link", workdir, 20_000, 300, 0, seed=1),
            await chaos_run("faults: chaotic link + broker kill -9", workdir, 20_000, 300, 12, seed=2),
        ]
    # The short forms side by side (each has its own broker, proxy and clients; the traffic is paced, so they
    # mostly wait): half the time in the test suite.
    return list(
        await asyncio.gather(
            chaos_run("faults: chaotic link", workdir, 3000, 25, 0, seed=1),
            chaos_run("faults: chaotic link + broker kill -9", workdir, 3000, 25, 2, seed=2),
        )
    )
