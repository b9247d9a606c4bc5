"""Before login (issue 13): nothing is buffered without bound while a password is checked, password checks are
few at a time with the well-behaved first, and WebSocket and TLS listeners close silent or oversized connections
on time. In-process brokers, whose password checks the tests hold and release one at a time."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from benchmarks.certs import CertSet
from mqttchat.broker import connection as broker_connection
from mqttchat.broker.auth import PasswordFile, hash_password
from mqttchat.broker.config import ListenerConfig
from mqttchat.broker.connection import BrokerConnection, State
from mqttchat.broker.logins import LoginChecks, Verdict
from mqttchat.broker.server import Broker, ThreadRunner
from mqttchat.protocol import Connect
from tests.helpers.brokers import broker_config
from tests.helpers.waiting import until

TIMEOUT = 5.0
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}


class GatedPasswords(PasswordFile):
    """A password file whose full checks wait until the test lets them through (``release()``, one per check)."""

    def __init__(self, path: str | Path | None = None, *, cache: bool = True) -> None:
        super().__init__(path, cache=cache)
        self.gate = threading.Semaphore(0)
        self.lock = threading.Lock()
        self.running = 0
        self.max_running = 0
        #: User names in the order their checks ran.
        self.order: list[str] = []

    def verify(self, username: str, password: str | bytes) -> bool:
        with self.lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            self.gate.acquire(timeout=30)
            with self.lock:
                self.order.append(username)
            return super().verify(username, password)
        finally:
            with self.lock:
                self.running -= 1

    def release(self, count: int = 1) -> None:
        self.gate.release(count)


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "passwd"
    path.write_text("".join(f"{user}:{hash_password(pw, 10)}\n" for user, pw in PASSWORDS.items()))
    return path


@pytest.fixture
async def gated_broker(
    password_file: Path,
) -> AsyncIterator[Callable[..., Awaitable[tuple[Broker, GatedPasswords]]]]:
    """``await gated_broker(**overrides)``: a broker with a password file whose checks wait for the test."""
    started: list[tuple[Broker, GatedPasswords]] = []

    async def start(**overrides: Any) -> tuple[Broker, GatedPasswords]:
        config = broker_config(allow_anonymous=False, password_file=password_file, **overrides)
        broker = Broker(config)
        await broker.start()
        gated = GatedPasswords.load(password_file)
        broker.core.passwords = gated
        started.append((broker, gated))
        return broker, gated

    yield start
    for broker, gated in started:
        gated.release(1000)
        await broker.stop()


class Raw:
    """A raw TCP connection to the broker: bytes out, what comes back, whether the broker closed it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.received = b""

    @classmethod
    async def open(cls, port: int, source: str = "127.0.0.1") -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def connack(self, timeout: float = TIMEOUT) -> int:
        """The reason code of the CONNACK (MQTT 5) that comes next."""
        async with asyncio.timeout(timeout):
            head = await self.reader.readexactly(2)
            assert head[0] == 0x20, head
            body = await self.reader.readexactly(head[1])
        return body[1]

    async def closed(self, timeout: float = TIMEOUT) -> bool:
        """Whether the broker closes the connection within ``timeout`` (what it sent first is kept)."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    chunk = await self.reader.read(65_536)
                    if not chunk:
                        return True
                    self.received += chunk
        except TimeoutError:
            return False
        except ConnectionError:
            return True

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def raws() -> AsyncIterator[Callable[..., Awaitable[Raw]]]:
    opened: list[Raw] = []

    async def open_raw(port: int, source: str = "127.0.0.1") -> Raw:
        raw = await Raw.open(port, source)
        opened.append(raw)
        return raw

    yield open_raw
    for raw in opened:
        raw.close()


_numbers = iter(range(1_000_000))


def login(user: str, password: str | None = None, client_id: str = "") -> bytes:
    """An MQTT 5 CONNECT for ``user``, with its right password unless another is given."""
    secret = (password if password is not None else PASSWORDS[user]).encode()
    return Connect(client_id or f"{user}-{next(_numbers)}", username=user, password=secret).encode()


def connections(broker: Broker, state: State) -> list[BrokerConnection]:
    return [c for c in broker.connections if c.state is state]


# ----------------------------------------------------------------------------------------------------------------
# 1. Nothing buffered without bound before login
# ----------------------------------------------------------------------------------------------------------------


async def test_an_authenticating_connection_is_not_read(gated_broker: Any, raws: Any) -> None:
    """While its password is checked the connection's transport is paused: the megabytes sent behind the CONNECT
    wait in the sender's socket, not in the broker's memory."""
    broker, gated = await gated_broker()
    raw = await raws(broker.port)
    raw.send(login("alice", "wrong"))
    await until(lambda: len(connections(broker, State.AUTHENTICATING)) == 1)
    conn = connections(broker, State.AUTHENTICATING)[0]
    chunk = b"\x00" * (1 << 20)
    for _ in range(16):
        raw.send(chunk)
    transport = conn.link.transport  # type: ignore[attr-defined]
    assert not transport.is_reading(), "the broker goes on reading a connection whose password it is checking"
    assert conn._reader.buffered <= 256 * 1024
    assert broker.connections.prelogin_bytes <= 256 * 1024
    gated.release()
    assert await raw.connack() == 0x86
    assert await raw.closed()
    await until(lambda: broker.connections.prelogin_bytes == 0)


async def test_max_packet_size_holds_for_input_behind_an_authenticating_connect(gated_broker: Any, raws: Any) -> None:
    """A PUBLISH header declaring 1 MB behind the CONNECT is refused at once (0x95), not after the check."""
    broker, _ = await gated_broker(max_packet_size=65_536)
    raw = await raws(broker.port)
    raw.send(login("alice") + bytes.fromhex("30808040"))
    assert await raw.connack() == 0x95
    assert await raw.closed()


async def test_authenticating_connections_count_against_max_connections(gated_broker: Any, raws: Any) -> None:
    broker, gated = await gated_broker(max_connections=1)
    first = await raws(broker.port)
    first.send(login("alice", "wrong"))
    await until(lambda: len(connections(broker, State.AUTHENTICATING)) == 1)
    second = await raws(broker.port)
    second.send(login("bob"))
    assert await second.connack() == 0x89, "a second login while the first is checked exceeds max_connections"
    assert gated.order == [] and gated.running == 1, "and it costs no password check"
    gated.release()
    assert await first.connack() == 0x86


async def test_what_connections_hold_before_login_is_bounded(
    broker_factory: Any, raws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond the pre-login budget the connection holding the most (a huge partial CONNECT) is closed; a small
    one goes on and logs in."""
    monkeypatch.setattr(broker_connection, "PRELOGIN_BUDGET", 100_000)
    broker = await broker_factory()
    big = Connect("big", username="u", password=b"p" * 60_000).encode()
    small = Connect("small", username="u", password=b"s" * 30_000).encode()
    hog = await raws(broker.port)
    hog.send(big[:55_000])
    await until(lambda: broker.connections.prelogin_bytes >= 55_000)
    other = await raws(broker.port)
    other.send(small[:-10])
    await until(lambda: broker.connections.prelogin_bytes != 55_000)
    assert await hog.closed(), "the largest holder is closed when the budget is exceeded"
    other.send(small[-10:])
    assert await other.connack() == 0
    assert broker.connections.prelogin_bytes == 0


