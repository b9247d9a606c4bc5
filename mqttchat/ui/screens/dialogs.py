"""Modal dialogs: edit a retained value, confirm a bulk delete, ask for a file path, a name or a password."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static, TextArea

from mqttchat.ui.safe import network_text
from mqttchat.untrusted import printable

if TYPE_CHECKING:
    from rich.text import Text

    from mqttchat.hosting import Peer
    from mqttchat.runtime import Runtime


class _Dialog(ModalScreen[str | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS: ClassVar[str] = """
    _Dialog { align: center middle; }
    _Dialog > Vertical { width: 80; max-width: 100%; height: auto; max-height: 100%; border: thick $accent;
                         background: $surface; padding: 1 2; }
    _Dialog .title { text-style: bold; margin-bottom: 1; }
    _Dialog .buttons { height: auto; margin-top: 1; align-horizontal: right; }
    _Dialog .buttons Button { margin-left: 2; }
    _Dialog TextArea { height: 10; }
    _Dialog .text { width: 1fr; height: auto; }
    _Dialog .field-error { color: $error; height: auto; width: 1fr; }
    """

    def action_cancel(self) -> None:
        self.dismiss(None)


class EditValueDialog(_Dialog):
    """Edit a retained message's value; dismisses with the new text, or None.

    The topic and the value came from the network. A text area shows its text as it is, so a value holding
    control or invisible characters is edited with them made visible (``␛``), and published as shown.
    """

    def __init__(self, topic: str, value: str) -> None:
        super().__init__()
        self.topic = topic
        self.value = printable(value, keep="\n\t")
        self.neutralised = self.value != value

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(network_text(f"Retained value of {self.topic}"), classes="title")
            if self.neutralised:
                yield Label(
                    "The value holds control or invisible characters: they are shown as symbols (␛, \\u202e) "
                    "and published as shown.",
                    classes="field-error",
                )
            yield TextArea(self.value, id="edit-value", language="json" if self.value[:1] in "{[" else None)
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Publish retained", id="ok", variant="primary")

    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        self.dismiss(self.query_one("#edit-value", TextArea).text)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


class ConfirmDialog(_Dialog):
    """Yes/no with an explanation; dismisses with "yes" or None.

    ``text`` holding anything from the network must be a ``Text`` (``mqttchat.ui.safe.network_text``): a string
    is parsed as markup.
    """

    def __init__(self, title: str, text: str | Text, yes: str = "Yes") -> None:
        super().__init__()
        self.title_text = title
        self.text = text
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="title")
            yield Static(self.text, classes="text")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(self.yes, id="ok", variant="error")

    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        self.dismiss("yes")

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


class PathDialog(_Dialog):
    """Ask for a file path; dismisses with it, or None."""

    def __init__(self, title: str, default: str) -> None:
        super().__init__()
        self.title_text = title
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="title")
            yield Input(self.default, id="path")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("OK", id="ok", variant="primary")

    @on(Input.Submitted, "#path")
    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        value = self.query_one("#path", Input).value.strip()
        self.dismiss(value or None)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


class NameDialog(_Dialog):
    """Ask for a name; dismisses with it (stripped), or None.

    ``check`` says what is wrong with a name (None: nothing); the dialog stays open and shows the problem.
    """

    def __init__(
        self, title: str, default: str = "", *, placeholder: str = "", check: Callable[[str], str | None] | None = None
    ) -> None:
        super().__init__()
        self.title_text = title
        self.default = default
        self.placeholder = placeholder
        self.check = check

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="title")
            yield Input(self.default, placeholder=self.placeholder, id="name")
            yield Label("", id="name-error", classes="field-error")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("OK", id="ok", variant="primary")

    @on(Input.Submitted, "#name")
    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        value = self.query_one("#name", Input).value.strip()
        problem = self.check(value) if self.check is not None else None
        if problem:
            self.query_one("#name-error", Label).update(problem)
            return
        self.dismiss(value or None)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


class PasswordDialog(_Dialog):
    """The broker refused a connection made without a password: ask for one. Dismisses with it, or None.

    Enter connects; Escape or Cancel gives up (the connection screen, ``c``, can change more than the password).
    """

    def __init__(self, url: str, username: str | None, refusal: str) -> None:
        super().__init__()
        self.url = url
        self.username = username
        self.refusal = refusal

    def compose(self) -> ComposeResult:
        from mqttchat.ui.safe import network_text

        who = f" as {self.username}" if self.username else ""
        with Vertical():
            yield Label(network_text(f"Password for {self.url}{who}"), classes="title")
            yield Static(network_text(self.refusal), classes="text field-error", id="password-refusal")
            yield Input(password=True, placeholder="password", id="password")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Connect", id="ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#password", Input).focus()

    @on(Input.Submitted, "#password")
    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        self.dismiss(self.query_one("#password", Input).value or None)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


class HostQuitDialog(ConfirmDialog):
    """Asked on quit when this instance hosts the embedded broker for others: who they are, what happens to them.

    Dismisses with "yes" (quit) or None (stay). Ctrl+Q pressed again in it quits.
    """

    #: At most this many chat members are named; the rest are counted.
    SHOWN = 8

    def __init__(self, runtime: Runtime, peers: list[Peer]) -> None:
        from mqttchat.hosting import describe_peers
        from mqttchat.ui.safe import network_text

        url = runtime.broker.url if runtime.broker is not None else "this machine"
        host = runtime.host
        kept = (
            f" Their sessions, queued messages and retained messages are kept in {host.store}."
            if host is not None and host.persistent and not host.store_problem
            else " The broker keeps its state in memory only: their queued and retained messages will be lost."
        )
        text = network_text(
            f"This mqttchat hosts the broker on {url}. Connected through it: {describe_peers(peers, self.SHOWN)}.\n\n"
            "If you quit, another mqttchat running on this machine takes over hosting within seconds and they "
            f"reconnect to it.{kept} If no other mqttchat runs here, they wait until one starts.",
            keep="\n",
        )
        super().__init__("Others are connected through this broker", text, yes="Quit")
