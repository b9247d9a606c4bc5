"""Shared helpers for the benchmarks: a free loopback port and a mosquitto broker started and stopped by PID."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@contextlib.contextmanager
def serving(
    cmd: list[str], port: int, *, env: dict[str, str] | None = None, cwd: str | Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` (a server) until it listens on 127.0.0.1:``port``; on leaving, SIGTERM it, then kill it if it
    is still there 10 s later."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd)
    try:
        wait_for_port(port, timeout=30)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def mosquitto(extra_config: str = "") -> Iterator[int]:
    """Run Debian's mosquitto on a free loopback port; yield the port.

    mosquitto's defaults (max_queued_messages 1000, max_inflight_messages 20) drop messages under load, even
    QoS 2 it has already acknowledged when an MQTT 3.1.1 publisher keeps more than 20 in flight; benchmarks
    lift both limits so that every lost message is the client's fault.
    """
    with mosquitto_process(extra_config) as (port, _):
        yield port


@contextlib.contextmanager
def mosquitto_process(extra_config: str = "") -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """Like :func:`mosquitto`, yielding the port and the process (to sample its memory)."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        raise SystemExit("mosquitto is not installed (apt-get install -y mosquitto)")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"
            f"max_inflight_messages 0\nmax_queued_bytes 0\npersistence false\n{extra_config}"
        )
        proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(port)
            yield port, proc
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
