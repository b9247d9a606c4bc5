"""Several brokers at once: a tab per broker, each with its own status, tree, publish target and share of the one
history budget; the chat sits on one while the explorer watches the others. Two of our brokers on free ports."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from textual.widgets import Input

from mqttchat.broker.server import Broker
from mqttchat.client import ClientOptions, MQTTClient, Status, parse_url
from mqttchat.config import Profile, ProfileStore
from mqttchat.runtime import Runtime
from mqttchat.ui.app import MQTTChatApp
from mqttchat.ui.screens.chat import ChatScreen
from mqttchat.ui.screens.connect import ConnectScreen
from mqttchat.ui.screens.main import MainScreen
from mqttchat.ui.widgets.publish_pane import PublishPane
from mqttchat.ui.widgets.status_bar import StatusBar
from mqttchat.ui.widgets.topic_tree import TopicTreeView
from mqttchat.ui.widgets.view_tabs import ViewTabs
from tests.helpers.brokers import broker_config
from tests.helpers.typist import type_slowly
from tests.helpers.waiting import until
from tests.helpers.widget_text import text_of

SIZE = (120, 36)
MiB = 1024 * 1024


@pytest.fixture
async def dev_and_prod() -> AsyncIterator[tuple[Broker, Broker]]:
    async with Broker(broker_config()) as dev, Broker(broker_config()) as prod:
        yield dev, prod


def runtime_for(url: str, name: str) -> Runtime:
    options = ClientOptions(parse_url(url), client_id=f"ui-{name}", reconnect=True)
    return Runtime(options, (("#", 0),), embed_broker=False, profile_name=name)


async def retain(url: str, topic: str, payload: bytes) -> None:
    client = MQTTClient(ClientOptions(parse_url(url), client_id=f"seed-{topic.replace('/', '-')}"))
    await client.connect()
    await client.publish(topic, payload, 1, True)
    await client.disconnect()


def status_line(app: MQTTChatApp) -> str:
    return text_of(app.screen.query_one(StatusBar), width=300)


def tab_labels(app: MQTTChatApp) -> list[str]:
    return [tab.label.plain for tab in app.screen.query_one(ViewTabs).query("Tab")]  # type: ignore[attr-defined]


def shown_runtime(app: MQTTChatApp) -> Runtime | None:
    screen = app.screen
    return screen.runtime if isinstance(screen, MainScreen) else None


async def test_two_brokers_side_by_side_each_with_its_own_tree_status_and_tab(
    dev_and_prod: tuple[Broker, Broker],
) -> None:
    dev_broker, prod_broker = dev_and_prod
    await retain(dev_broker.url, "site/dev-only", b"d")
    await retain(prod_broker.url, "site/prod-only", b"p")
    dev, prod = runtime_for(dev_broker.url, "dev"), runtime_for(prod_broker.url, "prod")
    app = MQTTChatApp(dev, others=[prod], flush_hz=20)
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: dev.tree.get("site/dev-only") and prod.tree.get("site/prod-only"), pilot=pilot,
                    what="each tree has its broker's retained message")  # fmt: skip
        assert dev.tree.get("site/prod-only") is None and prod.tree.get("site/dev-only") is None
        await until(lambda: tab_labels(app) == ["● dev", "● prod", "Chat (dev) ^t"], pilot=pilot, what="the tabs")
        assert shown_runtime(app) is dev
        await until(lambda: "● connected" in status_line(app) and dev_broker.url.split("//")[1] in status_line(app),
                    pilot=pilot, what="dev's status")  # fmt: skip
        await pilot.press("right_square_bracket")
        await until(lambda: shown_runtime(app) is prod, pilot=pilot, what="] shows prod")
        await until(lambda: prod_broker.url.split("//")[1] in status_line(app), pilot=pilot, what="prod's status")
        assert app.screen.query_one(ViewTabs).active == f"broker-{app._serial(prod)}"
        await pilot.press("right_square_bracket")  # round again
        await until(lambda: shown_runtime(app) is dev, pilot=pilot, what="] from the last broker shows the first")
        await pilot.press("left_square_bracket")
        await until(lambda: shown_runtime(app) is prod, pilot=pilot, what="[ goes back")
        # prod goes down: its tab's dot turns yellow (reconnecting) while dev's stays green.
        await prod_broker.stop()
        await until(lambda: prod.client.status is Status.RECONNECTING, pilot=pilot, what="prod reconnecting")
        await until(lambda: _dot(app, prod) == "yellow", pilot=pilot, what="prod's dot turned yellow")
        assert _dot(app, dev) == "green"
        await app._quit()


def _dot(app: MQTTChatApp, runtime: Runtime) -> str | None:
    """The colour of the dot in ``runtime``'s tab, as shown."""
    tabs = app.screen.query_one(ViewTabs)
    entry = next((e for e in tabs.entries if e.id == f"broker-{app._serial(runtime)}"), None)
    if entry is None or not entry.label.spans:
        return None
    tab = tabs.get_tab(entry.id)
    assert tab is not None and tab.label.plain == entry.label.plain
    return str(entry.label.spans[0].style)


