"""The decoders in the explorer: decoded payloads in the Message tab and the tree's value column, "decode as…"
(remembered in the settings), Sparkplug B state with the rebirth and write actions, hostile metric names.

Every interaction is reached with Tab and Enter from the tree, and tried in an 80x24 terminal too.
"""

from __future__ import annotations

import asyncio
import json
import tomllib
from typing import Any

import cbor2
import pytest
from textual.widgets import Button, Input, OptionList

from mqttchat.broker.server import Broker
from mqttchat.client import ClientOptions, Message, MQTTClient, parse_url
from mqttchat.config import settings_path
from mqttchat.explorer.decoders import DecodeContext, DecoderRule
from mqttchat.explorer.decoders.sparkplug import (
    BDSEQ,
    REBIRTH,
    DataType,
    SparkplugMetric,
    decode_payload,
    encode_payload,
)
from mqttchat.explorer.tree import FilterKind, TopicFilter, TopicTree
from mqttchat.runtime import Runtime
from mqttchat.ui.app import MQTTChatApp
from mqttchat.ui.screens.decode_as import DecodeAsDialog
from mqttchat.ui.screens.sparkplug_write import WriteMetricDialog
from mqttchat.ui.widgets.message_view import MessageView
from mqttchat.ui.widgets.topic_tree import TopicTreeView
from tests.helpers.hostile_text import CLICK, HOSTILE, check_screen
from tests.helpers.scenes import NOW, freeze, make_app, sample_plant
from tests.helpers.waiting import until
from tests.helpers.widget_text import text_of

SIZES = pytest.mark.parametrize("size", [(120, 36), (80, 24)], ids=lambda size: f"{size[0]}x{size[1]}")

READING = {"temp": 21.5, "hum": 40, "ok": True}


def lab_tree() -> TopicTree:
    """A CBOR reading sent without a content type: automatic decoding shows it as binary."""
    tree = TopicTree()
    tree.ingest("lab/bench/cbor", cbor2.dumps(READING), received_at=NOW - 10)
    tree.ingest("lab/bench/text", b"plain words", received_at=NOW - 5)
    return tree


async def settle(pilot: Any) -> None:
    freeze(pilot.app)
    pilot.app.flush()
    await pilot.pause()


async def tab_to(pilot: Any, widget_id: str, limit: int = 30) -> None:
    """Press Tab until the widget with this id has the focus."""
    for _ in range(limit):
        focused = pilot.app.focused
        if focused is not None and focused.id == widget_id:
            return
        await pilot.press("tab")
    raise AssertionError(f"#{widget_id} is not reachable with Tab (focus on {pilot.app.focused!r})")


def payload_text(app: Any) -> str:
    return text_of(app.screen.query_one(MessageView).query_one("#message-payload"), width=200)


def within_screen(app: Any, widget: Any) -> bool:
    region = widget.region
    width, height = app.size
    return region.width > 0 and region.height > 0 and region.right <= width and region.bottom <= height


async def choose(pilot: Any, name: str) -> None:
    """In the "decode as…" list (focused), move to decoder name."""
    options = pilot.app.screen.query_one(OptionList)
    for _ in range(options.option_count):
        highlighted = options.highlighted
        if highlighted is not None and options.get_option_at_index(highlighted).id == name:
            return
        await pilot.press("down")
    raise AssertionError(f"no decoder {name!r} in the list")


# ------------------------------------------------------------------------------------------ decode as…


