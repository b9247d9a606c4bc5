"""Pilot tests of the lasting history on screen: at start the tree shows the last known values, marked stale, and
the status bar says how many are stale and how big the store is; a live message replaces the stale value."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from rich.style import Style

from mqttchat.broker.server import Broker
from mqttchat.client import ClientOptions, MQTTClient, parse_url
from mqttchat.client.messages import Message
from mqttchat.explorer.history_store import HistoryDatabase
from mqttchat.explorer.tree import TopicTree
from mqttchat.runtime import Runtime
from mqttchat.ui.app import MQTTChatApp
from mqttchat.ui.widgets.status_bar import StatusBar
from mqttchat.ui.widgets.topic_tree import TopicTreeView
from tests.ui.conftest import text_of


async def until(pilot: object, condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await pilot.pause(0.05)  # type: ignore[attr-defined]


def runtime_tree(view: TopicTreeView) -> TopicTree:
    app = view.app
    assert isinstance(app, MQTTChatApp)
    return app.runtime.tree


def row_text(view: TopicTreeView, topic: str) -> str:
    node = runtime_tree(view).get(topic)
    assert node is not None
    return "".join(segment.text for segment in view._row_segments(node, time.time(), Style()))


async def test_the_last_known_state_is_shown_stale_until_live_messages_come(broker: Broker) -> None:
    options = ClientOptions(parse_url(broker.url), client_id="history-ui")
    runtime = Runtime(options, (("#", 1),), embed_broker=False, history_budget=8 * 1024 * 1024)
    earlier = time.time() - 3 * 3600
    store = HistoryDatabase(runtime.history_path, retention=None)
    store.write([
        Message("plant/boiler/temp", b"71.5", received_at=earlier),
        Message("plant/boiler/state", b"running", received_at=earlier + 1),
    ])  # fmt: skip
    store.close()
    app = MQTTChatApp(runtime, flush_hz=20)
    async with app.run_test(size=(200, 40)) as pilot:
        view = app.screen.query_one(TopicTreeView)
        status = app.screen.query_one(StatusBar)
        await until(pilot, lambda: "2 stale" in text_of(status, width=250))
        assert "stored " in text_of(status, width=250)
        assert "= 71.5" in row_text(view, "plant/boiler/temp")
        assert "stale 3h" in row_text(view, "plant/boiler/temp")
        publisher = MQTTClient(ClientOptions(parse_url(broker.url), client_id="history-ui-pub"))
        await publisher.connect()
        await publisher.publish("plant/boiler/temp", b"72.0", qos=1)
        await publisher.disconnect()
        await until(pilot, lambda: "1 stale" in text_of(status, width=250))
        temp = row_text(view, "plant/boiler/temp")
        assert "= 72.0" in temp and "stale" not in temp
        assert "stale 3h" in row_text(view, "plant/boiler/state")
