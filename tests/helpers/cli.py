"""Running ``mqttchat`` as a user does: in a subprocess, with the code under test (``PYTHONPATH``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

from tests.helpers.brokers import RunningBroker


def mqttchat(*args: str) -> list[str]:
    exe = shutil.which("mqttchat")
    return [exe, *args] if exe else [sys.executable, "-m", "mqttchat", *args]


def run(*args: str, stdin: bytes | None = None, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(mqttchat(*args), input=stdin, capture_output=True, timeout=timeout, check=False)


def finish(proc: subprocess.Popen[bytes], timeout: float = 15) -> tuple[int, bytes, bytes]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def start_sub(broker: RunningBroker, *args: str) -> subprocess.Popen[bytes]:
    """Start ``mqttchat sub`` and return once mosquitto has logged its SUBSCRIBE."""
    before = broker.log_text().count("Received SUBSCRIBE")
    proc = subprocess.Popen(
        mqttchat("sub", "-p", str(broker.port), *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 15
    while broker.log_text().count("Received SUBSCRIBE") <= before:
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise AssertionError(f"sub did not subscribe: {proc.stderr.read() if proc.stderr else b''!r}")
        time.sleep(0.05)
    return proc


def pub(broker: RunningBroker, *args: str, stdin: bytes | None = None) -> None:
    result = run("pub", "-p", str(broker.port), *args, stdin=stdin)
    assert result.returncode == 0, result.stderr
