"""The deterministic app of the UI tests, the snapshots and the README's screenshots: a small house (topics,
retained states, an MQTT 5 message, a packet trace, subscriptions, a chat) as seen at a fixed time, and
:func:`freeze`, which fixes every clock the widgets read."""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot

from mqttchat.client import BrokerCapabilities, ClientOptions, Status, parse_url
from mqttchat.explorer.trace import TraceRecord
from mqttchat.explorer.tree import TopicTree
from mqttchat.protocol import (
    ConnAck,
    Connect,
    Properties,
    Publish,
    ReasonCode,
    RetainHandling,
    Subscribe,
    Subscription,
)
from mqttchat.runtime import Runtime

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


def sample_plant(runtime: Runtime) -> None:
    """A Sparkplug B edge node with two devices (births, data by alias, a device that died), a CBOR charger and a
    gzip'd JSON inverter, fed through the runtime as the broker would deliver them (so that the Sparkplug state
    is kept)."""
    import gzip
    import json

    import cbor2

    from mqttchat.client import Message
    from mqttchat.explorer.decoders.sparkplug import BDSEQ, REBIRTH, DataType, SparkplugMetric, encode_payload

    t = NOW - 60
    ms = int(t * 1000)
    seq = iter(range(256))

    def deliver(topic: str, payload: bytes, at: float, properties: Properties | None = None) -> None:
        runtime._on_message(Message(topic, payload, 0, False, False, properties or Properties(), at))

    node = [
        SparkplugMetric(BDSEQ, DataType.Int64, 3, timestamp=ms),
        SparkplugMetric(REBIRTH, DataType.Boolean, False, timestamp=ms),
        SparkplugMetric("Properties/Firmware", DataType.String, "2.4.1", alias=1, timestamp=ms),
        SparkplugMetric("Uptime", DataType.Int64, 0, alias=2, timestamp=ms),
    ]
    deliver("spBv1.0/Plant1/NBIRTH/Line3", encode_payload(node, timestamp=ms, seq=next(seq)), t)
    pump = [
        SparkplugMetric("Speed", DataType.Float, 1450.0, alias=10, timestamp=ms,
                        properties={"engUnit": (DataType.String, "rpm")}),
        SparkplugMetric("Running", DataType.Boolean, True, alias=11, timestamp=ms),
        SparkplugMetric("Pressure", DataType.Double, 3.2, alias=12, timestamp=ms,
                        properties={"engUnit": (DataType.String, "bar")}),
        SparkplugMetric("Flow", DataType.Int32, 120, alias=13, timestamp=ms),
    ]  # fmt: skip
    deliver("spBv1.0/Plant1/DBIRTH/Line3/Pump1", encode_payload(pump, timestamp=ms, seq=next(seq)), t + 0.1)
    tank = [SparkplugMetric("Level", DataType.Float, 62.0, alias=20, timestamp=ms)]
    deliver("spBv1.0/Plant1/DBIRTH/Line3/Tank1", encode_payload(tank, timestamp=ms, seq=next(seq)), t + 0.2)
    for i in range(12):
        at = t + 2 + i * 4
        stamp = int(at * 1000)
        data = [
            SparkplugMetric(None, DataType.Float, 1450.0 + (i % 5) * 9.5 - (i % 3) * 4, alias=10, timestamp=stamp),
            SparkplugMetric(None, DataType.Double, round(3.1 + (i % 4) * 0.05, 3), alias=12, timestamp=stamp),
        ]
        deliver("spBv1.0/Plant1/DDATA/Line3/Pump1", encode_payload(data, timestamp=int(at * 1000), seq=next(seq)), at)
        if i == 8:
            deliver("spBv1.0/Plant1/DDEATH/Line3/Tank1", encode_payload([], seq=next(seq)), at + 0.5)
    charger = {"state": "charging", "power_kw": 7.2, "energy_kwh": 12.45, "phases": [230.1, 229.8, 231.0]}
    deliver("house/garage/ev-charger", cbor2.dumps(charger), t + 20,
            Properties(content_type="application/cbor"))  # fmt: skip
    for i in range(6):
        document = {"power_w": 2100 + i * 35, "voltage": 231.5, "yield_kwh": 8.1 + i * 0.01}
        deliver("house/solar/inverter", gzip.compress(json.dumps(document).encode(), mtime=0), t + 30 + i * 5)


def sample_trace() -> list[TraceRecord]:
    return [
        TraceRecord(NOW - 3, "out", Connect("snapshot", keep_alive=30), 22),
        TraceRecord(NOW - 2.9, "in", ConnAck(False, properties=Properties(topic_alias_maximum=10)), 8),
        TraceRecord(NOW - 2.8, "out", Subscribe(1, (Subscription("#", 1, retain_as_published=True),)), 9),
        TraceRecord(NOW - 1, "in", Publish("home/kitchen/temp", b'{"t": 22}', 1, False, False, 7,
                                           Properties(content_type="application/json")), 44),
    ]  # fmt: skip


