"""Hot topics under a firehose: the real app, headless, at 50,000 messages a second offered through mosquitto.

Run: ``python -m benchmarks.hot [--rate 50000] [--seconds 15]`` (under ``flock /work/heavy.lock``). Phases, each with
the tree expanded and a key pressed every half second (``s``: re-sort):

1. firehose: ``--rate`` over 50 topics (1,000 msg/s each at 50,000: every one hot, its history sampled),
2. spread: ``--rate`` over 10,000 topics (5 msg/s each: none hot).

Each phase runs twice, in apps of their own: with the hot-topic sampling of the history (the default, 20 entries a
topic and second) and without it (``history_rate`` 0), so that what the sampling changes shows in the same run.

Reported per phase: messages offered a second (what the publisher managed to send), ingested a second, lost
(published but never ingested: dropped by the broker for a slow reader, or by the client), history entries sampled
out, the history's bytes against its budget and entries evicted from it, the event loop's worst and 99th-percentile
stall (and the longest counting only the CPU time the loop's thread spent in it: the rest was the machine's),
key-press-to-screen time and peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from benchmarks.peers import mosquitto
from benchmarks.ui import run_phase
from mqttchat.client import ClientOptions, parse_url
from mqttchat.explorer.tree import TopicTree
from mqttchat.runtime import Runtime
from mqttchat.ui.app import MQTTChatApp


async def one_app(port: int, rate: int, seconds: float, topics: int, history_rate: int) -> dict[str, float]:
    options = ClientOptions(parse_url(f"mqtt://127.0.0.1:{port}"), client_id=f"bench-hot-{time.monotonic_ns()}")
    runtime = Runtime(options, (("#", 0),), tree=TopicTree(history_rate=history_rate), embed_broker=False)
    app = MQTTChatApp(runtime, flush_hz=15)
    async with app.run_test(size=(160, 50)) as pilot:
        for _ in range(100):
            if runtime.client.connected and runtime.granted:
                break
            await asyncio.sleep(0.05)
        await pilot.press("plus")
        started = time.perf_counter()
        result = await run_phase(app, pilot, port, "hot", rate, seconds, topics)
        elapsed = time.perf_counter() - started
        stats = runtime.tree.stats
        result["offered/s"] = result["sent"] / seconds
        result["sampled"] = stats.sampled
        result["evicted"] = stats.evicted_entries
        result["history MB"] = stats.history_bytes / 2**20
        result["budget MB"] = runtime.tree.history_budget / 2**20
        result["client dropped"] = runtime.client.stats.dropped
        result["elapsed s"] = elapsed
        await runtime.stop()
    return result


async def main_async(rate: int, seconds: float) -> int:
    results: list[tuple[str, dict[str, float]]] = []
    with mosquitto() as port:
        for topics, what in ((50, "firehose, 50 topics"), (10_000, "spread, 10k topics")):
            for history_rate, how in ((20, "sampled"), (0, "unsampled")):
                name = f"{what}, {how}"
                print(f"{name} ...", flush=True)
                results.append((name, await one_app(port, rate, seconds, topics, history_rate)))
    keys = ["offered/s", "ingested/s", "lost", "client dropped", "sampled", "evicted", "history MB",
            "worst stall ms", "worst busy ms", "p99 stall ms", "key→screen ms", "peak RSS MB"]  # fmt: skip
    print(f"\nrate asked: {rate:,} msg/s for {seconds:.0f} s a phase; history budget "
          f"{results[0][1]['budget MB']:.0f} MB")  # fmt: skip
    print(f"{'phase':<30}" + "".join(f"{k:>15}" for k in keys))
    for name, values in results:
        print(f"{name:<30}" + "".join(f"{values[k]:>15,.1f}" for k in keys))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=int, default=50_000, help="messages a second offered (default 50000)")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds a phase (default 15)")
    args = parser.parse_args()
    return asyncio.run(main_async(args.rate, args.seconds))


if __name__ == "__main__":
    sys.exit(main())
