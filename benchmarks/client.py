"""Client throughput: mqttchat beside gmqtt and paho-mqtt, against Debian's mosquitto on loopback, in one run.

Run: ``python benchmarks/client.py [--scale 1.0] [--rounds 3]`` (needs ``pip install -e '.[bench]'`` and
``apt-get install -y mosquitto mosquitto-clients``).

Rows (64-byte payloads, MQTT 5, every client tuned to keep up to 65,535 QoS 1/2 messages in flight):

* publish QoS 0 / 1 / 2 (100k / 20k / 10k messages): the client under test publishes; a fixed subscriber,
  ``mosquitto_sub`` (C), receives. Time runs from the first publish until the subscriber has every message and
  the publisher has every acknowledgement.
* receive QoS 0 / 1 (100k / 20k): a fixed publisher, ``mosquitto_pub -l`` (C), publishes; the client under
  test receives. Time runs from the start of the publisher's process until the client under test has every
  message and has disconnected.

Every message carries its sequence number; a row fails when any message is missing, duplicated (QoS 0/2) or
out of order. The clients take turns round by round. Each row prints messages per second (the fastest of
``--rounds``) and the client's CPU microseconds per message (the cheapest of ``--rounds``), the ratio
mqttchat / gmqtt of the rates (above 1.00x: mqttchat is faster) and of the CPU times (gmqtt's over mqttchat's:
above 1.00x, mqttchat spends less).

The CPU time is this process's, and the fixed peers do their I/O elsewhere: ``mosquitto_pub`` reads its lines
from a file written before the clock starts and ``mosquitto_sub`` writes into a file that a thread here only
measures now and then (a pipe read and written by threads of this process added their work to every client's);
``mosquitto_pub``'s process is started before the clock, and ``mosquitto_sub``'s lines are read after it stops.
``--rows publish-1 receive-0`` runs some rows only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.peers import mosquitto

PAYLOAD_PAD = b"x" * 56
#: One received message as mosquitto_sub prints it: the 64-byte payload and a newline.
LINE = 65


def payload(seq: int) -> bytes:
    return b"%08d" % seq + PAYLOAD_PAD


def seq_of(data: bytes) -> int:
    return int(data[:8])


@dataclass
class Result:
    seconds: float
    cpu: float
    count: int
    problem: str | None = None

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


def check_sequence(seqs: list[int], n: int, qos: int) -> str | None:
    if qos == 1:
        first = list(dict.fromkeys(seqs))  # duplicates are allowed at QoS 1; first arrivals must be in order
    else:
        first = seqs
    if first != list(range(n)):
        missing = n - len(set(seqs))
        order = "kept" if first == sorted(first) else "broken"
        return f"{missing} missing, {len(seqs) - len(set(seqs))} duplicated, order {order}"
    return None


# --------------------------------------------------------------------------------------------------- fixed peers


class FixedSubscriber:
    """mosquitto_sub writing one payload per line into a file; it is ready once it has written a probe message.

    The file (not a pipe read by a thread of this process) keeps the subscriber's output out of the CPU time of
    the client under test: a thread here only looks at the file's size now and then.
    """

    def __init__(self, port: int, topic: str, qos: int) -> None:
        self._dir = tempfile.TemporaryDirectory()
        self.path = Path(self._dir.name) / "received"
        self._out = self.path.open("wb")
        self.proc = subprocess.Popen(
            ["mosquitto_sub", "-p", str(port), "-t", topic, "-q", str(qos), "-V", "311"], stdout=self._out
        )
        self.port = port
        self.topic = topic
        self.done = threading.Event()
        self._ready_size = 0

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 10
        while True:
            subprocess.run(["mosquitto_pub", "-p", str(self.port), "-t", self.topic, "-m", "probe"], check=True)
            probe_deadline = time.monotonic() + 0.1
            while time.monotonic() < probe_deadline:
                if b"probe" in self.path.read_bytes():
                    self._ready_size = self.path.stat().st_size
                    return
                time.sleep(0.005)
            if time.monotonic() > deadline:
                raise TimeoutError("mosquitto_sub never became ready")

    def expect(self, n: int) -> None:
        """Watch the file's size from a thread until ``n`` lines of LINE bytes arrived (then :attr:`done` is set).

        Only the size: the lines are read and checked once the client's CPU time is taken (reading 100k lines
        here took milliseconds of this process's CPU, counted to whichever client was still disconnecting).
        """
        wanted = self._ready_size + n * LINE

        def watch() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if self.path.stat().st_size >= wanted:
                    self.done.set()
                    return
                time.sleep(0.005)

        threading.Thread(target=watch, daemon=True).start()

    def lines(self) -> list[bytes]:
        return [line for line in self.path.read_bytes().splitlines() if not line.startswith(b"probe")]

    def seqs(self) -> list[int]:
        return [int(line[:8]) for line in self.lines()]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)
        self._out.close()
        self._dir.cleanup()


def fixed_publish(port: int, topic: str, qos: int, source: Path) -> subprocess.Popen[bytes]:
    """mosquitto_pub -l publishing each line of ``source`` (a file: nothing of this process feeds it)."""
    with source.open("rb") as stdin:
        return subprocess.Popen(
            ["mosquitto_pub", "-p", str(port), "-t", topic, "-q", str(qos), "-V", "311", "-l"], stdin=stdin
        )


def payload_file(directory: str, n: int) -> Path:
    path = Path(directory) / f"payloads-{n}"
    if not path.exists():
        path.write_bytes(b"".join(payload(i) + b"\n" for i in range(n)))
    return path


# --------------------------------------------------------------------------------------------------- clients


class Bench:
    """A client under test. Its library is imported when the bench is made, before any clock starts."""

    name = ""

    async def publish(self, port: int, topic: str, qos: int, n: int) -> None:
        raise NotImplementedError

    async def receive(self, port: int, topic: str, qos: int, n: int, ready: Callable[[], None]) -> list[int]:
        raise NotImplementedError


class MqttchatBench(Bench):
    name = "mqttchat"

    def __init__(self) -> None:
        import mqttchat.client  # noqa: F401

    async def publish(self, port: int, topic: str, qos: int, n: int) -> None:
        from mqttchat.client import MQTTClient

        async with MQTTClient(f"mqtt://127.0.0.1:{port}", client_id="bench-mqttchat-pub") as client:
            if qos == 0:
                for i in range(n):
                    await client.publish(topic, payload(i))
                await client.ping()  # everything before the PINGREQ has left the socket
            else:
                futures = [client.publish_nowait(topic, payload(i), qos) for i in range(n)]
                for future in futures:
                    assert future is not None
                    assert (await future).ok

    async def receive(self, port: int, topic: str, qos: int, n: int, ready: Callable[[], None]) -> list[int]:
        from mqttchat.client import MQTTClient

        seqs: list[int] = []
        done = asyncio.get_running_loop().create_future()

        def on_message(message: object) -> None:
            seqs.append(int(message.payload[:8]))  # type: ignore[attr-defined]
            if len(seqs) == n and not done.done():
                done.set_result(None)

        async with MQTTClient(f"mqtt://127.0.0.1:{port}", client_id="bench-mqttchat-sub") as client:
            client.add_message_handler(on_message)
            await client.subscribe(topic, qos=qos)
            ready()
            await done
        return seqs


class GmqttBench(Bench):
    name = "gmqtt"

    def __init__(self) -> None:
        import gmqtt  # noqa: F401

    async def publish(self, port: int, topic: str, qos: int, n: int) -> None:
        import gmqtt

        client = gmqtt.Client("bench-gmqtt-pub", receive_maximum=65_535)
        await client.connect("127.0.0.1", port, version=gmqtt.constants.MQTTv50)
        for i in range(n):
            client.publish(topic, payload(i), qos=qos)
        if qos:
            # gmqtt keeps unacknowledged messages in its persistent storage until PUBACK/PUBCOMP.
            while not client._persistent_storage.is_empty:
                await asyncio.sleep(0.001)
        await client.disconnect()

    async def receive(self, port: int, topic: str, qos: int, n: int, ready: Callable[[], None]) -> list[int]:
        import gmqtt

        seqs: list[int] = []
        done = asyncio.get_running_loop().create_future()

        def on_message(client: object, t: str, data: bytes, q: int, properties: object) -> int:
            seqs.append(int(data[:8]))
            if len(seqs) == n and not done.done():
                done.set_result(None)
            return 0

        subscribed = asyncio.get_running_loop().create_future()
        client = gmqtt.Client("bench-gmqtt-sub", receive_maximum=65_535)
        client.on_message = on_message
        client.on_subscribe = lambda *a: subscribed.done() or subscribed.set_result(None)
        await client.connect("127.0.0.1", port, version=gmqtt.constants.MQTTv50)
        client.subscribe(topic, qos=qos)
        await subscribed
        ready()
        await done
        await client.disconnect()
        return seqs


class PahoBench(Bench):
    name = "paho-mqtt"

    def __init__(self) -> None:
        import paho.mqtt.client  # noqa: F401

    def _client(self, client_id: str) -> object:
        import paho.mqtt.client as paho

        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        client.max_inflight_messages_set(65_535)
        client.max_queued_messages_set(0)
        return client

    async def publish(self, port: int, topic: str, qos: int, n: int) -> None:
        def run() -> None:
            client: object = self._client("bench-paho-pub")
            client.connect("127.0.0.1", port)  # type: ignore[attr-defined]
            client.loop_start()  # type: ignore[attr-defined]
            infos = [client.publish(topic, payload(i), qos=qos) for i in range(n)]  # type: ignore[attr-defined]
            for info in infos:
                info.wait_for_publish(60)
            client.disconnect()  # type: ignore[attr-defined]
            client.loop_stop()  # type: ignore[attr-defined]

        await asyncio.to_thread(run)

    async def receive(self, port: int, topic: str, qos: int, n: int, ready: Callable[[], None]) -> list[int]:
        seqs: list[int] = []
        done = threading.Event()
        subscribed = threading.Event()

        def on_message(client: object, userdata: object, message: object) -> None:
            seqs.append(int(message.payload[:8]))  # type: ignore[attr-defined]
            if len(seqs) == n:
                done.set()

        def run() -> None:
            client: object = self._client("bench-paho-sub")
            client.on_message = on_message  # type: ignore[attr-defined]
            client.on_subscribe = lambda *a: subscribed.set()  # type: ignore[attr-defined]
            client.connect("127.0.0.1", port)  # type: ignore[attr-defined]
            client.loop_start()  # type: ignore[attr-defined]
            client.subscribe(topic, qos=qos)  # type: ignore[attr-defined]
            subscribed.wait(10)
            ready()
            done.wait(120)
            client.disconnect()  # type: ignore[attr-defined]
            client.loop_stop()  # type: ignore[attr-defined]

        await asyncio.to_thread(run)
        return seqs


# --------------------------------------------------------------------------------------------------- rows

#: The fixed publisher's input files, written once per message count before any timing.
PAYLOAD_DIR = tempfile.TemporaryDirectory()


async def run_publish(bench: Bench, port: int, qos: int, n: int, tag: str) -> Result:
    topic = f"bench/{tag}/pub"
    sub = FixedSubscriber(port, topic, qos)
    try:
        sub.wait_ready()
        sub.expect(n)
        gc.collect()
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        await bench.publish(port, topic, qos, n)
        cpu = time.process_time() - cpu0
        arrived = await asyncio.to_thread(sub.done.wait, 60)
        elapsed = time.perf_counter() - t0
        problem = None if arrived else f"subscriber got {len(sub.lines())} of {n}"
        problem = problem or check_sequence(sub.seqs(), n, qos)
        return Result(elapsed, cpu, n, problem)
    finally:
        sub.stop()


async def run_receive(bench: Bench, port: int, qos: int, n: int, tag: str) -> Result:
    topic = f"bench/{tag}/recv"
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    times: dict[str, float] = {}
    proc: list[subprocess.Popen[bytes]] = []

    def on_ready() -> None:
        loop.call_soon_threadsafe(ready.set)

    source = payload_file(PAYLOAD_DIR.name, n)

    async def start_publisher() -> None:
        await ready.wait()
        # The clock starts once the publisher's process exists: forking it is this process's work, not the
        # client's (15 ms of CPU, a microsecond a message at 20k). Nothing reaches the client before: this task
        # holds the event loop until then.
        proc.append(fixed_publish(port, topic, qos, source))
        times["cpu0"] = time.process_time()
        times["t0"] = time.perf_counter()

    gc.collect()
    starter = asyncio.create_task(start_publisher())
    try:
        async with asyncio.timeout(120):
            seqs = await bench.receive(port, topic, qos, n, on_ready)
        # The client has every message (and has disconnected): mosquitto_pub's own end is not the client's time.
        elapsed = time.perf_counter() - times["t0"]
        cpu = time.process_time() - times["cpu0"]
    except TimeoutError:
        return Result(0, 0, n, "timed out")
    finally:
        await starter
        for p in proc:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(10)
    return Result(elapsed, cpu, n, check_sequence(seqs, n, qos))


ROWS: list[tuple[str, int, int]] = [
    ("publish", 0, 100_000),
    ("publish", 1, 20_000),
    ("publish", 2, 10_000),
    ("receive", 0, 100_000),
    ("receive", 1, 20_000),
]


async def bench_rows(benches: list[Bench], port: int, kind: str, qos: int, n: int, rounds: int) -> list[Result]:
    """Each client's result for one row. The clients take turns round by round, so that a change in the machine's
    load weighs on all of them; each keeps its best rate (fastest round) and its best CPU time (cheapest round),
    which contention on a shared machine can only make worse."""
    runner: Callable[[Bench, int, int, int, str], Awaitable[Result]] = run_publish if kind == "publish" else run_receive
    done: list[list[Result]] = [[] for _ in benches]
    for r in range(rounds):
        for bench, results in zip(benches, done, strict=True):
            if results and results[-1].problem:
                continue
            results.append(await runner(bench, port, qos, n, f"{bench.name}-{kind}-{qos}-{r}"))
    best: list[Result] = []
    for results in done:
        failed = [result for result in results if result.problem]
        if failed:
            best.append(failed[0])
            continue
        fastest = min(results, key=lambda result: result.seconds)
        best.append(Result(fastest.seconds, min(result.cpu for result in results), n))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description="MQTT client throughput: mqttchat vs gmqtt vs paho-mqtt")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every message count (default 1.0)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per row; the best is kept (default 3)")
    parser.add_argument("--only", nargs="*", help="client names to run (default: all installed)")
    parser.add_argument("--rows", nargs="*", help="rows to run, as publish-1 or receive-0 (default: all)")
    args = parser.parse_args()
    for tool in ("mosquitto_sub", "mosquitto_pub"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is not installed (apt-get install -y mosquitto-clients)")
    benches: list[Bench] = [MqttchatBench()]
    for cls, module in ((GmqttBench, "gmqtt"), (PahoBench, "paho.mqtt.client")):
        try:
            __import__(module)
            benches.append(cls())
        except ImportError:
            print(f"{cls.name} is not installed: pip install -e '.[bench]'")
    if args.only:
        benches = [b for b in benches if b.name in args.only]

    results: dict[tuple[str, str, int], Result] = {}
    failed = False
    with mosquitto() as port:
        print(f"mosquitto on 127.0.0.1:{port}; best of {args.rounds}, clients in turn; 64-byte payloads; MQTT 5")
        print()
        header = f"{'row':<18}" + "".join(f"{b.name + ' msg/s':>17} {'µs CPU':>8}" for b in benches)
        if any(b.name == "gmqtt" for b in benches):
            header += f" {'vs gmqtt':>9}"
        if any(b.name == "paho-mqtt" for b in benches):
            header += f" {'vs paho':>8}"
        if any(b.name == "gmqtt" for b in benches):
            header += f" {'CPU vs gmqtt':>13}"
        print(header)
        print("-" * len(header))
        for kind, qos, count in ROWS:
            if args.rows and f"{kind}-{qos}" not in args.rows:
                continue
            n = max(100, int(count * args.scale))
            label = f"{kind} QoS {qos} ({n // 1000}k)"
            line = f"{label:<18}"
            row = asyncio.run(bench_rows(benches, port, kind, qos, n, args.rounds))
            for bench, result in zip(benches, row, strict=True):
                results[(bench.name, kind, qos)] = result
                if result.problem:
                    failed = True
                    line += f"{'FAILED':>17} {'':>8}"
                    print(f"  {bench.name} {label}: {result.problem}", file=sys.stderr)
                else:
                    line += f"{result.rate:>17,.0f} {result.cpu / n * 1e6:>8.1f}"
            ours = results[("mqttchat", kind, qos)]
            for peer in ("gmqtt", "paho-mqtt"):
                theirs = results.get((peer, kind, qos))
                if theirs is not None:
                    ratio = ours.rate / theirs.rate if theirs.rate and not ours.problem and not theirs.problem else 0
                    line += f" {ratio:>8.2f}x"
            theirs = results.get(("gmqtt", kind, qos))
            if theirs is not None:
                ratio = theirs.cpu / ours.cpu if ours.cpu and not ours.problem and not theirs.problem else 0
                line += f" {ratio:>12.2f}x"
            print(line, flush=True)
    print()
    print("ratios are mqttchat msg/s divided by the peer's (above 1.00x: mqttchat is faster); CPU vs gmqtt is")
    print("gmqtt's CPU time per message divided by mqttchat's (above 1.00x: mqttchat uses less)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
