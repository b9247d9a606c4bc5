"""The explorer's lasting history store: sustained write rate, bytes per message, eviction, queries, and what the
writer thread costs an event loop fed at 20,000 messages a second.

Run: ``python -m benchmarks.history [--messages 500000] [--topics 10000] [--rate 20000] [--seconds 10]``. Phases:

1. write: ``--messages`` JSON readings (about 60 bytes, like a sensor's) over ``--topics`` topics, written by
   :meth:`HistoryDatabase.write` in batches of 20,000 (BATCH) as the writer thread does, with the FTS5 text index and
   without: messages per second (wall clock) and the store's bytes per message (used pages / messages).
2. budget: the same into a store whose budget is an eighth of what they need: the write rate while evicting, the
   store's size against its budget, and what was evicted.
3. loop: an asyncio loop offers ``--rate`` messages a second to a :class:`HistoryWriter` for ``--seconds`` (in
   10 ms slices, as a client's reader would), with a 5 ms ticker measuring how late the loop wakes: the worst and
   99th-percentile stall, what the writer wrote and dropped, and its largest backlog (messages queued: a writer
   that keeps up holds about a write interval's worth). Run it beside the same loop without a writer
   (the baseline) to see what the thread costs.
4. queries on the store of phase 1: a subtree over all time, a time range, payload words (FTS5), a condition on a
   JSON field, the state of every topic at a moment, and stepping through one topic's changes.

Targets (issue 17): the writer keeps up with 20,000 messages a second with nothing dropped, and the loop's worst
stall stays under 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mqttchat.client.messages import Message
from mqttchat.explorer.conditions import parse_condition
from mqttchat.explorer.history_store import (
    BATCH,
    HistoryDatabase,
    HistoryQuery,
    HistoryReader,
    HistoryWriter,
    fts5_available,
)
from mqttchat.labels import size_label

T0 = 1_800_000_000.0


def readings(count: int, topics: int, start: float = T0, rate: float = 20_000.0) -> list[Message]:
    """``count`` sensor readings over ``topics`` topics, ``rate`` a second from ``start``."""
    rng = random.Random(17)
    names = [f"plant/line{i % 20}/cell{i // 20 % 50}/sensor{i}/state" for i in range(topics)]
    out = []
    for i in range(count):
        payload = json.dumps(
            {"temp": round(rng.uniform(15, 35), 2), "hum": rng.randint(20, 90), "ok": rng.random() > 0.1},
            separators=(",", ":"),
        ).encode()
        out.append(Message(names[i % topics], payload, received_at=start + i / rate))
    return out


def timed(job: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = job()
    return time.perf_counter() - started, result


def write_phase(folder: Path, messages: list[Message], use_fts: bool, budget: int) -> tuple[Path, dict[str, float]]:
    path = folder / f"write-{use_fts}-{budget}.sqlite"
    db = HistoryDatabase(path, budget=budget, retention=None, use_fts=use_fts)
    started = time.perf_counter()
    worst = 0
    kept: list[int] = []
    for start in range(0, len(messages), BATCH):
        db.write(messages[start : start + BATCH], now=T0)
        if budget < 1 << 40:  # measuring costs time: only where the budget is the point
            worst = max(worst, db.used_bytes())
            if db.stats.evicted:
                kept.append(db.count)
    elapsed = time.perf_counter() - started
    figures = {
        "rate": len(messages) / elapsed,
        "bytes": db.used_bytes(),
        "stored": db.count,
        "per_message": db.used_bytes() / max(db.count, 1),
        "evicted": db.stats.evicted,
        "payload": sum(len(m.payload) for m in messages) / len(messages),
        "worst": worst,
        "kept_min": min(kept, default=0),
        "kept_max": max(kept, default=0),
    }
    db.close()
    return path, figures


def app_gc() -> None:
    """The app's collector settings (mqttchat.ui.app.configure_gc, without importing Textual here)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(2_000, 10, 2**30)


