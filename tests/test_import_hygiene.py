"""The protocol core loads no I/O or UI library."""

from __future__ import annotations

import subprocess
import sys


def test_protocol_core_imports_no_io_or_ui() -> None:
    code = (
        "import sys, mqttchat.protocol\n"
        "bad = sorted(m for m in ('asyncio', 'socket', 'ssl', 'selectors', 'textual', 'rich') if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"mqttchat.protocol loaded {result.stdout.strip()}"
