"""The Broker tab on the broker this mqttchat hosts: how much it queues, and its overload protection at work."""

from __future__ import annotations

from mqttchat.broker.server import Broker
from mqttchat.client import ClientOptions, MQTTClient, parse_url
from mqttchat.runtime import Runtime
from mqttchat.ui.app import MQTTChatApp
from mqttchat.ui.widgets.broker_panel import BrokerPanel
from tests.helpers.brokers import broker_config
from tests.helpers.reading import start_reading, stop_reading
from tests.helpers.waiting import until
from tests.helpers.widget_text import text_of


def line_of(text: str, row: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(row))


async def test_the_broker_tab_shows_the_hosted_brokers_queueing_and_who_is_paused() -> None:
    """A subscriber named with an escape sequence stops reading while 3,000 QoS 1 messages come: the tab says the
    queue limits and water marks, names the paused publisher and the congested subscriber (neutralised), and
    nothing dropped. A broker not hosted here shows no such section (see the snapshots)."""
    async with Broker(broker_config(overload_stall_timeout=60)) as broker:
        options = ClientOptions(parse_url(broker.url), client_id="ui-host")
        runtime = Runtime(options, (("#", 0),), embed_broker=False)
        app = MQTTChatApp(runtime, flush_hz=20)
        async with (
            app.run_test(size=(140, 50)) as pilot,
            MQTTClient(broker.url, client_id="slow\x1b[31m") as slow,
            MQTTClient(broker.url, client_id="pub") as pub,
        ):
            runtime.broker = broker
            await slow.subscribe("load/#", qos=1)
            stop_reading(slow)
            futures = [pub.publish_nowait("load/x", b"%d" % i, 1) for i in range(3000)]
            await until(lambda: bool(broker.core.overload.congested), what="congestion", pilot=pilot)
            await pilot.press("b")
            panel = app.screen.query_one(BrokerPanel)
            await until(lambda: "paused publishers" in text_of(panel), pilot=pilot)
            text = text_of(panel)
            assert "This broker (hosted here)" in text
            assert "1000 messages" in line_of(text, "queue per client")
            assert "20" in line_of(text, "in flight per client")
            assert "on: pause at 100, resume at 50" in line_of(text, "overload protection")
            assert "60 s" in line_of(text, "stalled after")
            assert "1: pub" in line_of(text, "paused publishers")
            congested = line_of(text, "congested subscribers")
            assert "1: slow" in congested and "\x1b" not in congested
            assert "none" in line_of(text, "stalled subscribers")
            assert line_of(text, "dropped").split()[1] == "0"
            start_reading(slow)
            for future in futures:
                assert future is not None
                await future
            runtime.broker = None  # the test's broker, stopped by the test
