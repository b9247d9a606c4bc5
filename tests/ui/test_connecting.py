"""Connecting as a new user does: a broker that is not up yet, credentials the broker refuses, and the connection
screen (c) that opens on the connection that failed, typed into at human pace."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input, Static

from mqttchat.broker.auth import hash_password
from mqttchat.broker.config import with_overrides
from mqttchat.broker.server import Broker
from mqttchat.client import ClientOptions, Status, parse_url
from mqttchat.runtime import Runtime
from mqttchat.ui.app import MQTTChatApp
from mqttchat.ui.screens.connect import ConnectScreen
from mqttchat.ui.widgets.status_bar import StatusBar
from tests.helpers.brokers import broker_config, free_port
from tests.helpers.typist import spell, type_slowly
from tests.helpers.waiting import until
from tests.helpers.widget_text import text_of

SIZE = (120, 40)


def explorer(url: str, **options: Any) -> MQTTChatApp:
    client_options = ClientOptions(parse_url(url), client_id="ui-newcomer", **options)
    return MQTTChatApp(Runtime(client_options, (("#", 0),), embed_broker=False), flush_hz=20)


def status_line(pilot: Pilot[Any]) -> str:
    return text_of(pilot.app.screen.query_one(StatusBar), width=200)


def password_broker(tmp_path: Path) -> Broker:
    passwd = tmp_path / "passwd"
    passwd.write_text(f"alice:{hash_password('secret', 1000)}\n")
    return Broker(broker_config(allow_anonymous=False, password_file=passwd))


async def test_the_explorer_retries_until_the_broker_comes_and_says_why_meanwhile() -> None:
    port = free_port()
    app = explorer(f"mqtt://127.0.0.1:{port}", reconnect_min_delay=0.2, reconnect_max_delay=0.4)
    async with app.run_test(size=SIZE) as pilot:
        runtime = app.runtime
        await until(
            lambda: runtime.failure is not None and runtime.failure.attempts >= 2, what="2 attempts", pilot=pilot
        )
        await until(lambda: "in " in status_line(pilot), what="the next attempt in the status bar", pilot=pilot)
        line = status_line(pilot)
        assert "● disconnected" in line and "connection refused" in line, line
        next_attempt = re.search(r"│ attempt (\d+) in \d+ s │", line)
        assert next_attempt is not None and int(next_attempt[1]) >= 3, line
        async with Broker(with_overrides(broker_config(), port=port)):
            await until(lambda: runtime.client.connected, what="connected once the broker is up", pilot=pilot)
            await until(lambda: "● connected" in status_line(pilot), what="the status bar says connected", pilot=pilot)
            assert runtime.failure is None and "attempt" not in status_line(pilot)
            await until(lambda: "#" in runtime.granted, what="the subscriptions made", pilot=pilot)
        await app.runtime.stop()


async def test_refused_credentials_are_not_retried_and_c_opens_on_the_failed_connection(tmp_path: Path) -> None:
    """mqttchat -p PORT -u alice -P wrong, then c: the form holds this connection and the broker's reason, the
    password field is focused and empty; the right password and Enter connect."""
    async with password_broker(tmp_path) as broker:
        app = explorer(broker.url, username="alice", password="wrong")
        async with app.run_test(size=SIZE) as pilot:
            runtime = app.runtime
            await until(lambda: runtime.failure is not None, what="the refusal", pilot=pilot)
            assert runtime.failure is not None and runtime.failure.credentials and runtime.failure.retry_at is None
            assert "not retrying" in status_line(pilot) and "Bad User Name or Password" in status_line(pilot)
            await type_slowly(pilot, "c")
            screen = app.screen
            assert isinstance(screen, ConnectScreen)
            assert screen.query_one("#f-url", Input).value == broker.url
            assert screen.query_one("#f-username", Input).value == "alice"
            assert "Bad User Name or Password (0x86)" in text_of(screen.query_one("#connect-problem", Static))
            password = screen.query_one("#f-password", Input)
            assert app.focused is password and password.value == ""
            await type_slowly(pilot, *spell("secret"), "enter")
            await until(lambda: app.runtime.client.connected, what="connected with the right password", pilot=pilot)
            assert app.runtime.options.effective_password == "secret"
            await app.runtime.stop()


async def test_no_password_given_asks_for_one(tmp_path: Path) -> None:
    """A profile saved without its password (here: -u alice alone) is refused: the app asks for the password."""
    from mqttchat.ui.screens.dialogs import PasswordDialog

    async with password_broker(tmp_path) as broker:
        app = explorer(broker.url, username="alice")
        async with app.run_test(size=SIZE) as pilot:
            await until(lambda: isinstance(app.screen, PasswordDialog), what="the password prompt", pilot=pilot)
            assert "Bad User Name or Password" in text_of(app.screen.query_one("#password-refusal", Static))
            assert app.focused is app.screen.query_one("#password", Input)
            await type_slowly(pilot, *spell("secret"), "enter")
            await until(lambda: app.runtime.client.connected, what="connected with the password typed", pilot=pilot)
            assert app.runtime.client.status is Status.CONNECTED
            await app.runtime.stop()


async def test_the_form_opens_on_the_current_connection_url_first_and_enter_connects_from_any_field() -> None:
    async with Broker(broker_config()) as first, Broker(broker_config()) as second:
        app = explorer(first.url, username="bob")
        async with app.run_test(size=SIZE) as pilot:
            await until(lambda: app.runtime.client.connected, what="connected", pilot=pilot)
            await type_slowly(pilot, "c")
            screen = app.screen
            assert isinstance(screen, ConnectScreen)
            url = screen.query_one("#f-url", Input)
            assert app.focused is url and url.value == first.url
            assert screen.query_one("#f-username", Input).value == "bob"
            await type_slowly(pilot, "ctrl+u", *spell(second.url), "tab")  # from the user name field, then Enter
            assert app.focused is screen.query_one("#f-username", Input)
            await type_slowly(pilot, "enter")
            await until(lambda: app.runtime.client.connected and app.runtime.client.target == second.url,
                        what="connected to the second broker", pilot=pilot)  # fmt: skip
            await app.runtime.stop()