def sample_chat(runtime: Runtime) -> Any:
    """A chat as alice sees it: rooms with unread counts, presence, formatting, a mention, an action, a gap,
    catch-up from while she was away, and her own messages in each delivery state."""
    from mqttchat.chat.model import ChatMessage, Delivery
    from mqttchat.chat.protocol import Envelope, Presence
    from mqttchat.chat.service import ChatService, chat_client_options
    from mqttchat.client import MQTTClient

    options = chat_client_options(runtime.options, "alice", ["lobby", "dev"])
    chat = ChatService(MQTTClient(options), "alice", ["lobby", "dev"])
    model = chat.model
    model.connected_at = NOW - 600
    rooms = ("lobby", "dev")
    for user, status in (("alice", "online"), ("bob", "online"), ("carol", "away"), ("dave", "offline")):
        model.presence[user] = Presence(status, user.title() if user == "carol" else user, rooms, "mqttchat")
    lobby = model.room("lobby")
    model.room("dev")
    model.room("@carol", "direct")
    model.room("#sensors/+/temp", "raw", "sensors/+/temp")
    seq: dict[str, int] = {}

    def say(room: str, user: str, text: str, at: float, kind: str = "message", **fields: Any) -> ChatMessage:
        seq[user] = seq.get(user, 0) + 1 + fields.get("gap_before", 0)
        envelope = Envelope(f"{user}-{seq[user]}", seq[user], f"s-{user}", at, user, text, kind)
        message = ChatMessage(room, user, envelope, at, **fields)
        model._append(model.rooms[room], message)
        return message

    say("lobby", "bob", "morning all, the lab broker moves to the new rack today", NOW - 86_400 - 3_000)
    say("lobby", "dave", "deploying the **new firmware** to the thermostats at 08:30", NOW - 1_500, away=True)
    say("lobby", "bob", "ok, I'll watch `lab/thermostat/+/status` meanwhile", NOW - 1_450, away=True)
    say(
        "lobby",
        "alice",
        "thanks! the dashboard is at https://lab.example/mqtt",
        NOW - 500,
        own=True,
        delivery=Delivery.ACKED,
    )
    say(
        "lobby",
        "carol",
        "@alice can you check the _retained_ states under lab/hall? they look stale since the "
        "move, and the door sensor still reports the old firmware version",
        NOW - 420,
    )
    say("lobby", "bob", "my uplink dropped for a minute there", NOW - 300, gap_before=2)
    say("lobby", "bob", "waves from the new rack", NOW - 290, "action")
    say("lobby", "alice", "looking now", NOW - 60, own=True, delivery=Delivery.ACKED)
    say(
        "lobby",
        "alice",
        "pushing a retained fix to lab/hall/door",
        NOW - 20,
        own=True,
        delivery=Delivery.FAILED,
        error="Not authorized",
    )
    say("lobby", "alice", "asking dave for the ACL instead", NOW - 5, own=True, delivery=Delivery.SENDING)
    model.add_notice("lobby", "in lobby: alice (online), bob (online), carol (away), dave (offline)", NOW - 3)
    for user in ("alice", "bob", "carol", "dave"):
        lobby.members.add(user)
    lobby.typing["carol"] = NOW + 5
    for i in range(3):
        say("dev", "dave", f"build {41 + i} passed", NOW - 200 + i)
    say("@carol", "carol", "got a minute?", NOW - 100)
    model._append(model.rooms["#sensors/+/temp"], ChatMessage("#sensors/+/temp", "sensors/attic/temp",
                  Envelope("raw-1", 1, "", NOW - 30, "attic", "21.5"), NOW - 30))  # fmt: skip
    model.select("lobby")
    chat.joined = list(rooms)
    # As if connected: what the CONNACK said.
    chat.client.session.capabilities = BrokerCapabilities(
        version=5, session_present=True, topic_alias_maximum=10, assigned_client_identifier=None
    )
    chat.client._status = Status.CONNECTED
    return chat


