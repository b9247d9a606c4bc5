"""The connection screen: profiles listed, inline validation, save without the password, connect."""

from __future__ import annotations

from textual.widgets import Button, Input, OptionList, Select

from mqttchat.broker.server import Broker
from mqttchat.config import Profile, ProfileStore
from mqttchat.ui.screens.connect import ConnectScreen, parse_subscriptions
from tests.helpers.brokers import broker_config
from tests.helpers.scenes import make_app
from tests.helpers.waiting import until
from tests.helpers.widget_text import text_of


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
            await until(lambda: app.runtime.client.connected, what="connected with the profile", pilot=pilot)
            assert app.runtime.client.target == broker.url
            assert app.runtime.subscriptions == (("lab/#", 1),)
            assert app.runtime.client.capabilities.version == 4  # type: ignore[union-attr]


async def test_alpn_sni_and_proxy_fields_are_checked_and_saved() -> None:
    app = make_app()
    async with app.run_test(size=(130, 45)) as pilot:
        await pilot.press("c")
        screen = app.screen
        assert isinstance(screen, ConnectScreen)
        screen.query_one("#f-name", Input).value = "cloud"
        screen.query_one("#f-url", Input).value = "mqtt://broker.example:1883"
        screen.query_one("#f-alpn", Input).value = "x-amzn-mqtt-ca"
        screen.query_one("#f-proxy", Input).value = "gopher://proxy"
        await pilot.pause()
        assert "only used with TLS" in text_of(screen.query_one("#e-alpn"))
        assert "unknown proxy scheme 'gopher'" in text_of(screen.query_one("#e-proxy"))
        screen.query_one("#f-url", Input).value = "mqtts://abc-ats.iot.eu-west-1.amazonaws.com:443"
        screen.query_one("#f-server_hostname", Input).value = "iot.example"
        screen.query_one("#f-proxy", Input).value = "socks5h://bastion.lan:1080"
        await pilot.pause()
        assert text_of(screen.query_one("#e-alpn")) == "" and text_of(screen.query_one("#e-proxy")) == ""
        await pilot.press("ctrl+s")
        await pilot.pause()
        store = ProfileStore()
        store.load()
        saved = store.get("cloud")
        assert saved is not None
        assert (saved.alpn, saved.server_hostname, saved.proxy) == (
            ("x-amzn-mqtt-ca",),
            "iot.example",
            "socks5h://bastion.lan:1080",
        )
        options = saved.to_client_options()
        assert options.tls is not None and options.tls.alpn == ("x-amzn-mqtt-ca",)
        assert options.tls.server_hostname == "iot.example"
        assert options.proxy is not None and options.proxy.url == "socks5h://bastion.lan:1080"


async def test_connect_from_the_screen_through_a_proxy_with_sni_and_alpn(tmp_path_factory: object) -> None:
    """URL, CA file, ALPN and proxy typed in the form: the TLS front sees the host's name in SNI and the ALPN, and
    the proxy was asked for the name (it resolves it: this machine cannot)."""
    import tempfile
    from pathlib import Path

    from mqttchat.client.proxy import ProxyOptions  # noqa: F401  (the form's text becomes one)
    from tests.helpers.proxies import Socks5Proxy
    from tests.helpers.tls_front import TlsFront, service_certs

    name = "mqtt.service.test"
    certs = service_certs(Path(tempfile.mkdtemp()) / "certs", [name])
    async with Broker(broker_config()) as broker:
        front = await TlsFront(broker.port, certs["cert"], certs["key"], ("mqtt",)).start()
        proxy = await Socks5Proxy(hosts={name: "127.0.0.1"}).start()
        try:
            app = make_app()
            async with app.run_test(size=(130, 45)) as pilot:
                await pilot.press("c")
                screen = app.screen
                assert isinstance(screen, ConnectScreen)
                for field, value in {
                    "url": f"mqtts://{name}:{front.port}", "ca_file": str(certs["ca"]), "alpn": "mqtt",
                    "proxy": f"socks5://127.0.0.1:{proxy.port}", "subscriptions": "lab/#",
                }.items():  # fmt: skip
                    screen.query_one(f"#f-{field}", Input).value = value
                await pilot.pause()
                screen.query_one("#connect", Button).press()
                await until(
                    lambda: app.runtime.client.connected and app.runtime.client.target.startswith("mqtts"),
                    what="connected through the proxy",
                    pilot=pilot,
                )
            assert [(h.server_name, h.alpn) for h in front.hellos] == [(name, "mqtt")]
            assert [(r.host, r.kind) for r in proxy.requests] == [(name, "name")]
        finally:
            await proxy.close()
            await front.close()


async def test_a_cloud_guard_change_is_said_once_connected() -> None:
    """The app subscribes within a cloud service's limits; what its guards changed is a warning toast."""
    from mqttchat.client import ClientOptions, parse_url
    from mqttchat.runtime import Runtime
    from mqttchat.ui.app import MQTTChatApp
    from tests.helpers.waiting import until

    async with Broker(broker_config()) as broker:
        notice = "AWS IoT Core closes the connection of a client subscribing to '#' …"
        runtime = Runtime(ClientOptions(parse_url(broker.url), reconnect=False), (), embed_broker=False,
                          notices=(notice,))  # fmt: skip
        app = MQTTChatApp(runtime)
        async with app.run_test(size=(120, 40), notifications=True) as pilot:
            await until(lambda: any(n.message == notice for n in app._notifications), what="the notice", pilot=pilot)
            (shown,) = [n for n in app._notifications if n.message == notice]
            assert shown.severity == "warning"