# ----------------------------------------------------------------------------------------------------------------
# 2. Login denial of service
# ----------------------------------------------------------------------------------------------------------------


async def test_a_cached_password_is_answered_while_checks_wait(gated_broker: Any, raws: Any) -> None:
    broker, gated = await gated_broker()
    bob = await raws(broker.port)
    bob.send(login("bob", client_id="bob-1"))
    gated.release()
    assert await bob.connack() == 0
    flood = [await raws(broker.port) for _ in range(12)]
    for i, raw in enumerate(flood):
        raw.send(login("alice", f"wrong-{i}"))
    await until(lambda: gated.running >= 1)
    again = await raws(broker.port)
    again.send(login("bob", client_id="bob-2"))
    assert await again.connack() == 0, "bob's confirmed password waits behind the flood"
    assert gated.order == ["bob"], "and costs no check"


async def test_a_flooding_source_delays_no_one_else(gated_broker: Any, raws: Any) -> None:
    """30 bad logins from 127.0.0.1, then carol from 127.0.0.2. Checks are released one at a time: carol's runs
    after at most the flooding source's share of the normal lane; beyond both lanes the flood is refused at once
    (0x9F Connection rate exceeded); no more checks run at once than the broker has workers for."""
    broker, gated = await gated_broker()
    broker.core.logins = LoginChecks(workers=2, per_source=5, queue=32, penalty_queue=16, runner=ThreadRunner(2))
    flood = [await raws(broker.port) for _ in range(30)]
    for i, raw in enumerate(flood):
        raw.send(login("alice", f"wrong-{i}", client_id=f"flood-{i}"))
    # 2 running, 3 in the normal lane (the source's 5 tokens), 16 in the penalty lane, 9 refused.
    await until(lambda: broker.core.stats.connections_refused == 9 and broker.core.logins.waiting == 19)
    carol = await raws(broker.port, "127.0.0.2")
    carol.send(login("carol"))
    await until(lambda: broker.core.logins.waiting == 20)
    for _ in range(30):
        if "carol" in gated.order:
            break
        done = len(gated.order)
        gated.release()
        await until(lambda done=done: len(gated.order) > done)
    assert await carol.connack() == 0
    assert gated.order.index("carol") <= 3, f"carol's check ran after {gated.order.index('carol')} of the flood's"
    assert gated.max_running <= 2
    gated.release(100)
    codes = [await raw.connack() for raw in flood]
    assert sorted(codes) == [0x86] * 21 + [0x9F] * 9


