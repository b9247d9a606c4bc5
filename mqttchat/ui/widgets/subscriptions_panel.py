"""SubscriptionsPanel: the active subscriptions with what the broker granted, and a form to add more."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, DataTable, Input, Label, Select, Switch

from mqttchat.protocol import ProtocolVersion, RetainHandling, Subscription, topic_filter_problem
from mqttchat.ui.safe import network_text

if TYPE_CHECKING:
    from mqttchat.runtime import Runtime, SubscriptionRow

RETAIN_HANDLING_LABELS = {
    RetainHandling.SEND_ON_SUBSCRIBE: "send",
    RetainHandling.SEND_IF_NEW_SUBSCRIPTION: "if new",
    RetainHandling.DO_NOT_SEND: "never",
}

#: How the table names each retain handling.
OPTION_LABELS = {
    RetainHandling.SEND_ON_SUBSCRIBE: "retained sent",
    RetainHandling.SEND_IF_NEW_SUBSCRIPTION: "retained if new",
    RetainHandling.DO_NOT_SEND: "no retained",
}

HINT = "Retained: 0 send on subscribe, 1 only for a new subscription, 2 never. Del unsubscribes."

#: Below this many columns the form puts each label above its field.
NARROW = 64

#: The largest subscription identifier (a variable byte integer, 3.8.2.1.2).
MAX_SUBSCRIPTION_ID = 268_435_455


def granted_label(row: SubscriptionRow) -> Text:
    if row.granted is None:
        return Text("…", style="dim")
    if row.granted.is_error:
        return Text(row.granted.title, style="bold red")
    granted = int(row.granted)
    style = "yellow" if granted < row.subscription.qos else ""
    return Text(f"QoS {granted}", style=style)


class SubscriptionsPanel(Vertical):
    """Active subscriptions (a table) and a form to subscribe with every MQTT 5 option.

    | Key | Action |
    | --- | --- |
    | Delete (in the table) | unsubscribe the selected filter |
    | Enter (in the filter box) | subscribe |
    """

    DEFAULT_CSS: ClassVar[str] = """
    SubscriptionsPanel { padding: 0 1; }
    SubscriptionsPanel DataTable { height: 1fr; min-height: 4; overflow-x: hidden; }
    SubscriptionsPanel #sub-form { height: auto; max-height: 75%; }
    SubscriptionsPanel.-narrow .row { layout: vertical; }
    SubscriptionsPanel.-narrow .row > Label, SubscriptionsPanel.-narrow .row > Label.inline { width: 1fr; padding: 0; }
    SubscriptionsPanel.-narrow .row > Input, SubscriptionsPanel.-narrow .row > Select { width: 1fr; }
    SubscriptionsPanel .row { height: auto; }
    SubscriptionsPanel .row > Label { padding: 1 1 1 0; width: auto; }
    SubscriptionsPanel .row > Label.inline { padding: 1 1 1 2; }
    SubscriptionsPanel #sub-filter { width: 1fr; }
    SubscriptionsPanel #sub-qos { width: 14; }
    SubscriptionsPanel #sub-rh { width: 16; }
    SubscriptionsPanel #sub-id { width: 1fr; }
    SubscriptionsPanel .field-error { color: $error; height: auto; }
    SubscriptionsPanel .hint { color: $text-muted; height: auto; width: 1fr; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("delete", "unsubscribe", "Unsubscribe"),
    ]

    @dataclass
    class SubscribeRequested(Message):
        """The user asked to subscribe (already validated)."""

        panel: SubscriptionsPanel
        subscription: Subscription
        subscription_identifier: int | None

        @property
        def control(self) -> SubscriptionsPanel:
            return self.panel

    @dataclass
    class UnsubscribeRequested(Message):
        panel: SubscriptionsPanel
        topic_filter: str

        @property
        def control(self) -> SubscriptionsPanel:
            return self.panel

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._version: tuple[int, int] | None = None
        self._filters: list[str] = []
        #: MQTT 5 options are disabled on a 3.1.1 connection (the broker would not see them).
        self.v5 = True

    def compose(self) -> ComposeResult:
        yield DataTable[Text](id="sub-table", cursor_type="row", zebra_stripes=True)
        form = VerticalScroll(id="sub-form")
        form.can_focus = False  # a focused field scrolls into view
        with form:
            with Horizontal(classes="row"):
                yield Label("Filter")
                yield Input(placeholder="home/+/temperature, $SYS/#, $share/group/a/#", id="sub-filter")
                yield Select([("QoS 0", 0), ("QoS 1", 1), ("QoS 2", 2)], value=0, allow_blank=False, id="sub-qos")
            yield Label("", id="sub-error", classes="field-error")
            with Horizontal(classes="row"):
                yield Label("No local")
                yield Switch(False, id="sub-nl")
                yield Label("Retain as published", classes="inline")
                yield Switch(False, id="sub-rap")
            with Horizontal(classes="row"):
                yield Label("Retained")
                yield Select(
                    [(f"{int(k)} {v}", int(k)) for k, v in RETAIN_HANDLING_LABELS.items()],
                    value=0, allow_blank=False, id="sub-rh",
                )  # fmt: skip
                yield Label("Id", classes="inline")
                yield Input(placeholder="1-268435455", id="sub-id", restrict=r"[0-9]*")
            with Horizontal(classes="row"):
                yield Button("Subscribe", id="sub-add", variant="primary")
                yield Button("Unsubscribe selected", id="sub-remove")
            yield Label(HINT, classes="hint", id="sub-hint")

    def on_resize(self) -> None:
        # Too narrow for the options side by side (an 80-column terminal): each label goes above its field.
        self.set_class(self.size.width < NARROW, "-narrow")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("Filter", key="filter")
        table.add_column("Asked", key="asked", width=5)
        table.add_column("Granted", key="granted", width=7)
        table.add_column("Id", key="id")
        table.add_column("Options", key="options")

    # ------------------------------------------------------------------------------------------ down

    def set_v5(self, v5: bool) -> None:
        if v5 == self.v5:
            return
        self.v5 = v5
        for widget_id in ("#sub-nl", "#sub-rap", "#sub-rh", "#sub-id"):
            self.query_one(widget_id).disabled = not v5
        hint = HINT if v5 else "MQTT 3.1.1: no local, retain as published, retained and id need MQTT 5."
        self.query_one("#sub-hint", Label).update(hint)

    def refresh_from(self, runtime: Runtime) -> None:
        self.set_v5(runtime.options.version == ProtocolVersion.MQTT_5)
        version = (runtime.subscriptions_version, len(runtime.client.session.subscriptions))
        if version == self._version:
            return
        self._version = version
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        self._filters = []
        for row in sorted(runtime.subscription_rows(), key=lambda r: r.subscription.topic_filter):
            sub = row.subscription
            options = []
            if self.v5:
                if sub.no_local:
                    options.append("no local")
                if sub.retain_as_published:
                    options.append("RAP")
                options.append(OPTION_LABELS[sub.retain_handling])
            table.add_row(
                network_text(sub.topic_filter), Text(f"QoS {sub.qos}"), granted_label(row),
                Text("" if row.subscription_identifier is None else str(row.subscription_identifier)),
                Text(", ".join(options)),
                key=sub.topic_filter,
            )  # fmt: skip
            self._filters.append(sub.topic_filter)
        if self._filters:
            table.move_cursor(row=min(max(cursor, 0), len(self._filters) - 1))

    def show_error(self, text: str) -> None:
        """A problem with a subscription; ``text`` may quote the broker: shown as network text."""
        self.query_one("#sub-error", Label).update(network_text(text))

    # ------------------------------------------------------------------------------------------ up

    def _request(self) -> None:
        box = self.query_one("#sub-filter", Input)
        topic_filter = box.value.strip()
        problem = topic_filter_problem(topic_filter)
        if problem is None and topic_filter.startswith("$share/") and not self.v5:
            problem = "shared subscriptions need MQTT 5"
        ident: int | None = None
        id_text = self.query_one("#sub-id", Input).value.strip()
        if problem is None and id_text and self.v5:
            ident = int(id_text)
            if not 1 <= ident <= MAX_SUBSCRIPTION_ID:
                problem = f"a subscription identifier is 1 to {MAX_SUBSCRIPTION_ID}"
        if problem is not None:
            self.show_error(problem)
            box.focus()
            return
        self.show_error("")
        qos = self.query_one("#sub-qos", Select).value
        rh = self.query_one("#sub-rh", Select).value
        sub = Subscription(
            topic_filter,
            int(qos),  # type: ignore[arg-type]
            self.v5 and self.query_one("#sub-nl", Switch).value,
            self.v5 and self.query_one("#sub-rap", Switch).value,
            RetainHandling(int(rh) if self.v5 else 0),  # type: ignore[arg-type]
        )
        self.post_message(self.SubscribeRequested(self, sub, ident))

    @on(Button.Pressed, "#sub-add")
    @on(Input.Submitted, "#sub-filter")
    def _subscribe(self) -> None:
        self._request()

    @on(Button.Pressed, "#sub-remove")
    def _remove_pressed(self) -> None:
        self.action_unsubscribe()

    def action_unsubscribe(self) -> None:
        table = self.query_one(DataTable)
        if not self._filters or not 0 <= table.cursor_row < len(self._filters):
            self.notify("no subscription is selected", severity="warning")
            return
        self.post_message(self.UnsubscribeRequested(self, self._filters[table.cursor_row]))
