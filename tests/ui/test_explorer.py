"""Pilot tests of the explorer: keyboard and mouse interaction, offline and against a real (embedded) broker."""

from __future__ import annotations

import dataclasses

from textual.widgets import Input, Label, TabbedContent

from mqttchat.broker.server import Broker
from mqttchat.client import ClientOptions, MQTTClient, parse_url
from mqttchat.explorer.tree import SortOrder, TopicNode, TopicTree
from mqttchat.runtime import Runtime
from mqttchat.ui.app import MQTTChatApp
from mqttchat.ui.screens.main import parse_filter
from mqttchat.ui.widgets.message_view import MessageView
from mqttchat.ui.widgets.packet_log import PacketLog
from mqttchat.ui.widgets.publish_pane import PublishPane
from mqttchat.ui.widgets.retained_table import RetainedTable
from mqttchat.ui.widgets.topic_tree import TopicTreeView
from tests.helpers.brokers import broker_config
from tests.helpers.scenes import make_app
from tests.helpers.waiting import until
from tests.helpers.widget_text import text_of


def topics(view: TopicTreeView) -> list[str]:
    return [row.topic for row in view.rows]


async def test_keyboard_navigation_and_expansion() -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        view = app.screen.query_one(TopicTreeView)
        assert topics(view) == ["$SYS", "devices", "garden", "home"]
        await pilot.press("end", "right")  # expand "home"
        assert topics(view)[-2:] == ["home/hall", "home/kitchen"]
        await pilot.press("down", "down", "right", "down", "down")
        assert view.highlighted is not None and view.highlighted.topic == "home/kitchen/temp"
        await pilot.pause()
        assert "home/kitchen/temp" in text_of(app.screen.query_one("#message-meta"))
        await pilot.press("left", "left")  # to the parent, then collapse it
        assert view.highlighted is not None and view.highlighted.topic == "home/kitchen"
        await pilot.press("minus")
        assert topics(view) == ["$SYS", "devices", "garden", "home"]
        await pilot.press("plus")
        assert "home/kitchen/temp" in topics(view) and "garden/sensor/raw" in topics(view)


async def test_sorting_and_mouse_selection() -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        view = app.screen.query_one(TopicTreeView)
        await pilot.press("s")  # by message count
        assert topics(view)[0] == "home"
        await pilot.press("s")  # by recency
        assert topics(view)[0] == "$SYS"
        await pilot.click(TopicTreeView, offset=(4, 2))
        assert view.cursor == 2


async def test_filter_as_you_type_and_invalid_filters() -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        view = app.screen.query_one(TopicTreeView)
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"kitchen")
        assert [t for t in topics(view) if view.model.get(t).messages] == ["home/kitchen/light", "home/kitchen/temp"]  # type: ignore[union-attr]
        app.screen.query_one("#tree-filter", Input).value = "home/+/light"
        await pilot.pause()
        assert [t for t in topics(view) if view.model.get(t).messages] == ["home/hall/light", "home/kitchen/light"]  # type: ignore[union-attr]
        app.screen.query_one("#tree-filter", Input).value = "home/#/x"
        await pilot.pause()
        error = app.screen.query_one("#tree-filter-error")
        assert "'#' must be the last level" in text_of(error)
        app.screen.query_one("#tree-filter", Input).value = '/"eco"|running/'  # a regex, over payloads too
        await pilot.pause()
        assert {t for t in topics(view) if view.model.get(t).messages} == {
            "devices/thermostat/status",
            "garden/pump/state",
        }  # type: ignore[union-attr]


def test_filter_kinds() -> None:
    assert parse_filter("/a.b/").kind.value == "regex"
    assert parse_filter("a/+/b").kind.value == "wildcard"
    assert parse_filter("plain").kind.value == "substring"


async def test_tabs_by_key() -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        tabs = app.screen.query_one(TabbedContent)
        for key, tab in (("h", "history"), ("r", "retained"), ("k", "packets"), ("b", "broker"), ("m", "message")):
            await pilot.press(key)
            assert tabs.active == tab
        await pilot.press("p")
        assert tabs.active == "publish" and app.focused is not None and app.focused.id == "pub-topic"


async def test_widgets_ask_the_screen_and_the_app() -> None:
    """The packet inspector's pause switch pauses the runtime's trace, and the Chat tab at the top switches the
    view (the widgets post what the user asked for; the screen and the app act on it)."""
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("k")
        await pilot.click("#packet-pause")
        await pilot.pause()
        assert app.runtime.trace.paused
        await pilot.click("#packet-pause")
        await pilot.pause()
        assert not app.runtime.trace.paused
        await pilot.click("#view-tabs Tab#chat")
        await pilot.pause()
        assert app.current_view == "chat"