# ----------------------------------------------------------------------------------------------------------------
# 9. WebSocket and TLS listeners: timeouts and frame sizes before login
# ----------------------------------------------------------------------------------------------------------------

UPGRADE = (
    b"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
)


@contextlib.asynccontextmanager
async def listener_broker(listener: ListenerConfig, **overrides: Any) -> AsyncIterator[Broker]:
    async with Broker(dataclasses.replace(broker_config(**overrides), listeners=(listener,))) as broker:
        yield broker


async def test_websocket_connection_without_upgrade_is_closed_after_connect_timeout(raws: Any) -> None:
    listener = ListenerConfig(port=0, protocol="websockets")
    async with listener_broker(listener, connect_timeout=0.5) as broker:
        silent = await raws(broker.port)
        trickle = await raws(broker.port)

        async def trickling() -> None:
            for byte in UPGRADE[:-4]:
                trickle.send(bytes((byte,)))
                await asyncio.sleep(0.05)

        task = asyncio.create_task(trickling())
        try:
            assert await silent.closed(), "an idle TCP connection to a WebSocket listener stays open"
            assert await trickle.closed(), "a trickled HTTP request keeps its connection open"
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_websocket_frame_larger_than_a_connect_is_refused_at_its_header(raws: Any) -> None:
    """After the upgrade, a frame declaring 300 MB before CONNECT: closed at the frame's header (1009)."""
    listener = ListenerConfig(port=0, protocol="websockets")
    async with listener_broker(listener, connect_timeout=60, max_packet_size=65_536) as broker:
        raw = await raws(broker.port)
        raw.send(UPGRADE)
        async with asyncio.timeout(TIMEOUT):
            response = await raw.reader.readuntil(b"\r\n\r\n")
        assert response.startswith(b"HTTP/1.1 101")
        raw.send(b"\x82\xff" + (300_000_000).to_bytes(8, "big") + b"\x01\x02\x03\x04" + b"\x00" * 65_536)
        assert await raw.closed(), "the broker keeps reading a 300 MB frame"
        assert raw.received[0] == 0x88 and raw.received[2:4] == (1009).to_bytes(2, "big"), raw.received[:64]


