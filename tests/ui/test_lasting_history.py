"""Pilot tests of the lasting history on screen: at start the tree shows the last known values, marked stale, and
the status bar says how many are stale and how big the store is; a live message replaces the stale value."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rich.style import Style
from textual.widgets import DataTable, Input, Static

from mqttchat.broker.server import Broker
from mqttchat.client import ClientOptions, MQTTClient, parse_url
from mqttchat.client.messages import Message
from mqttchat.explorer.history_store import HistoryDatabase
from mqttchat.explorer.recording import parse_line
from mqttchat.explorer.tree import TopicTree
from mqttchat.runtime import Runtime
from mqttchat.ui.app import SWITCH_INTERVAL, MQTTChatApp
from mqttchat.ui.screens.history_search import HistorySearchDialog
from mqttchat.ui.widgets.status_bar import StatusBar
from mqttchat.ui.widgets.topic_tree import TopicTreeView
from tests.helpers.waiting import until
from tests.helpers.widget_text import text_of


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
    earlier = time.time() - 3 * 3600 - 600  # both messages well past three hours, whatever the test takes
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
        await until(lambda: "2 stale" in text_of(status, width=250), pilot=pilot)
        assert "stored " in text_of(status, width=250)
        assert "= 71.5" in row_text(view, "plant/boiler/temp")
        assert "stale 3h" in row_text(view, "plant/boiler/temp")
        publisher = MQTTClient(ClientOptions(parse_url(broker.url), client_id="history-ui-pub"))
        await publisher.connect()
        await publisher.publish("plant/boiler/temp", b"72.0", qos=1)
        await publisher.disconnect()
        await until(lambda: "1 stale" in text_of(status, width=250), pilot=pilot)
        temp = row_text(view, "plant/boiler/temp")
        assert "= 72.0" in temp and "stale" not in temp
        assert "stale 3h" in row_text(view, "plant/boiler/state")


async def test_search_the_history_and_jump_to_a_topic(broker: Broker) -> None:
    options = ClientOptions(parse_url(broker.url), client_id="history-search")
    runtime = Runtime(options, (("#", 1),), embed_broker=False, history_budget=8 * 1024 * 1024)
    base = time.time() - 600
    store = HistoryDatabase(runtime.history_path, retention=None)
    store.write([
        Message(f"plant/{room}/temp", f'{{"temp": {20 + i}}}'.encode(), received_at=base + i)
        for i, room in enumerate(["hall", "attic", "cellar", "attic"])
    ] + [Message("plant/log", b"\x1b]0;pwned\x07 boiler alarm", received_at=base + 10)])  # fmt: skip
    store.close()
    app = MQTTChatApp(runtime, flush_hz=20)
    async with app.run_test(size=(140, 40)) as pilot:
        await until(lambda: runtime.history is not None and runtime.tree.get("plant/log") is not None, pilot=pilot)
        await pilot.press("f")
        dialog = app.screen
        assert isinstance(dialog, HistorySearchDialog)
        status = dialog.query_one("#history-status", Static)
        dialog.query_one("#history-where", Input).value = "temp >= 21"
        dialog.query_one("#history-where", Input).focus()
        await pilot.press("enter")
        await until(lambda: "3 messages" in text_of(status, width=200), pilot=pilot)
        assert [m.payload for m in dialog.results] == [b'{"temp": 23}', b'{"temp": 22}', b'{"temp": 21}']
        # Words in the payload; the control characters of a hostile payload are not sent to the terminal.
        dialog.query_one("#history-where", Input).value = ""
        dialog.query_one("#history-text", Input).value = "alarm"
        dialog.query_one("#history-text", Input).focus()
        await pilot.press("enter")
        await until(lambda: "1 message." in text_of(status, width=200), pilot=pilot)
        table = dialog.query_one(DataTable)
        cell = table.get_row_at(0)[2]
        assert "\x1b" not in str(cell) and "alarm" in str(cell)
        dialog.query_one("#history-since", Input).value = "soonish"
        dialog.query_one("#history-since", Input).focus()
        await pilot.press("enter")
        await until(lambda: "since:" in text_of(status, width=200), pilot=pilot)
        dialog.query_one("#history-since", Input).value = ""
        dialog.query_one("#history-text", Input).value = ""
        dialog.query_one("#history-where", Input).value = "temp == 22"
        dialog.query_one("#history-where", Input).focus()
        await pilot.press("enter")
        await until(lambda: "1 message." in text_of(status, width=200), pilot=pilot)
        await pilot.press("enter")  # the results have the focus: choose the message
        await until(lambda: not isinstance(app.screen, HistorySearchDialog), pilot=pilot)
        view = app.screen.query_one(TopicTreeView)
        assert view.highlighted is not None and view.highlighted.topic == "plant/cellar/temp"


async def test_the_state_at_a_moment_and_stepping_through_changes(broker: Broker) -> None:
    options = ClientOptions(parse_url(broker.url), client_id="history-travel")
    runtime = Runtime(options, (("#", 1),), embed_broker=False, history_budget=8 * 1024 * 1024)
    base = float(int(time.time())) - 3600
    store = HistoryDatabase(runtime.history_path, retention=None)
    store.write([
        Message("line/speed", b"10", received_at=base), Message("line/mode", b"auto", received_at=base + 60),
        Message("line/speed", b"20", received_at=base + 120), Message("line/speed", b"30", received_at=base + 600),
    ])  # fmt: skip
    store.close()
    app = MQTTChatApp(runtime, flush_hz=20)
    async with app.run_test(size=(140, 40)) as pilot:
        await until(lambda: runtime.history is not None and runtime.tree.get("line/mode") is not None, pilot=pilot)
        await pilot.press("f")
        dialog = app.screen
        assert isinstance(dialog, HistorySearchDialog)
        status = dialog.query_one("#history-status", Static)
        at = dialog.query_one("#history-at", Input)
        at.value = f"{base + 300}"  # after the second speed, before the third
        at.focus()
        await pilot.press("enter")
        await until(lambda: "2 messages" in text_of(status, width=200), pilot=pilot)
        assert [(m.topic, m.payload) for m in dialog.results] == [("line/mode", b"auto"), ("line/speed", b"20")]
        table = dialog.query_one(DataTable)
        await pilot.press("down")  # the speed row
        assert table.cursor_row == 1
        await pilot.press("right_square_bracket")
        await until(lambda: dialog.results[1].payload == b"30", pilot=pilot)
        assert "30" in str(table.get_row_at(1)[2])
        await pilot.press("right_square_bracket")
        await until(lambda: "no later change" in text_of(status, width=200), pilot=pilot)
        await pilot.press("left_square_bracket")
        await until(lambda: dialog.results[1].payload == b"20", pilot=pilot)
        await pilot.press("left_square_bracket")
        await until(lambda: dialog.results[1].payload == b"10", pilot=pilot)


async def test_export_what_a_search_finds(broker: Broker, tmp_path: Path) -> None:
    options = ClientOptions(parse_url(broker.url), client_id="history-export")
    runtime = Runtime(options, (("#", 1),), embed_broker=False, history_budget=8 * 1024 * 1024)
    base = float(int(time.time())) - 600
    store = HistoryDatabase(runtime.history_path, retention=None)
    store.write([
        Message(f"farm/{name}", f'{{"level": {i}, "ok": true}}'.encode(), received_at=base + i)
        for i, name in enumerate(["tank1", "tank2", "tank1", "pump"])
    ])  # fmt: skip
    store.close()
    app = MQTTChatApp(runtime, flush_hz=20)
    async with app.run_test(size=(140, 40)) as pilot:
        await until(lambda: runtime.history is not None and runtime.tree.get("farm/pump") is not None, pilot=pilot)
        await pilot.press("f")
        dialog = app.screen
        assert isinstance(dialog, HistorySearchDialog)
        dialog.query_one("#history-topic", Input).value = "farm/+"
        dialog.query_one("#history-where", Input).value = "level >= 1"
        status = dialog.query_one("#history-status", Static)
        for target in (tmp_path / "levels.csv", tmp_path / "levels.jsonl"):
            await pilot.click("#history-export")
            await until(lambda: not isinstance(app.screen, HistorySearchDialog), pilot=pilot)
            app.screen.query_one("#path", Input).value = str(target)
            await pilot.press("enter")
            await until(
                lambda target=target: f"exported 3 messages to {target}" in text_of(status, width=300), pilot=pilot
            )
    lines = (tmp_path / "levels.csv").read_text().splitlines()
    assert lines[0] == "t,time,topic,level,ok"
    assert [line.split(",", 2)[2] for line in lines[1:]] == [
        "farm/tank2,1,true",
        "farm/tank1,2,true",
        "farm/pump,3,true",
    ]
    records = [parse_line(line) for line in (tmp_path / "levels.jsonl").read_text().splitlines()]
    assert [(r.topic, r.t) for r in records] == [
        ("farm/tank2", base + 1),
        ("farm/tank1", base + 2),
        ("farm/pump", base + 3),
    ]


async def test_the_event_loop_gets_the_gil_back_soon_from_the_history_writer(broker: Broker) -> None:
    """The app shortens the GIL's switch interval (Python's default 5 ms): the history writer's thread runs Python
    between its SQLite statements, and the event loop, which gives the GIL up at each system call, waited up to 5 ms
    each time to get it back (issue 17: stalls through the embedded broker with the history on)."""
    before = sys.getswitchinterval()
    options = ClientOptions(parse_url(broker.url), client_id="history-gil")
    runtime = Runtime(options, (("#", 0),), embed_broker=False, history_budget=8 * 1024 * 1024)
    try:
        async with MQTTChatApp(runtime, flush_hz=20).run_test(size=(120, 40)) as pilot:
            await until(lambda: runtime.history is not None, pilot=pilot)
            assert sys.getswitchinterval() == SWITCH_INTERVAL < 0.005
    finally:
        sys.setswitchinterval(before)
