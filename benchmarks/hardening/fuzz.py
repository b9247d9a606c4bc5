"""Fuzzing the broker's connection handling: random bytes, mutated packets, the specification's malformed packets
one by one, and slow or half-open connections, each against ``mqttchat broker`` in its own process.

Throughout each scenario a well-behaved MQTT 5 client publishes to its own subscription at QoS 1 every 50 ms and
times the round trip: every one must succeed, and the broker process must stay alive.

Every fuzz connection is a plain socket that keeps what the broker sends back (decoded with the protocol core's
:class:`~mqttchat.protocol.PacketReader`) and notes when the broker closes it. Random and mutated input either
makes the broker close the connection at once or leaves it waiting (a partial packet, or input that happened to
stay valid); then 64 KiB of zero bytes follow, which complete any partial packet the broker's 65,536-byte maximum
allows and then start a packet of the reserved type 0: every connection must be closed within a few seconds.
Every input is made from ``random.Random(seed)`` and a problem names its seed, so ``random_input(seed)`` or
``mutated_input(seed)`` replays it.

Figures: connections, closed by the broker, the reason code of each close (``DISCONNECT 0x81 12``; a 3.1.1
connection or a connection refused before CONNECT is closed without one), not closed in time (must be 0),
undecodable replies (must be 0), the well-behaved client's round trips ok / failed and the worst one, whether the
broker is alive, its RSS peak, and the errors in its log (must be 0).

The last scenario attacks the WebSocket and TLS listeners before login: idle and trickling (slowloris) HTTP
upgrades, an upgraded connection that stays silent, a frame declaring 300 MB before CONNECT (streamed for real),
and TLS connections that never finish their handshake: each must be closed within ``connect_timeout`` (the giant
frame at once, at its header), with the broker's memory flat.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import re
import socket
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.certs import make_certs
from benchmarks.hardening.common import BrokerProcess, Deadline, MemoryWatch, Report, broker_process, raise_file_limit
from benchmarks.peers import free_port
from mqttchat.client import Message, MQTTClient
from mqttchat.protocol import (
    EMPTY_PROPERTIES,
    ConnAck,
    Connect,
    Disconnect,
    MQTTError,
    Packet,
    PacketReader,
    PingReq,
    PingResp,
    Properties,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    ReasonCode,
    RemoteProtocolError,
    RetainHandling,
    Subscribe,
    Subscription,
    Unsubscribe,
    Will,
)
from mqttchat.protocol.packets import fixed_header
from mqttchat.protocol.reason_codes import connack_code_v311

V5 = 5
V311 = 4

#: The broker's limits, small enough for the malformed cases to reach them.
CONNECT_TIMEOUT = 2.0
RECEIVE_MAXIMUM = 5
TOPIC_ALIAS_MAXIMUM = 10
MAX_PACKET_SIZE = 65_536
BROKER_CONFIG = (
    f"max_packet_size = {MAX_PACKET_SIZE}\nconnect_timeout = {CONNECT_TIMEOUT}\n"
    f"receive_maximum = {RECEIVE_MAXIMUM}\nmax_topic_alias = {TOPIC_ALIAS_MAXIMUM}\n"
)

#: How long the broker has to close a connection it must close (beyond any timeout it is entitled to).
CLOSE_WAIT = 3.0
#: How long fuzz input is given to make the broker close before the terminator follows.
SETTLE = 0.5
#: Completes any partial packet the maximum packet size allows, then starts a packet of reserved type 0.
TERMINATOR = bytes(MAX_PACKET_SIZE + 2)
#: Bytes of the broker's answer kept per connection (enough to decode; a flood is not kept whole).
KEPT_BYTES = 256 * 1024

PROBE_INTERVAL = 0.05
#: A line of the broker's log that shows a fault of its own (a refused connection is logged at INFO).
_LOG_ERROR = re.compile(r" (ERROR|CRITICAL) |Traceback|Exception in callback|Task exception was never retrieved")
ROUND_TRIP_TIMEOUT = 2.0

SEED_RANDOM = 1_000_000
SEED_MUTATED = 2_000_000


@dataclass(frozen=True, slots=True)
class Plan:
    """How much of each scenario to run, and the time bound of each."""

    random: int
    mutated: int
    concurrency: int
    fuzz_seconds: float
    #: Times the table of malformed cases is run (each round on fresh connections).
    spec_rounds: int
    spec_seconds: float
    #: Connections per slow group (silent connections: ``slow * 4``).
    slow: int
    slow_seconds: float
    #: Connections per WebSocket/TLS group, and MiB streamed behind each giant frame.
    listeners: int
    giant_mib: int
    listeners_seconds: float


SHORT = Plan(
    random=200,
    mutated=200,
    concurrency=20,
    fuzz_seconds=15.0,
    spec_rounds=1,
    spec_seconds=15.0,
    slow=2,
    slow_seconds=15.0,
    listeners=2,
    giant_mib=8,
    listeners_seconds=15.0,
)
LONG = Plan(
    random=5000,
    mutated=5000,
    concurrency=20,
    fuzz_seconds=150.0,
    spec_rounds=20,
    spec_seconds=90.0,
    slow=25,
    slow_seconds=30.0,
    listeners=50,
    giant_mib=300,
    listeners_seconds=60.0,
)


# --------------------------------------------------------------------------------------------------------------
# A raw connection and what the broker sent on it


class RawConnection:
    """A plain TCP connection that keeps what the broker sends and notes when (and how) the broker closes it.

    Reading runs in its own task from the start, so the broker's last words are kept even when it resets the
    connection while we are still sending.
    """

    def __init__(self, sock: socket.socket, connecting: float | None = None) -> None:
        self.sock = sock
        self.opened = time.monotonic()
        #: When the connect began: the broker cannot have accepted the connection (and started its timers)
        #: before then, whereas ``opened`` may be late by however long this process's event loop was busy.
        self.connecting = self.opened if connecting is None else connecting
        self.received = bytearray()
        self.closed_at: float | None = None
        self._changed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @property
    def closed(self) -> bool:
        return self.closed_at is not None

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                chunk = await loop.sock_recv(self.sock, 65_536)
                if not chunk:
                    break
                if len(self.received) < KEPT_BYTES:
                    self.received += chunk
                self._changed.set()
        except OSError:  # reset by the broker: what it sent before is kept
            pass
        self.closed_at = time.monotonic()
        self._changed.set()

    async def send(self, data: bytes, timeout: float = CLOSE_WAIT) -> bool:
        """Send ``data``; False when the broker closed the connection or stopped reading first."""
        try:
            async with asyncio.timeout(timeout):
                await asyncio.get_running_loop().sock_sendall(self.sock, data)
        except OSError:  # TimeoutError included
            return False
        return True

    def half_close(self) -> None:
        """Send FIN: we will send nothing more (the broker may still write)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    async def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` holds, the broker closes the connection or ``timeout`` passes."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not predicate() and not self.closed:
                    self._changed.clear()
                    await self._changed.wait()
        return predicate()

    async def wait_closed(self, timeout: float) -> bool:
        return await self.wait(lambda: self.closed, timeout)

    def packets(self, version: int) -> list[Packet]:
        """The whole packets received so far (as many as decode: a bad one ends the list)."""
        reader = PacketReader(version)
        reader.feed(bytes(self.received))
        out: list[Packet] = []
        with contextlib.suppress(RemoteProtocolError):
            out.extend(reader)
        return out

    async def stop_reading(self) -> None:
        self._reader.cancel()
        try:
            await self._reader
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise


@contextlib.asynccontextmanager
async def raw_connection(port: int) -> AsyncIterator[RawConnection]:
    """A :class:`RawConnection` to the broker on 127.0.0.1:``port``; the socket is closed on the way out."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        connecting = time.monotonic()
        async with asyncio.timeout(CLOSE_WAIT):
            await loop.sock_connect(sock, ("127.0.0.1", port))
        conn = RawConnection(sock, connecting)
        try:
            yield conn
        finally:
            await conn.stop_reading()
    finally:
        sock.close()


@dataclass(slots=True)
class Replies:
    """What the broker sent on one connection, decoded; ``error`` says why it did not decode."""

    packets: list[Packet]
    version: int
    error: str | None = None


def decode_replies(data: bytes, versions: Sequence[int], complete: bool) -> Replies:
    """Decode the broker's bytes as the first of ``versions`` they are valid in.

    ``complete``: the broker closed the connection, so a partial packet at the end is an error too.
    """
    errors: list[str] = []
    for version in versions:
        reader = PacketReader(version)
        try:
            packets = reader.read(data)
        except RemoteProtocolError as exc:
            errors.append(f"as MQTT {'5' if version == V5 else '3.1.1'}: {exc.message}")
            continue
        if complete and reader.buffered and len(data) < KEPT_BYTES:
            errors.append(f"as MQTT {'5' if version == V5 else '3.1.1'}: {reader.buffered} bytes of a partial packet")
            continue
        return Replies(packets, version)
    return Replies([], versions[0], "; ".join(errors))


def describe(packet: Packet, version: int) -> str:
    """``DISCONNECT 0x81``, ``CONNACK rc 1`` (MQTT 3.1.1 return code), ``PUBCOMP`` (reason code 0)..."""
    name = packet.TYPE.name
    if isinstance(packet, ConnAck) and version != V5:
        return f"{name} rc {connack_code_v311(packet.reason_code)}"
    code = getattr(packet, "reason_code", 0)
    return f"{name} 0x{code:02X}" if code else name


def closing_reason(replies: Replies) -> str:
    """The reason the broker gave for closing: its last DISCONNECT or refusing CONNACK."""
    if replies.error is not None:
        return "undecodable reply"
    if replies.packets:
        last = replies.packets[-1]
        if isinstance(last, Disconnect) or (isinstance(last, ConnAck) and last.reason_code >= 0x80):
            return describe(last, replies.version)
    return "no reason code"


def summarise(descriptions: Sequence[str]) -> str:
    """``PUBREC 0x10 x5, DISCONNECT 0x93``: runs of the same packet counted."""
    parts: list[str] = []
    i = 0
    while i < len(descriptions):
        j = i
        while j < len(descriptions) and descriptions[j] == descriptions[i]:
            j += 1
        parts.append(descriptions[i] if j - i == 1 else f"{descriptions[i]} x{j - i}")
        i = j
    return ", ".join(parts)


def show_bytes(data: bytes, limit: int = 48) -> str:
    text = data[:limit].hex(" ")
    return text if len(data) <= limit else f"{text} … ({len(data):,} bytes)"


# --------------------------------------------------------------------------------------------------------------
# The well-behaved client


class RoundTripProbe:
    """The well-behaved client: every ``PROBE_INTERVAL`` s a QoS 1 publish to its own subscription, timed until the
    broker delivers it back. ``run`` stops when ``stop`` is set or its deadline passes, and never raises for the
    broker's sake: a failure is counted."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.topic = f"hardening/fuzz/{name}/probe"
        self.client_id = f"fuzz-probe-{name}"
        self.ok = 0
        self.failed = 0
        self.worst = 0.0
        self.errors: list[str] = []
        self.ready = asyncio.Event()
        self.stop = asyncio.Event()

    def _fail(self, why: str) -> None:
        self.failed += 1
        if len(self.errors) < 3:
            self.errors.append(why)

    async def run(self, deadline: Deadline) -> None:
        loop = asyncio.get_running_loop()
        waiting: dict[bytes, asyncio.Future[float]] = {}

        def on_message(message: Message) -> None:
            future = waiting.pop(message.payload, None)
            if future is not None and not future.done():
                future.set_result(time.perf_counter())

        client = MQTTClient(self.url, client_id=self.client_id, reconnect=False, connect_timeout=10.0)
        client.add_message_handler(on_message)
        try:
            try:
                await client.connect()
                async with asyncio.timeout(10.0):
                    await client.subscribe(self.topic, qos=1)
            except (MQTTError, OSError) as exc:
                self._fail(f"could not connect and subscribe: {exc!r}")
                return
            finally:
                self.ready.set()
            seq = 0
            while not self.stop.is_set() and not deadline.expired:
                seq += 1
                payload = b"%d" % seq
                future: asyncio.Future[float] = loop.create_future()
                waiting[payload] = future
                started = time.perf_counter()
                try:
                    async with asyncio.timeout(ROUND_TRIP_TIMEOUT):
                        result = await client.publish(self.topic, payload, qos=1)
                        arrived = await future
                except (MQTTError, OSError) as exc:
                    waiting.pop(payload, None)
                    self._fail(f"round trip {seq}: {exc!r}")
                else:
                    if result.ok:
                        self.ok += 1
                        self.worst = max(self.worst, arrived - started)
                    else:
                        self._fail(f"round trip {seq}: PUBACK {result.reason_code!s}")
                pause = PROBE_INTERVAL - (time.perf_counter() - started)
                if pause > 0:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(pause):
                            await self.stop.wait()
        finally:
            with contextlib.suppress(MQTTError, OSError):
                await client.disconnect(timeout=2.0)


async def with_broker(
    name: str,
    workdir: Path,
    seconds: float,
    body: Callable[[BrokerProcess, Deadline, Report], Awaitable[None]],
    config: str = BROKER_CONFIG,
) -> Report:
    """Run ``body`` against a fresh broker process while the well-behaved client does its round trips."""
    report = Report(name)
    slug = name.replace(" ", "-").replace("/", "-")
    deadline = Deadline(seconds)
    probe_deadline = Deadline(seconds + 30.0)
    with broker_process(workdir / slug, config) as broker, MemoryWatch(broker.pid) as memory:
        probe = RoundTripProbe(broker.url, slug)
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(probe.run(probe_deadline))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(15.0):
                    await probe.ready.wait()
            try:
                await body(broker, deadline, report)
            finally:
                probe.stop.set()
        alive = broker.alive()
        exit_code = None if broker.proc is None else broker.proc.poll()
    log = broker.log_text()  # after the broker stopped: faults on the way out count too
    log_errors = [line for line in log.splitlines() if _LOG_ERROR.search(line)]
    report.figures["round trips ok"] = probe.ok
    report.figures["round trips failed"] = probe.failed
    report.figures["worst round trip ms"] = round(probe.worst * 1000, 1)
    report.figures["broker alive"] = "yes" if alive else "no"
    report.figures["broker RSS peak MiB"] = round(memory.peak_kib / 1024, 1)
    report.figures["broker log errors"] = len(log_errors)
    report.check(probe.ok > 0, "the well-behaved client completed no round trip")
    report.check(
        probe.failed == 0,
        f"{probe.failed} round trips of the well-behaved client failed (first: {'; '.join(probe.errors)})",
    )
    report.check(alive, f"the broker process died (exit code {exit_code}); its log ends: {log[-1500:]!r}")
    report.check(not log_errors, f"the broker logged {len(log_errors)} errors, the first: {log_errors[:1]}")
    return report


# --------------------------------------------------------------------------------------------------------------
# Random and mutated input


@dataclass(frozen=True, slots=True)
class FuzzInput:
    """One fuzz connection's bytes, how they were made, and the protocol version to decode replies in first."""

    seed: int
    kind: str
    data: bytes
    version: int


def _v5_samples() -> list[Packet]:
    """Valid MQTT 5 packets a client sends, with the properties each may carry."""
    user = (("k", "v"), ("ключ", "✓"))
    full = Properties(
        payload_format_indicator=1,
        message_expiry_interval=60,
        content_type="text/plain; charset=utf-8",
        response_topic="fuzz/reply",
        correlation_data=b"\x00\x01",
        user_property=user,
    )
    return [
        Publish("fuzz/a", b"hello", 0),
        Publish("fuzz/b/ü", bytes(range(64)), 1, packet_id=1, properties=full),
        Publish("fuzz/c", b"x" * 300, 2, packet_id=2, properties=Properties(topic_alias=1, user_property=user)),
        Publish("", b"aliased", 1, packet_id=3, properties=Properties(topic_alias=1)),
        Publish("fuzz/retained", b"r", 1, True, packet_id=4, properties=Properties(message_expiry_interval=5)),
        PubAck(7),
        PubAck(8, ReasonCode.NO_MATCHING_SUBSCRIBERS, Properties(reason_string="fine")),
        PubRec(9),
        PubRel(10),
        PubRel(11, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND),
        PubComp(12),
        Subscribe(
            13,
            (
                Subscription("fuzz/+/x", 1),
                Subscription("fuzz/#", 2, True, True, RetainHandling.SEND_IF_NEW_SUBSCRIPTION),
                Subscription("$share/g/fuzz/s", 0),
            ),
            Properties(subscription_identifier=42, user_property=user),
        ),
        Unsubscribe(14, ("fuzz/+/x", "fuzz/#"), Properties(user_property=user)),
        PingReq(),
        Disconnect(ReasonCode.DISCONNECT_WITH_WILL_MESSAGE, Properties(reason_string="bye")),
    ]


def _v311_samples() -> list[Packet]:
    return [
        Publish("fuzz/a", b"hello", 0),
        Publish("fuzz/b", b"x" * 300, 1, packet_id=1),
        Publish("fuzz/c", b"", 2, packet_id=2),
        Publish("fuzz/retained", b"r", 1, True, packet_id=4),
        PubAck(7),
        PubRec(9),
        PubRel(10),
        PubComp(12),
        Subscribe(13, (Subscription("fuzz/#", 1), Subscription("fuzz/+/x", 2))),
        Unsubscribe(14, ("fuzz/#",)),
        PingReq(),
        Disconnect(),
    ]


SAMPLES: dict[int, list[Packet]] = {V5: _v5_samples(), V311: _v311_samples()}


def sample_connect(rng: random.Random, version: int, client_id: str) -> Connect:
    """A valid CONNECT, sometimes with a will, credentials and (MQTT 5) properties."""
    will = None
    if rng.random() < 0.5:
        will_props = Properties(will_delay_interval=0, content_type="text/plain") if version == V5 else EMPTY_PROPERTIES
        will = Will("fuzz/will", b"gone", 1, False, will_props)
    user, password = ("fuzz", b"secret") if rng.random() < 0.5 else (None, None)
    props = EMPTY_PROPERTIES
    if version == V5 and rng.random() < 0.5:
        props = Properties(
            session_expiry_interval=0,
            receive_maximum=10,
            maximum_packet_size=MAX_PACKET_SIZE,
            topic_alias_maximum=5,
            request_problem_information=1,
            user_property=(("k", "v"),),
        )
    return Connect(client_id, True, 60, user, password, will, props, version)


def _string(raw: bytes) -> bytes:
    return len(raw).to_bytes(2, "big") + raw


def random_input(seed: int) -> FuzzInput:
    """Random bytes: alone, after a CONNECT fixed header and protocol name, or after a valid CONNECT."""
    rng = random.Random(seed)
    if rng.random() < 0.05:
        size = rng.randint(8193, MAX_PACKET_SIZE + 5000)
    else:
        size = rng.choice((rng.randint(1, 16), rng.randint(17, 512), rng.randint(513, 8192)))
    noise = rng.randbytes(size)
    kind = rng.choices(("bytes", "CONNECT header + bytes", "valid CONNECT + bytes"), weights=(2, 1, 1))[0]
    version = rng.choice((V311, V5))
    if kind == "bytes":
        data = noise
    elif kind == "CONNECT header + bytes":
        level = rng.choice((3, 4, 5, rng.randrange(256)))
        body = _string(b"MQIsdp" if level == 3 else b"MQTT") + bytes((level,)) + noise
        data = fixed_header(0x10, len(body)) + body
        version = V5 if level >= V5 else V311
    else:
        data = sample_connect(rng, version, f"fuzz-r{seed}").encode() + noise
    return FuzzInput(seed, kind, data, version)


def mutated_input(seed: int) -> FuzzInput:
    """A valid CONNECT and one to six valid packets, with one to four bytes flipped, set, inserted or deleted, or a
    packet cut short."""
    rng = random.Random(seed)
    version = rng.choice((V311, V5))
    packets = [sample_connect(rng, version, f"fuzz-m{seed}"), *rng.sample(SAMPLES[version], rng.randint(1, 6))]
    chunks = [bytearray(p.encode(version)) for p in packets]
    done: list[str] = []
    for _ in range(rng.randint(1, 4)):
        candidates = [chunk for chunk in chunks if chunk]
        if not candidates:
            break
        chunk = rng.choice(candidates)
        pos = rng.randrange(len(chunk))
        how = rng.choice(("flip", "set", "insert", "delete", "truncate"))
        if how == "flip":
            chunk[pos] ^= 1 << rng.randrange(8)
        elif how == "set":
            chunk[pos] = rng.choice((0x00, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif how == "insert":
            chunk[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif how == "delete":
            del chunk[pos : pos + rng.randint(1, 4)]
        else:
            del chunk[pos:]
        done.append(how)
    kind = f"MQTT {'5' if version == V5 else '3.1.1'}, {len(packets)} packets, {'+'.join(done)}"
    return FuzzInput(seed, kind, b"".join(chunks), version)


@dataclass
class Tally:
    """What happened to a scenario's fuzz connections."""

    connections: int = 0
    connect_failed: int = 0
    closed_by_input: int = 0
    closed_after_terminator: int = 0
    not_closed: int = 0
    undecodable: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def example(self, what: str, text: str) -> None:
        kept = self.examples.setdefault(what, [])
        if len(kept) < 3:
            kept.append(text)

    def fill(self, report: Report, planned: int) -> None:
        figures = report.figures
        figures["connections"] = self.connections
        figures["closed by the broker"] = self.closed_by_input + self.closed_after_terminator
        figures["closed by the input"] = self.closed_by_input
        figures["closed after the terminator"] = self.closed_after_terminator
        figures["not closed in time"] = self.not_closed
        for reason, count in sorted(self.reasons.items()):
            figures[reason] = count
        figures["undecodable replies"] = self.undecodable
        if self.connections < planned:
            figures["stopped by the time limit"] = f"after {self.connections} of {planned}"
        report.check(
            self.not_closed == 0,
            f"{self.not_closed} connections not closed within {CLOSE_WAIT:g} s of the terminator: "
            + " | ".join(self.examples.get("not closed", [])),
        )
        report.check(
            self.undecodable == 0,
            f"{self.undecodable} connections got bytes that are not MQTT packets: "
            + " | ".join(self.examples.get("undecodable", [])),
        )
        report.check(
            self.connect_failed == 0,
            f"{self.connect_failed} connections could not be opened: " + " | ".join(self.examples.get("connect", [])),
        )


async def fuzz_connection(port: int, case: FuzzInput, tally: Tally) -> None:
    """Send one fuzz input; the broker must close the connection, if not at once then after the terminator."""
    tally.connections += 1
    try:
        async with raw_connection(port) as conn:
            await conn.send(case.data)
            if await conn.wait_closed(SETTLE):
                tally.closed_by_input += 1
            else:
                await conn.send(TERMINATOR)
                if await conn.wait_closed(CLOSE_WAIT):
                    tally.closed_after_terminator += 1
                else:
                    tally.not_closed += 1
                    tally.example("not closed", f"seed {case.seed} ({case.kind}): {show_bytes(case.data)}")
            other = V311 if case.version == V5 else V5
            replies = decode_replies(bytes(conn.received), (case.version, other), complete=conn.closed)
    except OSError as exc:
        tally.connect_failed += 1
        tally.example("connect", repr(exc))
        return
    if replies.error is not None:
        tally.undecodable += 1
        tally.example(
            "undecodable",
            f"seed {case.seed} ({case.kind}): sent {show_bytes(case.data)}, got {show_bytes(bytes(conn.received))} "
            f"({replies.error})",
        )
    elif conn.closed:
        tally.reasons[closing_reason(replies)] += 1


async def fuzz_many(
    make: Callable[[int], FuzzInput], first_seed: int, count: int, concurrency: int, port: int, deadline: Deadline
) -> Tally:
    """``count`` fuzz connections, ``concurrency`` at a time, until the deadline."""
    tally = Tally()
    seeds = iter(range(first_seed, first_seed + count))

    async def worker() -> None:
        for seed in seeds:
            if deadline.expired:
                return
            await fuzz_connection(port, make(seed), tally)

    async with asyncio.TaskGroup() as tasks:
        for _ in range(concurrency):
            tasks.create_task(worker())
    return tally


# --------------------------------------------------------------------------------------------------------------
# The specification's malformed cases


@dataclass(frozen=True, slots=True)
class SpecCase:
    """One malformed (or borderline) input and the broker's answer the specification calls for.

    ``expected``: acceptable answers, as :func:`run_spec_case` summarises them: the packets the broker sent after
    the handshake, then ``closed`` or ``open`` (still answering PINGREQ).
    """

    name: str
    data: bytes
    expected: tuple[str, ...]
    #: The protocol version of the connection (its replies are decoded in it).
    version: int = V5
    #: Connect first (CONNECT, CONNACK); False: ``data`` is the first thing sent.
    handshake: bool = True
    #: Packets to wait for when the connection is expected to stay open.
    replies: int = 1


def _packet(first: int, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return fixed_header(first, len(body)) + body


def _u16(value: int) -> bytes:
    return value.to_bytes(2, "big")


def _publish(first: int, topic: bytes, packet_id: bytes = b"", properties: bytes = b"\x00") -> bytes:
    return _packet(first, _string(topic), packet_id, properties, b"payload")


def _subscribe(packet_id: int, topic_filter: bytes, options: int) -> bytes:
    return _packet(0x82, _u16(packet_id), b"\x00", _string(topic_filter), bytes((options,)))


def closes_with(code: int) -> tuple[str]:
    """The broker sends DISCONNECT with reason ``code``, then closes."""
    return (f"DISCONNECT 0x{code:02X}, closed",)


def spec_cases() -> list[SpecCase]:
    """The table: MQTT 5.0 and 3.1.1 sections and the reason code each calls for (in the comment above each)."""
    big = 70_000
    qos2 = b"".join(Publish("fuzz/spec/qos2", b"x", 2, packet_id=i).encode(V5) for i in range(1, RECEIVE_MAXIMUM + 2))
    qos1 = b"".join(
        Publish("fuzz/spec/qos1", b"x", 1, packet_id=i).encode(V5) for i in range(1, 3 * RECEIVE_MAXIMUM + 1)
    )
    over = RECEIVE_MAXIMUM + 1
    return [
        # 2.1.3: flags other than those listed are a Malformed Packet.
        SpecCase("reserved fixed-header flags: PINGREQ 0xC1", b"\xc1\x00", closes_with(0x81)),
        SpecCase(
            "reserved fixed-header flags: SUBSCRIBE 0x80", b"\x80" + _subscribe(1, b"a", 0)[1:], closes_with(0x81)
        ),
        SpecCase("reserved fixed-header flags: PUBREL 0x60", _packet(0x60, _u16(1)), closes_with(0x81)),
        SpecCase("reserved packet type 0", b"\x00\x00", closes_with(0x81)),
        # 3.3.1.2: QoS 3 is a Malformed Packet.
        SpecCase("PUBLISH with QoS 3", _publish(0x36, b"a/b", _u16(1)), closes_with(0x81)),
        # 1.5.5 / 2.1.4: at most four bytes, the minimum number of them.
        SpecCase("remaining length in five bytes", b"\x30\xff\xff\xff\xff\x01", closes_with(0x81)),
        SpecCase("remaining length not minimally encoded", b"\xc0\x80\x00", closes_with(0x81)),
        # 1.5.4: ill-formed UTF-8, surrogates and U+0000 are a Malformed Packet.
        SpecCase("topic name not UTF-8", _publish(0x30, b"a/\xff\xfe"), closes_with(0x81)),
        SpecCase("topic name with a UTF-16 surrogate", _publish(0x30, b"a/\xed\xa0\x80"), closes_with(0x81)),
        SpecCase("topic name with U+0000", _publish(0x30, b"a/\x00b"), closes_with(0x81)),
        # 3.3.2.1: no wildcards in a topic name [MQTT-3.3.2-2]; 0x90 Topic Name invalid.
        SpecCase("wildcard in a PUBLISH topic name", _publish(0x30, b"a/+/c"), closes_with(0x90)),
        # 3.3.2.1: a zero-length topic name without a topic alias is a Protocol Error.
        SpecCase("empty topic name, no topic alias", _publish(0x30, b""), closes_with(0x82)),
        # 2.2.1: QoS > 0 PUBLISH needs a non-zero packet identifier [MQTT-2.2.1-3]; it parses: a Protocol Error.
        SpecCase("QoS 1 PUBLISH with packet identifier 0", _publish(0x32, b"a/b", _u16(0)), closes_with(0x82)),
        # 3.3.2.3.2: including the Payload Format Indicator more than once is a Protocol Error.
        SpecCase(
            "Payload Format Indicator twice",
            _publish(0x30, b"a/b", properties=b"\x04\x01\x01\x01\x01"),
            closes_with(0x82),
        ),
        # 2.2.2.2: a property not valid for the packet type is a Malformed Packet.
        SpecCase(
            "Session Expiry Interval in PUBLISH",
            _publish(0x30, b"a/b", properties=b"\x05\x11\x00\x00\x00\x3c"),
            closes_with(0x81),
        ),
        # 3.3.4: a client's PUBLISH must not carry a Subscription Identifier [MQTT-3.3.4-6].
        SpecCase(
            "Subscription Identifier in a client's PUBLISH",
            _publish(0x30, b"a/b", properties=b"\x02\x0b\x01"),
            closes_with(0x82),
        ),
        # 3.3.2.3.4: alias 0 or above the Topic Alias Maximum: 0x94 Topic Alias invalid; unknown alias: 0x82.
        SpecCase("topic alias 0", _publish(0x30, b"a/b", properties=b"\x03\x23\x00\x00"), closes_with(0x94)),
        SpecCase(
            "topic alias 0 among other properties",
            _publish(0x30, b"a/b", properties=b"\x05\x01\x00\x23\x00\x00"),
            closes_with(0x94),
        ),
        SpecCase(
            f"topic alias {TOPIC_ALIAS_MAXIMUM + 1} above the maximum {TOPIC_ALIAS_MAXIMUM}",
            _publish(0x30, b"a/b", properties=b"\x03\x23" + _u16(TOPIC_ALIAS_MAXIMUM + 1)),
            closes_with(0x94),
        ),
        SpecCase(
            "topic alias with no topic mapped yet",
            _publish(0x30, b"", properties=b"\x03\x23\x00\x01"),
            closes_with(0x82),
        ),
        # 3.8.3: a SUBSCRIBE with no payload is a Protocol Error; 3.8.3.1 options: QoS 3, Retain Handling 3 and No
        # Local on a shared subscription are Protocol Errors, reserved bits a Malformed Packet [MQTT-3.8.3-5].
        SpecCase("SUBSCRIBE with no topic filter", _packet(0x82, _u16(1), b"\x00"), closes_with(0x82)),
        SpecCase("SUBSCRIBE with packet identifier 0", _subscribe(0, b"a", 0), closes_with(0x82)),
        SpecCase("subscription with QoS 3", _subscribe(1, b"a", 0x03), closes_with(0x82)),
        SpecCase("subscription with reserved option bits", _subscribe(1, b"a", 0xC0), closes_with(0x81)),
        SpecCase("subscription with Retain Handling 3", _subscribe(1, b"a", 0x30), closes_with(0x82)),
        SpecCase("No Local on a shared subscription", _subscribe(1, b"$share/g/a", 0x04), closes_with(0x82)),
        # 3.10.3: an UNSUBSCRIBE with no payload is a Protocol Error.
        SpecCase("UNSUBSCRIBE with no topic filter", _packet(0xA2, _u16(1), b"\x00"), closes_with(0x82)),
        # 3.1: a second CONNECT is a Protocol Error [MQTT-3.1.0-2].
        SpecCase("second CONNECT", Connect("fuzz-spec-again").encode(), closes_with(0x82)),
        # 3.14.2.2.2: a non-zero Session Expiry Interval in DISCONNECT after CONNECT set none: 0x82.
        SpecCase(
            "DISCONNECT setting a session expiry when CONNECT set none",
            _packet(0xE0, b"\x00", b"\x05\x11\x00\x00\x00\x3c"),
            closes_with(0x82),
        ),
        # 3.2.2.3.6: a packet above the Maximum Packet Size the server announced: 0x95 Packet too large.
        SpecCase(
            f"PUBLISH of {big:,} bytes, above the maximum packet size {MAX_PACKET_SIZE:,}",
            _packet(0x30, _string(b"a/b"), b"\x00", bytes(big - 10)),
            closes_with(0x95),
        ),
        # 3.3.4: more unacknowledged QoS 2 PUBLISHes (no PUBREL: no PUBCOMP) than Receive Maximum: 0x93.
        SpecCase(
            f"{over} QoS 2 PUBLISHes without PUBREL, receive maximum {RECEIVE_MAXIMUM}",
            qos2,
            (
                f"PUBREC 0x10 x{RECEIVE_MAXIMUM}, DISCONNECT 0x93, closed",
                f"PUBREC x{RECEIVE_MAXIMUM}, DISCONNECT 0x93, closed",
            ),
        ),
        # 3.3.4 counts PUBLISHes the server has not answered with PUBACK: it answers each QoS 1 PUBLISH as it reads
        # it, so a burst of them, acknowledgements unread, never exceeds Receive Maximum.
        SpecCase(
            f"{3 * RECEIVE_MAXIMUM} QoS 1 PUBLISHes at once, PUBACKs unread",
            qos1,
            (f"PUBACK 0x10 x{3 * RECEIVE_MAXIMUM}, open", f"PUBACK x{3 * RECEIVE_MAXIMUM}, open"),
            replies=3 * RECEIVE_MAXIMUM,
        ),
        # 4.3.3: PUBREL for an identifier the receiver does not hold is answered PUBCOMP 0x92, not an error.
        SpecCase("PUBREL for an unknown packet identifier", _packet(0x62, _u16(77)), ("PUBCOMP 0x92, open",)),
        # MQTT 3.1.1 has no DISCONNECT from the server: a protocol violation just closes the connection (4.8).
        SpecCase("3.1.1: PUBLISH with QoS 3", _publish(0x36, b"a/b", _u16(1), b""), ("closed",), V311),
        SpecCase(
            "3.1.1: second CONNECT", Connect("fuzz-spec-again", protocol_version=V311).encode(), ("closed",), V311
        ),
        SpecCase("3.1.1: SUBSCRIBE with no topic filter", _packet(0x82, _u16(1)), ("closed",), V311),
        SpecCase("3.1.1: AUTH, a reserved packet type in 3.1.1", b"\xf0\x00", ("closed",), V311),
        SpecCase("3.1.1: PUBREL for an unknown packet identifier", _packet(0x62, _u16(77)), ("PUBCOMP, open",), V311),
        # CONNECT itself. 3.1.1 3.1.2.2: an unsupported protocol level: CONNACK return code 1, then close.
        SpecCase(
            "MQTT 3.1 CONNECT (MQIsdp, level 3)",
            Connect("fuzz-31", protocol_version=3).encode(),
            ("CONNACK rc 1, closed",),
            V311,
            handshake=False,
        ),
        SpecCase(
            "CONNECT MQTT level 3",
            _packet(0x10, _string(b"MQTT"), b"\x03\x02", _u16(60), _string(b"fuzz-l3")),
            ("CONNACK rc 1, closed",),
            V311,
            handshake=False,
        ),
        # 5.0 3.1.2.2: an unsupported Protocol Version: CONNACK 0x84, then close.
        SpecCase(
            "CONNECT MQTT level 6",
            _packet(0x10, _string(b"MQTT"), b"\x06\x02", _u16(60), b"\x00", _string(b"fuzz-l6")),
            ("CONNACK 0x84, closed",),
            handshake=False,
        ),
        # 5.0 3.1.2.3: the reserved connect flag set is a Malformed Packet; 3.1.2.6: so is will QoS 3.
        SpecCase(
            "CONNECT with the reserved flag set",
            _packet(0x10, _string(b"MQTT"), b"\x05\x03", _u16(60), b"\x00", _string(b"fuzz-rf")),
            ("CONNACK 0x81, closed",),
            handshake=False,
        ),
        SpecCase(
            "CONNECT with will QoS 3",
            _packet(
                0x10,
                _string(b"MQTT"),
                b"\x05\x1e",
                _u16(60),
                b"\x00",
                _string(b"fuzz-wq"),
                b"\x00",
                _string(b"will"),
                _string(b"x"),
            ),
            ("CONNACK 0x81, closed",),
            handshake=False,
        ),
        # 3.1.2.11.3: Receive Maximum 0 is a Protocol Error.
        SpecCase(
            "CONNECT with Receive Maximum 0",
            _packet(0x10, _string(b"MQTT"), b"\x05\x02", _u16(60), b"\x03\x21\x00\x00", _string(b"fuzz-rm")),
            ("CONNACK 0x82, closed",),
            handshake=False,
        ),
        # 3.1.1 3.1.3.1: an empty client identifier with clean session 0: CONNACK return code 2 [MQTT-3.1.3-8].
        SpecCase(
            "3.1.1 CONNECT with an empty client id and clean session 0",
            _packet(0x10, _string(b"MQTT"), b"\x04\x00", _u16(60), _string(b"")),
            ("CONNACK rc 2, closed",),
            V311,
            handshake=False,
        ),
        # 3.1.1 3.1.2.9: a password without a user name is a violation [MQTT-3.1.2-22]: close.
        SpecCase(
            "3.1.1 CONNECT with a password and no user name",
            _packet(0x10, _string(b"MQTT"), b"\x04\x42", _u16(60), _string(b"fuzz-pw"), _string(b"pw")),
            ("closed",),
            V311,
            handshake=False,
        ),
        # 3.1: the first packet must be CONNECT [MQTT-3.1.0-1].
        SpecCase("PINGREQ before CONNECT", b"\xc0\x00", ("closed",), handshake=False),
    ]


async def run_spec_case(port: int, index: int, case: SpecCase) -> str:
    """Send one case; return the broker's answer summarised: ``DISCONNECT 0x81, closed``, ``PUBCOMP 0x92, open``."""
    async with raw_connection(port) as conn:
        skip = 0
        if case.handshake:
            await conn.send(Connect(f"fuzz-spec-{index}", keep_alive=60, protocol_version=case.version).encode())
            await conn.wait(lambda: len(conn.packets(case.version)) >= 1, CLOSE_WAIT)
            first = conn.packets(case.version)[:1]
            if not first or not isinstance(first[0], ConnAck) or first[0].reason_code != ReasonCode.SUCCESS:
                answer = describe(first[0], case.version) if first else show_bytes(bytes(conn.received))
                return f"no CONNACK to the handshake ({answer or 'nothing'})"
            skip = 1
        await conn.send(case.data)
        if case.expected[0].endswith(", open"):
            await conn.wait(lambda: len(conn.packets(case.version)) >= skip + case.replies, CLOSE_WAIT)
            await conn.wait_closed(0.2)  # anything more (a DISCONNECT) comes now
        else:
            await conn.wait_closed(CLOSE_WAIT)
        pinged = False
        state = "closed"
        if not conn.closed:
            pinged = True
            await conn.send(PingReq().encode())
            answered = await conn.wait(
                lambda: any(isinstance(p, PingResp) for p in conn.packets(case.version)[skip:]), CLOSE_WAIT
            )
            state = "open" if answered else "closed" if conn.closed else f"not closed, no PINGRESP in {CLOSE_WAIT:g} s"
        replies = decode_replies(bytes(conn.received), (case.version,), complete=conn.closed)
    if replies.error is not None:
        return f"undecodable reply {show_bytes(bytes(conn.received))} ({replies.error}), {state}"
    packets = replies.packets[skip:]
    if pinged and packets and isinstance(packets[-1], PingResp):
        packets = packets[:-1]
    return ", ".join(filter(None, (summarise([describe(p, case.version) for p in packets]), state)))


async def spec_scenario(broker: BrokerProcess, deadline: Deadline, report: Report, rounds: int) -> None:
    """Run the table ``rounds`` times, one case at a time; a wrong answer is a problem (once per case)."""
    cases = spec_cases()
    planned = rounds * len(cases)
    tried = 0
    matched = 0
    not_closed = 0
    reasons: Counter[str] = Counter()
    wrong: dict[str, tuple[SpecCase, Counter[str]]] = {}
    for index in range(planned):
        if deadline.expired:
            break
        case = cases[index % len(cases)]
        tried += 1
        try:
            answer = await run_spec_case(broker.port, index, case)
        except OSError as exc:
            answer = f"connection failed: {exc!r}"
        parts = answer.split(", ")
        if parts[-1] == "closed":
            final = parts[-2].split(" x")[0] if len(parts) > 1 else ""
            reasons[final if final.startswith(("DISCONNECT", "CONNACK")) else "no reason code"] += 1
        elif case.expected[0].endswith("closed"):
            not_closed += 1
        if answer in case.expected:
            matched += 1
        else:
            wrong.setdefault(case.name, (case, Counter()))[1][answer] += 1
    figures = report.figures
    figures["cases"] = tried
    figures["as specified"] = matched
    figures["not as specified"] = tried - matched
    for reason, count in sorted(reasons.items()):
        figures[reason] = count
    figures["not closed in time"] = not_closed
    for name, (case, answers) in wrong.items():
        answered = " / ".join(f"{answer}{f' (x{n})' if n > 1 else ''}" for answer, n in answers.items())
        report.problems.append(
            f"{name}: sent {show_bytes(case.data)}; expected {' or '.join(case.expected)}; the broker answered "
            f"{answered}"
        )
    if tried < planned:
        figures["stopped by the time limit"] = f"after {tried} of {planned}"
        report.problems.append(f"only {tried} of {planned} cases ran before the time limit")


# --------------------------------------------------------------------------------------------------------------
# Slow and half-open connections

SILENT = "silent"
PARTIAL = "partial CONNECT"
SLOWLORIS = "CONNECT a byte every 0.5 s"
KEEPALIVE_SILENT = "keepalive 1 s then silent"
KEEPALIVE_TRICKLE = "keepalive 1 s then a PUBLISH byte every 0.5 s"
HALF_CLOSED_BEFORE = "half-closed before CONNECT"
HALF_CLOSED_AFTER = "half-closed after CONNECT"
TRICKLE_INTERVAL = 0.5
KEEPALIVE = 1


@dataclass(slots=True)
class SlowResult:
    group: str
    #: Seconds from the reference moment (connection opened, CONNACK received, FIN sent) to the broker's close.
    closed_after: float | None
    reason: str
    problem: str | None = None


async def _trickle(conn: RawConnection, data: bytes) -> None:
    for i in range(len(data)):
        if not await conn.send(data[i : i + 1]) or await conn.wait_closed(TRICKLE_INTERVAL):
            return


def slow_reference(group: str) -> str:
    """The moment the broker's close of a connection of ``group`` is timed from."""
    if group in (KEEPALIVE_SILENT, KEEPALIVE_TRICKLE):
        return "the CONNACK"
    if group in (HALF_CLOSED_BEFORE, HALF_CLOSED_AFTER):
        return "our FIN"
    return "the connection opened"


def slow_window(group: str) -> tuple[float, float]:
    """When the broker must close a connection of ``group``, in seconds after :func:`slow_reference`."""
    if group in (SILENT, PARTIAL, SLOWLORIS):
        return CONNECT_TIMEOUT - 0.25, CONNECT_TIMEOUT + 1.5
    if group in (KEEPALIVE_SILENT, KEEPALIVE_TRICKLE):
        # The broker checks keepalives every 0.5 s.
        return 1.5 * KEEPALIVE - 0.1, 1.5 * KEEPALIVE + 0.5 + 1.5
    return 0.0, CLOSE_WAIT


async def slow_connection(port: int, group: str, index: int) -> SlowResult:
    """Open one slow connection of ``group`` and time the broker's close against :func:`slow_window`."""
    # Half-closed: the FIN must end the connection, not the keepalive.
    keep_alive = 60 if group == HALF_CLOSED_AFTER else KEEPALIVE
    connect = Connect(f"fuzz-slow-{index:04d}", keep_alive=keep_alive).encode()
    earliest, latest = slow_window(group)
    trickle: asyncio.Task[None] | None = None
    trickled = b""
    handshake = group in (KEEPALIVE_SILENT, KEEPALIVE_TRICKLE, HALF_CLOSED_AFTER)
    async with raw_connection(port) as conn:
        reference = conn.opened
        try:
            if group == PARTIAL:
                await conn.send(connect[:7])
            elif group == SLOWLORIS:
                trickled = connect
                trickle = asyncio.create_task(_trickle(conn, trickled))
            elif group == HALF_CLOSED_BEFORE:
                conn.half_close()
                reference = time.monotonic()
            elif handshake:
                await conn.send(connect)
                if group == HALF_CLOSED_AFTER:
                    conn.half_close()
                    reference = time.monotonic()
                else:
                    got = await conn.wait(lambda: len(conn.packets(V5)) >= 1, CLOSE_WAIT)
                    reference = time.monotonic()
                    if not got:
                        return SlowResult(group, None, "no CONNACK", f"{group}: no CONNACK within {CLOSE_WAIT:g} s")
                    if group == KEEPALIVE_TRICKLE:
                        trickled = Publish("fuzz/slow/trickle", b"t" * 40, 1, packet_id=1).encode(V5)
                        trickle = asyncio.create_task(_trickle(conn, trickled))
            closed = await conn.wait_closed(max(0.0, reference + latest - time.monotonic()))
        finally:
            if trickle is not None:
                trickle.cancel()
                await asyncio.gather(trickle, return_exceptions=True)
        replies = decode_replies(bytes(conn.received), (V5, V311), complete=closed)
    reason = closing_reason(replies)
    since = slow_reference(group)
    if not closed or conn.closed_at is None:
        why = ""
        if group == KEEPALIVE_TRICKLE:
            why = (
                f" though no control packet has arrived since the CONNECT (keep alive {KEEPALIVE} s; MQTT 5.0 3.1.2.10 "
                "[MQTT-3.1.2-22], 3.1.1 [MQTT-3.1.2-24]: keepalive counts control packets, not bytes); bytes "
                f"trickled: {show_bytes(trickled)}"
            )
        return SlowResult(group, None, reason, f"{group}: still open {latest:g} s after {since}{why}")
    after = conn.closed_at - reference
    # Measured from when the connect began where the reference is the opening (see RawConnection.connecting).
    soonest = conn.closed_at - (conn.connecting if reference == conn.opened else reference)
    if soonest < earliest:
        return SlowResult(group, after, reason, f"{group}: closed {soonest:.2f} s after {since}, before {earliest:g} s")
    if group in (SILENT, PARTIAL, SLOWLORIS) and replies.packets:
        return SlowResult(group, after, reason, f"{group}: the broker answered {replies.packets[0]!r}")
    return SlowResult(group, after, reason)


async def slow_scenario(broker: BrokerProcess, deadline: Deadline, report: Report, per_group: int) -> None:
    groups = [
        (SILENT, 4 * per_group),
        (PARTIAL, per_group),
        (SLOWLORIS, per_group),
        (KEEPALIVE_SILENT, per_group),
        (KEEPALIVE_TRICKLE, per_group),
        (HALF_CLOSED_BEFORE, per_group),
        (HALF_CLOSED_AFTER, per_group),
    ]
    jobs = [(group, i) for group, count in groups for i in range(count)]
    results: list[SlowResult] = []
    failures: list[str] = []

    async def one(group: str, index: int) -> None:
        try:
            results.append(await slow_connection(broker.port, group, index))
        except OSError as exc:
            failures.append(f"{group}: {exc!r}")

    limit = deadline.left
    try:
        async with asyncio.timeout(limit), asyncio.TaskGroup() as tasks:
            for index, (group, _) in enumerate(jobs):
                tasks.create_task(one(group, index))
    except TimeoutError:
        report.problems.append(f"the slow connections were not all done within {limit:.0f} s")
    figures = report.figures
    closed = [r for r in results if r.closed_after is not None]
    figures["connections"] = len(jobs)
    figures["closed by the broker"] = len(closed)
    for group, count in groups:
        times = [r.closed_after for r in results if r.group == group and r.closed_after is not None]
        figures[group] = f"{len(times)}/{count} closed" + (
            f" {min(times):.2f}-{max(times):.2f} s after {slow_reference(group)}" if times else ""
        )
    for reason, count in sorted(Counter(r.reason for r in closed).items()):
        figures[reason] = count
    figures["not closed in time"] = sum(1 for r in results if r.closed_after is None) + len(failures)
    problems: Counter[str] = Counter(r.problem for r in results if r.problem is not None)
    for problem, count in problems.items():
        report.problems.append(problem if count == 1 else f"{problem} (x{count})")
    report.problems.extend(failures[:3])


# --------------------------------------------------------------------------------------------------------------
# WebSocket and TLS listeners before login

WS_SILENT = "WebSocket: TCP, no upgrade"
WS_SLOWLORIS = "WebSocket: upgrade request a byte every 0.5 s"
WS_UPGRADED_SILENT = "WebSocket: upgraded, no CONNECT"
WS_GIANT_FRAME = "WebSocket: 300 MB frame before CONNECT"
TLS_SILENT = "TLS: no ClientHello"
TLS_TRICKLE = "TLS: ClientHello a byte every 0.5 s"
WS_UPGRADE = (
    b"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
)
#: The header of a masked binary frame declaring 300 MB.
GIANT_FRAME_HEADER = b"\x82\xff" + (300_000_000).to_bytes(8, "big") + b"\x11\x22\x33\x44"


@functools.cache
def client_hello() -> bytes:
    """The first flight of a TLS client (its ClientHello), made once without a network (and without loading the
    system's CA certificates, which would block the event loop for each connection)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


@dataclass(slots=True)
class ListenerResult:
    group: str
    closed_after: float | None
    #: Bytes the attacker got into the broker's socket before it closed (the giant frame only).
    sent: int = 0
    problem: str | None = None


def listener_window(group: str) -> tuple[float, float]:
    """When the broker must close a connection of ``group``, in seconds after it opened."""
    if group == WS_GIANT_FRAME:
        return 0.0, CLOSE_WAIT
    return CONNECT_TIMEOUT - 0.25, CONNECT_TIMEOUT + 1.5


async def listener_connection(ports: dict[str, int], group: str, giant_mib: int) -> ListenerResult:
    port = ports["tls" if group.startswith("TLS") else "ws"]
    earliest, latest = listener_window(group)
    trickle: asyncio.Task[None] | None = None
    sent = 0
    async with raw_connection(port) as conn:
        try:
            if group == WS_SLOWLORIS:
                trickle = asyncio.create_task(_trickle(conn, WS_UPGRADE))
            elif group == TLS_TRICKLE:
                trickle = asyncio.create_task(_trickle(conn, client_hello()))
            elif group in (WS_UPGRADED_SILENT, WS_GIANT_FRAME):
                await conn.send(WS_UPGRADE)
                upgraded = await conn.wait(lambda: b"\r\n\r\n" in conn.received, CLOSE_WAIT)
                if not upgraded or not conn.received.startswith(b"HTTP/1.1 101"):
                    return ListenerResult(group, None, 0, f"{group}: no upgrade: {bytes(conn.received[:40])!r}")
                if group == WS_GIANT_FRAME and await conn.send(GIANT_FRAME_HEADER):
                    sent = len(GIANT_FRAME_HEADER)
                    chunk = bytes(1 << 20)
                    for _ in range(giant_mib):
                        if conn.closed or not await conn.send(chunk, timeout=1.0):
                            break
                        sent += len(chunk)
            closed = await conn.wait_closed(max(0.0, conn.opened + latest - time.monotonic()))
        finally:
            if trickle is not None:
                trickle.cancel()
                await asyncio.gather(trickle, return_exceptions=True)
    if not closed or conn.closed_at is None:
        return ListenerResult(group, None, sent, f"{group}: still open {latest:g} s after it opened")
    after = conn.closed_at - conn.opened
    # Too soon only if it closed too soon after the connect *began*: on a loaded machine this process may note
    # the opening late, and a close on time then looks early when measured from that note.
    if conn.closed_at - conn.connecting < earliest:
        too_soon = (
            f"{group}: closed {conn.closed_at - conn.connecting:.2f} s after its connect began, before {earliest:g} s"
        )
        return ListenerResult(group, after, sent, too_soon)
    if group == WS_GIANT_FRAME and b"\x88" not in conn.received[conn.received.find(b"\r\n\r\n") :]:
        return ListenerResult(group, after, sent, f"{group}: closed without a WebSocket close frame")
    return ListenerResult(group, after, sent)


async def listeners_scenario(
    broker: BrokerProcess, deadline: Deadline, report: Report, per_group: int, giant_mib: int, ports: dict[str, int]
) -> None:
    groups = [
        (WS_SILENT, per_group),
        (WS_SLOWLORIS, per_group),
        (WS_UPGRADED_SILENT, per_group),
        (WS_GIANT_FRAME, max(1, per_group // 5)),
        (TLS_SILENT, per_group),
        (TLS_TRICKLE, per_group),
    ]
    results: list[ListenerResult] = []
    failures: list[str] = []

    async def one(group: str) -> None:
        try:
            results.append(await listener_connection(ports, group, giant_mib))
        except OSError as exc:
            failures.append(f"{group}: {exc!r}")

    limit = deadline.left
    try:
        async with asyncio.timeout(limit), asyncio.TaskGroup() as tasks:
            for group, count in groups:
                for _ in range(count):
                    tasks.create_task(one(group))
    except TimeoutError:
        report.problems.append(f"the listener connections were not all done within {limit:.0f} s")
    figures = report.figures
    figures["connections"] = sum(count for _, count in groups)
    figures["closed by the broker"] = sum(1 for r in results if r.closed_after is not None)
    for group, count in groups:
        times = [r.closed_after for r in results if r.group == group and r.closed_after is not None]
        figures[group] = f"{len(times)}/{count} closed" + (
            f" {min(times):.2f}-{max(times):.2f} s after opening" if times else ""
        )
    giant = [r.sent for r in results if r.group == WS_GIANT_FRAME]
    figures["giant frame KiB sent before the close (max)"] = round(max(giant, default=0) / 1024, 1)
    figures["not closed in time"] = sum(1 for r in results if r.closed_after is None) + len(failures)
    problems: Counter[str] = Counter(r.problem for r in results if r.problem is not None)
    for problem, count in problems.items():
        report.problems.append(problem if count == 1 else f"{problem} (x{count})")
    report.problems.extend(failures[:3])


def listeners_config(workdir: Path) -> tuple[str, dict[str, int]]:
    certs = make_certs(workdir / "certs")
    ports = {"ws": free_port(), "tls": free_port()}
    config = (
        f"{BROKER_CONFIG}\n[[listener]]\nport = {ports['ws']}\nhost = '127.0.0.1'\nprotocol = 'websockets'\n"
        f"\n[[listener]]\nport = {ports['tls']}\nhost = '127.0.0.1'\ncertfile = '{certs.server_cert}'\n"
        f"keyfile = '{certs.server_key}'\n"
    )
    return config, ports


# --------------------------------------------------------------------------------------------------------------
# The scenarios


async def run(long: bool, workdir: Path) -> list[Report]:
    """The four fuzzing scenarios, each against its own broker process."""
    raise_file_limit()
    plan = LONG if long else SHORT

    def fuzzing(make: Callable[[int], FuzzInput], first_seed: int, count: int) -> Callable[..., Awaitable[None]]:
        async def body(broker: BrokerProcess, deadline: Deadline, report: Report) -> None:
            tally = await fuzz_many(make, first_seed, count, plan.concurrency, broker.port, deadline)
            tally.fill(report, count)

        return body

    async def spec(broker: BrokerProcess, deadline: Deadline, report: Report) -> None:
        await spec_scenario(broker, deadline, report, plan.spec_rounds)

    async def slow(broker: BrokerProcess, deadline: Deadline, report: Report) -> None:
        await slow_scenario(broker, deadline, report, plan.slow)

    config, ports = listeners_config(workdir)

    async def listeners(broker: BrokerProcess, deadline: Deadline, report: Report) -> None:
        # The configured listeners start before the one the broker process is waited on.
        await listeners_scenario(broker, deadline, report, plan.listeners, plan.giant_mib, ports)

    return [
        await with_broker(
            "fuzz random bytes", workdir, plan.fuzz_seconds, fuzzing(random_input, SEED_RANDOM, plan.random)
        ),
        await with_broker(
            "fuzz mutated packets", workdir, plan.fuzz_seconds, fuzzing(mutated_input, SEED_MUTATED, plan.mutated)
        ),
        await with_broker("fuzz spec cases", workdir, plan.spec_seconds, spec),
        await with_broker("fuzz slow connections", workdir, plan.slow_seconds, slow),
        await with_broker("fuzz WebSocket/TLS before login", workdir, plan.listeners_seconds, listeners, config),
    ]