@SIZES
async def test_decode_as_by_tab_and_enter_is_used_shown_and_remembered(size: tuple[int, int]) -> None:
    app = make_app(lab_tree())
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        assert app.screen.query_one(TopicTreeView).select_topic("lab/bench/cbor")
        await settle(pilot)
        assert "binary (hex dump)" in payload_text(app)  # no content type: automatic decoding cannot tell
        await tab_to(pilot, "decode-as")
        await pilot.press("enter")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, DecodeAsDialog)
        assert within_screen(app, dialog.query_one("#decode-use", Button))
        candidates = [name for name, _ in dialog.candidates]
        assert "cbor" in candidates and "json" not in candidates  # what decodes it convincingly comes first
        await choose(pilot, "cbor")
        assert "temp" in text_of(dialog.query_one("#decode-preview"))  # the preview follows the list
        await pilot.press("enter")
        await settle(pilot)
        assert not isinstance(app.screen, DecodeAsDialog)
        rule = app.runtime.decoders.rule_for("lab/bench/cbor")
        assert rule == DecoderRule("lab/bench/cbor", "cbor")
        shown = payload_text(app)
        assert "CBOR" in shown and '"temp": 21.5' in shown and "chosen for lab/bench/cbor" in shown
        saved = tomllib.loads(settings_path().read_text())
        assert saved["decoders"] == [{"filter": "lab/bench/cbor", "decoder": "cbor"}]
        # the tree's value column shows the decoded value
        tree = app.screen.query_one(TopicTreeView)
        row = "".join(segment.text for segment in tree.render_line(tree.cursor - tree.scroll_offset.y))
        assert '= { "' in row  # as much as fits in a narrow tree
        node = app.runtime.tree.get("lab/bench/cbor")
        assert app.runtime.value_line(node, 60) == '{ "temp": 21.5, "hum": 40, "ok": true }'


async def test_decode_as_a_filter_then_back_to_automatic() -> None:
    app = make_app(lab_tree())
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        app.screen.query_one(TopicTreeView).select_topic("lab/bench/cbor")
        await settle(pilot)
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, DecodeAsDialog)
        await pilot.press("shift+tab")  # from the list back to the filter
        assert app.focused is not None and app.focused.id == "decode-filter"
        await pilot.press("ctrl+a", "ctrl+k", *"lab/#")
        await pilot.press("tab")
        await choose(pilot, "cbor")
        await pilot.press("enter")
        await settle(pilot)
        assert app.runtime.decoders.rule_for("lab/bench/text") == DecoderRule("lab/#", "cbor")
        # text is not CBOR: the reason shows inline, with the hex beside it, never a traceback
        app.screen.query_one(TopicTreeView).select_topic("lab/bench/text")
        await settle(pilot)
        shown = payload_text(app)
        assert "cannot decode" in shown and "70 6c 61 69 6e" in shown
        # one key away from automatic again: d, then the Automatic button
        await pilot.press("d")
        await pilot.pause()
        assert app.screen.query_one("#decode-filter", Input).value == "lab/#"
        await tab_to(pilot, "decode-auto")
        await pilot.press("enter")
        await settle(pilot)
        assert app.runtime.decoders.rule_for("lab/bench/text") is None
        assert "text" in payload_text(app) and "plain words" in payload_text(app)
        assert "decoders" not in tomllib.loads(settings_path().read_text())


async def test_decode_as_with_options_checks_them_before_use() -> None:
    tree = TopicTree()
    tree.ingest("meters/1/raw", bytes.fromhex("0102") + bytes.fromhex("0000c841"), received_at=NOW)  # <hf: 513, 25.0
    app = make_app(tree)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.screen.query_one(TopicTreeView).select_topic("meters/1/raw")
        await settle(pilot)
        await pilot.press("d")
        await pilot.pause()
        await choose(pilot, "struct")
        await pilot.press("enter")  # the struct decoder needs its format: the focus goes there
        assert app.focused is not None and app.focused.id == "decode-struct"
        await pilot.press(*"<hq")  # four bytes too many
        assert "the payload has 6 bytes; the format <hq needs 10" in text_of(app.screen.query_one("#decode-preview"))
        await pilot.press("backspace", "f")
        await pilot.press("tab", *"id watts")
        assert "watts" in text_of(app.screen.query_one("#decode-preview"))
        await pilot.press("enter")
        await settle(pilot)
        assert app.runtime.decoders.rule_for("meters/1/raw") == DecoderRule(
            "meters/1/raw", "struct", struct="<hf", fields=("id", "watts")
        )
        assert "watts" in payload_text(app) and "25.0" in payload_text(app)


