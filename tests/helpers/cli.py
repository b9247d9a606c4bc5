"""Running ``mqttchat`` as a user does: in a subprocess, with the code under test (``PYTHONPATH``)."""

from __future__ import annotations

import shutil
import subprocess
import sys


def mqttchat(*args: str) -> list[str]:
    exe = shutil.which("mqttchat")
    return [exe, *args] if exe else [sys.executable, "-m", "mqttchat", *args]


def run(*args: str, stdin: bytes | None = None, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(mqttchat(*args), input=stdin, capture_output=True, timeout=timeout, check=False)


def finish(proc: subprocess.Popen[bytes], timeout: float = 15) -> tuple[int, bytes, bytes]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err
