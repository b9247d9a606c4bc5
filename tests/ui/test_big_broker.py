"""A broker too big for ``#``: level-by-level discovery, the partial view, ``#`` one key away, and $SYS dialects
(the embedded broker and mosquitto for real; EMQX and VerneMQ played by a fake broker from their documentation)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import pytest
from textual.widgets import DataTable, Input

from mqttchat import discovery as discovery_module
from mqttchat.broker.server import Broker
from mqttchat.client import ClientOptions, MQTTClient, parse_url
from mqttchat.explorer.broker_sys import NO_SYS_AFTER, WATCH_FILTERS
from mqttchat.protocol import Packet, Publish, ReasonCode, SubAck, Subscribe
from mqttchat.runtime import Runtime
from mqttchat.ui.app import MQTTChatApp
from mqttchat.ui.screens.dialogs import ConfirmDialog
from mqttchat.ui.screens.shared_ingest import SharedIngestDialog
from mqttchat.ui.widgets.broker_panel import BrokerPanel
from mqttchat.ui.widgets.status_bar import StatusBar
from mqttchat.ui.widgets.topic_tree import TopicTreeView
from tests.helpers.brokers import RunningBroker, broker_config
from tests.helpers.fake_broker import Close, connack_then, fake_broker
from tests.helpers.sys_traffic import EMQX, VERNEMQ
from tests.helpers.waiting import until
from tests.helpers.widget_text import text_of

RETAINED = {
    "weather": "sunny",
    "plant/status": "running",
    "plant/line1/m1/temp": "20",
    "plant/line1/m2/temp": "21",
    "plant/line2/m1/temp": "22",
    "office/lights": "on",
}


async def seed(url: str, topics: dict[str, str]) -> None:
    async with MQTTClient(url) as client:
        for topic, value in topics.items():
            await client.publish(topic, value, qos=1, retain=True)


async def sys_counts_at_least(url: str, count: int) -> None:
    """Wait until the broker's $SYS says it holds ``count`` retained messages or more."""
    async with MQTTClient(url) as client:
        stream = client.messages()
        await client.subscribe("$SYS/broker/retained messages/count")
        async with asyncio.timeout(10):
            async for message in stream:
                if int(message.payload) >= count:
                    return


def filters(runtime: Runtime) -> set[str]:
    """The explorer's subscriptions now, without the $SYS watch."""
    return {f for f in runtime.client.session.subscriptions if f not in WATCH_FILTERS}


def app_for(url: str, discover: str, **kwargs: Any) -> MQTTChatApp:
    options = ClientOptions(parse_url(url), client_id="ui-discovery")
    return MQTTChatApp(Runtime(options, (("#", 0),), embed_broker=False, discover=discover, **kwargs), flush_hz=20)


def tree_text(view: TopicTreeView) -> str:
    """The rows the tree draws, as text."""
    return "\n".join(view.render_line(y).text for y in range(min(len(view.rows), view.size.height)))


def table_text(table: DataTable[Any]) -> str:
    return "\n".join(" ".join(str(cell) for cell in table.get_row_at(row)) for row in range(table.row_count))


def select(view: TopicTreeView, topic: str) -> None:
    view.cursor = [row.topic for row in view.rows].index(topic)
    view.refresh()


