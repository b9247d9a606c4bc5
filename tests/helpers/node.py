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


class MQTTJSAgent:
    """An MQTT.js client in a Node.js process: commands go in as JSON lines, events come back as JSON lines.

    Every event is kept (in order) so that a test can wait for one and then look at what came before it.
    """

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._next_id = 0
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls) -> MQTTJSAgent:
        proc = await asyncio.create_subprocess_exec(
            node_exe(),
            "mqttjs_agent.mjs",
            cwd=NODE_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=16 * 1024 * 1024,
        )
        agent = cls(proc)
        await agent.wait_for(lambda e: e["event"] == "ready", timeout=20)
        return agent

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.events.append(json.loads(line))
            self._changed.set()
        self.events.append({"event": "exited"})
        self._changed.set()

    def send(self, op: str, **fields: Any) -> int:
        self._next_id += 1
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, "id": self._next_id, **fields}).encode() + b"\n")
        return self._next_id

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> dict[str, Any]:
        """The first event (from the start) matching ``predicate``; waits for it."""
        seen = 0
        async with asyncio.timeout(timeout):
            while True:
                for event in self.events[seen:]:
                    if predicate(event):
                        return event
                    if event["event"] == "exited":
                        stderr = b""
                        if self.proc.stderr is not None:
                            stderr = await self.proc.stderr.read()
                        raise NodePeerUnavailable(f"MQTT.js agent exited: {stderr.decode(errors='replace')}")
                seen = len(self.events)
                self._changed.clear()
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
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                self.send("exit")
            try:
                async with asyncio.timeout(5):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