async def test_tls_handshake_is_bounded_by_connect_timeout(certs: CertSet, raws: Any) -> None:
    listener = ListenerConfig(port=0, certfile=certs.server_cert, keyfile=certs.server_key)
    async with listener_broker(listener, connect_timeout=0.5) as broker:
        raw = await raws(broker.port)
        assert await raw.closed(), "a connection that never sends a ClientHello stays open"


class _Instant:
    """A password file stand-in whose checks refuse at once (in the worker thread)."""

    def refuses_at_once(self, username: str, password: bytes) -> bool:
        return False

    def verify_cached(self, username: str, password: bytes) -> bool:
        return False

    def verify(self, username: str, password: bytes) -> bool:
        return False


async def test_failed_login_tokens_refill_per_source() -> None:
    """A source's checks take tokens (5 here) and go to the normal lane; without tokens, to the penalty lane; the
    tokens come back at the refill rate. Sources are forgotten oldest first beyond max_sources."""
    now = [100.0]
    gate = LoginChecks(workers=1, per_source=5, refill_per_second=0.5, max_sources=2, clock=lambda: now[0],
                       runner=ThreadRunner(1))  # fmt: skip
    answers: list[Any] = []
    tickets = [gate.check(_Instant(), "u", b"x", "10.0.0.1", answers.append) for _ in range(7)]
    assert [getattr(t, "reserved", None) for t in tickets] == [True] * 5 + [False] * 2
    now[0] += 2.0  # one token back
    assert getattr(gate.check(_Instant(), "u", b"x", "10.0.0.1", answers.append), "reserved", None) is True
    assert getattr(gate.check(_Instant(), "u", b"x", "10.0.0.1", answers.append), "reserved", None) is False
    gate.check(_Instant(), "u", b"x", "10.0.0.2", answers.append)
    gate.check(_Instant(), "u", b"x", "10.0.0.3", answers.append)  # 10.0.0.1 is forgotten: a fresh bucket
    assert getattr(gate.check(_Instant(), "u", b"x", "10.0.0.1", answers.append), "reserved", None) is True
    await until(lambda: len(answers) == 12)
    gate.close()


async def test_logins_refused_without_a_check_are_logged_in_summary(caplog: pytest.LogCaptureFixture) -> None:
    """A flood refused at once writes a line every few seconds, not one per try."""
    now = [0.0]
    gate = LoginChecks(workers=1, per_source=1, refill_per_second=0, penalty_queue=0, clock=lambda: now[0],
                       runner=ThreadRunner(1))  # fmt: skip
    answers: list[Any] = []
    with caplog.at_level("INFO", logger="mqttchat.broker"):
        verdicts = [gate.check(_Instant(), "u", b"x", "10.0.0.1", answers.append) for _ in range(10)]
        now[0] += 5.0
        verdicts.append(gate.check(_Instant(), "u", b"x", "10.0.0.1", answers.append))
    assert verdicts[1:] == [Verdict.RATE_LIMITED] * 10
    lines = [r.getMessage() for r in caplog.records if "without a check" in r.getMessage()]
    assert lines == [
        "logins refused without a check: 1 (too many waiting or failing; 1 from 10.0.0.1)",
        "logins refused without a check: 9 (too many waiting or failing; 9 from 10.0.0.1)",
    ]
    await until(lambda: len(answers) == 1)
    gate.close()


async def test_a_source_out_of_tokens_is_read_late(gated_broker: Any, raws: Any) -> None:
    """Once 127.0.0.1 has spent its failed-login tokens, its new connections are not read for a while (a tarpit);
    a connection from 127.0.0.2 is read and answered at once meanwhile."""
    broker, gated = await gated_broker()
    broker.core.logins = LoginChecks(workers=1, per_source=1, refill_per_second=0, tarpit=60, runner=ThreadRunner(1))
    gated.release(10)
    first = await raws(broker.port)
    first.send(login("alice", "wrong"))
    assert await first.connack() == 0x86
    assert broker.core.logins.penalised("127.0.0.1") and not broker.core.logins.penalised("127.0.0.2")
    late = await raws(broker.port)
    late.send(login("bob"))
    await until(lambda: len(connections(broker, State.AWAIT_CONNECT)) == 1)
    waiting = connections(broker, State.AWAIT_CONNECT)[0]
    assert not waiting.link.transport.is_reading()  # type: ignore[attr-defined]
    other = await raws(broker.port, "127.0.0.2")
    other.send(login("carol"))
    assert await other.connack() == 0
    assert gated.order == ["alice", "carol"], "bob's CONNECT from the flooding address was not read yet"


