"""What every hardening scenario shares: its report, a ``mqttchat broker`` process, memory sampling."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.peers import free_port, wait_for_port


@dataclass
class Report:
    """A scenario's figures (printed in order) and the problems it found (empty: it passed)."""

    name: str
    figures: dict[str, float | int | str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)

    def format(self) -> str:
        def show(value: float | int | str) -> str:
            if isinstance(value, float):
                return f"{value:,.2f}"
            if isinstance(value, int):
                return f"{value:,}"
            return value

        figures = ", ".join(f"{key} {show(value)}" for key, value in self.figures.items())
        status = "ok" if not self.problems else "FAILED: " + "; ".join(self.problems)
        return f"{self.name}: {figures}  [{status}]"


def rss_kib(pid: int) -> int:
    """Resident memory of a process, KiB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class MemoryWatch:
    """Samples a process's RSS every ``interval`` seconds in the background; ``peak_kib`` is the high-water mark."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_kib = rss_kib(pid)
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.peak_kib = max(self.peak_kib, rss_kib(self.pid))
            await asyncio.sleep(self.interval)

    def __enter__(self) -> MemoryWatch:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak_kib = max(self.peak_kib, rss_kib(self.pid))
        if self._task is not None:
            self._task.cancel()


def raise_file_limit(wanted: int = 8192) -> None:
    """Let this process hold many sockets (load scenarios open thousands of connections)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(soft, wanted), hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


@dataclass
class BrokerProcess:
    """``mqttchat broker`` in its own process with a TOML configuration; it can be killed (-9) and restarted."""

    directory: Path
    config: str = ""
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def log(self) -> Path:
        return self.directory / "broker.log"

    def start(self) -> BrokerProcess:
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        conf = self.directory / "broker.toml"
        sys_off = "" if "sys_interval" in self.config else "sys_interval = 0\n"
        conf.write_text(f"{sys_off}{self.config}\n[[listener]]\nport = {self.port}\nhost = '127.0.0.1'\n")
        exe = shutil.which("mqttchat")
        cmd = [exe] if exe else [sys.executable, "-m", "mqttchat"]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([*cmd, "broker", "-v", "-c", str(conf)], stdout=out, stderr=out)
        wait_for_port(self.port, timeout=15)
        self.starts += 1
        return self

    def kill(self) -> None:
        """SIGKILL: a crash, nothing written on the way out."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextlib.contextmanager
def broker_process(directory: Path, config: str = "") -> Iterator[BrokerProcess]:
    broker = BrokerProcess(directory, config).start()
    try:
        yield broker
    finally:
        broker.stop()


class Deadline:
    """A scenario's time bound: ``left`` seconds remain; ``expired`` once it is over."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    @property
    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.end
