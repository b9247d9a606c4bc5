"""SVG snapshots of every screen and panel, with deterministic data (see conftest: fixed clock, UTC).

The explorer's screens are drawn at 120x36 and in an 80x24 terminal (short tab labels, labels above the fields
of the forms).
"""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from tests.helpers.scenes import SIZE, SNAPSHOT_SIZES, freeze, make_app, press_frozen
from tests.helpers.waiting import until


@SNAPSHOT_SIZES
def test_tree_and_message(snap_compare: Any, size: tuple[int, int]) -> None:
    """The tree with home/kitchen expanded, the cursor on home/kitchen/temp, its JSON in the Message tab."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await press_frozen(pilot, "end", "right", "down", "down", "right", "down", "down")

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@SNAPSHOT_SIZES
def test_message_with_v5_properties(snap_compare: Any, size: tuple[int, int]) -> None:
    """devices/thermostat/status: content type, user property and response topic listed above the JSON."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await press_frozen(pilot, "down", "right", "down", "right", "down")

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@SNAPSHOT_SIZES
def test_binary_payload_hex_dump(snap_compare: Any, size: tuple[int, int]) -> None:
    """garden/sensor/raw: a hex dump of 48 binary bytes."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await press_frozen(pilot, "down", "down", "right", "down", "down", "right", "down")

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@SNAPSHOT_SIZES
def test_history_with_diffs_and_plot(snap_compare: Any, size: tuple[int, int]) -> None:
    """History of home/kitchen/temp newest first, each with its diff; a sparkline of the field t."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await press_frozen(pilot, "end", "right", "down", "down", "right", "down", "down", "h")
        pilot.app.screen.query_one("#plot-field").value = "t"  # type: ignore[attr-defined]
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@SNAPSHOT_SIZES
def test_retained_table(snap_compare: Any, size: tuple[int, int]) -> None:
    """Every retained topic with its value, size, QoS and age."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await press_frozen(pilot, "r")
        pilot.app.screen.query_one("RetainedTable").refresh_from_model()  # type: ignore[attr-defined]
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@SNAPSHOT_SIZES
def test_publish_pane_with_errors(snap_compare: Any, size: tuple[int, int]) -> None:
    """The publish form showing inline errors: a wildcard in the topic, invalid JSON in the payload."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await press_frozen(pilot, "p")
        pilot.app.screen.query_one("#pub-topic").value = "home/+/light"  # type: ignore[attr-defined]
        pilot.app.screen.query_one("#pub-payload").text = '{"on": tru'  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@SNAPSHOT_SIZES
def test_subscriptions_panel(snap_compare: Any, size: tuple[int, int]) -> None:
    """Four subscriptions with their options, one granted below the QoS asked; the form to add one."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await press_frozen(pilot, "u")

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@SNAPSHOT_SIZES
def test_record_panel(snap_compare: Any, size: tuple[int, int]) -> None:
    """The Record tab: a filter typed, the file, start; replay with its speed and progress."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await press_frozen(pilot, "e")
        pilot.app.screen.query_one("#rec-filter").value = "home/#"  # type: ignore[attr-defined]
        pilot.app.screen.query_one("TopicTreeView").focus()
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@SNAPSHOT_SIZES
def test_packet_inspector(snap_compare: Any, size: tuple[int, int]) -> None:
    """Packets in and out, decoded: CONNECT, CONNACK with properties, SUBSCRIBE, PUBLISH with properties."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await press_frozen(pilot, "k")

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@SNAPSHOT_SIZES
def test_broker_panel(snap_compare: Any, size: tuple[int, int]) -> None:
    """What the broker said in CONNACK, its $SYS statistics, and the connection events."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await press_frozen(pilot, "b")
        pilot.app.screen.query_one("BrokerPanel").refresh_from(pilot.app.runtime)  # type: ignore[attr-defined]
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@SNAPSHOT_SIZES
def test_filter_with_error(snap_compare: Any, size: tuple[int, int]) -> None:
    """An invalid wildcard filter explains itself under the filter box."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await press_frozen(pilot, "slash", *"home/#/x")

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@SNAPSHOT_SIZES
def test_delete_confirmation_dialog(snap_compare: Any, size: tuple[int, int]) -> None:
    """Deleting every retained message shown asks first, with a dry-run count and the send rate."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await press_frozen(pilot, "r")
        table = pilot.app.screen.query_one("RetainedTable")
        table.refresh_from_model()  # type: ignore[attr-defined]
        table.focus()
        await pilot.press("D")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@SNAPSHOT_SIZES