async def test_unreadable_settings_keep_the_choice_for_the_run_and_say_why() -> None:
    settings_path().parent.mkdir(parents=True, exist_ok=True)
    settings_path().write_text("theme = [\n")  # not TOML
    app = make_app(lab_tree())
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        await settle(pilot)
        app.screen.query_one(TopicTreeView).select_topic("lab/bench/cbor")
        await settle(pilot)
        await pilot.press("d")
        await pilot.pause()
        await choose(pilot, "cbor")
        await pilot.press("enter")
        await settle(pilot)
        assert app.runtime.decoders.rule_for("lab/bench/cbor") is not None
        said = [str(n.message) for n in app._notifications]
        assert any("not remembered" in text for text in said), said
        assert settings_path().read_text() == "theme = [\n"  # left as it was


# ------------------------------------------------------------------------------------------ Sparkplug B


async def test_sparkplug_state_in_the_tree_and_message_tab() -> None:
    app = make_app(plant=True)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        tree = app.screen.query_one(TopicTreeView)
        runtime = app.runtime
        assert tree.select_topic("spBv1.0/Plant1/DDATA/Line3/Pump1")
        await settle(pilot)
        row = "".join(segment.text for segment in tree.render_line(tree.cursor - tree.scroll_offset.y))
        assert "= online · Spe" in row
        node = runtime.tree.get("spBv1.0/Plant1/DDATA/Line3/Pump1")
        assert runtime.value_line(node, 60).startswith("online · Speed = ")
        view = app.screen.query_one(MessageView)
        state = text_of(view.query_one("#sparkplug-state"), width=200)
        assert "edge node Plant1/Line3: online" in state and "bdSeq 3" in state
        assert "device Pump1: online" in state
        shown = payload_text(app)
        assert "Sparkplug B" in shown and "Speed = " in shown and "alias 10" in shown
        assert tree.select_topic("spBv1.0/Plant1/DBIRTH/Line3/Tank1")
        await settle(pilot)
        assert runtime.value_line(runtime.tree.get("spBv1.0/Plant1/DBIRTH/Line3/Tank1"), 60).startswith("offline · ")
        assert "device Tank1: offline" in text_of(view.query_one("#sparkplug-state"), width=200)


async def test_the_tree_filter_searches_decoded_payloads() -> None:
    app = make_app(plant=True)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        view = app.screen.query_one(TopicTreeView)

        def shown() -> set[str]:
            return {row.topic for row in view.rows if row.messages}

        await pilot.press("slash", *"pressure")  # a metric the pump's data names only by alias
        await until(lambda: "spBv1.0/Plant1/DDATA/Line3/Pump1" in shown(), pilot=pilot)
        assert shown() == {"spBv1.0/Plant1/DBIRTH/Line3/Pump1", "spBv1.0/Plant1/DDATA/Line3/Pump1"}
        app.screen.query_one("#tree-filter", Input).value = "voltage"  # inside the inverter's gzip'd JSON
        await until(lambda: shown() == {"house/solar/inverter"}, pilot=pilot)
        app.screen.query_one("#tree-filter", Input).value = "/energy_kwh.: 12\\.45/"  # a CBOR value
        await until(lambda: shown() == {"house/garage/ev-charger"}, pilot=pilot)


async def test_a_recording_keeps_sparkplug_metrics_by_name(tmp_path: Any) -> None:
    runtime = Runtime(ClientOptions(parse_url("mqtt://127.0.0.1:1883"), client_id="rec"), embed_broker=False)
    path = tmp_path / "plant.jsonl"
    runtime.start_recording(TopicFilter("spBv1.0/+/DDATA/#", FilterKind.WILDCARD), path)
    sample_plant(runtime)
    runtime.stop_recording()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 12 and all(line["decoder"] == "sparkplug" for line in lines)
    assert set(lines[0]["decoded"]["metrics"]) == {"Speed", "Pressure"}  # the data names them only by alias