class _ByHand:
    """A CheckRunner that runs nothing until the test says so: LoginChecks' lanes without threads or a loop."""

    def __init__(self) -> None:
        self.started: list[tuple[Any, Any]] = []

    def run(self, check: Any, done: Any) -> None:
        self.started.append((check, done))

    def finish(self) -> None:
        check, done = self.started.pop(0)
        done(check(), None)

    def close(self) -> None:
        self.started.clear()


class _Named(_Instant):
    """Checks that say whose they are (the user name) when they run, and accept ``ok``."""

    def __init__(self, ran: list[str]) -> None:
        self.ran = ran

    def verify(self, username: str, password: bytes) -> bool:
        self.ran.append(username)
        return username == "ok"


def test_the_normal_lane_serves_sources_in_turn_and_no_more_checks_run_than_workers() -> None:
    """Four checks from one source, then one from another, one worker: the newcomer waits for the check running and
    one more of the flooding source's, not for all of them; each answer reaches its connection."""
    runner = _ByHand()
    gate = LoginChecks(workers=1, per_source=5, runner=runner)
    ran: list[str] = []
    answers: list[tuple[str, Verdict]] = []
    for i in range(4):
        gate.check(_Named(ran), f"flood-{i}", b"x", "10.0.0.1", lambda v, i=i: answers.append((f"flood-{i}", v)))
    gate.check(_Named(ran), "ok", b"x", "10.0.0.2", lambda v: answers.append(("ok", v)))
    assert len(runner.started) == 1 and gate.running == 1 and gate.waiting == 4
    while runner.started:
        runner.finish()
        assert len(runner.started) <= 1
    assert ran == ["flood-0", "flood-1", "ok", "flood-2", "flood-3"]
    assert dict(answers) == {"flood-0": Verdict.REFUSED, "ok": Verdict.ACCEPTED, "flood-1": Verdict.REFUSED,
                             "flood-2": Verdict.REFUSED, "flood-3": Verdict.REFUSED}  # fmt: skip
    assert gate.running == 0 and gate.waiting == 0
    gate.close()


def test_a_flood_over_the_prelogin_budget_is_logged_as_a_summary(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """40 partial CONNECTs over a budget that holds 4: 36 are closed; the log gets the first at once and a summary
    of the rest once the interval has passed, not a line per connection (an attacker's lines)."""
    from tests.helpers.broker_pair import MemoryBroker, MemoryLink

    monkeypatch.setattr(broker_connection, "PRELOGIN_BUDGET", 4 * 20_000)
    broker = MemoryBroker()
    partial = Connect("c", username="u", password=b"p" * 30_000).encode()[:20_000]
    links = []
    with caplog.at_level("INFO", logger="mqttchat.broker"):
        for i in range(40):
            link = MemoryLink()
            conn = BrokerConnection(broker.connections, link, f"10.0.0.{1 + i % 2}:{5000 + i}", "memory")
            conn.data_received(partial)
            links.append(link)
        broker.settle()
        closed = sum(link.closed for link in links)
        lines = [r.getMessage() for r in caplog.records if "before login" in r.getMessage()]
        assert closed == 36 and len(lines) == 1 and lines[0].startswith("closing connection from 10.0.0.")
        broker.advance(broker_connection.PRELOGIN_LOG_INTERVAL)
        lines = [r.getMessage() for r in caplog.records if "before login" in r.getMessage()]
    assert len(lines) == 2
    summary = lines[1]
    assert summary.startswith("closed 35 more connections holding too much before login (at most 80000 bytes")
    counts = [int(part.split(" from ")[0]) for part in summary.split("; ")[1].rstrip(")").split(", ")]
    assert sum(counts) == 35 and "from 10.0.0.1" in summary and "from 10.0.0.2" in summary
    broker.stop()