async def loop_phase(folder: Path | None, rate: int, seconds: float, topics: int) -> dict[str, float]:
    """Offer ``rate`` messages a second for ``seconds`` from the loop; the loop's stalls (ms) and the counts.

    The collector runs as in the app: young generations only, and what survived set aside at each screen flush
    (15 a second).
    """
    loop = asyncio.get_running_loop()
    writer = HistoryWriter(folder / "loop.sqlite", retention=None) if folder is not None else None
    delays: list[float] = []
    backlog = 0

    async def ticker() -> None:
        nonlocal backlog
        while True:
            before = loop.time()
            await asyncio.sleep(0.005)
            delays.append(max(0.0, loop.time() - before - 0.005))
            if writer is not None:
                backlog = max(backlog, writer.queued)

    async def flusher() -> None:
        while True:
            await asyncio.sleep(1 / 15)
            gc.collect(1)
            gc.freeze()

    pool = readings(min(rate, 50_000), topics, start=time.time())
    latest: dict[str, object] = {}
    app_gc()
    tick = asyncio.create_task(ticker())
    flush = asyncio.create_task(flusher())
    offered = 0
    started = loop.time()
    slice_size = max(1, rate // 100)
    while loop.time() - started < seconds:
        due = int((loop.time() - started) * rate)
        while offered < due:
            for _ in range(min(slice_size, due - offered)):
                m = pool[offered % len(pool)]
                message = Message(m.topic, m.payload, received_at=time.time())
                if writer is not None:
                    writer.offer(message)
                # What the app does with a message, roughly (the loop busy as the app's is: the writer thread
                # competes with it for the GIL).
                latest[message.topic] = json.loads(message.payload)
                offered += 1
            await asyncio.sleep(0)
        await asyncio.sleep(0.01)
    elapsed = loop.time() - started
    tick.cancel()
    flush.cancel()
    figures: dict[str, float] = {"offered": offered, "offered_rate": offered / elapsed}
    if writer is not None:
        flushed_at = time.perf_counter()
        writer.flush(60)
        figures["drain"] = time.perf_counter() - flushed_at
        figures["written"] = writer.stats.written
        figures["dropped"] = writer.stats.dropped
        figures["backlog"] = backlog
        writer.close()
    ordered = sorted(delays)
    figures["worst_ms"] = ordered[-1] * 1000 if ordered else 0.0
    figures["p99_ms"] = ordered[int(len(ordered) * 0.99) - 1] * 1000 if ordered else 0.0
    return figures


def query_phase(path: Path, topics: int, messages: int) -> list[tuple[str, float, int]]:
    rows: list[tuple[str, float, int]] = []
    with HistoryReader(path) as reader:

        def count(query: HistoryQuery) -> int:
            return sum(1 for _ in reader.search(query))

        middle = T0 + messages / 20_000 / 2
        cases: list[tuple[str, Callable[[], int]]] = [
            ("subtree plant/line3/# (all time)", lambda: count(HistoryQuery(topics=("plant/line3/#",)))),
            ("one topic, all time", lambda: count(HistoryQuery(topics=("plant/line3/cell0/sensor3/state",)))),
            ("1 s time range, all topics", lambda: count(HistoryQuery(since=middle, until=middle + 1))),
            ("text 'false' (FTS5)" if reader.fts else "text 'false' (scan)", lambda: count(HistoryQuery(text="false"))),
            ("condition temp > 34.9", lambda: count(HistoryQuery(condition=parse_condition("temp > 34.9")))),
            (f"state of {topics:,} topics at a moment", lambda: len(reader.state_at(middle))),
            (
                "step 100 changes of one topic",
                lambda: _steps(reader, HistoryQuery(topics=("plant/line3/cell0/sensor3/state",)), 100),
            ),
        ]
        for name, job in cases:
            elapsed, found = timed(job)
            rows.append((name, elapsed * 1000, int(found)))  # type: ignore[call-overload]
    return rows


def _steps(reader: HistoryReader, query: HistoryQuery, steps: int) -> int:
    current = next(iter(reader.search(HistoryQuery(query.topics, limit=1))), None)
    done = 0
    while current is not None and done < steps:
        current = reader.step(current.id, query=query)
        done += 1
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500_000)
    parser.add_argument("--topics", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    messages = readings(args.messages, args.topics)
    print(f"SQLite FTS5 available: {fts5_available()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        size = len(messages[0].payload)
        print(f"\n1. write {args.messages:,} messages over {args.topics:,} topics (payload {size} B)")
        print(f"{'':<14}{'msg/s':>10}{'store':>12}{'bytes/msg':>11}")
        stores = {}
        for use_fts in [True, False] if fts5_available() else [False]:
            path, f = write_phase(folder, messages, use_fts, budget=1 << 40)
            stores[use_fts] = path
            label = "with FTS5" if use_fts else "without FTS5"
            print(f"{label:<14}{f['rate']:>10,.0f}{size_label(int(f['bytes'])):>12}{f['per_message']:>11.1f}")
        full = stores.get(True) or stores[False]
        needed = HistoryReader(full).summary()["bytes"]
        budget = max(needed // 8, 1 << 20)
        print(f"\n2. the same into a budget of {size_label(budget)} (an eighth of what they need)")
        _, f = write_phase(folder, messages, fts5_available(), budget=budget)
        print(
            f"{f['rate']:,.0f} msg/s while evicting; the store's largest size after a batch "
            f"{size_label(int(f['worst']))} of {size_label(budget)}; messages kept {int(f['kept_min']):,} to "
            f"{int(f['kept_max']):,} once evicting; evicted {int(f['evicted']):,} in all"
        )
        print(f"\n3. an event loop offering {args.rate:,} msg/s for {args.seconds:g} s (5 ms ticker)")
        base = asyncio.run(loop_phase(None, args.rate, args.seconds, args.topics))
        fed = asyncio.run(loop_phase(folder, args.rate, args.seconds, args.topics))
        print(
            f"{'':<16}{'offered/s':>10}{'worst ms':>10}{'p99 ms':>8}{'written':>10}{'dropped':>9}{'backlog':>9}"
            f"{'drain s':>9}"
        )
        print(f"{'no writer':<16}{base['offered_rate']:>10,.0f}{base['worst_ms']:>10.1f}{base['p99_ms']:>8.1f}")
        print(
            f"{'history writer':<16}{fed['offered_rate']:>10,.0f}{fed['worst_ms']:>10.1f}{fed['p99_ms']:>8.1f}"
            f"{int(fed['written']):>10,}{int(fed['dropped']):>9,}{int(fed['backlog']):>9,}{fed['drain']:>9.2f}"
        )
        print(f"\n4. queries on the store of {args.messages:,} messages")
        for name, ms, found in query_phase(full, args.topics, args.messages):
            print(f"{name:<40}{ms:>10.1f} ms{found:>10,} found")


if __name__ == "__main__":
    main()
