"""Quitting the instance that hosts the embedded broker: it says who is still connected and what happens to them."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from mqttchat import runtime as runtime_module
from mqttchat.client import ClientOptions, parse_url
from mqttchat.runtime import Runtime
from mqttchat.ui.app import MQTTChatApp
from mqttchat.ui.screens.dialogs import HostQuitDialog
from tests.helpers.waiting import until
from tests.helpers.widget_text import text_of


@pytest.fixture
def port(monkeypatch: pytest.MonkeyPatch) -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = int(sock.getsockname()[1])
    monkeypatch.setattr(runtime_module, "DEFAULT_PORT", free)
    return free


def instance(port: int, nick: str) -> Runtime:
    return Runtime(ClientOptions(parse_url(f"mqtt://127.0.0.1:{port}")), subscriptions=(), chat_nick=nick)


async def test_quitting_the_host_names_who_is_connected(port: int, tmp_path: Path) -> None:
    app = MQTTChatApp(instance(port, "alice"), flush_hz=20)
    bob = instance(port, "bob")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(lambda: app.runtime.broker is not None and app.runtime.client.connected, pilot=pilot)
        await bob.start()
        await bob.start_chat()
        await until(lambda: len(app.runtime.hosted_peers()) == 2, pilot=pilot)
        await pilot.press("ctrl+q")
        await until(lambda: isinstance(app.screen, HostQuitDialog), pilot=pilot)
        shown = " ".join(text_of(app.screen.query_one(".text"), width=400).split())
        assert f"hosts the broker on mqtt://127.0.0.1:{port}" in shown
        assert "bob (chat) and 1 mqttchat explorer" in shown
        assert "takes over hosting within seconds" in shown and "embedded-broker-" in shown
        await pilot.press("escape")  # stay
        await until(lambda: not isinstance(app.screen, HostQuitDialog), pilot=pilot)
        assert app.is_running and app.runtime.broker is not None
        await pilot.press("ctrl+q")
        await until(lambda: isinstance(app.screen, HostQuitDialog), pilot=pilot)
        await pilot.press("ctrl+q")  # again: the user means it
        await until(lambda: not app.is_running, pilot=pilot)
    # bob takes over
    async with asyncio.timeout(15):
        while bob.broker is None:
            await asyncio.sleep(0.05)
    await bob.stop()


async def test_quitting_without_others_does_not_ask(port: int) -> None:
    app = MQTTChatApp(instance(port, "alice"), flush_hz=20)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(lambda: app.runtime.broker is not None and app.runtime.client.connected, pilot=pilot)
        await pilot.press("ctrl+q")
        await until(lambda: not app.is_running, pilot=pilot)
