"""The protocol core loads no I/O or UI library; the command-line tools load only what they use; the app's config
loads no broker."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import mqttchat
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
        "import mqttchat.explorer.history_store, mqttchat.explorer.history_export, mqttchat.explorer.conditions\n"
        "import mqttchat.explorer.retained, mqttchat.explorer.trace, mqttchat.explorer.progress\n"
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


def _imported_modules(path: Path) -> set[str]:
    """Every module a source file imports, at the top or inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module)
    return names


def test_the_app_config_imports_no_broker_and_no_explorer() -> None:
    """The app's configuration (every name of mqttchat.config), the connection screen and the app command load no
    broker module, and the configuration nothing of the explorer: ConfigError and the TOML layer live in
    mqttchat.config, the decoder rules' vocabulary too (the explorer's decoders import it, not the reverse)."""
    code = (
        "import sys, mqttchat.config as c\n"
        "for name in c.__all__: getattr(c, name)\n"
        "import mqttchat.config.keylines\n"
        "config = sorted(m for m in sys.modules if m.startswith(('mqttchat.broker', 'mqttchat.explorer')))\n"
        "import mqttchat.ui.screens.connect, mqttchat.commands.app\n"
        "app = sorted(m for m in sys.modules if m.startswith('mqttchat.broker'))\n"
        "print(','.join(config) + '|' + ','.join(app))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    config, app = result.stdout.strip().split("|")
    assert config == "", f"mqttchat.config loaded {config}"
    assert app == "", f"the connection screen or the app command loaded {app}"
    package = Path(mqttchat.__file__).parent
    sources = [
        *sorted((package / "config").glob("*.py")),
        package / "ui/screens/connect.py",
        package / "commands/app.py",
    ]
    for source in sources:
        forbidden = ("mqttchat.broker", "mqttchat.explorer") if source.parent.name == "config" else ("mqttchat.broker",)
        imported = sorted(name for name in _imported_modules(source) if name.startswith(forbidden))
        assert imported == [], f"{source.relative_to(package)} imports {imported} (also where a function does)"


def test_the_broker_takes_only_the_toml_layer_from_the_config() -> None:
    """The broker's files (its TOML configuration, password and ACL files) share the config's TOML layer, and
    only that: none of the app's profiles, settings or templates, nor the client they import."""
    code = (
        "import sys, mqttchat.broker.config, mqttchat.broker.auth, mqttchat.broker.server, mqttchat.commands.passwd\n"
        "print(','.join(sorted(m for m in sys.modules if m.startswith(('mqttchat.config', 'mqttchat.client')))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(result.stdout.strip().split(","))
    assert loaded <= {"mqttchat.config", "mqttchat.config.toml", "mqttchat.config.keylines"}, loaded


def _layer_imports(package: str) -> dict[str, set[str]]:
    """The mqttchat modules and UI libraries each file of ``package`` imports (relative imports resolved)."""
    found: dict[str, set[str]] = {}
    root = Path(__file__).resolve().parent.parent
    for source in sorted((root / package.replace(".", "/")).rglob("*.py")):
        parts = list(source.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
            parts.append("__init__")
        names: set[str] = set()
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(parts[: len(parts) - node.level]) if node.level else ""
                names.add(".".join(p for p in (base, node.module or "") if p))
        outside = {n for n in names if n.startswith("mqttchat.") and not n.startswith(package + ".") and n != package}
        ui = {n for n in names if n.split(".")[0] in ("textual", "rich")}
        if outside | ui:
            found[str(source.relative_to(root))] = outside | ui
    return found


#: What each layer may take from the rest of mqttchat (besides itself). ``mqttchat.untrusted`` is the leaf that
#: makes network text safe to show and log; the broker reads its files with the config's TOML layer (see above).
LAYERS = {
    "mqttchat.client": ("mqttchat.protocol", "mqttchat.untrusted"),
    "mqttchat.broker": ("mqttchat.protocol", "mqttchat.untrusted", "mqttchat.config.toml"),
    "mqttchat.chat": ("mqttchat.protocol", "mqttchat.client", "mqttchat.untrusted"),
    "mqttchat.explorer": ("mqttchat.protocol", "mqttchat.config.decoder_rules", "mqttchat.labels"),
}


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_each_layer_imports_only_what_lies_below_it_and_no_ui(package: str) -> None:
    """The client and the broker take only the protocol (and the safe-text leaf) from mqttchat; the chat's and the
    explorer's models take no UI library: every import, at the top or inside a function, of every file."""
    allowed = LAYERS[package]
    wrong = {
        path: sorted(n for n in names if not any(n == a or n.startswith(a + ".") for a in allowed))
        for path, names in _layer_imports(package).items()
    }
    assert {path: names for path, names in wrong.items() if names} == {}


def test_the_layers_load_no_ui_library() -> None:
    """Importing every module of the client, the broker, the chat and the explorer loads neither Textual nor Rich."""
    code = (
        "import importlib, pkgutil, sys\n"
        "import mqttchat.client, mqttchat.broker, mqttchat.chat, mqttchat.explorer\n"
        "for package in (mqttchat.client, mqttchat.broker, mqttchat.chat, mqttchat.explorer):\n"
        "    for info in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "print(','.join(sorted({m.split('.')[0] for m in sys.modules} & {'textual', 'rich'})))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"the layers loaded {result.stdout.strip()}"


#: The broker's shell: the one module that runs an event loop, sockets and threads for the rest.
BROKER_SHELL = "server.py"


def test_the_broker_logic_touches_no_event_loop_socket_or_thread() -> None:
    """The broker's connections, core, routing, admission, sessions, login lanes and store take bytes and a clock
    and give bytes and work to do: only its shell (server.py) imports asyncio, sockets, TLS or threads."""
    io = ("asyncio", "socket", "ssl", "selectors", "threading", "concurrent")
    root = Path(__file__).resolve().parent.parent / "mqttchat" / "broker"
    found: dict[str, list[str]] = {}
    for source in sorted(root.glob("*.py")):
        if source.name == BROKER_SHELL:
            continue
        names: set[str] = set()
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names.add(node.module or "")
        wrong = sorted(n for n in names if n.split(".")[0] in io)
        if wrong:
            found[source.name] = wrong
    assert found == {}
