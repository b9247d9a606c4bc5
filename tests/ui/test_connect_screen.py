"""The connection screen: profiles listed, inline validation, save without the password, connect."""

from __future__ import annotations

import asyncio

from textual.widgets import Button, Input, OptionList, Select

from mqttchat.broker.server import Broker
from mqttchat.config import Profile, ProfileStore
from mqttchat.ui.screens.connect import ConnectScreen, parse_subscriptions
from tests.conftest import broker_config
from tests.ui.conftest import make_app, text_of


def test_subscription_field_parsing() -> None:
    assert parse_subscriptions("#, home/+/temp:1, a:2, weird:x") == (
        ("#", 0),
        ("home/+/temp", 1),
        ("a", 2),
        ("weird:x", 0),
    )


async def test_validation_is_inline_and_save_keeps_secrets_out() -> None:
    app = make_app()
    async with app.run_test(size=(130, 45)) as pilot:
        await pilot.press("c")
        screen = app.screen
        assert isinstance(screen, ConnectScreen)
        screen.query_one("#f-name", Input).value = "lab"
        screen.query_one("#f-url", Input).value = "http://nope"
        screen.query_one("#f-keepalive", Input).value = "soon"
        screen.query_one("#f-subscriptions", Input).value = "a/#/b"
        await pilot.pause()
        assert "unknown URL scheme" in text_of(screen.query_one("#e-url"))
        assert "not a whole number" in text_of(screen.query_one("#e-keepalive"))
        assert "'#' must be the last level" in text_of(screen.query_one("#e-subscriptions"))
        await pilot.press("ctrl+s")
        assert not ProfileStore().path.exists()
        screen.query_one("#f-url", Input).value = "mqtts://broker.example:8883"
        screen.query_one("#f-keepalive", Input).value = "30"
        screen.query_one("#f-subscriptions", Input).value = "home/#:1"
        screen.query_one("#f-username", Input).value = "alice"
        screen.query_one("#f-password", Input).value = "hunter2"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        store = ProfileStore()
        assert "hunter2" not in store.path.read_text()  # not stored unless asked
        store.load()
        saved = store.get("lab")
        assert saved is not None and saved.url == "mqtts://broker.example:8883" and saved.keepalive == 30
        assert saved.subscriptions == (("home/#", 1),)
        assert "saved 'lab'" in text_of(screen.query_one("#form-status"))
        options = screen.query_one("#profile-list", OptionList)
        assert any(str(options.get_option_at_index(i).prompt).startswith("lab") for i in range(options.option_count))


async def test_connect_with_a_saved_profile() -> None:
    async with Broker(broker_config()) as broker:
        store = ProfileStore()
        store.save_profile(Profile("bench", broker.url, version=311, subscriptions=(("lab/#", 1),)), make_default=True)
        app = make_app()
        async with app.run_test(size=(130, 45)) as pilot:
            await pilot.press("c")
            screen = app.screen
            assert screen.query_one("#f-name", Input).value == "current"  # it opens on the connection in use
            await pilot.press("shift+tab")  # to the saved profiles, the default first
            assert app.focused is screen.query_one("#profile-list", OptionList)
            await pilot.press("enter")
            assert screen.query_one("#f-name", Input).value == "bench"
            assert screen.query_one("#f-version", Select).value == 311
            screen.query_one("#connect", Button).press()
            async with asyncio.timeout(10):
                while not app.runtime.client.connected:
                    await pilot.pause(0.05)
            assert app.runtime.client.target == broker.url
            assert app.runtime.subscriptions == (("lab/#", 1),)
            assert app.runtime.client.capabilities.version == 4  # type: ignore[union-attr]
