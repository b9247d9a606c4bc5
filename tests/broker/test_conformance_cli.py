"""Black-box conformance of the broker process with Debian's mosquitto_pub and mosquitto_sub as peers."""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.brokers import RunningBroker
from tests.helpers.conformance import QUIET, TIMEOUT, write_security_files

MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
MOSQUITTO_SUB = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"
STDBUF = shutil.which("stdbuf")

pytestmark = pytest.mark.skipif(
    not (Path(MOSQUITTO_PUB).exists() and Path(MOSQUITTO_SUB).exists() and STDBUF),
    reason="mosquitto_pub, mosquitto_sub (Debian's mosquitto-clients) and stdbuf are needed",
)

VERSIONS = [pytest.param("311", id="v311"), pytest.param("5", id="v5")]
#: Every message mosquitto_sub prints: topic, payload, retain, QoS.
FORMAT = "MSG|%t|%p|%r|%q"
StartBroker = Callable[..., RunningBroker]


def pub(
    broker: RunningBroker, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run mosquitto_pub against ``broker`` and wait for it (bounded)."""
    cmd = [MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(broker.port), *args]
    result = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    if check:
        assert result.returncode == 0, f"{cmd} failed ({result.returncode}): {result.stderr}"
    return result


class Sub:
    """mosquitto_sub in the background (-d, line-buffered through stdbuf), its output lines read by a thread."""

    def __init__(self, broker: RunningBroker, *args: str, wait_subscribed: bool = True) -> None:
        assert STDBUF is not None
        cmd = [STDBUF, "-oL", MOSQUITTO_SUB, "-d", "-h", "127.0.0.1", "-p", str(broker.port), "-F", FORMAT, *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        if wait_subscribed:
            self.wait_for("Subscribed (mid")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _next(self, deadline: float) -> str | None:
        try:
            line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.001))
        except queue.Empty:
            raise AssertionError(f"mosquitto_sub printed nothing new; so far: {self.seen}") from None
        if line is not None:
            self.seen.append(line)
        return line

    def wait_for(self, text: str, timeout: float = TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self._next(deadline)
            if line is None:
                raise AssertionError(f"mosquitto_sub exited ({self.proc.wait(1)}) before {text!r}: {self.seen}")
            if text in line:
                return line

    def wait_for_count(self, text: str, count: int, timeout: float = TIMEOUT) -> None:
        """Until ``count`` lines printed so far contain ``text``."""
        deadline = time.monotonic() + timeout
        while sum(text in line for line in self.seen) < count:
            if self._next(deadline) is None:
                raise AssertionError(f"mosquitto_sub exited before {count} x {text!r}: {self.seen}")

    def messages(self, count: int, timeout: float = TIMEOUT) -> list[list[str]]:
        """The next ``count`` messages as [topic, payload, retain, qos]."""
        deadline = time.monotonic() + timeout
        out: list[list[str]] = []
        while len(out) < count:
            line = self._next(deadline)
            if line is None:
                raise AssertionError(f"mosquitto_sub exited after {len(out)} of {count} messages: {self.seen}")
            if line.startswith("MSG|"):
                out.append(line.split("|", 4)[1:])
        return out

    def no_message(self, wait: float = QUIET) -> None:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                return
            assert line is None or not line.startswith("MSG|"), f"unexpected message: {line}"

    def exit_code(self, timeout: float = TIMEOUT) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(TIMEOUT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
        self.thread.join(TIMEOUT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def subs() -> Iterator[Callable[..., Sub]]:
    """Start mosquitto_sub processes; all are stopped at the end of the test."""
    started: list[Sub] = []

    def start(broker: RunningBroker, *args: str, wait_subscribed: bool = True) -> Sub:
        sub = Sub(broker, *args, wait_subscribed=wait_subscribed)
        started.append(sub)
        return sub

    yield start
    for sub in started:
        with contextlib.suppress(Exception):
            sub.stop()


@pytest.fixture
def broker(broker_process: StartBroker) -> RunningBroker:
    return broker_process()


# ================================================================================================================
# Publish / subscribe
# ================================================================================================================


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_cli_pub_sub_in_order(broker: RunningBroker, subs: Callable[..., Sub], version: str, qos: int) -> None:
    """[MQTT-4.6.0-6, MQTT-3.8.4-6] mosquitto_pub -l publishes 20 lines at QoS 0/1/2, mosquitto_sub -C 20 gets them
    all, in order, at that QoS, and exits 0."""
    sub = subs(broker, "-V", version, "-q", str(qos), "-t", "cli/#", "-C", "20")
    lines = [f"line {i}" for i in range(20)]
    pub(broker, "-V", version, "-q", str(qos), "-t", "cli/t", "-l", stdin="".join(f"{x}\n" for x in lines))
    got = sub.messages(20)
    assert [m[1] for m in got] == lines
    assert {(m[0], m[2], m[3]) for m in got} == {("cli/t", "0", str(qos))}
    assert sub.exit_code() == 0


@pytest.mark.parametrize(("pub_version", "sub_version"), [("5", "311"), ("311", "5")], ids=["v5-to-v311", "v311-to-v5"])
def test_cli_versions_interoperate(
    broker: RunningBroker, subs: Callable[..., Sub], pub_version: str, sub_version: str
) -> None:
    """A 5.0 publisher (with properties) reaches a 3.1.1 subscriber and the other way round, QoS downgraded to the
    subscription's."""
    sub = subs(broker, "-V", sub_version, "-q", "1", "-t", "x/#", "-C", "1")
    pub(broker, "-V", pub_version, "-q", "2", "-t", "x/y", "-m", "across",
        *(["-D", "publish", "user-property", "k", "v"] if pub_version == "5" else []))  # fmt: skip
    assert sub.messages(1) == [["x/y", "across", "0", "1"]]
    assert sub.exit_code() == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_cli_count_stops_after_c_messages(broker: RunningBroker, subs: Callable[..., Sub], version: str) -> None:
    """mosquitto_sub -C 3 exits 0 after exactly three messages of five."""
    sub = subs(broker, "-V", version, "-q", "1", "-t", "count", "-C", "3")
    pub(broker, "-V", version, "-q", "1", "-t", "count", "-l", stdin="a\nb\nc\nd\ne\n")
    assert [m[1] for m in sub.messages(3)] == ["a", "b", "c"]
    assert sub.exit_code() == 0
    sub.no_message(0.1)


def test_cli_v5_properties_pass_through(broker: RunningBroker, subs: Callable[..., Sub]) -> None:
    """[MQTT-3.3.2-15..-20] properties set with mosquitto_pub -D reach mosquitto_sub unchanged (user property,
    content type, response topic, correlation data; message expiry at most the value sent)."""
    sub = subs(broker, "-V", "5", "-q", "1", "-t", "props", "-C", "1", "-F", "PROPS|%P|%C|%R|%D|%E|%p")
    pub(broker, "-V", "5", "-q", "1", "-t", "props", "-m", "payload",
        "-D", "publish", "user-property", "name", "value",
        "-D", "publish", "content-type", "text/plain",
        "-D", "publish", "response-topic", "props/reply",
        "-D", "publish", "correlation-data", "c0rr",
        "-D", "publish", "message-expiry-interval", "30")  # fmt: skip
    fields = sub.wait_for("PROPS|").split("|")[1:]
    assert fields[:4] == ["name:value", "text/plain", "props/reply", "c0rr"]
    assert 28 <= int(fields[4]) <= 30
    assert fields[5] == "payload"


@pytest.mark.parametrize("version", VERSIONS)
def test_cli_large_payload(broker: RunningBroker, subs: Callable[..., Sub], tmp_path: Path, version: str) -> None:
    """A 1 MiB payload sent with mosquitto_pub -f arrives whole (Remaining Length of 3 bytes)."""
    data = tmp_path / "big.bin"
    data.write_bytes(bytes(range(256)) * 4096)
    sub = subs(broker, "-V", version, "-q", "1", "-t", "big", "-C", "1", "-F", "LEN|%l|%x")
    pub(broker, "-V", version, "-q", "1", "-t", "big", "-f", str(data))
    _, length, hexed = sub.wait_for("LEN|").split("|")
    assert int(length) == 1_048_576
    assert bytes.fromhex(hexed) == data.read_bytes()


def test_cli_shared_subscription(broker: RunningBroker, subs: Callable[..., Sub]) -> None:
    """[MQTT-4.8.2] two mosquitto_sub -V 5 on $share/g/...: each message goes to exactly one of them, both get some."""
    members = [subs(broker, "-V", "5", "-q", "1", "-t", "$share/g/work") for _ in range(2)]
    jobs = [f"job {i}" for i in range(20)]
    for job in jobs:
        pub(broker, "-V", "5", "-q", "1", "-t", "work", "-m", job)
    got: list[list[str]] = [[], []]
    deadline = time.monotonic() + TIMEOUT
    while sum(map(len, got)) < len(jobs) and time.monotonic() < deadline:
        for index, member in enumerate(members):
            with contextlib.suppress(queue.Empty):
                line = member.lines.get(timeout=0.02)
                if line and line.startswith("MSG|"):
                    got[index].append(line.split("|")[2])
    assert sorted(got[0] + got[1]) == sorted(jobs)
    assert got[0] and got[1]
    for member in members:
        member.no_message(0.2)


def test_cli_topic_alias(broker: RunningBroker, subs: Callable[..., Sub]) -> None:
    """[MQTT-3.3.2-12] mosquitto_pub -l with -D publish topic-alias 1 sends the topic once, then only the alias: the
    subscriber gets every line with the full topic; alias 11 (above the announced 10) gets DISCONNECT 0x94."""
    sub = subs(broker, "-V", "5", "-q", "1", "-t", "alias/#", "-C", "3")
    pub(broker, "-d", "-V", "5", "-q", "1", "-t", "alias/t", "-l", "-D", "publish", "topic-alias", "1",
        stdin="a\nb\nc\n")  # fmt: skip
    assert sub.messages(3) == [["alias/t", x, "0", "1"] for x in "abc"]
    bad = pub(broker, "-d", "-V", "5", "-q", "1", "-t", "alias/t", "-m", "x", "-D", "publish", "topic-alias", "11",
              check=False)  # fmt: skip
    assert "Received DISCONNECT (148)" in bad.stdout, bad.stdout


def test_cli_client_maximum_packet_size(broker: RunningBroker, subs: Callable[..., Sub]) -> None:
    """[MQTT-3.1.2-24] mosquitto_sub -D connect maximum-packet-size 64: a larger message is not sent to it, a smaller
    one is."""
    sub = subs(broker, "-V", "5", "-q", "1", "-t", "mps/#", "-D", "connect", "maximum-packet-size", "64")
    pub(broker, "-V", "5", "-q", "1", "-t", "mps/big", "-m", "x" * 100)
    pub(broker, "-V", "5", "-q", "1", "-t", "mps/small", "-m", "y")
    assert sub.messages(1) == [["mps/small", "y", "0", "1"]]


def test_cli_keepalive_of_a_stopped_client(broker_process: StartBroker, subs: Callable[..., Sub]) -> None:
    """[MQTT-3.1.2-22/-24, MQTT-3.2.2-21] max_keepalive = 1 gives mosquitto_sub -V 5 -k 5 a Server Keep Alive of 1 s;
    frozen with SIGSTOP (socket open, no PINGREQ) it is disconnected within 1.5 s (+ the broker's check interval)
    and its will is published."""
    broker = broker_process("max_keepalive = 1")
    watcher = subs(broker, "-V", "5", "-q", "1", "-t", "ka/#")
    frozen = subs(broker, "-V", "5", "-k", "5", "-t", "idle", "--will-topic", "ka/frozen", "--will-payload",
                  "stopped", "--will-qos", "1")  # fmt: skip
    os.kill(frozen.proc.pid, signal.SIGSTOP)
    start = time.monotonic()
    try:
        assert watcher.messages(1, timeout=4) == [["ka/frozen", "stopped", "0", "1"]]
        assert time.monotonic() - start <= 2.6
    finally:
        frozen.kill()


# ================================================================================================================
# Retained messages
# ================================================================================================================


@pytest.mark.parametrize("version", VERSIONS)
def test_cli_retained_replaced_and_deleted(broker: RunningBroker, subs: Callable[..., Sub], version: str) -> None:
    """[MQTT-3.3.1-5/-6/-10/-11] mosquitto_pub -r stores a retained message (sent with RETAIN=1 on subscribe), a
    second replaces it, and -r -n (empty payload) deletes it."""
    pub(broker, "-V", version, "-q", "1", "-r", "-t", "ret/t", "-m", "first")
    pub(broker, "-V", version, "-q", "1", "-r", "-t", "ret/t", "-m", "second")
    sub = subs(broker, "-V", version, "-q", "1", "-t", "ret/#", "-C", "1")
    assert sub.messages(1) == [["ret/t", "second", "1", "1"]]
    assert sub.exit_code() == 0
    pub(broker, "-V", version, "-q", "1", "-r", "-t", "ret/t", "-n")
    after = subs(broker, "-V", version, "-q", "1", "-t", "ret/#", "-C", "1")
    pub(broker, "-V", version, "-q", "1", "-t", "ret/fence", "-m", "fence")
    assert after.messages(1) == [["ret/fence", "fence", "0", "1"]], "the deleted retained message came first"


def test_cli_remove_retained(broker: RunningBroker, subs: Callable[..., Sub]) -> None:
    """mosquitto_sub --remove-retained clears every retained message it receives (empty retained PUBLISHes): a later
    subscriber gets none of them."""
    for topic in ("rr/a", "rr/b", "rr/c/d"):
        pub(broker, "-q", "1", "-r", "-t", topic, "-m", topic)
    cleaner = subs(broker, "-q", "1", "-t", "rr/#", "--remove-retained")
    assert sorted(m[1] for m in cleaner.messages(3)) == ["rr/a", "rr/b", "rr/c/d"]
    cleaner.wait_for_count("received PUBACK", 3)  # its three empty retained PUBLISHes were acknowledged
    after = subs(broker, "-q", "1", "-t", "rr/#", "-C", "1")
    pub(broker, "-q", "1", "-t", "rr/fence", "-m", "fence")
    assert after.messages(1) == [["rr/fence", "fence", "0", "1"]]


# ================================================================================================================
# Sessions and wills
# ================================================================================================================


@pytest.mark.parametrize("version", VERSIONS)
def test_cli_persistent_session(broker: RunningBroker, subs: Callable[..., Sub], version: str) -> None:
    """[MQTT-3.1.2-4/-5] mosquitto_sub -c -i ID (5.0: -x 60) subscribes and leaves (-E); QoS 1 messages published
    meanwhile are delivered, in order, when it comes back."""
    session = ["-V", version, "-c", "-i", "cli-persistent", "-q", "1", *(["-x", "60"] if version == "5" else [])]
    first = subs(broker, *session, "-t", "persist/#", "-E")
    assert first.exit_code() == 0
    for i in range(5):
        pub(broker, "-V", version, "-q", "1", "-t", "persist/t", "-m", f"offline {i}")
    back = subs(broker, *session, "-t", "persist/#", "-C", "5", wait_subscribed=False)
    assert [m[1] for m in back.messages(5)] == [f"offline {i}" for i in range(5)]
    assert back.exit_code() == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_cli_will_on_kill_not_on_clean_exit(broker: RunningBroker, subs: Callable[..., Sub], version: str) -> None:
    """[MQTT-3.1.2-8/-10] the will of a mosquitto_sub killed with SIGKILL is published; that of one that exits
    normally (DISCONNECT) is not."""
    watcher = subs(broker, "-V", version, "-q", "1", "-t", "wills/#")
    clean = subs(broker, "-V", version, "-t", "idle", "-E", "--will-topic", "wills/clean", "--will-payload", "x")
    assert clean.exit_code() == 0
    dying = subs(broker, "-V", version, "-t", "idle", "--will-topic", "wills/dying", "--will-payload", "killed",
                 "--will-qos", "1")  # fmt: skip
    dying.kill()
    assert watcher.messages(1) == [["wills/dying", "killed", "0", "1"]]
    watcher.no_message()


# ================================================================================================================
# Security and protocol versions
# ================================================================================================================


@pytest.mark.parametrize("version", VERSIONS)
def test_cli_credentials(broker_process: StartBroker, subs: Callable[..., Sub], tmp_path: Path, version: str) -> None:
    """-u/-P: the right password is accepted, a wrong one or none is refused (mosquitto_pub exits non-zero with the
    refusal); an ACL-forbidden publish is not forwarded."""
    broker = broker_process(write_security_files(tmp_path / "security"))
    bob = subs(broker, "-V", version, "-u", "bob", "-P", "builder", "-q", "1", "-t", "home/#")
    for credentials in (["-u", "alice", "-P", "wrong"], ["-u", "nobody", "-P", "x"], []):
        refused = pub(broker, "-V", version, *credentials, "-t", "home/x", "-m", "no", check=False)
        assert refused.returncode != 0
        reasons = ("connection refused", "not authori", "bad user name or password")
        assert any(r in refused.stderr.lower() for r in reasons), refused.stderr
    alice = ["-V", version, "-u", "alice", "-P", "wonderland", "-q", "1"]
    pub(broker, *alice, "-t", "home/secret-forbidden-to-bob-writes", "-m", "from alice")
    bob_pub = ["-V", version, "-u", "bob", "-P", "builder", "-q", "1"]
    forbidden = pub(broker, "-d", *bob_pub, "-t", "home/kitchen", "-m", "forbidden", check=False)
    if version == "5":
        assert "RC:135" in forbidden.stdout, forbidden.stdout  # PUBACK 0x87 Not authorized
    pub(broker, *bob_pub, "-t", "home/bob/desk", "-m", "allowed")
    got = bob.messages(2)
    assert [(m[0], m[1]) for m in got] == [
        ("home/secret-forbidden-to-bob-writes", "from alice"),
        ("home/bob/desk", "allowed"),
    ]


def test_cli_mqtt31_refused(broker: RunningBroker) -> None:
    """[MQTT-3.1.2-2] mosquitto_pub -V 31 (MQIsdp, level 3) is refused with CONNACK 0x01 (unacceptable protocol
    version)."""
    result = pub(broker, "-V", "31", "-t", "old", "-m", "x", check=False)
    assert result.returncode != 0
    assert "unacceptable protocol version" in result.stderr.lower(), result.stderr