async def test_discovery_follows_what_is_expanded_and_hash_is_one_key_away(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against the embedded broker and mosquitto: the top level probed (``#`` for a moment) then followed with
    ``+``; expanding plant probes plant/# beside plant/+ (Retain Handling 2 on plant/+: its retained values come
    once, through the probe); collapsing unsubscribes; ``#`` subscribes to everything and back."""
    monkeypatch.setattr(discovery_module, "PROBE_AGAIN_AFTER", 0.0)  # every expansion probes
    await seed(url, RETAINED)
    app = app_for(url, "on")
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        runtime = app.runtime
        tree = runtime.tree
        view = app.screen.query_one(TopicTreeView)
        await until(lambda: runtime.discovery.active and tree.get("plant/line2/m1/temp") is not None, pilot=pilot)
        await until(lambda: filters(runtime) == {"+"}, what="the top-level probe # dropped", pilot=pilot)
        partial = app.screen.query_one("#tree-partial")
        await until(lambda: "partial view, level by level (# for all topics)" in text_of(partial), pilot=pilot)
        assert "why: asked for" in " ".join(text_of(partial).split())
        assert "(partial)" in text_of(app.screen.query_one(StatusBar))
        assert view.partial and "≥" in tree_text(view)
        weather = tree.get("weather")
        assert weather is not None and weather.messages == 1  # + asked for no retained message beside the probe

        await until(lambda: "plant" in [row.topic for row in view.rows], pilot=pilot)
        select(view, "plant")
        await pilot.press("right")
        await until(lambda: "plant/+" in filters(runtime), pilot=pilot)
        await until(lambda: filters(runtime) == {"+", "plant/+"}, what="the plant/# probe dropped", pilot=pilot)
        status = tree.get("plant/status")
        assert status is not None and status.messages == 2  # the top-level probe's and plant/#'s, not plant/+'s
        assert runtime.discovery.probes_made == 2

        async with MQTTClient(url) as device:
            await device.publish("plant/line1/m1/temp", "99", qos=1)  # below plant/line1: not followed
            await device.publish("plant/status", "stopped", qos=1)  # a child of plant: followed
        await until(lambda: status.last is not None and status.last.payload == b"stopped", pilot=pilot)
        temp = tree.get("plant/line1/m1/temp")
        assert temp is not None and temp.last is not None and temp.last.payload == b"20"

        await pilot.press("left")  # collapse plant: plant/+ unsubscribed
        await until(lambda: filters(runtime) == {"+"}, pilot=pilot)

        await pilot.press("number_sign")  # everything again
        await until(lambda: filters(runtime) == {"#"} and not runtime.discovery.active, pilot=pilot)
        await until(lambda: not partial.has_class("shown") and not view.partial, pilot=pilot)
        async with MQTTClient(url) as device:
            await device.publish("plant/line1/m1/temp", "100", qos=1)
        await until(lambda: temp.last is not None and temp.last.payload == b"100", pilot=pilot)

        await pilot.press("number_sign")  # and back: + in place before # goes, no probe (# kept the tree current)
        await until(lambda: filters(runtime) == {"+"} and runtime.discovery.active, pilot=pilot)
        assert runtime.discovery.probes_made == 2


async def test_a_broker_whose_sys_says_it_is_big_is_discovered_from_the_start() -> None:
    """auto: the embedded broker's $SYS (retained, like mosquitto's) says it holds more retained messages than
    the threshold: the explorer never subscribes to # and says why; the Broker tab names the dialect."""
    async with Broker(broker_config(sys_interval=1)) as broker:
        await seed(broker.url, {f"fleet/truck{i}/position": str(i) for i in range(60)})
        await sys_counts_at_least(broker.url, 60)  # its $SYS comes every second
        app = app_for(broker.url, "auto", big_topics=50, watch_sys=True)
        async with app.run_test(size=(120, 40), notifications=True) as pilot:
            runtime = app.runtime
            await until(lambda: runtime.discovery.active, pilot=pilot)
            assert runtime.discovery.reason is not None
            assert "$SYS counts" in runtime.discovery.reason
            assert "retained messages" in runtime.discovery.reason
            await until(lambda: any("Discovering topics level by level" in n.message for n in app._notifications),
                        pilot=pilot)  # fmt: skip
            # the top level probed (# for at most a second), then followed with +
            await until(lambda: filters(runtime) == {"+"}, pilot=pilot)
            assert runtime.discovery.probes_made == 1
            # the $SYS watch's messages feed the Broker tab, not the tree
            assert runtime.tree.get("$SYS") is None
            await pilot.press("b")
            panel = app.screen.query_one(BrokerPanel)
            await until(lambda: "$SYS statistics: mosquitto dialect" in text_of(panel), pilot=pilot)
            assert "retained messages/count" in text_of(panel)


async def test_many_topics_in_the_first_seconds_switch_to_discovery(url: str) -> None:
    """auto, no $SYS to go by: # brings more topics than the threshold in its first seconds: the explorer
    subscribes to + and drops # (the tree keeps what it saw), and says so."""
    await seed(url, {f"fleet/truck{i}/position": str(i) for i in range(60)})
    app = app_for(url, "auto", big_topics=50)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        runtime = app.runtime
        await until(lambda: runtime.discovery.active, pilot=pilot)
        assert runtime.discovery.reason is not None and "topics in" in runtime.discovery.reason
        await until(lambda: filters(runtime) == {"+"}, pilot=pilot)
        assert runtime.tree.stats.topics >= 60
        await until(lambda: any("Press # to subscribe to everything" in n.message for n in app._notifications),
                    pilot=pilot)  # fmt: skip


async def test_a_broker_that_publishes_no_sys_is_said_so() -> None:
    async with Broker(broker_config(sys_interval=0)) as broker:
        app = app_for(broker.url, "off", watch_sys=True)
        async with app.run_test(size=(120, 40)) as pilot:
            runtime = app.runtime
            await until(lambda: runtime.broker_sys.watching_since is not None, pilot=pilot)
            await pilot.press("b")
            panel = app.screen.query_one(BrokerPanel)
            await until(lambda: "waiting for $SYS" in text_of(panel), pilot=pilot)
            since = runtime.broker_sys.watching_since
            assert since is not None
            panel.clock = lambda: since + NO_SYS_AFTER
            await until(lambda: "this broker publishes no $SYS" in text_of(panel), pilot=pilot)
            assert filters(runtime) == {"#"}  # off: # as always
            assert {row.subscription.topic_filter for row in runtime.subscription_rows()} == {"#"}


def sys_broker(traffic: list[tuple[str, bytes]]) -> Callable[[Packet, int], bytes]:
    """A broker that answers the $SYS watch with ``traffic`` (a dialect it speaks) and grants everything."""

    def answer(packet: Packet, version: int) -> bytes:
        if not isinstance(packet, Subscribe):
            return b""
        out = SubAck(packet.packet_id, (ReasonCode.SUCCESS,) * len(packet.subscriptions)).encode(version)
        if any(sub.topic_filter.startswith("$SYS") for sub in packet.subscriptions):
            out += b"".join(Publish(topic, payload).encode(version) for topic, payload in traffic)
        return out

    return connack_then(answer)


@pytest.mark.parametrize(
    ("traffic", "dialect", "node"),
    [
        (EMQX, "EMQX dialect, 2 nodes", "node emqx@10.0.0.2"),
        (VERNEMQ, "VerneMQ dialect, 2 nodes", "node VerneMQ@10.0.0.1"),
    ],
    ids=["emqx", "vernemq"],
)
async def test_broker_tab_reads_emqx_and_vernemq_per_node(
    traffic: list[tuple[str, bytes]], dialect: str, node: str
) -> None:
    with fake_broker(sys_broker(traffic)) as fake:
        app = app_for(f"mqtt://127.0.0.1:{fake.port}", "off", watch_sys=True)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(lambda: app.runtime.broker_sys.received >= len(traffic) - 1, pilot=pilot)
            await pilot.press("b")
            panel = app.screen.query_one(BrokerPanel)
            await until(lambda: f"$SYS statistics: {dialect}" in text_of(panel), pilot=pilot)
            assert node in text_of(panel)
            assert app.runtime.tree.get("$SYS") is None  # the figures are the Broker tab's, not the tree's


def narrow_app(url: str) -> MQTTChatApp:
    options = ClientOptions(parse_url(url), client_id="ui-share")
    return MQTTChatApp(Runtime(options, (("office/#", 0),), embed_broker=False), flush_hz=20)


async def test_joining_a_shared_group_not_of_the_apps_own_asks_first(url: str) -> None:
    """Subscribing to $share/billing/… would take a share of the billing consumers' messages: the app asks;
    Cancel subscribes to nothing, Join does; a group of the app's own (mqttchat-…) is joined without asking."""
    app = narrow_app(url)
    async with app.run_test(size=(120, 40)) as pilot:
        runtime = app.runtime
        await until(lambda: runtime.client.connected and bool(runtime.granted), pilot=pilot)
        await pilot.press("u")
        box = app.screen.query_one("#sub-filter", Input)
        box.value = "$share/billing/jobs/#"
        await pilot.press("enter")
        await until(lambda: isinstance(app.screen, ConfirmDialog), pilot=pilot)
        said = " ".join(text_of(app.screen.query_one(".text")).split())
        assert "Joining the shared group 'billing'" in said and "no longer get" in said
        await pilot.click("#cancel")
        await until(lambda: not isinstance(app.screen, ConfirmDialog), pilot=pilot)
        assert "$share/billing/jobs/#" not in runtime.client.session.subscriptions
        app.screen.query_one("#sub-filter", Input).focus()
        await pilot.press("enter")
        await until(lambda: isinstance(app.screen, ConfirmDialog), pilot=pilot)
        await pilot.click("#ok")
        await until(lambda: "$share/billing/jobs/#" in runtime.granted, pilot=pilot)
        app.screen.query_one("#sub-filter", Input).value = "$share/mqttchat-1a2b/jobs/#"
        app.screen.query_one("#sub-filter", Input).focus()
        await pilot.press("enter")
        await until(lambda: "$share/mqttchat-1a2b/jobs/#" in runtime.granted, pilot=pilot)
        assert not isinstance(app.screen, ConfirmDialog)


async def test_a_firehose_read_over_several_connections_of_a_group_of_the_apps_own(url: str) -> None:
    """fleet/# over 3 connections in the app's own shared group: the broker deals the messages out among them,
    the tree gets each message once, the status bar says so; stopping closes them."""
    app = narrow_app(url)
    async with app.run_test(size=(120, 40)) as pilot:
        runtime = app.runtime
        await until(lambda: runtime.client.connected and bool(runtime.granted), pilot=pilot)
        app.screen.action_shared_ingest()  # type: ignore[attr-defined]
        await until(lambda: isinstance(app.screen, SharedIngestDialog) and bool(app.screen.query("#share-filter")),
                    pilot=pilot)  # fmt: skip
        app.screen.query_one("#share-filter", Input).value = "fleet/#"
        app.screen.query_one("#share-count", Input).value = "3"
        app.screen.query_one("#share-count", Input).focus()
        await pilot.press("enter")
        await until(lambda: runtime.shared is not None, pilot=pilot)
        shared = runtime.shared
        assert shared is not None and shared.group.startswith("mqttchat-")
        assert all(f"$share/{shared.group}/fleet/#" in c.session.subscriptions for c in shared.clients)
        async with MQTTClient(url) as device:
            for i in range(60):
                await device.publish(f"fleet/truck{i % 6}/position", str(i), qos=1)
        await until(lambda: runtime.tree.stats.messages >= 60, pilot=pilot)
        assert sum(shared.counts) == 60 and runtime.tree.stats.messages == 60
        assert sum(1 for count in shared.counts if count) >= 2, shared.counts
        await until(lambda: "shared over 3" in text_of(app.screen.query_one(StatusBar)), pilot=pilot)
        app.screen.stop_shared()  # type: ignore[attr-defined]
        await until(lambda: runtime.shared is None and not any(c.connected for c in shared.clients), pilot=pilot)


async def test_the_main_connections_copy_of_a_shared_message_is_left_out() -> None:
    """With # on the main connection too, each fleet message arrives twice: the tree counts it once."""
    async with Broker(broker_config()) as broker:
        app = app_for(broker.url, "off")
        async with app.run_test(size=(120, 40)) as pilot:
            runtime = app.runtime
            await until(lambda: runtime.client.connected and bool(runtime.granted), pilot=pilot)
            shared = await runtime.start_shared("fleet/#", 2)
            async with MQTTClient(broker.url) as device:
                for i in range(10):
                    await device.publish(f"fleet/truck{i}/position", str(i), qos=1)
            await until(lambda: sum(shared.counts) == 10 and shared.duplicates == 10, pilot=pilot)
            assert runtime.tree.stats.messages == 10
            assert "10 copies through the main connection left out" in shared.summary()


def cut_short_broker(packet: Packet, version: int) -> bytes:
    """A broker whose $SYS says it holds 500 retained messages and that sends 10 of them to ``#``."""
    if not isinstance(packet, Subscribe):
        return b""
    out = SubAck(packet.packet_id, (ReasonCode.SUCCESS,) * len(packet.subscriptions)).encode(version)
    filters = [sub.topic_filter for sub in packet.subscriptions]
    if "$SYS/broker/#" in filters:
        out += Publish("$SYS/broker/version", b"mosquitto version 2.0.18", 0, True).encode(version)
        out += Publish("$SYS/broker/retained messages/count", b"500", 0, True).encode(version)
    if "#" in filters:
        out += b"".join(Publish(f"fleet/truck{i}", b"here", 0, True).encode(version) for i in range(10))
    return out


async def test_retained_delivery_cut_short_is_compared_with_the_brokers_count() -> None:
    with fake_broker(connack_then(cut_short_broker)) as fake:
        app = app_for(f"mqtt://127.0.0.1:{fake.port}", "off", watch_sys=True)
        async with app.run_test(size=(120, 40), notifications=True) as pilot:
            runtime = app.runtime
            await until(lambda: runtime.tree.stats.retained_topics == 10, pilot=pilot)
            await until(lambda: any("Retained messages cut short" in n.message for n in app._notifications),
                        pilot=pilot)  # fmt: skip
            await pilot.press("b")
            panel = app.screen.query_one(BrokerPanel)
            await until(lambda: "retained messages cut short" in text_of(panel), pilot=pilot)
            text = " ".join(text_of(panel).split())
            assert "10 arrived through '#' where the broker holds 500" in text
            assert "its $SYS retained messages/count, 2 of them on $SYS" in text


async def test_mosquitto_cutting_the_retained_delivery_short_is_said(
    mosquitto_factory: Callable[..., RunningBroker],
) -> None:
    """mosquitto queues at most 10 messages (and 5 in flight) for a client: of 300 retained QoS 1 messages, a new
    # subscriber at QoS 1 gets a few; its $SYS count says 300 and more."""
    broker = mosquitto_factory("max_queued_messages 10\nmax_inflight_messages 5\nsys_interval 1\n")
    async with MQTTClient(broker.url) as client:
        for i in range(300):
            await client.publish(f"fleet/truck{i}", "here", qos=1, retain=True)
    options = ClientOptions(parse_url(broker.url), client_id="ui-cut")
    runtime = Runtime(options, (("#", 1),), embed_broker=False, watch_sys=True)
    app = MQTTChatApp(runtime, flush_hz=20)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(lambda: (runtime.broker_sys.retained_count or 0) >= 300, pilot=pilot)
        await until(lambda: runtime.retained_comparison(time.monotonic()) is not None, pilot=pilot)
        compared = runtime.retained_comparison(time.monotonic())
        assert compared is not None and compared[1], compared
        assert runtime.tree.stats.retained_topics < 300


@pytest.mark.parametrize("kind", ["embedded", "mosquitto"])
async def test_all_retained_messages_arrived_is_said_too(
    kind: str, mosquitto_factory: Callable[..., RunningBroker]
) -> None:
    """The embedded broker and mosquitto ($SYS every second) send every retained message to #: the comparison
    says all arrived, the broker's own retained $SYS topics counted apart."""
    async with contextlib.AsyncExitStack() as stack:
        if kind == "embedded":
            url = (await stack.enter_async_context(Broker(broker_config(sys_interval=1)))).url
        else:
            url = mosquitto_factory("sys_interval 1\n").url
        await seed(url, {f"fleet/truck{i}": "here" for i in range(30)})
        app = app_for(url, "off", watch_sys=True)
        async with app.run_test(size=(120, 40)) as pilot:
            runtime = app.runtime
            await until(lambda: (runtime.broker_sys.retained_count or 0) >= 30, timeout=15, pilot=pilot)
            await until(lambda: runtime.retained_comparison(time.monotonic()) is not None, pilot=pilot)
            compared = runtime.retained_comparison(time.monotonic())
            assert compared is not None and not compared[1], compared
            assert "all retained messages arrived: 30 through '#'" in compared[0]


async def test_hot_topics_dialog_ranks_and_selects() -> None:
    """!: the hottest topics and subtrees of the last second; Enter selects the topic in the tree; the status bar
    counts the history sampled out."""
    from mqttchat.ui.screens.hot_topics import HotTopicsDialog
    from tests.helpers.scenes import NOW, make_app

    app = make_app()
    tree = app.runtime.tree
    for second in (NOW - 2, NOW - 1):
        for topic, rate in (("plant/line1/press", 200), ("home/hall/door", 5)):
            for i in range(rate):
                tree.ingest(topic, b"1", received_at=second + i / rate)
    tree.consume_changes()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("exclamation_mark")
        await until(lambda: isinstance(app.screen, HotTopicsDialog), pilot=pilot)
        dialog = app.screen
        assert isinstance(dialog, HotTopicsDialog)
        dialog.clock = lambda: NOW
        dialog.refresh_rows()
        await pilot.pause()
        topics = table_text(dialog.query_one("#hot-topics", DataTable))
        assert topics.index("plant/line1/press") < topics.index("home/hall/door")
        press = tree.get("plant/line1/press")
        assert press is not None and 355 <= press.sampled <= 365  # 400 at 200 msg/s: about 20 kept a second
        assert "200" in topics and str(press.sampled) in topics
        subtrees = table_text(dialog.query_one("#hot-subtrees", DataTable))
        assert subtrees.index("plant") < subtrees.index("home")
        await pilot.press("enter")
        await until(lambda: not isinstance(app.screen, HotTopicsDialog), pilot=pilot)
        view = app.screen.query_one(TopicTreeView)
        assert view.highlighted is not None and view.highlighted.topic == "plant/line1/press"
        sampled = f"history sampled {tree.stats.sampled:,}"
        await until(lambda: sampled in text_of(app.screen.query_one(StatusBar)), pilot=pilot)


def closes_on_sys(packet: Packet, version: int) -> bytes:
    """A broker that closes the connection on a SUBSCRIBE it does not allow ($SYS), as some do on an ACL denial."""
    if not isinstance(packet, Subscribe):
        return b""
    if any(sub.topic_filter.startswith("$SYS") for sub in packet.subscriptions):
        return Close(b"")
    out = SubAck(packet.packet_id, (ReasonCode.SUCCESS,) * len(packet.subscriptions)).encode(version)
    return out + Publish("fleet/truck1", b"here", 0, True).encode(version)


async def test_a_broker_closing_the_connection_on_the_sys_watch_is_connected_to_without_it() -> None:
    """The $SYS watch is the app's own idea: a broker that closes the connection on it gets connected to again
    without it, # subscribed, and the Broker tab says why there are no figures."""
    with fake_broker(connack_then(closes_on_sys)) as fake:
        app = app_for(f"mqtt://127.0.0.1:{fake.port}", "auto", watch_sys=True)
        async with app.run_test(size=(120, 40)) as pilot:
            runtime = app.runtime
            await until(lambda: runtime.tree.get("fleet/truck1") is not None, pilot=pilot)
            assert runtime.client.connected and filters(runtime) == {"#"}
            await pilot.press("b")
            panel = app.screen.query_one(BrokerPanel)
            await until(lambda: "the broker refused the $SYS subscription" in text_of(panel), pilot=pilot)