async def live_app(broker: Broker) -> MQTTChatApp:
    options = ClientOptions(parse_url(broker.url), client_id="ui-decoders")
    return MQTTChatApp(Runtime(options, (("spBv1.0/#", 0),), embed_broker=False), flush_hz=20, connect=True)


async def births(device: MQTTClient) -> None:
    node = [
        SparkplugMetric(BDSEQ, DataType.Int64, 0),
        SparkplugMetric(REBIRTH, DataType.Boolean, False),
        SparkplugMetric("Uptime", DataType.Int64, 5, alias=2),
    ]
    await device.publish("spBv1.0/G/NBIRTH/E", encode_payload(node, seq=0))
    pump = [SparkplugMetric("Speed", DataType.Float, 1450.0, alias=10),
            SparkplugMetric("Running", DataType.Boolean, True, alias=11)]  # fmt: skip
    await device.publish("spBv1.0/G/DBIRTH/E/Pump", encode_payload(pump, seq=1))


@SIZES
async def test_rebirth_and_write_reach_the_edge_node(broker: Broker, size: tuple[int, int]) -> None:
    commands: asyncio.Queue[Message] = asyncio.Queue()
    app = await live_app(broker)
    async with app.run_test(size=size) as pilot, MQTTClient(broker.url, client_id="edge-node") as device:
        await until(lambda: app.runtime.client.connected and app.runtime.granted, pilot=pilot)
        device.add_message_handler(commands.put_nowait)
        await device.subscribe("spBv1.0/G/NCMD/E", "spBv1.0/G/DCMD/E/+")
        await births(device)
        await until(lambda: app.runtime.tree.get("spBv1.0/G/DBIRTH/E/Pump") is not None, pilot=pilot)
        await settle(pilot)
        assert app.screen.query_one(TopicTreeView).select_topic("spBv1.0/G/DBIRTH/E/Pump")
        await settle(pilot)
        # the rebirth: Tab to the button, Enter
        await tab_to(pilot, "sparkplug-rebirth")
        await pilot.press("enter")
        command = await asyncio.wait_for(commands.get(), 5)
        assert command.topic == "spBv1.0/G/NCMD/E" and command.qos == 0 and not command.retain
        metrics = decode_payload(command.payload, DecodeContext(command.topic)).root.children[-1].children
        assert [(m.name, m.value) for m in metrics] == [(REBIRTH, True)]
        # a write of the device's metric, named from its DBIRTH, sent by alias
        await tab_to(pilot, "sparkplug-write")
        await pilot.press("enter")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, WriteMetricDialog)
        assert within_screen(app, dialog.query_one("#write-ok", Button))
        await pilot.press("enter")  # Speed, the first metric
        assert app.focused is not None and app.focused.id == "write-value"
        await pilot.press(*"fast")
        await pilot.press("enter")
        assert "a Float value is a number" in text_of(dialog.query_one("#write-error"))
        await pilot.press("ctrl+a", "ctrl+k", *"1500.5", "enter")
        command = await asyncio.wait_for(commands.get(), 5)
        assert command.topic == "spBv1.0/G/DCMD/E/Pump"
        from mqttchat.explorer.decoders.sparkplug import AliasTable

        aliases = AliasTable({10: ("Speed", DataType.Float)}, {})
        metrics = decode_payload(command.payload, DecodeContext(command.topic, aliases=aliases)).root.children[-1]
        assert [(m.name, m.value) for m in metrics.children or ()] == [("Speed", 1500.5)]


