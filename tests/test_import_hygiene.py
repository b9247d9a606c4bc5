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


def test_explorer_and_its_decoders_import_no_ui() -> None:
    """The explorer's models and every payload decoder (loaded by decoding with each) stay free of Textual and Rich;
    importing the decoders loads no format library until one is used."""
    code = (
        "import sys, mqttchat.explorer.decoders as d\n"
        "lazy = sorted(m for m in ('google.protobuf', 'cbor2', 'msgpack') if m in sys.modules)\n"
        "import mqttchat.explorer.tree, mqttchat.explorer.recording, mqttchat.explorer.payload\n"
        "p = d.PayloadDecoders()\n"
        "for name in d.DECODERS:\n"
        "    if not d.DECODERS[name].required:\n"
        "        p.decode_as(d.DecoderRule('#', name), 'spBv1.0/G/NDATA/E', b'\\x08\\x01')\n"
        "p.observe('spBv1.0/G/NBIRTH/E', b'', 0.0)\n"
        "bad = sorted(m for m in ('textual', 'rich') if m in sys.modules)\n"
        "print(','.join(lazy) + '|' + ','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lazy, bad = result.stdout.strip().split("|")
    assert lazy == "", f"importing mqttchat.explorer.decoders loaded {lazy}"
    assert bad == "", f"mqttchat.explorer loaded {bad}"


def test_chat_layout_and_wrapping_import_no_textual() -> None:
    """The chat log's layout and word wrapping are plain Python (Rich measures cells), testable without a screen."""
    code = (
        "import sys, mqttchat.ui.chat_layout, mqttchat.ui.wrap\n"
        "print('textual' if any(m == 'textual' or m.startswith('textual.') for m in sys.modules) else '')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", "mqttchat.ui.chat_layout loaded textual"