def make_app(tree: TopicTree | None = None, view: str = "explorer", plant: bool = False) -> Any:
    """The app on sample data, as if connected; ``plant``: with the Sparkplug, CBOR and gzip devices of
    :func:`sample_plant` too."""
    from mqttchat.ui.app import MQTTChatApp

    options = ClientOptions(parse_url("mqtt://127.0.0.1:1883"), client_id="snapshot")
    runtime = Runtime(options, tree=tree or sample_tree())
    if plant:
        sample_plant(runtime)
    runtime.trace.extend(sample_trace())
    # What a CONNACK from the embedded broker says, and its $SYS figures, as if connected.
    runtime.client.session.capabilities = BrokerCapabilities(
        version=5, session_present=False, topic_alias_maximum=10, assigned_client_identifier=None
    )
    runtime.client.session.client_id = "snapshot"
    for key, value in {
        "version": "mqttchat 0.1.0", "uptime": "3600 seconds", "clients/connected": "3",
        "messages/received": "1520", "messages/sent": "4212", "messages/dropped": "0",
        "retained messages/count": "5", "subscriptions/count": "7",
    }.items():  # fmt: skip
        runtime.broker_sys.offer(f"$SYS/broker/{key}", value.encode(), 0.0)
    runtime.events.extend(["07:58:00 connecting", "07:58:00 connected"])
    # The subscriptions and what the broker granted (one below the QoS asked).
    subscriptions = [
        (Subscription("#", 1, False, True), Properties(), ReasonCode.GRANTED_QOS_1),
        (Subscription("$SYS/broker/#", 0), Properties(), ReasonCode.SUCCESS),
        (Subscription("home/+/temp", 2, True, False, RetainHandling.DO_NOT_SEND),
         Properties(subscription_identifier=7), ReasonCode.GRANTED_QOS_1),
        (Subscription("$share/team/jobs/#", 1), Properties(), ReasonCode.GRANTED_QOS_1),
    ]  # fmt: skip
    for sub, props, code in subscriptions:
        runtime.client.session.subscriptions[sub.topic_filter] = (sub, props)
        runtime.granted[sub.topic_filter] = code
    if view == "chat":
        runtime.chat = sample_chat(runtime)
    return MQTTChatApp(runtime, connect=False, flush_hz=15, view=view)


def freeze(app: Any) -> None:
    """Fix every clock the widgets read."""
    from mqttchat.ui.screens.chat import ChatScreen
    from mqttchat.ui.widgets.chart_panel import ChartPanel
    from mqttchat.ui.widgets.retained_table import RetainedTable
    from mqttchat.ui.widgets.topic_tree import TopicTreeView

    if isinstance(app.screen, ChatScreen):
        app.screen.clock = lambda: NOW

    for view in app.screen.query(TopicTreeView):
        view.clock = lambda: NOW
    for table in app.screen.query(RetainedTable):
        table.clock = lambda: NOW
    for panel in app.screen.query(ChartPanel):
        panel.clock = lambda: NOW


#: The explorer's snapshots are drawn at the usual size and in an 80x24 terminal.
SNAPSHOT_SIZES = pytest.mark.parametrize("size", [SIZE, (80, 24)], ids=lambda size: f"{size[0]}x{size[1]}")


async def press_frozen(pilot: Pilot[Any], *keys: str, flushes: int = 1) -> None:
    """A snapshot's set-up: clocks fixed, ``keys`` pressed, clocks fixed again on the screen they led to, then the
    app's flush (``flushes`` times: a second one draws what the first one's refresh of other tabs brought)."""
    freeze(pilot.app)
    await pilot.pause()
    await pilot.press(*keys)
    freeze(pilot.app)
    for _ in range(flushes):
        pilot.app.flush()  # type: ignore[attr-defined]
        await pilot.pause()


def two_brokers() -> Any:
    """dev (the scenes' house, connected) and prod (a plant, disconnected), dev's explorer shown."""
    app = make_app()
    dev = app.runtime
    dev.profile_name = "dev"
    dev.client._status = Status.CONNECTED
    tree = TopicTree()
    tree.ingest("plant/boiler/temp", b"71.5", 0, False, received_at=NOW - 30)
    tree.ingest("plant/boiler/state", b"on", 1, True, received_at=NOW - 90)
    prod = Runtime(ClientOptions(parse_url("mqtts://prod.example:8883"), client_id="snapshot-prod"), tree=tree,
                   profile_name="prod")  # fmt: skip
    app.runtimes.append(prod)
    return app


def discovering(runtime: Runtime) -> None:
    """As if the explorer discovered a big broker level by level, home expanded and followed (as if the broker
    had answered: nothing is subscribed), with the reason it chose to and late messages discarded."""
    from mqttchat.discovery import Mode

    discovery = runtime.discovery
    discovery.mode = Mode.DISCOVER
    discovery.reason = "$SYS counts 2,300,000 retained messages"
    discovery.followed = {"", "home"}
    discovery.follow = lambda expanded: None  # type: ignore[method-assign]  # no broker to subscribe to here
    discovery.discarded = 1520
    discovery.version += 1


def hot_traffic(tree: TopicTree) -> None:
    """Two seconds of a press at 300 messages a second (its history sampled), an oven at 50 and a door at 4."""
    for second in (NOW - 2, NOW - 1):
        for topic, rate in (("plant/line1/press", 300), ("plant/line2/oven", 50), ("home/hall/door", 4)):
            for i in range(rate):
                tree.ingest(topic, b"1", received_at=second + i / rate)
    tree.consume_changes()