async def test_publish_pane_validates_inline() -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("p")
        pane = app.screen.query_one(PublishPane)
        app.screen.query_one("#pub-topic", Input).value = "bad/#/topic"
        app.screen.query_one("#pub-payload").text = '{"broken": '  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "wildcard" in text_of(app.screen.query_one("#pub-topic-error", Label))
        assert "invalid JSON" in text_of(app.screen.query_one("#pub-payload-error", Label))
        assert "fix the highlighted fields" in text_of(app.screen.query_one("#pub-outcome", Label))
        assert pane.history == []


async def live_app(broker: Broker) -> MQTTChatApp:
    options = ClientOptions(parse_url(broker.url), client_id="ui-test")
    return MQTTChatApp(Runtime(options, (("#", 1),), embed_broker=False), flush_hz=20)


async def test_live_messages_publish_and_outcome() -> None:
    async with Broker(broker_config()) as broker:
        app = await live_app(broker)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(lambda: app.runtime.client.connected, pilot=pilot)
            async with MQTTClient(broker.url) as device:
                for i in range(20):
                    await device.publish(f"plant/line{i % 4}/counter", str(i), qos=1)
            view = app.screen.query_one(TopicTreeView)
            await until(lambda: app.runtime.tree.stats.messages >= 20, pilot=pilot)
            await until(lambda: topics(view) == ["plant"], what="the tree shows plant", pilot=pilot)
            await pilot.press("p")
            app.screen.query_one("#pub-topic", Input).value = "plant/commands/stop"
            app.screen.query_one("#pub-payload").text = '{"now": true}'  # type: ignore[attr-defined]
            await pilot.press("ctrl+s")
            outcome = app.screen.query_one("#pub-outcome", Label)
            await until(lambda: "acknowledged" in text_of(outcome), pilot=pilot)
            assert "Success" in text_of(outcome)
            await until(lambda: app.runtime.tree.get("plant/commands/stop") is not None, pilot=pilot)
            app.screen.query_one(TopicTreeView).focus()  # keys typed in the publish form stay there
            await pilot.press("k")

            def log_text() -> str:
                return "\n".join(app.screen.query_one(PacketLog).query_one("#packet-log").lines)  # type: ignore[attr-defined]

            await until(lambda: "plant/commands/stop" in log_text(), what="the publish in the packet log", pilot=pilot)
            assert "CONNECT v5" in log_text() and "SUBSCRIBE" in log_text()


async def test_retained_inspector_edit_and_delete_against_the_broker() -> None:
    async with Broker(broker_config()) as broker:
        async with MQTTClient(broker.url) as device:
            for name in ("a", "b", "c"):
                await device.publish(f"fleet/{name}/state", f"state-{name}", qos=1, retain=True)
        app = await live_app(broker)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(lambda: len(app.runtime.tree.retained_nodes()) == 3, pilot=pilot)
            await pilot.press("r")
            table = app.screen.query_one(RetainedTable)
            await until(lambda: len(table.shown_topics) == 3, pilot=pilot)
            table.focus()
            await pilot.press("delete")
            await until(lambda: len(app.screen.query("#ok")) == 1, what="the confirmation", pilot=pilot)
            await pilot.click("#ok")
            await until(lambda: len(broker.core.retained) == 2, pilot=pilot)
            await until(lambda: len(table.shown_topics) == 2, pilot=pilot)
            await pilot.press("D")  # delete everything shown: a dry-run count first

            def dialog_text() -> str:
                return " ".join(text_of(widget) for widget in app.screen.query("Static"))

            await until(lambda: "would delete 2 retained" in dialog_text(), what="the dry-run count", pilot=pilot)
            await pilot.click("#ok")
            await until(lambda: len(broker.core.retained) == 0, pilot=pilot)


async def test_connection_failure_is_a_notification_not_a_traceback() -> None:
    from tests.helpers.brokers import free_port

    options = ClientOptions(parse_url(f"mqtt://127.0.0.1:{free_port()}"), reconnect=False)
    app = MQTTChatApp(Runtime(options, embed_broker=False))
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await until(lambda: bool(app._notifications), pilot=pilot)
        (note,) = list(app._notifications)
        assert "cannot connect" in note.message and "connection refused" in note.message
        assert note.severity == "error"


async def test_default_target_starts_the_embedded_broker(unused_tcp_port: int) -> None:
    options = ClientOptions(parse_url(f"mqtt://127.0.0.1:{unused_tcp_port}"))
    runtime = Runtime(options)
    runtime_default = dataclasses.replace(options.target, port=1883)
    assert Runtime(dataclasses.replace(options, target=runtime_default)).is_local_default
    assert not runtime.is_local_default  # only the default port triggers it...
    await runtime.start_embedded_broker()  # ...but the mechanism is the same on any port
    try:
        await runtime.client.connect()
        assert runtime.client.connected and runtime.broker is not None
    finally:
        await runtime.stop()