async def test_hostile_metric_names_and_values_are_shown_as_text() -> None:
    runtime_app = make_app(TopicTree())
    runtime = runtime_app.runtime
    metrics = [
        SparkplugMetric(BDSEQ, DataType.Int64, 0),
        SparkplugMetric(HOSTILE, DataType.String, HOSTILE, alias=5, properties={CLICK: (DataType.String, HOSTILE)}),
    ]
    group, node = "g\x1b[2J", "n\u202e"
    for kind, seq, payload in (
        ("NBIRTH", 0, encode_payload(metrics, seq=0)),
        ("NDATA", 1, encode_payload([SparkplugMetric(None, DataType.String, HOSTILE, alias=5)], seq=1)),
    ):
        topic = f"spBv1.0/{group}/{kind}/{node}"
        runtime._on_message(Message(topic, payload, 0, False, False, received_at=NOW - 5 + seq))
    runtime._on_message(Message(f"cbor/{CLICK}", cbor2.dumps({HOSTILE: HOSTILE}), received_at=NOW))
    runtime.decoders.choose(DecoderRule("cbor/#", "cbor"))
    async with runtime_app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        tree = runtime_app.screen.query_one(TopicTreeView)
        for topic in (f"spBv1.0/{group}/NDATA/{node}", f"spBv1.0/{group}/NBIRTH/{node}", f"cbor/{CLICK}"):
            assert tree.select_topic(topic), topic
            await settle(pilot)
            shown = check_screen(runtime_app, topic)
            assert "␛[2J" in shown and "[@click=app.quit]x[" in shown
        await pilot.press("d")
        await pilot.pause()
        check_screen(runtime_app, "decode as… on a hostile topic")


# ------------------------------------------------------------------------------------------ charts


@SIZES
async def test_chart_series_picked_from_the_tree_by_keys(size: tuple[int, int]) -> None:
    from mqttchat.ui.widgets.chart_panel import ChartPanel

    app = make_app(plant=True)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        tree = app.screen.query_one(TopicTreeView)
        charts = app.runtime.charts
        assert tree.select_topic("spBv1.0/Plant1/DDATA/Line3/Pump1")
        await settle(pilot)
        await pilot.press("t")  # the Chart tab, its field picker focused
        await settle(pilot)
        panel = app.screen.query_one(ChartPanel)
        assert app.focused is not None and app.focused.id == "chart-field"
        assert "2 numeric fields: Speed, Pressure" in text_of(panel.query_one("#chart-topic"), width=200)
        await pilot.press(*"Sp", "right")  # the picker completes a metric name of the selected topic
        assert app.screen.query_one("#chart-field", Input).value == "Speed"
        await pilot.press("enter")
        await settle(pilot)
        assert [(s.topic, s.field) for s in charts.series] == [("spBv1.0/Plant1/DDATA/Line3/Pump1", "Speed")]
        assert len(charts.series[0].points) == 12  # from the history, decoded with the aliases of their time
        # a second series from another topic: back to the tree (Escape), select, Chart again, a typo first
        await pilot.press("escape")
        assert tree.select_topic("house/solar/inverter")
        await settle(pilot)
        await pilot.press("t", *"power", "enter")
        await settle(pilot)
        error = text_of(panel.query_one("#chart-error"), width=200)
        assert "'power' is not a number" in error and "power_w" in error
        await pilot.press("ctrl+a", "ctrl+k", *"power_w", "enter")
        await settle(pilot)
        assert [s.field for s in charts.series] == ["Speed", "power_w"]
        assert charts.series[1].points[-1][1] == 2275.0  # gzip'd JSON, decoded
        # window and pause by Tab and Enter
        await tab_to(pilot, "chart-window")
        await pilot.press("enter")
        await settle(pilot)
        assert charts.window == 900.0 and str(panel.query_one("#chart-window", Button).label) == "15 min"
        await tab_to(pilot, "chart-pause")
        await pilot.press("enter")
        await settle(pilot)
        assert charts.paused and str(panel.query_one("#chart-pause", Button).label) == "Resume"
        await pilot.press("enter")
        assert not charts.paused
        # remove the first series from the list
        await tab_to(pilot, "chart-series")
        await pilot.press("home", "delete")
        await settle(pilot)
        assert [s.field for s in charts.series] == ["power_w"]
        plot = panel.query_one("#chart-plot")
        assert within_screen(app, plot)


