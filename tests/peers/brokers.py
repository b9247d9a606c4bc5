"""The peer brokers as the tests see them: a name, a URL per transport, and their quirks."""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass

import pytest

from tests.helpers.cli import mqttchat


@dataclass(frozen=True)
class PeerBroker:
    """A broker nobody here wrote, reached over one transport."""

    name: str
    transport: str
    url: str
    #: Retained messages reach exact subscriptions only, never wildcard ones (RabbitMQ 3.10).
    retained_on_wildcards: bool = True

    def __str__(self) -> str:
        return f"{self.name}-{self.transport}"


#: Every broker and transport the peer tests run on (the fixture ``peer`` turns an id into a PeerBroker).
PEERS = ["rabbitmq-tcp", "rabbitmq-ws", "aedes-tcp", "aedes-ws"]


def resolve_peer(request: pytest.FixtureRequest, peer_id: str) -> PeerBroker:
    name, transport = peer_id.split("-")
    if name == "rabbitmq":
        node = request.getfixturevalue("rabbitmq")
        url = node.url if transport == "tcp" else node.ws_url
        return PeerBroker(name, transport, url, retained_on_wildcards=False)
    ports = request.getfixturevalue("aedes")
    return PeerBroker(name, transport, ports.url if transport == "tcp" else ports.ws_url)


class CliSub:
    """``mqttchat sub -d`` in a subprocess; started once its SUBACK arrived (read from its packet trace)."""

    def __init__(self, url: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            mqttchat("sub", "-L", url, "-d", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.stderr_lines: list[str] = []
        self._subacked = threading.Event()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 20
        while not self._subacked.wait(0.05):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.proc.kill()
                self._reader.join(5)
                raise AssertionError(f"sub did not subscribe: {''.join(self.stderr_lines)}")

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace")
            self.stderr_lines.append(line)
            if "received SUBACK" in line:
                self._subacked.set()

    def finish(self, timeout: float = 20) -> tuple[int, bytes, str]:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        self._reader.join(5)
        return self.proc.returncode, out, "".join(self.stderr_lines)


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(mqttchat(*args), capture_output=True, timeout=timeout, check=False)
