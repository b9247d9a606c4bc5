"""Regenerate ``screenshots/*.svg`` and ``*.png``: ``python -m mqttchat.screenshots [--out screenshots]``.

Each screen is drawn headless from the same deterministic data as the snapshot tests (a small house at a fixed
time, UTC); PNGs are rendered with Debian's ``rsvg-convert`` (package librsvg2-bin) when it is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mqttchat.client import BrokerCapabilities, ClientOptions, parse_url
from mqttchat.explorer.tree import TopicTree
from mqttchat.protocol import ConnAck, Connect, Properties, Publish, Subscribe, Subscription
from mqttchat.runtime import Runtime, TraceRecord

#: The moment every screenshot is taken at.
NOW = 1_800_000_000.0
SIZE = (120, 36)


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


def sample_trace() -> list[TraceRecord]:
    return [
        TraceRecord(NOW - 3, "out", Connect("snapshot", keep_alive=30), 22),
        TraceRecord(NOW - 2.9, "in", ConnAck(False, properties=Properties(topic_alias_maximum=10)), 8),
        TraceRecord(NOW - 2.8, "out", Subscribe(1, (Subscription("#", 1, retain_as_published=True),)), 9),
        TraceRecord(NOW - 1, "in", Publish("home/kitchen/temp", b'{"t": 22}', 1, False, False, 7,
                                           Properties(content_type="application/json")), 44),
    ]  # fmt: skip


def make_app(tree: TopicTree | None = None) -> Any:
    from mqttchat.ui.app import MQTTChatApp

    options = ClientOptions(parse_url("mqtt://127.0.0.1:1883"), client_id="snapshot")
    runtime = Runtime(options, tree=tree or sample_tree())
    runtime.trace.extend(sample_trace())
    runtime.trace_total = len(runtime.trace)
    # What a CONNACK from the embedded broker says, and its $SYS figures, as if connected.
    runtime.client.session.capabilities = BrokerCapabilities(
        version=5, session_present=False, topic_alias_maximum=10, assigned_client_identifier=None
    )
    runtime.client.session.client_id = "snapshot"
    runtime.sys_stats.update({
        "version": "mqttchat 0.1.0", "uptime": "3600 seconds", "clients/connected": "3",
        "messages/received": "1520", "messages/sent": "4212", "messages/dropped": "0",
        "retained messages/count": "5", "subscriptions/count": "7",
    })  # fmt: skip
    runtime.events.extend(["07:58:00 connecting", "07:58:00 connected"])
    return MQTTChatApp(runtime, connect=False, flush_hz=15)


def freeze(app: Any) -> None:
    """Fix every clock the widgets read."""
    from mqttchat.ui.widgets.retained_table import RetainedTable
    from mqttchat.ui.widgets.topic_tree import TopicTreeView

    for view in app.screen.query(TopicTreeView):
        view.clock = lambda: NOW
    for table in app.screen.query(RetainedTable):
        table.clock = lambda: NOW


async def prepare(pilot: Any, *keys: str) -> None:
    freeze(pilot.app)
    await pilot.pause()
    await pilot.press(*keys)
    freeze(pilot.app)
    pilot.app.flush()
    await pilot.pause()


async def _history(pilot: Any) -> None:
    await prepare(pilot, "end", "right", "down", "down", "right", "down", "down", "h")
    pilot.app.screen.query_one("#plot-field").value = "t"
    await pilot.pause()


async def _retained(pilot: Any) -> None:
    await prepare(pilot, "r")
    pilot.app.screen.query_one("RetainedTable").refresh_from_model()
    await pilot.pause()


async def _broker(pilot: Any) -> None:
    await prepare(pilot, "b")
    pilot.app.screen.query_one("BrokerPanel").refresh_from(pilot.app.runtime)
    await pilot.pause()


async def _publish(pilot: Any) -> None:
    await prepare(pilot, "p")
    pilot.app.screen.query_one("#pub-topic").value = "home/kitchen/light"
    pilot.app.screen.query_one("#pub-payload").text = '{"on": true, "level": 70}'
    await pilot.pause()


SCREENS: dict[str, tuple[str, Callable[[Any], Awaitable[None]]]] = {
    "explorer": ("The topic tree and the selected message", lambda p: prepare(p, "end", "right", "down", "down",
                                                                              "right", "down", "down")),
    "properties": ("An MQTT 5 message with its properties", lambda p: prepare(p, "down", "right", "down", "right",
                                                                              "down")),
    "history": ("History with diffs and a plot", _history),
    "retained": ("The retained-message inspector", _retained),
    "publish": ("The publish pane", _publish),
    "packets": ("The packet inspector", lambda p: prepare(p, "k")),
    "broker": ("Broker capabilities", _broker),
    "connect": ("Connection profiles", lambda p: prepare(p, "c")),
}  # fmt: skip


async def render(out: Path) -> list[Path]:
    written = []
    for name, (_, setup) in SCREENS.items():
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await setup(pilot)
            path = app.save_screenshot(filename=f"{name}.svg", path=str(out))
            written.append(Path(path))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", default="screenshots", help="output directory (default: screenshots)")
    args = parser.parse_args(argv)
    os.environ["TZ"] = "UTC"
    time.tzset()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    svgs = asyncio.run(render(out))
    converter = shutil.which("rsvg-convert")
    for svg in svgs:
        print(svg)
        if converter:
            png = svg.with_suffix(".png")
            subprocess.run([converter, "-b", "#1e1e1e", "-o", str(png), str(svg)], check=True)
            print(png)
    if not converter:
        print("rsvg-convert not found (apt-get install -y librsvg2-bin): PNGs not rendered", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
