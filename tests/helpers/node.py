"""Node.js test peers: aedes as a broker (TCP and WebSocket) and MQTT.js as a client driven over JSON lines.

The packages are pinned by ``tests/peers/node/package-lock.json`` and installed there by ``npm ci`` (``.ci/run``
does it). A missing Node.js or a missing install is an error that names the fix, never a skip.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NODE_DIR = Path(__file__).resolve().parent.parent / "peers" / "node"


class NodePeerUnavailable(RuntimeError):
    """Node.js or the pinned packages are missing, or a peer did not start."""


def node_exe() -> str:
    exe = shutil.which("node")
    if exe is None:
        raise NodePeerUnavailable("Node.js is required by the peer tests: apt-get install -y nodejs npm")
    for package in ("mqtt", "aedes", "ws"):
        if not (NODE_DIR / "node_modules" / package / "package.json").exists():
            raise NodePeerUnavailable(f"the Node.js test peers are not installed: (cd {NODE_DIR} && npm ci)")
    return exe


@dataclass
class AedesPorts:
    tcp: int
    ws: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.tcp}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws}/mqtt"


@contextlib.contextmanager
def run_aedes(log: Path) -> Iterator[AedesPorts]:
    """aedes on two loopback ports of its choosing (it reports them); stopped by PID."""
    exe = node_exe()
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [exe, "aedes_broker.mjs"], cwd=NODE_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the script prints its ports once both listen, or exits
        if not line:
            proc.wait(10)
            raise NodePeerUnavailable(
                f"aedes exited with code {proc.returncode} before listening: {log.read_text(errors='replace')}"
            )
        ports = json.loads(line)
        yield AedesPorts(int(ports["tcp"]), int(ports["ws"]), proc)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def b64(data: bytes) -> dict[str, str]:
    """A binary MQTT property value for the agent (``correlationData``, ``authenticationData``)."""
    return {"b64": base64.b64encode(data).decode()}


class MQTTJSHost:
    """One Node.js process running any number of MQTT.js clients (starting Node.js with MQTT.js takes about half a
    second: the suite starts it once). Commands go in as JSON lines naming their client; a thread reads the events
    and hands each to its :class:`MQTTJSAgent`, in the event loop of the test that made it."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc = proc
        self.log = log
        self._agents: dict[int, MQTTJSAgent] = {}
        self._count = 0
        self._write_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="mqttjs-host", daemon=True)
        self._reader.start()

    @classmethod
    @contextlib.contextmanager
    def run(cls, log: Path) -> Iterator[MQTTJSHost]:
        exe = node_exe()
        with open(log, "wb") as err:
            proc = subprocess.Popen(
                [exe, "mqttjs_agent.mjs"], cwd=NODE_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err
            )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # {"event": "ready"} once it reads commands, or nothing if it died
            if not line or json.loads(line).get("event") != "ready":
                proc.wait(10)
                raise NodePeerUnavailable(f"the MQTT.js agent did not start: {log.read_text(errors='replace')}")
            yield cls(proc, log)
        finally:
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    assert proc.stdin is not None
                    proc.stdin.write(b'{"op": "quit"}\n')
                    proc.stdin.flush()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)

    def agent(self) -> MQTTJSAgent:
        """A new client (not connected yet), whose events are handed to the running event loop."""
        if self.proc.poll() is not None:
            raise NodePeerUnavailable(f"the MQTT.js agent exited: {self.log.read_text(errors='replace')}")
        self._count += 1
        agent = MQTTJSAgent(self, self._count)
        self._agents[agent.number] = agent
        return agent

    def send(self, command: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        with self._write_lock:
            self.proc.stdin.write(json.dumps(command).encode() + b"\n")
            self.proc.stdin.flush()

    def forget(self, agent: MQTTJSAgent) -> None:
        self._agents.pop(agent.number, None)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            agent = self._agents.get(event.pop("agent", None))
            if agent is not None:
                agent.deliver(event)
        for agent in list(self._agents.values()):
            agent.deliver({"event": "exited"})


class MQTTJSAgent:
    """An MQTT.js client in the :class:`MQTTJSHost` process: commands go in as JSON lines, events come back as JSON
    lines.

    Every event is kept (in order) so that a test can wait for one and then look at what came before it.
    """

    def __init__(self, host: MQTTJSHost, number: int) -> None:
        self.host = host
        self.number = number
        self.events: list[dict[str, Any]] = []
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._next_id = 0
        self._closed = False

    def deliver(self, event: dict[str, Any]) -> None:
        """Called by the host's reader thread."""
        self.events.append(event)
        with contextlib.suppress(RuntimeError):  # the test's loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(self._changed.set)

    def send(self, op: str, **fields: Any) -> int:
        self._next_id += 1
        self.host.send({"op": op, "agent": self.number, "id": self._next_id, **fields})
        return self._next_id

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> dict[str, Any]:
        """The first event (from the start) matching ``predicate``; waits for it."""
        seen = 0
        async with asyncio.timeout(timeout):
            while True:
                while seen < len(self.events):  # the reader thread appends meanwhile
                    event = self.events[seen]
                    seen += 1
                    if predicate(event):
                        return event
                    if event["event"] == "exited":
                        log = self.host.log.read_text(errors="replace")
                        raise NodePeerUnavailable(f"the MQTT.js agent exited: {log}")
                self._changed.clear()  # set again by the reader, in this loop, after any event appended now
                if seen == len(self.events):
                    await self._changed.wait()

    async def call(self, op: str, answer: str, timeout: float = 15.0, **fields: Any) -> dict[str, Any]:
        """Send a command and wait for its answer (the event ``answer`` with the same id)."""
        cid = self.send(op, **fields)
        return await self.wait_for(lambda e: e["event"] == answer and e.get("id") == cid, timeout)

    async def connect(self, url: str, **options: Any) -> dict[str, Any]:
        answer = await self.call("connect", "connack", url=url, options=options)
        if answer.get("error"):
            raise AssertionError(f"MQTT.js could not connect to {url}: {answer['error']}")
        return answer

    async def subscribe(self, topic: str | list[str], **options: Any) -> list[dict[str, Any]]:
        answer = await self.call("subscribe", "suback", topic=topic, options=options or {"qos": 0})
        assert answer["error"] is None, answer
        return list(answer["granted"])

    async def publish(self, topic: str, payload: bytes | str = b"", **options: Any) -> dict[str, Any]:
        data = payload.encode() if isinstance(payload, str) else payload
        answer = await self.call(
            "publish", "published", topic=topic, payload_b64=base64.b64encode(data).decode(), options=options
        )
        assert answer["error"] is None, answer
        return answer

    async def end(self, force: bool = False, **options: Any) -> None:
        await self.call("end", "ended", force=force, options=options)

    def messages(self, topic: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == "message" and (topic is None or e["topic"] == topic)]

    async def wait_messages(self, count: int, topic: str | None = None, timeout: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.messages(topic)) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(self.messages(topic))} of {count} messages on {topic!r} after {timeout} s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._changed.wait()
        return self.messages(topic)

    @staticmethod
    def payload(event: dict[str, Any]) -> bytes:
        return base64.b64decode(event["payload_b64"])

    async def close(self) -> None:
        """Drop the connection as a crashed process would (no DISCONNECT), and forget the client."""
        if self._closed:
            return
        self._closed = True
        if self.host.proc.poll() is None:
            cid = self.send("exit")
            with contextlib.suppress(TimeoutError, NodePeerUnavailable):
                await self.wait_for(lambda e: e["event"] == "gone" and e.get("id") == cid, timeout=5)
        self.host.forget(self)
