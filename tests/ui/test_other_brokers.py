"""The app with brokers unlike mosquitto: 3.1.1 only, QoS 2 answered by PUBACK, a connection that fails.

The fake broker plays RabbitMQ 3.10 as it shows on the wire (tests/peers runs the real one).
"""

from __future__ import annotations

from textual.widgets import Input, Label, Select

from mqttchat.broker.server import Broker
from mqttchat.client import ClientOptions, parse_url
from mqttchat.config import Profile, ProfileStore
from mqttchat.runtime import Runtime
from mqttchat.ui.app import MQTTChatApp
from mqttchat.ui.widgets.broker_panel import BrokerPanel
from mqttchat.ui.widgets.publish_pane import PublishPane
from tests.helpers.brokers import broker_config, free_port
from tests.helpers.fake_broker import fake_broker, rabbit_like
from tests.helpers.waiting import until
from tests.helpers.widget_text import text_of


def notes(app: MQTTChatApp) -> list[str]:
    return [note.message for note in app._notifications]


async def test_broker_tab_over_311_shows_what_it_announced_and_learned() -> None:
    async with Broker(broker_config(maximum_qos=1)) as broker:
        options = ClientOptions(parse_url(broker.url), client_id="ui-311", version=4)
        app = MQTTChatApp(Runtime(options, (("#", 2),), embed_broker=False), flush_hz=20)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(lambda: bool(app.runtime.granted), pilot=pilot)
            await pilot.press("b")
            panel = app.screen.query_one(BrokerPanel)
            await until(lambda: "not announced" in text_of(panel), pilot=pilot)
            text = text_of(panel)
            assert "MQTT 3.1.1" in text
            for row in ("receive maximum", "maximum QoS", "retain available", "topic alias maximum"):
                line = next(line for line in text.splitlines() if line.startswith(row))
                assert line.split(row, 1)[1].strip() == "not announced (3.1.1)", line
            assert "65535" not in text and "retain available  yes" not in text
            assert "granted QoS 1 for #  (QoS 2 asked: the broker downgrades)" in text
            assert "no retained message arrived through '#'" in text


async def test_fallback_to_311_is_said_and_remembered_in_the_profile() -> None:
    with fake_broker(rabbit_like) as fake:
        store = ProfileStore()
        store.save_profile(Profile(name="rabbit", url=f"mqtt://127.0.0.1:{fake.port}", version=5))
        profile = store.get("rabbit")
        assert profile is not None
        runtime = Runtime(profile.to_client_options(), (("#", 1),), embed_broker=False, profile_name="rabbit")
        app = MQTTChatApp(runtime, flush_hz=20)
        async with app.run_test(size=(120, 40), notifications=True) as pilot:
            await until(lambda: any("MQTT 3.1.1" in n for n in notes(app)), pilot=pilot)
            note = next(n for n in notes(app) if "MQTT 3.1.1" in n)
            assert "does not take MQTT 5.0 (it closed the connection before CONNACK)" in note
            assert "profile 'rabbit' now says MQTT 3.1.1" in note
            assert runtime.options.version == 4 and runtime.client.session.version == 4
        reloaded = ProfileStore()
        reloaded.load()
        saved = reloaded.get("rabbit")
        assert saved is not None and saved.version == 311


async def test_publish_pane_says_a_qos2_publish_was_delivered_at_qos1() -> None:
    with fake_broker(rabbit_like) as fake:
        options = ClientOptions(parse_url(f"mqtt://127.0.0.1:{fake.port}"), client_id="ui-q2", version=4)
        app = MQTTChatApp(Runtime(options, (("#", 1),), embed_broker=False), flush_hz=20)
        async with app.run_test(size=(120, 40), notifications=True) as pilot:
            await until(lambda: app.runtime.client.connected, pilot=pilot)
            await pilot.press("p")
            pane = app.screen.query_one(PublishPane)
            pane.query_one("#pub-topic", Input).value = "lab/valve"
            pane.query_one("#pub-payload").text = "open"  # type: ignore[attr-defined]
            pane.query_one("#pub-qos", Select).value = 2
            await pilot.press("ctrl+s")
            outcome = app.screen.query_one("#pub-outcome", Label)
            await until(lambda: "QoS 1" in text_of(outcome), pilot=pilot)
            assert "acknowledged with PUBACK: delivered at QoS 1, not exactly once" in text_of(outcome)
            await until(lambda: any("delivered at QoS 1" in n for n in notes(app)), pilot=pilot)
            assert app.runtime.client.connected and app.runtime.client.stats.connects == 1


async def test_chat_input_does_not_read_connecting_after_a_failed_connect() -> None:
    options = ClientOptions(parse_url(f"mqtt://127.0.0.1:{free_port()}"), reconnect=False)
    app = MQTTChatApp(Runtime(options, embed_broker=False), view="chat", flush_hz=20)
    async with app.run_test(size=(120, 40)) as pilot:
        chat_input = app.screen.query_one("#chat-input", Input)
        await until(lambda: app.runtime.chat_error is not None, pilot=pilot)
        await until(lambda: chat_input.placeholder != "connecting…", pilot=pilot)
        assert chat_input.placeholder == "not connected: see below"
