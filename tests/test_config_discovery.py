"""How the explorer subscribes on a big broker: settings.toml's discovery and discovery_topics, and the
command line's --discover and --all-topics."""

from __future__ import annotations

from pathlib import Path

import pytest

from mqttchat.commands.app import build_parser
from mqttchat.config import AppSettings, ConfigError, load_settings, save_settings


def test_discovery_settings_default_read_and_saved(tmp_path: Path) -> None:
    assert AppSettings().discovery == "auto" and AppSettings().discovery_topics == 50_000
    path = tmp_path / "settings.toml"
    path.write_text('discovery = "on"\ndiscovery_topics = 2000\n')
    settings = load_settings(path)
    assert settings.discovery == "on" and settings.discovery_topics == 2000
    save_settings(settings, path)
    assert load_settings(path) == settings


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('theme = "textual-dark"\ndiscovery = "sometimes"\n', "must be one of 'auto', 'on', 'off'"),
        ("discovery_topics = 5\n", "discovery_topics"),
    ],
)
def test_a_wrong_discovery_setting_names_the_file_and_line(tmp_path: Path, text: str, said: str) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert str(path) in message and said in message
    assert f":{text.count(chr(10))}" in message  # the line of the key


def test_command_line_discover_and_all_topics() -> None:
    parser = build_parser()
    assert parser.parse_args(["--discover"]).discovery == "on"
    assert parser.parse_args(["--all-topics"]).discovery == "off"
    assert parser.parse_args([]).discovery is None  # the settings decide
    with pytest.raises(SystemExit):
        parser.parse_args(["--discover", "--all-topics"])
    assert not hasattr(build_parser("chat").parse_args([]), "discovery")
