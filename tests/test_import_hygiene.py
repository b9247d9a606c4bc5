"""The protocol core loads no I/O or UI library; the command-line tools load only what they use."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers.brokers import RunningBroker


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


def test_cli_pub_sub_and_help_import_only_what_they_use(mosquitto: RunningBroker) -> None:
    """``mqttchat pub`` and ``sub`` start fast because they load no UI library, no broker and no explorer (``sub
    -F json`` alone loads its recording format); ``mqttchat --help`` loads not even the client."""
    port = str(mosquitto.port)
    code = (
        "import contextlib, io, sys\n"
        "from mqttchat.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
        "print('help:' + ','.join(sorted(m for m in ('asyncio', 'mqttchat.client', 'mqttchat.protocol')"
        " if m in sys.modules)))\n"
        f"assert main(['pub', '-p', '{port}', '-t', 'hygiene/cli', '-m', 'kept', '-r', '-q', '1']) == 0\n"
        f"assert main(['sub', '-p', '{port}', '-t', 'hygiene/cli', '-C', '1']) == 0\n"
        "print('pubsub:' + ','.join(sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('textual', 'rich') or m.startswith(('mqttchat.broker', 'mqttchat.explorer',"
        " 'mqttchat.ui')))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "kept" in lines, "sub did not print the retained message"
    assert "help:" in lines, f"mqttchat --help loaded {[line for line in lines if line.startswith('help:')]}"
    assert "pubsub:" in lines, f"pub/sub loaded {[line for line in lines if line.startswith('pubsub:')]}"
