"""``mqttchat serve`` in a real browser (headless Chromium, Debian's ``chromium``): the page loads, the tree shows a
message published while the page is open, and a key typed in the page reaches the app."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import pytest

from mqttchat.broker.server import Broker
from mqttchat.client import ClientOptions, MQTTClient, parse_url
from tests.helpers.chromium import chromium_path, open_page
from tests.helpers.cli import mqttchat

pytestmark = pytest.mark.skipif(
    chromium_path() is None and not os.environ.get("CI"),
    reason="chromium is not installed (apt-get install -y chromium; .ci/run installs it)",
)


@pytest.fixture
async def served(broker: Broker) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """``mqttchat serve --port 0`` on ``broker``: the URL it printed, and its process."""
    process = await asyncio.create_subprocess_exec(
        *mqttchat("serve", "--port", "0", "--", broker.url, "--no-embedded-broker", "--no-history"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    try:
        async with asyncio.timeout(60):
            line = (await process.stdout.readline()).decode()
        assert line.startswith("mqttchat serve: open http://127.0.0.1:"), line + (await process.stderr.read()).decode()
        yield line.split("open ", 1)[1].strip(), process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(30):
                    await process.wait()
            except TimeoutError:
                os.killpg(process.pid, signal.SIGKILL)
                await process.wait()


async def publish(url: str, topic: str, payload: bytes, retain: bool = False) -> None:
    client = MQTTClient(ClientOptions(parse_url(url), client_id="browser-test-publisher"))
    await client.connect()
    await client.publish(topic, payload, 1, retain)
    await client.disconnect()


async def test_the_app_in_a_browser_shows_live_messages_and_takes_keys(
    broker: Broker, served: tuple[str, asyncio.subprocess.Process]
) -> None:
    url, process = served
    assert "token=" not in url  # on loopback no token is needed
    await publish(broker.url, "greenhouse", b"retained-before-the-page", retain=True)
    async with open_page() as page:
        await page.goto(url)
        await page.wait_for_text("greenhouse", "retained-before-the-page")
        assert await page.status() == 200
        await publish(broker.url, "live-in-browser", b"published-while-open")
        await page.wait_for_text("live-in-browser", "published-while-open")
        await page.focus_terminal()
        await page.press("g")  # the explorer's "jump to topic" dialog
        await page.wait_for_text("Jump to topic")
    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        assert await process.wait() == 0