async def test_chart_labels_from_the_network_are_neutralised() -> None:
    from mqttchat.ui.widgets.chart_panel import ChartPanel

    tree = TopicTree()
    for i in range(5):
        tree.ingest(f"h/{CLICK}", json.dumps({HOSTILE: i}).encode(), received_at=NOW - 10 + i)
    app = make_app(tree)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        assert app.screen.query_one(TopicTreeView).select_topic(f"h/{CLICK}")
        await settle(pilot)
        await pilot.press("t")
        panel = app.screen.query_one(ChartPanel)
        panel.post_message(ChartPanel.SeriesAdded(panel, f"h/{CLICK}", HOSTILE))  # as the picker would
        await settle(pilot)
        assert len(app.runtime.charts.series) == 1
        await settle(pilot)
        shown = check_screen(app, "a chart of a hostile topic and field")
        assert "[@click=app.quit]x[" in shown


# ------------------------------------------------------------------------------------------ publishing


@SIZES
async def test_publish_json_as_cbor_and_bytes_from_hex(broker: Broker, size: tuple[int, int]) -> None:
    from textual.widgets import Select

    received: asyncio.Queue[Message] = asyncio.Queue()
    app = await live_app(broker)
    async with app.run_test(size=size) as pilot, MQTTClient(broker.url, client_id="listener") as listener:
        await until(lambda: app.runtime.client.connected and app.runtime.granted, pilot=pilot)
        listener.add_message_handler(received.put_nowait)
        await listener.subscribe("out/#")
        await pilot.press("p", *"out/cbor", "tab")
        assert app.focused is not None and app.focused.id == "pub-payload"
        app.screen.query_one("#pub-payload").text = '{"kw": 7.5, "on": true}'  # type: ignore[attr-defined]
        await pilot.press("tab")
        assert app.focused is not None and app.focused.id == "pub-encoding"
        await pilot.press("enter")  # open the list, then choose "cbor" by keys
        for _ in range(10):
            if app.screen.query_one("#pub-encoding", Select).value == "cbor":
                break
            await pilot.press("down", "enter")
            await pilot.pause()
            if app.screen.query_one("#pub-encoding", Select).value != "cbor":
                await pilot.press("enter")
        assert app.screen.query_one("#pub-encoding", Select).value == "cbor"
        await pilot.press("ctrl+s")
        message = await asyncio.wait_for(received.get(), 5)
        assert cbor2.loads(message.payload) == {"kw": 7.5, "on": True}
        assert message.properties.content_type == "application/cbor"
        # hex: a typo is shown inline and nothing is sent; then the bytes as written
        app.screen.query_one("#pub-encoding", Select).value = "hex"
        app.screen.query_one("#pub-topic", Input).value = "out/raw"
        app.screen.query_one("#pub-payload").text = "01 ff zz"  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "not hex" in text_of(app.screen.query_one("#pub-payload-error"))
        app.screen.query_one("#pub-payload").text = "0x01 0xff 00"  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        message = await asyncio.wait_for(received.get(), 5)
        assert message.topic == "out/raw" and message.payload == b"\x01\xff\x00"


async def test_history_shows_decoded_payloads_their_diffs_and_plots_a_metric() -> None:
    from textual.widgets import Sparkline

    app = make_app(plant=True)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        assert app.screen.query_one(TopicTreeView).select_topic("spBv1.0/Plant1/DDATA/Line3/Pump1")
        await pilot.press("h")
        await settle(pilot)
        shown = text_of(app.screen.query_one("#history-view").query_one("#history"), width=200)
        assert "Speed = " in shown and "alias 10" in shown  # summaries and diffs of decoded metrics, not bytes
        assert "-Speed = " in shown and "+Speed = " in shown
        await pilot.press("tab", *"Pressure")
        await settle(pilot)
        assert len(app.screen.query_one("#plot", Sparkline).data or []) == 12
        assert "Pressure: last 3.25" in text_of(app.screen.query_one("#plot-label"), width=200)
