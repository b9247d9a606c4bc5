"""SharedIngestDialog: read a firehose over several connections, in a shared group of the app's own.

| Key | Action |
| --- | --- |
| Enter | start |
| Escape | cancel |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from mqttchat.protocol import topic_filter_problem
from mqttchat.shared_ingest import MAX_CONNECTIONS, OWN_GROUP_PREFIX

EXPLANATION = (
    "The broker deals the filter's messages out among the connections of a shared group: each carries a share, so "
    "its limits per connection (the queue for a slow reader, a rate limit per client) apply to each. The group is "
    f"this app's own ({OWN_GROUP_PREFIX}…): no production consumer shares it, none loses messages to it."
)


@dataclass(frozen=True, slots=True)
class SharedIngestRequest:
    topic_filter: str
    connections: int


class SharedIngestDialog(ModalScreen[SharedIngestRequest | None]):
    """Ask for a filter and a number of connections; dismisses with them, or None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS: ClassVar[str] = """
    SharedIngestDialog { align: center middle; }
    SharedIngestDialog > Vertical { width: 80; max-width: 100%; height: auto; max-height: 100%;
                                    border: thick $accent; background: $surface; padding: 1 2; }
    SharedIngestDialog .title { text-style: bold; margin-bottom: 1; }
    SharedIngestDialog .text { width: 1fr; height: auto; color: $text-muted; margin-bottom: 1; }
    SharedIngestDialog .row { height: auto; }
    SharedIngestDialog .row > Label { padding: 1 1 1 0; width: 13; }
    SharedIngestDialog #share-filter { width: 1fr; }
    SharedIngestDialog #share-count { width: 10; }
    SharedIngestDialog .field-error { color: $error; height: auto; width: 1fr; }
    SharedIngestDialog .buttons { height: auto; margin-top: 1; align-horizontal: right; }
    SharedIngestDialog .buttons Button { margin-left: 2; }
    """

    def __init__(self, topic_filter: str = "#", connections: int = 4) -> None:
        super().__init__()
        self.topic_filter = topic_filter
        self.connections = connections

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Read a firehose over several connections", classes="title")
            yield Static(EXPLANATION, classes="text")
            with Horizontal(classes="row"):
                yield Label("Filter")
                yield Input(self.topic_filter, id="share-filter")
            with Horizontal(classes="row"):
                yield Label("Connections")
                yield Input(str(self.connections), id="share-count", restrict=r"[0-9]*")
            yield Label("", id="share-error", classes="field-error")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Start", id="ok", variant="primary")

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        topic_filter = self.query_one("#share-filter", Input).value.strip()
        count_text = self.query_one("#share-count", Input).value.strip()
        problem = topic_filter_problem(topic_filter)
        if problem is None and topic_filter.startswith("$share/"):
            problem = "give the filter alone: the app makes the shared group"
        count = int(count_text) if count_text else 0
        if problem is None and not 1 <= count <= MAX_CONNECTIONS:
            problem = f"from 1 to {MAX_CONNECTIONS} connections"
        if problem is not None:
            self.query_one("#share-error", Label).update(problem)
            return
        self.dismiss(SharedIngestRequest(topic_filter, count))

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
