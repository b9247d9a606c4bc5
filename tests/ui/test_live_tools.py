"""Pilot tests of the explorer's tools against the embedded broker and against mosquitto: subscriptions, record and
replay."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.widgets import DataTable, Input, Select, Switch

from mqttchat.broker.server import Broker
from mqttchat.client import ClientOptions, MQTTClient, parse_url
from mqttchat.explorer.recording import load_recording
from mqttchat.protocol import Properties
from mqttchat.runtime import Runtime
from mqttchat.ui.app import MQTTChatApp
from mqttchat.ui.widgets.record_panel import RecordPanel
from mqttchat.ui.widgets.subscriptions_panel import SubscriptionsPanel
from tests.helpers.brokers import broker_config
from tests.helpers.waiting import until
from tests.helpers.widget_text import text_of

SIZE = (130, 40)


def live_app(url: str, version: int = 5) -> MQTTChatApp:
    options = ClientOptions(parse_url(url), client_id="ui-tools", version=version)
    return MQTTChatApp(Runtime(options, (("#", 1),), embed_broker=False), flush_hz=20)


async def click(pilot: object, selector: str) -> None:
    """Scroll the widget into view (the panels scroll on small terminals), then click it."""
    app = pilot.app  # type: ignore[attr-defined]
    widget = app.screen.query_one(selector)
    widget.scroll_visible(animate=False)
    await pilot.pause()  # type: ignore[attr-defined]
    await pilot.click(selector)  # type: ignore[attr-defined]


def table_rows(panel: SubscriptionsPanel) -> list[str]:
    table = panel.query_one(DataTable)
    return [" | ".join(str(cell) for cell in table.get_row_at(i)) for i in range(table.row_count)]


async def test_manage_subscriptions_while_connected(url: str) -> None:
    app = live_app(url)
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: app.runtime.client.connected and app.runtime.granted, pilot=pilot)
        await pilot.press("u")
        panel = app.screen.query_one(SubscriptionsPanel)
        await until(lambda: len(table_rows(panel)) == 1, pilot=pilot)
        assert table_rows(panel) == ["# | QoS 1 | QoS 1 |  | RAP, retained sent"]

        # Unsubscribe '#' from the table: nothing arrives any more.
        panel.query_one(DataTable).focus()
        await pilot.press("delete")
        await until(lambda: table_rows(panel) == [], pilot=pilot)
        async with MQTTClient(url) as device:
            await device.publish("plant/ignored", "x", qos=1)
        await app.runtime.client.ping()  # what the broker sent us before its answer has arrived
        assert app.runtime.tree.get("plant/ignored") is None

        # An invalid filter is refused inline; nothing is sent.
        box = panel.query_one("#sub-filter", Input)
        box.value = "sensors/#/temp"
        box.focus()
        await pilot.press("enter")
        assert "#" in text_of(panel.query_one("#sub-error"))
        assert app.runtime.client.session.subscriptions == {}

        # Subscribe with MQTT 5 options: QoS 2, no local, retained never sent, subscription identifier 7.
        box.value = "sensors/+/temp"
        panel.query_one("#sub-qos", Select).value = 2
        panel.query_one("#sub-nl", Switch).value = True
        panel.query_one("#sub-rh", Select).value = 2
        panel.query_one("#sub-id", Input).value = "7"
        await pilot.click("#sub-add")
        await until(lambda: len(table_rows(panel)) == 1 and "QoS 2 | QoS 2" in table_rows(panel)[0], pilot=pilot)
        assert table_rows(panel)[0] == "sensors/+/temp | QoS 2 | QoS 2 | 7 | no local, no retained"
        assert text_of(panel.query_one("#sub-error")).strip() == ""
        async with MQTTClient(url) as device:
            await device.publish("sensors/a/temp", "21.5", qos=2)
            await device.publish("plant/ignored", "y", qos=1)
        await until(lambda: app.runtime.tree.get("sensors/a/temp") is not None, pilot=pilot)
        node = app.runtime.tree.get("sensors/a/temp")
        assert node is not None and node.last is not None
        assert node.last.properties.subscription_identifier == (7,)
        assert node.last.qos == 2
        assert app.runtime.tree.get("plant/ignored") is None

        # No local: our own publish to the filter does not come back.
        await app.runtime.client.publish("sensors/own/temp", "1", qos=1)
        await app.runtime.client.ping()  # what the broker sent us before its answer has arrived
        assert app.runtime.tree.get("sensors/own/temp") is None


async def test_subscriptions_on_mqtt_311(url: str) -> None:
    app = live_app(url, version=4)
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: app.runtime.client.connected and app.runtime.granted, pilot=pilot)
        await pilot.press("u")
        panel = app.screen.query_one(SubscriptionsPanel)
        await until(lambda: len(table_rows(panel)) == 1, pilot=pilot)
        assert panel.query_one("#sub-nl", Switch).disabled
        assert panel.query_one("#sub-id", Input).disabled
        box = panel.query_one("#sub-filter", Input)
        box.value = "$share/g/a/#"
        await pilot.press("enter")
        assert "MQTT 5" in text_of(panel.query_one("#sub-error"))
        box.value = "a/#"
        panel.query_one("#sub-qos", Select).value = 1
        await pilot.press("enter")
        await until(lambda: len(table_rows(panel)) == 2, pilot=pilot)
        assert "a/# | QoS 1 | QoS 1 |  | " in table_rows(panel)


async def test_record_to_jsonl_and_replay(url: str, tmp_path: Path) -> None:
    """Record what matches plant/# while devices publish; replay it to a subscriber: same messages, same order."""
    app = live_app(url)
    recording = tmp_path / "plant.jsonl"
    props = Properties(content_type="application/json", user_property=[("site", "north")])
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: app.runtime.client.connected and app.runtime.granted, pilot=pilot)
        await pilot.press("e")
        panel = app.screen.query_one(RecordPanel)
        panel.query_one("#rec-filter", Input).value = "plant/#"
        panel.query_one("#rec-path", Input).value = str(recording)
        await click(pilot, "#rec-toggle")
        await until(lambda: app.runtime.recorder is not None, pilot=pilot)
        async with MQTTClient(url) as device:
            for i in range(20):
                await device.publish(f"plant/line{i % 3}/count", str(i), qos=i % 3, properties=props)
            await device.publish("plant/camera/frame", bytes(range(256)), qos=1)
            await device.publish("office/printer", "ignored", qos=1)
        await until(lambda: app.runtime.recorder is not None and app.runtime.recorder.written == 21, pilot=pilot)
        # The line names the file: a long temporary path (pytest-xdist's) wraps it at the default width.
        await until(lambda: "21 messages" in text_of(panel.query_one("#rec-status"), width=1000), pilot=pilot)
        await click(pilot, "#rec-toggle")  # stop
        await until(lambda: app.runtime.recorder is None, pilot=pilot)
        assert "recorded" in text_of(panel.query_one("#rec-status"))
        records = load_recording(recording)
        assert [r.topic for r in records][-1] == "plant/camera/frame"
        assert records[-1].payload == bytes(range(256))
        assert records[0].properties.user_property == (("site", "north"),)

        # Replay as fast as allowed to a listener: the 21 messages in order, with payloads, QoS and properties.
        async with MQTTClient(url, client_id="replay-listener") as listener:
            stream = listener.messages()
            await listener.subscribe("plant/#", qos=2)
            panel.query_one("#replay-path", Input).value = str(recording)
            panel.query_one("#replay-speed", Select).value = 0.0
            await click(pilot, "#replay-toggle")
            got = []
            async with asyncio.timeout(10):
                while len(got) < 21:
                    got.append(await stream.get())
            assert [(m.topic, m.payload, m.qos) for m in got] == [(r.topic, r.payload, r.qos) for r in records]
            assert got[0].properties.content_type == "application/json"
            assert got[0].properties.user_property == (("site", "north"),)
        await until(lambda: "replayed 21" in text_of(panel.query_one("#replay-status")), pilot=pilot)

        # A damaged recording: the error names the file and the line, nothing is sent.
        bad = tmp_path / "bad.jsonl"
        bad.write_text(recording.read_text().splitlines()[0] + "\n{not json\n")
        panel.query_one("#replay-path", Input).value = str(bad)
        await click(pilot, "#replay-toggle")
        await until(lambda: "line 2" in text_of(panel.query_one("#replay-status")), pilot=pilot)
        assert str(bad) in text_of(panel.query_one("#replay-status"), width=300)

        # A file that cannot be created: said inline, no recording starts.
        panel.query_one("#rec-path", Input).value = str(tmp_path / "missing" / "dir" / "x.jsonl")
        await click(pilot, "#rec-toggle")
        await until(lambda: "No such file" in text_of(panel.query_one("#rec-status"), width=300), pilot=pilot)
        assert app.runtime.recorder is None