def test_help_panel(snap_compare: Any, size: tuple[int, int]) -> None:
    """? shows the key bindings of the focused widget."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await press_frozen(pilot, "question_mark")

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@SNAPSHOT_SIZES
def test_connect_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    """The connection screen on the current connection (mqtt://127.0.0.1:1883, client id snapshot), the URL
    focused, with an invalid URL explained inline."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await press_frozen(pilot, "c")
        pilot.app.screen.query_one("#f-url").value = "htp://broker"  # type: ignore[attr-defined]
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


def refused_app() -> Any:
    """The snapshot app after the broker refused alice's password (no more attempts)."""
    from dataclasses import replace

    from mqttchat.client import ConnackRefused
    from mqttchat.protocol import ReasonCode
    from mqttchat.runtime import ConnectFailure

    app = make_app()
    runtime = app.runtime
    runtime.options = replace(runtime.options, username="alice", password="wrong")
    runtime.client.session.capabilities = None
    runtime.failure = ConnectFailure(ConnackRefused(ReasonCode.BAD_USER_NAME_OR_PASSWORD), 1, None)
    return app


@SNAPSHOT_SIZES
def test_connect_screen_after_a_refusal(snap_compare: Any, size: tuple[int, int]) -> None:
    """c after the broker refused the credentials: the form holds the connection that failed (user alice), the
    broker's reason above it in red, the password field focused and empty. The status bar behind says the
    connection is not tried again, and why."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await press_frozen(pilot, "c")

    assert snap_compare(refused_app(), terminal_size=size, run_before=run_before)


@SNAPSHOT_SIZES
def test_password_prompt(snap_compare: Any, size: tuple[int, int]) -> None:
    """Refused without a password: the password prompt names the broker and the user, says why, and waits."""

    async def run_before(pilot: Pilot[Any]) -> None:
        from mqttchat.ui.screens.dialogs import PasswordDialog

        await press_frozen(pilot)
        app = pilot.app
        app.push_screen(PasswordDialog("mqtt://127.0.0.1:1883", "alice", str(app.runtime.failure.error)))  # type: ignore[attr-defined]
        await pilot.pause()

    assert snap_compare(refused_app(), terminal_size=size, run_before=run_before)


def test_chat_view(snap_compare: Any) -> None:
    """The chat: rooms with unread counts, members with presence, a day separator, catch-up marked "while you
    were away", a sequence gap, a mention, an action, formatting, and own messages acknowledged, failed and
    still being sent."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await press_frozen(pilot)

    assert snap_compare(make_app(view="chat"), terminal_size=SIZE, run_before=run_before)


def test_chat_raw_room(snap_compare: Any) -> None:
    """A raw MQTT topic opened as a room: payloads as lines; the members panel explains the room."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await press_frozen(pilot)
        pilot.app.runtime.chat.model.select("#sensors/+/temp")  # type: ignore[attr-defined]
        pilot.app.flush()  # type: ignore[attr-defined]
        await pilot.pause()

    assert snap_compare(make_app(view="chat"), terminal_size=SIZE, run_before=run_before)


def test_chat_what_another_client_sends_wrong(snap_compare: Any) -> None:
    """Messages from another client that break the rules: one line in the room says a message from carol was
    dropped (ts in milliseconds; the next one, whose seq is a string, is only counted, and leaves a gap), a nick
    with a newline and an escape shows their pictures (cut in the nick column), a nick copied from alice shows
    carol's identity beside it; the status bar counts the drops by reason and says the last one."""
    import json

    from mqttchat.chat import protocol as p
    from tests.helpers.scenes import NOW

    def envelope(number: int, **fields: object) -> bytes:
        body = {"v": 1, "id": f"carol-{number}", "seq": number, "session": "js", "ts": NOW - 60 + number,
                "nick": "Carol", "text": "hello", **fields}  # fmt: skip
        return json.dumps(body).encode()

    async def run_before(pilot: Pilot[Any]) -> None:
        await press_frozen(pilot)
        chat = pilot.app.runtime.chat  # type: ignore[attr-defined]
        chat.model.clock = lambda: NOW - 50
        topic = p.room_messages("dev", "carol")
        for payload in (
            envelope(1, ts=(NOW - 59) * 1000),
            envelope(2, seq="2"),
            envelope(3, nick="evil\nnick\x1b[2J", text="my nick has a line break"),
            envelope(4, nick="alice", text="I am alice, honestly"),
            envelope(5, text="and a *valid* one"),
        ):
            chat.model.ingest(topic, payload, NOW - 50)
        chat.model.select("dev")
        freeze(pilot.app)  # type: ignore[arg-type]
        pilot.app.flush()  # type: ignore[attr-defined]
        await pilot.pause()
        pilot.app.screen.query_one("#chat-log").scroll_end(animate=False)  # type: ignore[attr-defined]
        await pilot.pause()

    assert snap_compare(make_app(view="chat"), terminal_size=SIZE, run_before=run_before)


def test_chat_help_and_narrow_terminal(snap_compare: Any) -> None:
    """/help answers in the room as a local notice; at 80 columns long lines wrap under the text column."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await press_frozen(pilot)
        await pilot.press(*"/help", "enter")
        model = pilot.app.runtime.chat.model  # type: ignore[attr-defined]
        await until(lambda: any("/leave" in m.text for m in model.rooms[model.current].messages), pilot=pilot)
        freeze(pilot.app)  # type: ignore[arg-type]
        pilot.app.flush()  # type: ignore[attr-defined]
        await pilot.pause()

    assert snap_compare(make_app(view="chat"), terminal_size=(80, 36), run_before=run_before)


@SNAPSHOT_SIZES
def test_host_quit_dialog(snap_compare: Any, size: tuple[int, int]) -> None:
    """Quitting the instance that hosts the embedded broker: who is connected through it (chat members by name,
    other clients counted), that another mqttchat takes over, and where their sessions are kept."""
    from pathlib import Path
    from types import SimpleNamespace

    from mqttchat.hosting import Peer

    async def run_before(pilot: Pilot[Any]) -> None:
        from mqttchat.ui.screens.dialogs import HostQuitDialog

        await press_frozen(pilot)
        runtime = SimpleNamespace(
            broker=SimpleNamespace(url="mqtt://127.0.0.1:1883"),
            host=SimpleNamespace(
                store=Path("/home/alice/.local/share/mqttchat/embedded-broker-1883.sqlite3"),
                persistent=True,
                store_problem=None,
            ),
        )
        peers = [Peer("mqttchat-chat-bob-0123456789ab", "bob"), Peer("mqttchat-chat-carol-ba9876543210", None),
                 Peer("mqttchat-5f2a", None)]  # fmt: skip
        pilot.app.push_screen(HostQuitDialog(runtime, peers))  # type: ignore[arg-type]
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@SNAPSHOT_SIZES
def test_sparkplug_device(snap_compare: Any, size: tuple[int, int]) -> None:
    """spBv1.0/Plant1/DDATA/Line3/Pump1: the edge node and the device online (born, bdSeq, seq, metrics, checks),
    the Decode as, Rebirth and Write metric buttons, and the metrics decoded by alias; the tree's value column
    shows "online ·" and the metrics."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await press_frozen(pilot)
        pilot.app.screen.query_one("TopicTreeView").select_topic("spBv1.0/Plant1/DDATA/Line3/Pump1")  # type: ignore[attr-defined]
        await press_frozen(pilot)

    assert snap_compare(make_app(plant=True), terminal_size=size, run_before=run_before)


@SNAPSHOT_SIZES
def test_decode_as_dialog(snap_compare: Any, size: tuple[int, int]) -> None:
    """ "Decode as…" on house/garage/ev-charger (CBOR): the filter, the decoders that decode it first with their
    previews (hex, cbor...), then the others, the chain, and the preview of the one highlighted."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await press_frozen(pilot)
        pilot.app.screen.query_one("TopicTreeView").select_topic("house/garage/ev-charger")  # type: ignore[attr-defined]
        await press_frozen(pilot, "d")

    assert snap_compare(make_app(plant=True), terminal_size=size, run_before=run_before)


@SNAPSHOT_SIZES
def test_chart(snap_compare: Any, size: tuple[int, int]) -> None:
    """The Chart tab: Speed and Pressure of spBv1.0/Plant1/DDATA/Line3/Pump1 (Sparkplug metrics by alias), each
    listed with its last, min and max, Pressure on the right-hand axis; a 1 minute window of seconds ago."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await press_frozen(pilot)
        pilot.app.screen.query_one("TopicTreeView").select_topic("spBv1.0/Plant1/DDATA/Line3/Pump1")  # type: ignore[attr-defined]
        await press_frozen(pilot, "t", *"Speed", "enter", "ctrl+a", "ctrl+k", *"Pressure", "enter")
        pilot.app.runtime.charts.set_window(60.0)  # type: ignore[attr-defined]
        await press_frozen(pilot)

    assert snap_compare(make_app(plant=True), terminal_size=size, run_before=run_before)


def discovering_app() -> Any:
    from tests.helpers.scenes import discovering

    app = make_app()
    discovering(app.runtime)
    return app


@SNAPSHOT_SIZES
def test_partial_view_while_discovering(snap_compare: Any, size: tuple[int, int]) -> None:
    """Discovering a big broker level by level: a line above the tree says the view is partial, why, what is
    followed and what was discarded, and that # subscribes to everything; counts are lower bounds (≥12 topics);
    the status bar says (partial)."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await press_frozen(pilot, "end", "right")
        pilot.app.clear_notifications()  # "Discovering topics level by level…": the line says it too
        await pilot.pause()

    assert snap_compare(discovering_app(), terminal_size=size, run_before=run_before)


@SNAPSHOT_SIZES
def test_broker_panel_emqx_per_node(snap_compare: Any, size: tuple[int, int]) -> None:
    """A two-node EMQX cluster's $SYS (synthesised from its documentation): the dialect and node count in the
    heading, each node's figures under its name, the client event counted and not kept."""
    from mqttchat.explorer.broker_sys import BrokerSys
    from tests.helpers.sys_traffic import EMQX

    app = make_app()
    app.runtime.broker_sys = BrokerSys()
    for topic, payload in EMQX:
        app.runtime.broker_sys.offer(topic, payload, 0.0)

    async def run_before(pilot: Pilot[Any]) -> None:
        await press_frozen(pilot, "b")
        pilot.app.screen.query_one("BrokerPanel").refresh_from(pilot.app.runtime)  # type: ignore[attr-defined]
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_hot_topics(snap_compare: Any) -> None:
    """The hot topics dialog (!): a press at 300 msg/s with its history sampled, an oven and a door; the busiest
    subtrees (plant above its lines); the note says how many history entries were sampled out."""
    from tests.helpers.scenes import NOW, hot_traffic

    app = make_app()
    hot_traffic(app.runtime.tree)

    async def run_before(pilot: Pilot[Any]) -> None:
        await press_frozen(pilot, "exclamation_mark")
        dialog = pilot.app.screen
        dialog.clock = lambda: NOW  # type: ignore[attr-defined]
        dialog.refresh_rows()  # type: ignore[attr-defined]
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
