"""Brokers for the tests: our own (its configuration for in-process brokers, and ``mqttchat broker`` processes),
Debian's mosquitto and amqtt, on free loopback ports, stopped by PID."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mqttchat.broker.config import BrokerConfig, default_config, with_overrides


def broker_config(**overrides: Any) -> BrokerConfig:
    """The default broker configuration on 127.0.0.1, port 0, $SYS off, with ``overrides``."""
    config = with_overrides(default_config(), port=0)
    return dataclasses.replace(config, **{"sys_interval": 0, **overrides})


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (for peers that cannot bind port 0 themselves)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"the broker exited with code {proc.returncode} before listening on {port}: {err}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def mosquitto_exe() -> str:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        raise RuntimeError("Debian's mosquitto is required by the interop tests: apt-get install -y mosquitto")
    return exe


@dataclass
class RunningBroker:
    port: int
    proc: subprocess.Popen[bytes]
    directory: Path
    log: Path

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextlib.contextmanager
def run_mosquitto(directory: Path, config: str = "", port: int | None = None) -> Iterator[RunningBroker]:
    """mosquitto with ``config`` added to a loopback listener on a free port.

    The defaults of Debian's mosquitto 2.0.11 (max_queued_messages 1000, max_inflight_messages 20) drop
    messages under load, even QoS 2 it has acknowledged, so the tests lift both.
    """
    port = port or free_port()
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "mosquitto.conf"
    log = directory / "mosquitto.log"
    base = (
        f"listener {port} 127.0.0.1\n"
        "max_queued_messages 0\nmax_inflight_messages 0\n"
        f"log_dest file {log}\nlog_type all\n"
    )
    if "allow_anonymous" not in config:
        base += "allow_anonymous true\n"
    if os.geteuid() == 0:
        # Run as root, mosquitto drops to user "mosquitto", which cannot read pytest's private temp files.
        base += "user root\n"
    conf.write_text(base + config)
    proc = subprocess.Popen([mosquitto_exe(), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    broker = RunningBroker(port, proc, directory, log)
    try:
        wait_for_port(port, proc)
        yield broker
    finally:
        broker.stop()


@dataclass
class AmqttPorts:
    tcp: int
    ws: int
    wss: int


@contextlib.contextmanager
def run_amqtt(directory: Path, certfile: Path, keyfile: Path) -> Iterator[AmqttPorts]:
    """The amqtt broker (Python) with TCP, WebSocket and secure WebSocket listeners."""
    ports = AmqttPorts(free_port(), free_port(), free_port())
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "amqtt.yaml"
    conf.write_text(
        "listeners:\n"
        f"  default:\n    type: tcp\n    bind: 127.0.0.1:{ports.tcp}\n"
        f"  ws:\n    type: ws\n    bind: 127.0.0.1:{ports.ws}\n"
        f"  wss:\n    type: ws\n    bind: 127.0.0.1:{ports.wss}\n    ssl: true\n"
        f"    certfile: {certfile}\n    keyfile: {keyfile}\n"
        "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n    allow_anonymous: true\n"
    )
    exe = shutil.which("amqtt")
    cmd = [exe, "-c", str(conf)] if exe else [sys.executable, "-m", "amqtt.scripts.broker_script", "-c", str(conf)]
    log = open(directory / "amqtt.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        for port in (ports.tcp, ports.ws, ports.wss):
            wait_for_port(port, proc, timeout=30)
        yield ports
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@contextlib.contextmanager
def run_mqttchat_broker(directory: Path, config: str = "") -> Iterator[RunningBroker]:
    """``mqttchat broker`` in its own process, on a free loopback port, with ``config`` (TOML) added.

    ``config`` holds top-level keys only; the listener is added here. The process can be stopped (SIGTERM) or
    killed (SIGKILL) by the test, and started again on the same port with the same files.
    """
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "broker.toml"
    log = directory / "broker.log"
    conf.write_text(f"sys_interval = 0\n{config}\n[[listener]]\nport = {port}\nhost = '127.0.0.1'\n")
    broker = start_mqttchat_broker(conf, port, log)
    try:
        yield broker
    finally:
        broker.stop()


def start_mqttchat_broker(conf: Path, port: int, log: Path) -> RunningBroker:
    exe = shutil.which("mqttchat")
    cmd = (
        [exe, "broker", "-v", "-c", str(conf)]
        if exe
        else [sys.executable, "-m", "mqttchat", "broker", "-v", "-c", str(conf)]
    )
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    broker = RunningBroker(port, proc, conf.parent, log)
    wait_for_port(port, proc)
    return broker
