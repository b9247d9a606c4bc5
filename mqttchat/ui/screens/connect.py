"""ConnectScreen: saved connection profiles and a form to edit, save, delete and connect with them."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Select, Static, Switch
from textual.widgets.option_list import Option

from mqttchat.config import DEFAULT_PROFILE, ConfigError, Profile, ProfileStore
from mqttchat.protocol import ProtocolVersion
from mqttchat.ui.safe import network_text

if TYPE_CHECKING:
    from mqttchat.client import ClientOptions
    from mqttchat.runtime import Runtime

NEW = "\x00new"

#: Form fields: (id, label, placeholder); text inputs only (switches and selects are composed separately). In the
#: order of the form: what a connection needs first (URL, user, password), the profile's name, then the rest.
TEXT_FIELDS = [
    ("url", "URL", "mqtt://127.0.0.1:1883, mqtts://host:8883, wss://host/mqtt"),
    ("username", "User name", ""),
    ("password", "Password", "or ${ENV_VARIABLE}"),
    ("name", "Profile name", "to save it as, e.g. local"),
    ("client_id", "Client id", "empty: assigned by the broker"),
    ("keepalive", "Keepalive (s)", "60"),
    ("session_expiry", "Session expiry", "seconds the broker keeps the session (MQTT 5)"),
    ("subscriptions", "Subscribe to", "# , home/+/temp:1"),
    ("ca_file", "CA file", "TLS: CA certificates (empty: system store)"),
    ("cert_file", "Certificate", "TLS client certificate"),
    ("key_file", "Key", "TLS client key"),
    ("server_hostname", "Server name", "TLS: name sent (SNI) and verified (empty: the host)"),
    ("alpn", "ALPN", "TLS: protocols to offer, e.g. x-amzn-mqtt-ca"),
    ("proxy", "Proxy", "socks5://host:1080, http://host:3128, none (empty: ALL_PROXY…)"),
    ("will_topic", "Will topic", "sent by the broker if we vanish"),
    ("will_payload", "Will payload", "offline"),
]


def current_profile(runtime: Runtime) -> Profile:
    """The connection ``runtime`` uses (or tried to use), as a profile: named after the profile it came from, or
    "current"; the password included (it is saved only if asked)."""
    options = runtime.options
    tls = options.tls
    will = options.will
    saved: Profile | None = None
    if runtime.profile_name:
        store = ProfileStore()
        with contextlib.suppress(ConfigError):
            store.load()
            saved = store.get(runtime.profile_name)
    if saved is not None and (saved.cloud is not None or saved.auth_method):
        # A cloud preset or enhanced authentication makes options the form cannot say back: the saved profile.
        return saved
    proxy = saved.proxy if saved is not None else _proxy_text(options)
    return Profile(
        name=runtime.profile_name or "current",
        url=options.target.url,
        version=311 if options.version == ProtocolVersion.MQTT_3_1_1 else 5,
        client_id=options.client_id,
        username=options.effective_username,
        password=options.effective_password,
        save_password=saved is not None and saved.save_password,
        keepalive=options.keepalive,
        clean_start=options.clean_start,
        session_expiry=options.session_expiry or 0,
        subscriptions=tuple(runtime.subscriptions),
        ca_file=tls.ca_file if tls else None,
        cert_file=tls.cert_file if tls else None,
        key_file=tls.key_file if tls else None,
        insecure=bool(tls and tls.insecure),
        server_hostname=tls.server_hostname if tls else None,
        alpn=tls.alpn if tls else (),
        proxy=proxy,
        will_topic=will.topic if will else None,
        will_payload=will.payload.decode(errors="replace") if will else "",
        will_qos=will.qos if will else 0,
        will_retain=bool(will and will.retain),
    )


def _proxy_text(options: ClientOptions) -> str | None:
    """The proxy of ``options`` as a URL (credentials included), unless it is the environment's (or none)."""
    from mqttchat.client.proxy import proxy_from_environment

    proxy, target = options.proxy, options.target
    environment = None
    with contextlib.suppress(ValueError):
        environment = proxy_from_environment(target.host, target.port, tls=target.tls, websocket=target.websocket)
    if proxy is None:
        return "none" if environment is not None else None
    if proxy == environment:
        return None
    if proxy.username is None:
        return proxy.url
    from urllib.parse import quote

    credentials = quote(proxy.username, safe="") + (":" + quote(proxy.password, safe="") if proxy.password else "")
    return proxy.url.replace("://", f"://{credentials}@", 1)