async def retained_topics(url: str, topic_filter: str) -> set[str]:
    """The topics that hold a retained message under ``topic_filter``, asked of the broker itself."""
    async with MQTTClient(url, client_id="retained-probe") as probe:
        stream = probe.messages()
        await probe.subscribe(topic_filter, qos=1)
        seen: set[str] = set()
        while True:
            try:
                message = await asyncio.wait_for(stream.get(), 0.5)
            except TimeoutError:
                return seen
            if message.retain:
                seen.add(message.topic)


async def test_publish_pane_and_retained_inspector(url: str) -> None:
    """Publish from the pane (outcome shown), then edit and delete retained messages from the inspector."""
    from mqttchat.ui.widgets.retained_table import RetainedTable

    async with MQTTClient(url, client_id="fleet") as device:
        for name in ("a", "b", "c"):
            await device.publish(f"fleet/{name}/state", f"state-{name}", qos=1, retain=True)
    app = live_app(url)
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: len(app.runtime.tree.retained_nodes()) == 3, pilot=pilot)
        # Publish pane: a QoS 1 publish is acknowledged and says so.
        await pilot.press("p")
        app.screen.query_one("#pub-topic", Input).value = "fleet/commands/stop"
        app.screen.query_one("#pub-payload").text = '{"now": true}'  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        outcome = app.screen.query_one("#pub-outcome")
        await until(lambda: "acknowledged" in text_of(outcome), pilot=pilot)
        await until(lambda: app.runtime.tree.get("fleet/commands/stop") is not None, pilot=pilot)
        # Retained inspector: delete one, then every one shown (after the dry-run count).
        app.screen.query_one("#tree").focus()
        await pilot.press("r")
        table = app.screen.query_one(RetainedTable)
        await until(lambda: len(table.shown_topics) == 3, pilot=pilot)
        table.focus()
        await pilot.press("delete")
        await until(lambda: len(app.screen.query("#ok")) == 1, what="the confirmation", pilot=pilot)
        await pilot.click("#ok")
        await until(lambda: len(table.shown_topics) == 2, timeout=8, pilot=pilot)
        assert len(await retained_topics(url, "fleet/#")) == 2
        await pilot.press("D")
        await until(lambda: len(app.screen.query("#ok")) == 1, what="the dry-run count", pilot=pilot)
        await pilot.click("#ok")
        await until(lambda: len(table.shown_topics) == 0, timeout=8, pilot=pilot)
        assert await retained_topics(url, "fleet/#") == set()


