"""HotTopicsDialog: the topics and subtrees with the most messages a second, updated every second.

| Key | Action |
| --- | --- |
| Enter | select the topic in the tree |
| Tab | the other table |
| Escape | close |
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label

from mqttchat.explorer.hot import HotRow, hot_topics
from mqttchat.ui.safe import network_text

if TYPE_CHECKING:
    from mqttchat.runtime import Runtime


class HotTopicsDialog(ModalScreen[str | None]):
    """Dismisses with the topic chosen (to select it in the tree), or None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Close")]
    DEFAULT_CSS: ClassVar[str] = """
    HotTopicsDialog { align: center middle; }
    HotTopicsDialog > Vertical { width: 110; max-width: 100%; height: 90%; border: thick $accent;
                                 background: $surface; padding: 0 1; }
    HotTopicsDialog .title { text-style: bold; margin-top: 1; }
    HotTopicsDialog .note { color: $text-muted; height: auto; }
    HotTopicsDialog DataTable { height: 1fr; }
    """

    def __init__(self, runtime: Runtime) -> None:
        super().__init__()
        self.runtime = runtime
        #: ``time.time`` (tests replace it).
        self.clock = time.time
        self._topics: list[str] = []
        self._subtrees: list[str] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Hot topics: most messages in the last second", classes="title")
            yield DataTable[Text](id="hot-topics", cursor_type="row", zebra_stripes=True)
            yield Label("Hot subtrees: messages a second here and below", classes="title")
            yield DataTable[Text](id="hot-subtrees", cursor_type="row", zebra_stripes=True)
            yield Label("", id="hot-note", classes="note")

    def on_mount(self) -> None:
        topics = self.query_one("#hot-topics", DataTable)
        subtrees = self.query_one("#hot-subtrees", DataTable)
        for table, third, last in ((topics, "history sampled", "topic"), (subtrees, "topics", "subtree")):
            table.add_column("msg/s", key="rate", width=9)
            table.add_column("messages", key="messages", width=11)
            table.add_column(third, key="third", width=15)
            table.add_column(last, key="topic")
        self.refresh_rows()
        self.set_interval(1.0, self.refresh_rows)
        topics.focus()

    def refresh_rows(self) -> None:
        topics, subtrees = hot_topics(self.runtime.tree, self.clock())
        self._topics = self._fill("#hot-topics", topics, subtree=False)
        self._subtrees = self._fill("#hot-subtrees", subtrees, subtree=True)
        stats = self.runtime.tree.stats
        dropped = self.runtime.client.stats.dropped
        note = (
            f"History of a hot topic keeps {self.runtime.tree.history_rate} messages a second at most: "
            f"{stats.sampled:,} sampled out so far; {dropped:,} dropped by the client. Enter selects the topic."
        )
        if not topics:
            note = "No message in the last second. " + note
        self.query_one("#hot-note", Label).update(note)

    def _fill(self, selector: str, rows: list[HotRow], *, subtree: bool) -> list[str]:
        table = self.query_one(selector, DataTable)
        cursor = table.cursor_row
        table.clear()
        for row in rows:
            third = f"{row.topics_below:,}" if subtree else f"{row.sampled:,}"
            table.add_row(Text(f"{row.rate:,.0f}", justify="right"), Text(f"{row.messages:,}", justify="right"),
                          Text(third, justify="right"), network_text(row.topic))  # fmt: skip
        if rows:
            table.move_cursor(row=min(max(cursor, 0), len(rows) - 1))
        return [row.topic for row in rows]

    @on(DataTable.RowSelected)
    def _chosen(self, event: DataTable.RowSelected) -> None:
        topics = self._subtrees if event.data_table.id == "hot-subtrees" else self._topics
        if 0 <= event.cursor_row < len(topics):
            self.dismiss(topics[event.cursor_row])

    def action_cancel(self) -> None:
        self.dismiss(None)
