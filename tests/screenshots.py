"""Regenerate ``screenshots/*.svg`` and ``*.png``: ``python -m tests.screenshots [--out screenshots]``.

Each screen is drawn headless from the same deterministic data as the snapshot tests (:mod:`tests.helpers.scenes`:
a small house at a fixed time, UTC); PNGs are rendered with Debian's ``rsvg-convert`` (package librsvg2-bin) when
it is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mqttchat.client import Status
from tests.helpers.scenes import SIZE, freeze, make_app


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


async def _record(pilot: Any) -> None:
    await prepare(pilot, "e")
    pilot.app.screen.query_one("#rec-filter").value = "home/#"
    pilot.app.screen.query_one("TopicTreeView").focus()
    await pilot.pause()


async def _discovering(pilot: Any) -> None:
    from tests.helpers.scenes import discovering

    discovering(pilot.app.runtime)
    await prepare(pilot, "end", "right")


async def _hot_topics(pilot: Any) -> None:
    from tests.helpers.scenes import NOW, hot_traffic

    hot_traffic(pilot.app.runtime.tree)
    await prepare(pilot, "exclamation_mark")
    pilot.app.screen.clock = lambda: NOW
    pilot.app.screen.refresh_rows()
    await pilot.pause()


SCREENS: dict[str, tuple[str, Callable[[Any], Awaitable[None]]]] = {
    "explorer": ("The topic tree and the selected message", lambda p: prepare(p, "end", "right", "down", "down",
                                                                              "right", "down", "down")),
    "properties": ("An MQTT 5 message with its properties", lambda p: prepare(p, "down", "right", "down", "right",
                                                                              "down")),
    "history": ("History with diffs and a plot", _history),
    "retained": ("The retained-message inspector", _retained),
    "publish": ("The publish pane", _publish),
    "record": ("Record messages to JSONL and replay them", _record),
    "packets": ("The packet inspector", lambda p: prepare(p, "k")),
    "subscriptions": ("Subscriptions with their options and what the broker granted", lambda p: prepare(p, "u")),
    "broker": ("Broker capabilities", _broker),
    "connect": ("Connection profiles", lambda p: prepare(p, "c")),
    "discovery": ("A broker too big for #: discovering level by level, the view partial", _discovering),
    "hot-topics": ("Hot topics and subtrees, the history of the hottest sampled", _hot_topics),
}  # fmt: skip


async def _sparkplug(pilot: Any) -> None:
    await prepare(pilot)
    pilot.app.screen.query_one("TopicTreeView").select_topic("spBv1.0/Plant1/DDATA/Line3/Pump1")
    await prepare(pilot)


async def _decode_as(pilot: Any) -> None:
    await prepare(pilot)
    pilot.app.screen.query_one("TopicTreeView").select_topic("house/garage/ev-charger")
    await prepare(pilot, "d")


async def _chart(pilot: Any) -> None:
    await _sparkplug(pilot)
    await prepare(pilot, "t", *"Speed", "enter", "ctrl+a", "ctrl+k", *"Pressure", "enter")
    pilot.app.runtime.charts.set_window(60.0)
    await prepare(pilot)


#: Screens drawn with the Sparkplug edge node, the CBOR charger and the gzip'd inverter of sample_plant.
PLANT_SCREENS = {
    "sparkplug": ("A Sparkplug B device: state, rebirth and write, metrics by alias", _sparkplug),
    "decode-as": ("Decode as…: the decoders that fit first, with previews", _decode_as),
    "chart": ("A chart of two Sparkplug metrics over time", _chart),
}
SCREENS.update(PLANT_SCREENS)


async def _chat(pilot: Any) -> None:
    await prepare(pilot)


async def _chat_raw(pilot: Any) -> None:
    await prepare(pilot)
    pilot.app.runtime.chat.model.select("#sensors/+/temp")
    pilot.app.flush()
    await pilot.pause()


CHAT_SCREENS = {
    "chat": ("The chat: rooms, presence, delivery states, catch-up", _chat),
    "chat-raw": ("A raw MQTT topic as a chat room", _chat_raw),
}
SCREENS.update(CHAT_SCREENS)


async def render(out: Path, written: Callable[[Path], None] = lambda path: None) -> list[Path]:
    """Draw every screen into ``out`` (``written`` is told of each SVG as soon as it is on disk)."""
    paths = []
    for name, (_, setup) in SCREENS.items():
        app = make_app(view="chat" if name in CHAT_SCREENS else "explorer", plant=name in PLANT_SCREENS)
        app.runtime.client._status = Status.CONNECTED  # the status bar as it looks when connected (no link)
        async with app.run_test(size=SIZE) as pilot:
            await setup(pilot)
            path = Path(app.save_screenshot(filename=f"{name}.svg", path=str(out)))
        paths.append(path)
        written(path)
    return paths


_LEADING_SPACES = re.compile(
    r'(<text [^>]*?x=")([\d.]+)("[^>]*?textLength=")([\d.]+)("[^>]*>)((?:&#160;)+)([^<]*</text>)'
)


def for_rsvg(svg: str) -> str:
    """Move the leading spaces of each text span into its x position: rsvg-convert drops them, which glued
    words together in the PNGs ("new firmwareto the")."""

    def shift(match: re.Match[str]) -> str:
        spaces = match.group(6).count("&#160;")
        rest = match.group(7)[: -len("</text>")]
        chars = spaces + len(re.sub(r"&#?\w+;", "x", rest))
        width = float(match.group(4)) / chars if chars else 0.0
        x = float(match.group(2)) + spaces * width
        length = float(match.group(4)) - spaces * width
        return f"{match.group(1)}{x:.1f}{match.group(3)}{length:.1f}{match.group(5)}{match.group(7)}"

    return _LEADING_SPACES.sub(shift, svg)


#: The house of the screenshots, as retained messages on a real broker (for the browser's screenshot).
HOUSE = [
    ("home/kitchen/temp", b'{"t": 23.5, "h": 45}'), ("home/kitchen/light", b"on"), ("home/hall/light", b"off"),
    ("home/hall/door", b"closed"), ("garden/pump/state", b"running"),
    ("devices/thermostat/status", b'{"mode": "eco", "target": 19.5}'),
]  # fmt: skip


async def browser(out: Path) -> Path | None:
    """``mqttchat serve`` on a broker holding the house, in headless Chromium: ``browser.png`` (None: no chromium)."""
    from mqttchat.broker.server import Broker
    from mqttchat.client import ClientOptions, MQTTClient, parse_url
    from tests.helpers.brokers import broker_config
    from tests.helpers.chromium import chromium_path, open_page
    from tests.helpers.cli import mqttchat

    if chromium_path() is None:
        return None
    async with Broker(broker_config()) as broker:
        client = MQTTClient(ClientOptions(parse_url(broker.url), client_id="screenshot-house"))
        await client.connect()
        for topic, payload in HOUSE:
            await client.publish(topic, payload, 1, True)
        await client.disconnect()
        serve = await asyncio.create_subprocess_exec(
            *mqttchat("serve", "--port", "0", "--", broker.url, "--no-embedded-broker", "--no-history"),
            stdout=asyncio.subprocess.PIPE,
        )
        assert serve.stdout is not None
        try:
            line = (await asyncio.wait_for(serve.stdout.readline(), 60)).decode()
            url = line.split("open ", 1)[1].strip()
            async with open_page(1280, 720) as page:
                await page.goto(url)
                await page.wait_for_text("devices", "garden", "home")
                await page.focus_terminal()
                for key in ("end", "right", "down", "down", "right", "down", "down"):
                    await page.press(key)
                await page.wait_for_text("home/kitchen/temp")  # the Message tab shows it
                await page.next_frame()
                path = out / "browser.png"
                await page.screenshot(path)
        finally:
            serve.terminate()
            await serve.wait()
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", default="screenshots", help="output directory (default: screenshots)")
    args = parser.parse_args(argv)
    os.environ["TZ"] = "UTC"
    time.tzset()
    # The user's own settings (a theme, decoder rules) must not change the pictures.
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="mqttchat-screenshots-"))
    os.environ["XDG_CONFIG_HOME"] = str(home / "config")
    os.environ["XDG_DATA_HOME"] = str(home / "data")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    converter = shutil.which("rsvg-convert")
    conversions: list[tuple[Path, Path, subprocess.Popen[bytes]]] = []

    def convert(svg: Path) -> None:
        """Start the PNG's conversion (it runs while the next screen is drawn)."""
        print(svg)
        if converter:
            png, fixed = svg.with_suffix(".png"), svg.with_suffix(".rsvg.svg")
            fixed.write_text(for_rsvg(svg.read_text()))
            conversions.append((png, fixed, subprocess.Popen([converter, "-b", "#1e1e1e", "-o", str(png), str(fixed)])))

    asyncio.run(render(out, convert))
    shot = asyncio.run(browser(out))
    print(shot if shot is not None else "chromium not found (apt-get install -y chromium): no browser.png")
    failed = []
    for png, fixed, proc in conversions:
        if proc.wait() != 0:
            failed.append(str(png))
        fixed.unlink()
        print(png)
    if failed:
        raise RuntimeError(f"rsvg-convert failed for {', '.join(failed)}")
    if not converter:
        print("rsvg-convert not found (apt-get install -y librsvg2-bin): PNGs not rendered", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
