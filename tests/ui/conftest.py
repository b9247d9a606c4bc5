"""UI test fixtures: isolated config/data dirs, UTC, no cursor blink, and deterministic app data."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mqttchat.client import ClientOptions, parse_url
from mqttchat.explorer.tree import TopicTree
from mqttchat.protocol import Properties
from mqttchat.runtime import Runtime
from mqttchat.ui.app import MQTTChatApp

#: The moment every snapshot is taken at.
NOW = 1_800_000_000.0


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    from textual.widgets import Input

    monkeypatch.setattr(Input, "cursor_blink", False, raising=False)
    yield
    os.environ.pop("TZ", None)
    time.tzset()


def sample_tree() -> TopicTree:
    """A small house: JSON telemetry, retained states, a binary payload, an MQTT 5 message with properties."""
    tree = TopicTree()
    t = NOW - 120
    for i in range(6):
        tree.ingest("home/kitchen/temp", f'{{"t": {21 + i * 0.5}, "h": {40 + i}}}'.encode(), 0, False, False,
                    received_at=t + i * 10)  # fmt: skip
    tree.ingest("home/kitchen/light", b"on", 1, True, received_at=t + 5)
    tree.ingest("home/hall/light", b"off", 1, True, received_at=t + 7)
    tree.ingest("home/hall/door", b"closed", 1, True, received_at=t + 8)
    tree.ingest("garden/pump/state", b"running", 1, True, received_at=t + 30)
    tree.ingest("garden/sensor/raw", bytes(range(48)), 0, received_at=t + 40)
    props = Properties(content_type="application/json", user_property=[("site", "north")], response_topic="r/1")
    tree.ingest("devices/thermostat/status", b'{"mode": "eco", "target": 19.5}', 1, False, False, props, t + 60)
    tree.ingest("$SYS/broker/uptime", b"3600 seconds", 0, True, received_at=t + 90)
    return tree


def make_app(tree: TopicTree | None = None) -> MQTTChatApp:
    runtime = Runtime(
        ClientOptions(parse_url("mqtt://127.0.0.1:1883"), client_id="snapshot"), tree=tree or sample_tree()
    )
    return MQTTChatApp(runtime, connect=False, flush_hz=15)


def freeze(app: MQTTChatApp) -> None:
    """Fix every clock the widgets read, for deterministic snapshots."""
    from mqttchat.ui.widgets.retained_table import RetainedTable
    from mqttchat.ui.widgets.topic_tree import TopicTreeView

    for view in app.screen.query(TopicTreeView):
        view.clock = lambda: NOW
    for table in app.screen.query(RetainedTable):
        table.clock = lambda: NOW


def text_of(widget: object, width: int = 110) -> str:
    """The plain text a Static (or Label) currently shows, rendered with Rich."""
    from rich.console import Console

    content = widget.content  # type: ignore[attr-defined]
    if isinstance(content, str):
        return content
    console = Console(width=width, record=True, color_system=None, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(content)
    return console.export_text()
