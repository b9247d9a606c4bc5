"""The console script, run as a user runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys

from mqttchat import __version__


def _mqttchat() -> list[str]:
    exe = shutil.which("mqttchat")
    return [exe] if exe else [sys.executable, "-m", "mqttchat"]


def test_version() -> None:
    result = subprocess.run([*_mqttchat(), "--version"], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == f"mqttchat {__version__}"


def test_help() -> None:
    result = subprocess.run([*_mqttchat(), "--help"], capture_output=True, text=True, check=True, timeout=60)
    assert "usage: mqttchat" in result.stdout
    assert "--version" in result.stdout


def test_unknown_option_is_a_one_line_error_without_traceback() -> None:
    result = subprocess.run([*_mqttchat(), "--no-such-option"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "unrecognized arguments: --no-such-option" in result.stderr