async def test_switching_brokers_keeps_the_topic_selected_and_publish_goes_to_the_tabs_broker(
    dev_and_prod: tuple[Broker, Broker],
) -> None:
    """Comparing dev and prod: the topic selected on dev is selected on prod after ]; the publish pane of prod's
    tab publishes to prod only."""
    dev_broker, prod_broker = dev_and_prod
    for url, value in ((dev_broker.url, b"19"), (prod_broker.url, b"23")):
        await retain(url, "plant/boiler/temp", value)
        await retain(url, "plant/boiler/state", b"on")
    dev, prod = runtime_for(dev_broker.url, "dev"), runtime_for(prod_broker.url, "prod")
    app = MQTTChatApp(dev, others=[prod], flush_hz=20)
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: dev.tree.get("plant/boiler/temp") and prod.tree.get("plant/boiler/temp"), pilot=pilot)
        await until(lambda: app.screen.query_one(TopicTreeView).select_topic("plant/boiler/temp"), pilot=pilot)
        await pilot.press("right_square_bracket")
        await until(lambda: shown_runtime(app) is prod, pilot=pilot, what="prod shown")
        tree = app.screen.query_one(TopicTreeView)
        assert tree.highlighted is not None and tree.highlighted.topic == "plant/boiler/temp"
        await pilot.press("p")
        app.screen.query_one("#pub-topic", Input).value = "plant/boiler/setpoint"
        app.screen.query_one("#pub-payload").text = "21"  # type: ignore[attr-defined]
        app.screen.query_one(PublishPane).action_publish()  # type: ignore[attr-defined]
        await until(lambda: prod.tree.get("plant/boiler/setpoint") is not None, pilot=pilot, what="published on prod")
        assert dev.tree.get("plant/boiler/setpoint") is None
        await app._quit()


async def test_the_chat_sits_on_one_broker_while_the_explorer_watches_the_other(
    dev_and_prod: tuple[Broker, Broker],
) -> None:
    dev_broker, prod_broker = dev_and_prod
    dev, prod = runtime_for(dev_broker.url, "dev"), runtime_for(prod_broker.url, "prod")
    dev.chat_nick, prod.chat_nick = "alice", "alice"
    app = MQTTChatApp(dev, others=[prod], flush_hz=20)
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: dev.client.connected and prod.client.connected, pilot=pilot, what="both connected")
        await pilot.press("right_square_bracket")
        await until(lambda: shown_runtime(app) is prod, pilot=pilot)
        await pilot.press("ctrl+t")
        await until(lambda: isinstance(app.screen, ChatScreen) and dev.chat is not None, pilot=pilot,
                    what="the chat connected on dev")  # fmt: skip
        assert dev.chat is not None and dev.chat.client.options.target.port == dev_broker.port
        assert prod.chat is None and prod.client.connected
        await pilot.press("ctrl+t")  # back to the explorer shown last: prod's
        await until(lambda: shown_runtime(app) is prod, pilot=pilot, what="ctrl+t back to prod's explorer")
        await app.chat_on(prod)
        await until(lambda: prod.chat is not None, pilot=pilot, what="the chat moved to prod")
        assert dev.chat is None and app.runtime is prod
        assert prod.chat is not None and prod.chat.client.options.target.port == prod_broker.port
        # The tabs follow on the next refresh.
        await until(lambda: tab_labels(app)[-1] == "Chat (prod) ^t", pilot=pilot, what="the chat's tab names prod")
        await app._quit()


async def test_one_history_budget_is_shared_and_shown() -> None:
    """Not connected (nothing to connect to): messages put into the trees as the client's reader would."""
    dev = runtime_for("mqtt://127.0.0.1:1", "dev")
    prod = runtime_for("mqtt://127.0.0.1:2", "prod")
    dev.tree.history_budget = 8 * MiB  # the settings' history_budget_mb, given to the first broker's tree
    app = MQTTChatApp(dev, others=[prod], connect=False, flush_hz=20)
    async with app.run_test(size=SIZE) as pilot:
        assert app.history_total == 8 * MiB
        for i in range(12_000):  # prod: a flood of 1 KB messages, 14 MB of history wanted
            prod.tree.ingest(f"flood/{i % 200}", bytes(1000), received_at=float(i))
        dev.tree.ingest("quiet/a", b"x", received_at=1.0)
        dev.tree.ingest("quiet/a", b"y", received_at=2.0)
        app._share_budget()
        prod.tree.ingest("flood/0", bytes(1000), received_at=20_000.0)  # evicts down to its share
        assert dev.tree.history_budget + prod.tree.history_budget <= 8 * MiB
        assert dev.tree.stats.history_bytes + prod.tree.stats.history_bytes <= 8 * MiB
        assert prod.tree.stats.evicted_entries > 0 and dev.tree.stats.evicted_entries == 0
        assert prod.tree.history_budget > 2 * dev.tree.history_budget  # the quiet one does not hold half of it idle
        app.flush()
        await until(lambda: "of 8.0 MiB shared" in status_line(app), pilot=pilot, what="the share shown")
        await app.close_broker(prod)
        assert dev.tree.history_budget == 8 * MiB and dev.history_share is None
        await until(lambda: tab_labels(app) == ["Explorer ^t", "Chat ^t"], pilot=pilot, what="one broker again")
        assert "shared" not in status_line(app)