async def test_message_view_marks_truncation() -> None:
    from mqttchat.explorer.tree import TopicTree

    tree = TopicTree()
    tree.ingest("big/blob", b"x" * 100_000, received_at=1.0)
    app = make_app(tree)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("right", "down")
        await pilot.pause()
        body = app.screen.query_one(MessageView).query_one("#message-payload")
        assert "truncated: 65536 of 100000 bytes shown" in text_of(body)


async def test_tree_rows_follow_the_focus_and_the_theme() -> None:
    """The tree keeps its row styles between frames, and draws again in the new ones when the focus (the cursor's
    colour) or the theme changes."""
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        view = app.screen.query_one(TopicTreeView)

        def cursor_background() -> object:
            strip = view.render_line(view.cursor - view.scroll_offset.y)
            return next(iter(strip)).style.bgcolor  # type: ignore[union-attr]

        view.focus()
        await pilot.pause()
        focused = cursor_background()
        app.screen.query_one("#tree-filter", Input).focus()
        await until(lambda: cursor_background() != focused, pilot=pilot)
        unfocused = cursor_background()
        app.theme = "nord" if app.theme != "nord" else "gruvbox"
        await until(lambda: cursor_background() not in (focused, unfocused), pilot=pilot)


def _big_tree() -> TopicTree:
    """Branches and runs of leaves at several depths, with counts and times that differ between siblings."""
    tree = TopicTree()
    for i in range(600):
        tree.ingest(f"plant/area{i % 3}/line{i % 7}/sensor{i}", b"1", received_at=100.0 + (i * 37 % 600) / 100)
    for i in range(40):
        tree.ingest(f"plant/area{i % 3}", b"level", received_at=103.0 + i / 100)
        tree.ingest(f"office/room{i}", b"x", received_at=105.0 + i / 10)
    return tree


def _walked(view: TopicTreeView) -> list[str]:
    """The rows the view should show, by a plain recursive walk of the model."""
    rows: list[str] = []

    def walk(node: TopicNode) -> None:
        for child in TopicTree.sorted_children(node, view.order, view.clock()):
            if view.shown is not None and child not in view.shown:
                continue
            rows.append(child.topic)
            if child.children and (view.shown is not None or child.topic in view.expanded):
                walk(child)

    walk(view.model.root)
    return rows


async def test_rows_are_the_tree_walked_in_every_order_filter_and_expansion() -> None:
    """The row builder adds runs of leaves at once: its rows are still those of a walk node by node."""
    tree = _big_tree()
    app = make_app(tree)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        view = app.screen.query_one(TopicTreeView)
        branches = sorted(node.topic for node in tree.nodes.values() if node.children)
        shown = {node for i, node in enumerate(tree.nodes.values()) if i % 3 == 0}
        for clock in (104.5, 500.0):  # rates from the last second, and all of them 0
            view.clock = lambda clock=clock: clock  # type: ignore[misc]
            for expanded in (set(branches), set(branches[::2]), set()):
                for visible in (None, shown):
                    for order in SortOrder:
                        view.expanded, view.shown, view.order = set(expanded), visible, order
                        view.rebuild_now()
                        assert topics(view) == _walked(view), (clock, len(expanded), visible is None, order)


async def test_selecting_a_topic_opens_its_path_without_rebuilding_the_tree() -> None:
    """Selecting a topic (jump, hot topics, another broker's tab) splices in the rows of the levels it opens: the
    whole tree is not walked again, and the rows are those a full rebuild makes."""
    app = make_app(_big_tree())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        view = app.screen.query_one(TopicTreeView)
        view.expanded = {"office"}
        view.rebuild_now()
        builds = 0
        build = view._build

        def counted() -> object:
            nonlocal builds
            builds += 1
            return build()

        view._build = counted  # type: ignore[method-assign]
        assert view.select_topic("plant/area1/line4/sensor46")
        assert view.select_topic("office/room7")  # its path is open already
        assert view.select_topic("plant/area2/line3/sensor17")
        assert builds == 0
        assert view.highlighted is not None and view.highlighted.topic == "plant/area2/line3/sensor17"
        assert {"plant", "plant/area1", "plant/area1/line4", "plant/area2", "plant/area2/line3"} <= view.expanded
        spliced = topics(view)
        view.rebuild_now()
        assert builds == 1 and topics(view) == spliced == _walked(view)
        assert view.highlighted is not None and view.highlighted.topic == "plant/area2/line3/sensor17"
        assert not view.select_topic("plant/nowhere")