async def test_export_and_import_retained_messages(tmp_path: Path) -> None:
    """The retained inspector exports the shown set to a file (x) and publishes it again from the file (i)."""
    from mqttchat.explorer.retained import RetainedMessage, load_retained
    from mqttchat.ui.widgets.retained_table import RetainedTable

    async with Broker(broker_config()) as broker:
        url = broker.url
        async with MQTTClient(url, client_id="fleet") as device:
            await device.publish("fleet/a/state", "on ✓", qos=1, retain=True)
            await device.publish("fleet/b/state", b"\xff\x00", qos=0, retain=True)
        path = tmp_path / "fleet.json"
        app = live_app(url)
        async with app.run_test(size=SIZE) as pilot:
            await until(lambda: len(app.runtime.tree.retained_nodes()) == 2, pilot=pilot)
            await pilot.press("r")
            table = app.screen.query_one(RetainedTable)
            await until(lambda: len(table.shown_topics) == 2, pilot=pilot)
            table.focus()
            await pilot.press("x")
            await until(lambda: bool(app.screen.query("#path")), pilot=pilot)
            app.screen.query_one("#path", Input).value = str(path)
            await pilot.click("#ok")
            await until(path.exists, pilot=pilot)
            exported = [
                RetainedMessage("fleet/a/state", "on ✓".encode(), 1),
                RetainedMessage("fleet/b/state", b"\xff\x00", 0),
            ]
            assert sorted(load_retained(path.read_text()), key=lambda m: m.topic) == exported
            async with MQTTClient(url, client_id="fleet") as device:
                for message in exported:
                    await device.publish(message.topic, b"", qos=1, retain=True)
            await until(lambda: len(table.shown_topics) == 0, timeout=8, pilot=pilot)
            await pilot.press("i")
            await until(lambda: bool(app.screen.query("#path")), pilot=pilot)
            app.screen.query_one("#path", Input).value = str(path)
            await pilot.click("#ok")
            await until(lambda: len(table.shown_topics) == 2, timeout=8, pilot=pilot)
        assert await retained_topics(url, "fleet/#") == {"fleet/a/state", "fleet/b/state"}
        assert {(node.topic, node.retained_entry.payload) for node in app.runtime.tree.retained_nodes()} == {
            (m.topic, m.payload) for m in exported
        }
