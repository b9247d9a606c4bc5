"""The console script, run as a user runs it."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

import pytest

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


def test_demo_help_is_the_demos() -> None:
    result = subprocess.run([*_mqttchat(), "demo", "--help"], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.startswith("usage: mqttchat demo")
    assert "simulated house" in result.stdout
    assert "--profile" not in result.stdout  # the demo runs its own broker: no target, no profile


def test_chat_help_names_the_chats_default_subscription() -> None:
    result = subprocess.run([*_mqttchat(), "chat", "--help"], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.startswith("usage: mqttchat chat")
    help_text = " ".join(result.stdout.split())
    assert "default #" not in help_text
    assert "default: the chat's topics, mqttchat/v1/#" in help_text


def test_the_apps_url_may_name_the_topic_to_subscribe(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mqttchat.commands import app
    from mqttchat.ui.app import MQTTChatApp

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    seen = []
    monkeypatch.setattr(MQTTChatApp, "run", lambda self: seen.append(self.runtime))
    assert app.main(["mqtt://127.0.0.1:1884/home/+/temp", "-t", "other"]) == 0
    (runtime,) = seen
    assert runtime.subscriptions == (("home/+/temp", 0), ("other", 0))
    assert runtime.options.target.url == "mqtt://127.0.0.1:1884"


def test_the_lasting_history_is_on_by_default(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The explorer keeps a lasting history unless told not to (README says so): with no settings the app is given
    the default budget and retention; --no-history and history_store = false keep none."""
    from mqttchat.commands import app
    from mqttchat.config.settings import AppSettings
    from mqttchat.ui.app import MQTTChatApp

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    seen = []
    monkeypatch.setattr(MQTTChatApp, "run", lambda self: seen.append(self.runtime))
    assert AppSettings().history_store is True
    assert app.main(["mqtt://127.0.0.1:1884"]) == 0
    assert app.main(["mqtt://127.0.0.1:1884", "--no-history"]) == 0
    (tmp_path / "config" / "mqttchat").mkdir(parents=True, exist_ok=True)
    (tmp_path / "config" / "mqttchat" / "settings.toml").write_text("history_store = false\n")
    assert app.main(["mqtt://127.0.0.1:1884"]) == 0
    default, off, off_in_settings = seen
    assert default.history_budget == 256 * 1024 * 1024 and default.history_retention == 7 * 86_400
    assert off.history_budget is None and off_in_settings.history_budget is None


def test_chat_help_states_the_chat_session_expiry() -> None:
    result = subprocess.run([*_mqttchat(), "chat", "--help"], capture_output=True, text=True, check=True, timeout=60)
    text = " ".join(result.stdout.split())
    assert "default 604800: a week" in text and "3600" not in text


def test_command_list_names_each_command_as_its_module_does() -> None:
    """``mqttchat --help`` lists the commands without importing them: the lines in cli.COMMANDS must be the ones
    each command's module registers."""
    from mqttchat.cli import build_parser

    assert build_parser("").format_help() == build_parser().format_help()


@pytest.mark.parametrize("command", ["pub", "sub", "history", "passwd", "broker", "serve"])
def test_each_commands_examples_stand_one_per_line(command: str) -> None:
    """``--help`` ends with examples a user can copy: each on a line of its own, not run together into one
    reflowed paragraph."""
    from mqttchat.cli import build_parser

    parser = build_parser(command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    text = sub.format_help()
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(("examples:", "example:")))
    examples = lines[start + 1 : lines.index("", start)]
    assert examples, text
    for line in examples:
        assert line.startswith("  ") and line.split()[0] in ("mqttchat", "tail"), line
        assert line.count("mqttchat ") == 1, f"two examples on one line: {line!r}"