async def test_o_opens_another_broker_beside_from_the_connection_screen(dev_and_prod: tuple[Broker, Broker]) -> None:
    dev_broker, prod_broker = dev_and_prod
    await retain(prod_broker.url, "only/on/prod", b"1")
    dev = runtime_for(dev_broker.url, "dev")
    app = MQTTChatApp(dev, flush_hz=20)
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: dev.client.connected, pilot=pilot)
        await type_slowly(pilot, "o")
        screen = app.screen
        assert isinstance(screen, ConnectScreen) and screen.beside
        assert str(screen.query_one("#connect").label) == "Open beside"  # type: ignore[attr-defined]
        screen.query_one("#f-url", Input).value = prod_broker.url
        screen.query_one("#f-name", Input).value = "prod"
        await pilot.press("enter")
        await until(lambda: len(app.runtimes) == 2, pilot=pilot, what="a second broker")
        prod = app.runtimes[1]
        await until(lambda: shown_runtime(app) is prod, pilot=pilot, what="its tab shown")
        await until(lambda: prod.tree.get("only/on/prod") is not None, pilot=pilot, what="prod's tree")
        assert dev.client.connected and dev.tree.get("only/on/prod") is None
        await until(lambda: tab_labels(app) == ["● dev", "● prod", "Chat (dev) ^t"], pilot=pilot, what="tabs")
        await app._quit()


async def test_c_on_a_brokers_tab_replaces_that_broker_only(dev_and_prod: tuple[Broker, Broker]) -> None:
    dev_broker, prod_broker = dev_and_prod
    async with Broker(broker_config()) as staging_broker:
        dev, prod = runtime_for(dev_broker.url, "dev"), runtime_for(prod_broker.url, "prod")
        app = MQTTChatApp(dev, others=[prod], flush_hz=20)
        async with app.run_test(size=SIZE) as pilot:
            await until(lambda: dev.client.connected and prod.client.connected, pilot=pilot)
            await pilot.press("right_square_bracket")
            await until(lambda: shown_runtime(app) is prod, pilot=pilot)
            app.switch_profile(Profile(name="staging", url=staging_broker.url), prod)
            await until(lambda: app.runtimes[1] is not prod and app.runtimes[1].client.connected, pilot=pilot,
                        what="prod replaced by staging, connected")  # fmt: skip
            staging = app.runtimes[1]
            assert app.runtimes[0] is dev and dev.client.connected and app.runtime is dev
            assert not prod.client.connected
            await until(lambda: shown_runtime(app) is staging, pilot=pilot, what="staging's tab shown in its place")
            await until(lambda: tab_labels(app) == ["● dev", "● staging", "Chat (dev) ^t"], pilot=pilot)
            await app._quit()


def test_the_command_line_opens_each_url_and_profile_in_a_tab(monkeypatch: pytest.MonkeyPatch) -> None:
    from mqttchat.commands import app as app_command

    store = ProfileStore()
    store.save_profile(Profile(name="dev", url="mqtt://dev.example:1883"))
    store.save_profile(Profile(name="prod", url="mqtts://prod.example:8883"))
    seen: list[list[Runtime]] = []
    monkeypatch.setattr(MQTTChatApp, "run", lambda self: seen.append(list(self.runtimes)))
    assert app_command.main(["dev", "prod"]) == 0
    assert [(r.profile_name, r.options.target.url) for r in seen[-1]] == [
        ("dev", "mqtt://dev.example:1883"), ("prod", "mqtts://prod.example:8883")]  # fmt: skip
    assert app_command.main(["--profile", "prod", "mqtt://127.0.0.1:1883", "mqtt://127.0.0.1:1884/a/b"]) == 0
    prod, local, other = seen[-1]
    assert prod.profile_name == "prod" and local.options.target.url == "mqtt://127.0.0.1:1883"
    assert other.subscriptions == (("a/b", 0),) and local.subscriptions == (("#", 0),)
    # One embedded broker at most: for the first broker that is this machine's default port.
    assert app_command.main(["mqtt://127.0.0.1:1883", "mqtt://localhost:1883"]) == 0
    assert [r.embed_broker for r in seen[-1]] == [True, False]


def test_a_bad_nick_is_still_said_by_mqttchat_chat(capsys: pytest.CaptureFixture[str]) -> None:
    from mqttchat.commands import app as app_command

    assert app_command.main(["chat", "--nick", "al/ice", "mqtt://127.0.0.1:1884", "mqtt://127.0.0.1:1885"]) == 2
    assert capsys.readouterr().err.startswith("mqttchat chat: ")