FIELD_LABELS = {field_id: (label, placeholder) for field_id, label, placeholder in TEXT_FIELDS}


def format_subscriptions(subs: tuple[tuple[str, int], ...]) -> str:
    return ", ".join(f if qos == 0 else f"{f}:{qos}" for f, qos in subs)


def parse_subscriptions(text: str) -> tuple[tuple[str, int], ...]:
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        topic_filter, sep, qos = part.rpartition(":")
        if sep and qos in ("0", "1", "2") and topic_filter:
            out.append((topic_filter, int(qos)))
        else:
            out.append((part, 0))
    return tuple(out)


class ConnectScreen(ModalScreen[Profile | None]):
    """Pick or edit a profile; dismisses with the profile to connect with (saved or not), or None.

    It opens on ``current`` (the connection in use, or the one that failed), with ``problem`` (why it failed,
    the broker's reason included) above the form, and the URL focused; or, with ``ask_password`` (the broker
    refused the credentials), the password field, emptied. With ``beside``, the profile chosen is for another broker
    to open beside those open: its button reads "Open beside".

    | Key | Action |
    | --- | --- |
    | enter (in a text field) | connect |
    | ctrl+s | save the profile |
    | escape | cancel |
    | tab / shift+tab | next / previous field: URL, user, password, the profile's name, the buttons, the rest |
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "save", "Save", priority=True),
    ]

    DEFAULT_CSS: ClassVar[str] = """
    ConnectScreen { align: center middle; }
    ConnectScreen > Horizontal { width: 110; max-width: 100%; height: 90%; max-height: 100%;
                                 border: thick $accent; background: $surface; }
    ConnectScreen #profiles { width: 26; max-width: 30%; border-right: tall $panel; }
    ConnectScreen #form { width: 1fr; padding: 0 1; }
    ConnectScreen .field { height: auto; }
    ConnectScreen .field > Label { width: 15; padding: 1 1 1 0; }
    ConnectScreen .field > Input { width: 1fr; }
    ConnectScreen .field > Select { width: 20; }
    ConnectScreen .field > Label.inline { width: auto; padding: 1 1 1 2; }
    ConnectScreen .problem { color: $error; height: auto; padding-left: 15; }
    ConnectScreen #connect-problem { color: $error; height: auto; padding: 0 0 1 0; display: none; }
    ConnectScreen #connect-problem.shown { display: block; }
    ConnectScreen #buttons { height: auto; margin: 1 0; }
    ConnectScreen #buttons Button { margin-right: 1; }
    ConnectScreen #form-status { height: auto; }
    ConnectScreen .section { color: $text-muted; text-style: bold; margin-top: 1; }
    ConnectScreen.-narrow #buttons Button { min-width: 8; }
    """

    def __init__(
        self,
        store: ProfileStore | None = None,
        *,
        current: Profile | None = None,
        problem: str | None = None,
        ask_password: bool = False,
        beside: bool = False,
    ) -> None:
        super().__init__()
        self.store = store or ProfileStore()
        self.current = current
        self.problem = problem
        self.ask_password = ask_password
        #: The profile chosen opens beside the brokers open (its own tab), instead of replacing this one.
        self.beside = beside
        self.load_error: str | None = None
        self._shown: Profile = DEFAULT_PROFILE
        try:
            self.store.load()
        except ConfigError as exc:
            self.load_error = str(exc)

    def _text_field(self, field_id: str) -> ComposeResult:
        label, placeholder = FIELD_LABELS[field_id]
        with Horizontal(classes="field"):
            yield Label(label)
            yield Input(placeholder=placeholder, id=f"f-{field_id}", password=field_id == "password")
        yield Static("", id=f"e-{field_id}", classes="problem")

    def compose(self) -> ComposeResult:
        with Horizontal():
            with Vertical(id="profiles"):
                yield Label("Profiles", classes="title")
                yield OptionList(id="profile-list")
            form = VerticalScroll(id="form")
            form.can_focus = False  # a focused field scrolls into view
            with form:
                yield Static("", id="connect-problem")
                for field_id in ("url", "username", "password"):
                    yield from self._text_field(field_id)
                with Horizontal(classes="field"):
                    yield Label("Save password")
                    yield Switch(False, id="f-save_password")
                    yield Label("in clear text", classes="inline")
                yield from self._text_field("name")
                with Horizontal(id="buttons"):
                    yield Button("Open beside" if self.beside else "Connect", id="connect", variant="primary")
                    yield Button("Save ^s", id="save")
                    yield Button("Delete", id="delete", variant="error")
                    yield Button("Cancel", id="cancel")
                yield Static("", id="form-status")
                yield Label("Session", classes="section")
                with Horizontal(classes="field"):
                    yield Label("MQTT version")
                    versions = [(ProtocolVersion.MQTT_5.label, 5), (ProtocolVersion.MQTT_3_1_1.label, 311)]
                    yield Select(versions, value=5, allow_blank=False, id="f-version")
                with Horizontal(classes="field"):
                    yield Label("Clean start")
                    yield Switch(True, id="f-clean_start")
                    yield Label("a new session on each connection", classes="inline")
                for field_id in ("client_id", "keepalive", "session_expiry", "subscriptions"):
                    yield from self._text_field(field_id)
                yield Label("TLS", classes="section")
                for field_id in ("ca_file", "cert_file", "key_file", "server_hostname", "alpn"):
                    yield from self._text_field(field_id)
                with Horizontal(classes="field"):
                    yield Label("Insecure TLS")
                    yield Switch(False, id="f-insecure")
                    yield Label("skip certificate checks", classes="inline")
                yield Label("Proxy", classes="section")
                yield from self._text_field("proxy")
                yield Label("Will", classes="section")
                for field_id in ("will_topic", "will_payload"):
                    yield from self._text_field(field_id)
                with Horizontal(classes="field"):
                    yield Label("Will QoS")
                    yield Select([("QoS 0", 0), ("QoS 1", 1), ("QoS 2", 2)], value=0, allow_blank=False,
                                 id="f-will_qos")  # fmt: skip
                with Horizontal(classes="field"):
                    yield Label("Will retained")
                    yield Switch(False, id="f-will_retain")

    def on_mount(self) -> None:
        self._fill_list()
        options = self.query_one("#profile-list", OptionList)
        shown = self.current.name if self.current is not None else None
        for name in (shown, self.store.default_name):  # the profile shown if saved, else the default
            if name is not None and self.store.get(name) is not None:
                options.highlighted = options.get_option_index(name)
                break
        self.show_profile(self.current if self.current is not None else self.store.default_profile())
        if self.load_error:
            self.status(self.load_error, error=True)
        elif self.beside:
            self.status("This broker opens in a tab of its own, beside the brokers open ([ and ] move between them).")
        if self.problem:
            problem = self.query_one("#connect-problem", Static)
            problem.update(network_text(f"The last attempt failed: {self.problem}"))
            problem.add_class("shown")
        if self.ask_password:  # the broker refused it: an empty field to type the right one into
            password = self.query_one("#f-password", Input)
            password.value = ""
            password.focus()
        else:
            self.query_one("#f-url", Input).focus()

    def on_resize(self) -> None:
        self.set_class(self.size.width < 100, "-narrow")

    def _fill_list(self) -> None:
        options = self.query_one("#profile-list", OptionList)
        options.clear_options()
        default = self.store.default_name
        for profile in self.store.profiles():
            mark = " ★" if profile.name == default else ""
            options.add_option(Option(f"{profile.name}{mark}", id=profile.name))
        options.add_option(Option("+ new profile", id=NEW))

    def status(self, text: str, error: bool = False) -> None:
        """A line under the form; it may quote a broker's answer or a file's content: never parsed as markup."""
        widget = self.query_one("#form-status", Static)
        widget.update(network_text(text))
        widget.styles.color = "red" if error else None

    # ------------------------------------------------------------------------------------------ form ↔ profile

    def show_profile(self, profile: Profile) -> None:
        values = {
            "name": profile.name, "url": profile.url, "client_id": profile.client_id,
            "username": profile.username or "", "password": profile.password or "",
            "keepalive": str(profile.keepalive), "session_expiry": str(profile.session_expiry),
            "subscriptions": format_subscriptions(profile.subscriptions), "ca_file": profile.ca_file or "",
            "cert_file": profile.cert_file or "", "key_file": profile.key_file or "",
            "server_hostname": profile.server_hostname or "", "will_topic": profile.will_topic or "",
            "will_payload": profile.will_payload, "alpn": ", ".join(profile.alpn), "proxy": profile.proxy or "",
        }  # fmt: skip
        # What the form does not show (a cloud preset, enhanced authentication) is kept from the profile shown.
        self._shown = profile
        for field_id, value in values.items():
            self.query_one(f"#f-{field_id}", Input).value = value
        self.query_one("#f-version", Select).value = 311 if profile.version == 311 else 5
        self.query_one("#f-clean_start", Switch).value = profile.clean_start
        self.query_one("#f-save_password", Switch).value = profile.save_password
        self.query_one("#f-insecure", Switch).value = profile.insecure
        self.query_one("#f-will_qos", Select).value = profile.will_qos
        self.query_one("#f-will_retain", Switch).value = profile.will_retain
        self.show_problems({})

    def read_profile(self) -> tuple[Profile | None, dict[str, str]]:
        """The form as a profile, and the problems of each field (empty when valid)."""

        def text(field_id: str) -> str:
            return self.query_one(f"#f-{field_id}", Input).value.strip()

        problems: dict[str, str] = {}
        numbers: dict[str, int] = {}
        for field_id, default in (("keepalive", 60), ("session_expiry", 0)):
            value = text(field_id)
            try:
                numbers[field_id] = int(value) if value else default
            except ValueError:
                problems[field_id] = f"{value!r} is not a whole number"
        version = self.query_one("#f-version", Select).value
        will_qos = self.query_one("#f-will_qos", Select).value
        profile = replace(
            self._shown,
            name=text("name"),
            url=text("url"),
            version=311 if version == 311 else 5,
            client_id=text("client_id"),
            username=text("username") or None,
            password=self.query_one("#f-password", Input).value or None,
            save_password=self.query_one("#f-save_password", Switch).value,
            keepalive=numbers.get("keepalive", 60),
            clean_start=self.query_one("#f-clean_start", Switch).value,
            session_expiry=numbers.get("session_expiry", 0),
            subscriptions=parse_subscriptions(text("subscriptions")),
            ca_file=text("ca_file") or None,
            cert_file=text("cert_file") or None,
            key_file=text("key_file") or None,
            insecure=self.query_one("#f-insecure", Switch).value,
            server_hostname=text("server_hostname") or None,
            alpn=tuple(p.strip() for p in text("alpn").split(",") if p.strip()),
            proxy=text("proxy") or None,
            will_topic=text("will_topic") or None,
            will_payload=self.query_one("#f-will_payload", Input).value,
            will_qos=will_qos if isinstance(will_qos, int) else 0,
            will_retain=self.query_one("#f-will_retain", Switch).value,
        )
        problems.update(profile.validate())
        return (None if problems else profile), problems

    def show_problems(self, problems: dict[str, str]) -> None:
        known = {field_id for field_id, _, _ in TEXT_FIELDS}
        for field_id in known:
            self.query_one(f"#e-{field_id}", Static).update(problems.get(field_id, ""))
        others = [f"{name}: {text}" for name, text in problems.items() if name not in known]
        if others:
            self.status("; ".join(others), error=True)
        elif problems:
            self.status("fix the fields marked in red", error=True)
        else:
            self.status("")

    # ------------------------------------------------------------------------------------------ events

    @on(OptionList.OptionSelected, "#profile-list")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        if event.option.id == NEW:
            self.show_profile(replace(DEFAULT_PROFILE, name="new"))
            self.query_one("#f-name", Input).focus()
            return
        profile = self.store.get(str(event.option.id))
        if profile is not None:
            self.show_profile(profile)

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        if event.input.id and event.input.id.startswith("f-"):
            _, problems = self.read_profile()
            field_id = event.input.id[2:]
            self.query_one(f"#e-{field_id}", Static).update(problems.get(field_id, ""))
            # A change may settle another field's problem (a TLS URL, those of the TLS fields): clear those.
            for other, _, _ in TEXT_FIELDS:
                if other != field_id and other not in problems:
                    self.query_one(f"#e-{other}", Static).update("")

    @on(Input.Submitted)
    @on(Button.Pressed, "#connect")
    def _connect(self) -> None:
        profile, problems = self.read_profile()
        self.show_problems(problems)
        if profile is not None:
            self.dismiss(profile)

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        profile, problems = self.read_profile()
        self.show_problems(problems)
        if profile is None:
            return
        try:
            self.store.save_profile(profile)
        except (ConfigError, ValueError, OSError) as exc:
            self.status(f"not saved: {exc}", error=True)
            return
        self._fill_list()
        where = self.store.path
        secret = " (with its password, in clear text)" if profile.save_password and profile.password else ""
        self.status(f"saved {profile.name!r} to {where}{secret}")

    @on(Button.Pressed, "#delete")
    def _delete(self) -> None:
        name = self.query_one("#f-name", Input).value.strip()
        try:
            deleted = self.store.delete_profile(name)
        except (ConfigError, OSError) as exc:
            self.status(f"not deleted: {exc}", error=True)
            return
        self._fill_list()
        self.status(f"deleted {name!r}" if deleted else f"no saved profile {name!r}", error=not deleted)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
