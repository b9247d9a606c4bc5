"""The lasting history's search dialog: find stored messages by topic filter, time range, payload words and a
condition on JSON fields, newest first, or see each topic's last value at a moment (the tree as it was then) and
step through a topic's changes; choosing a message jumps to its topic.

| Key | Action |
| --- | --- |
| Enter (in a field) | search (in the At field: the state at that moment) |
| Export… | write everything the search finds (not only the listed 500), oldest first, as JSON lines or CSV |
| ↑ ↓, Enter (in the results) | choose a message: the dialog closes on it |
| [ ] (in the results) | the highlighted topic's previous / next change |
| Tab | the fields, the results, the buttons |
| Escape | close |

The search runs in a thread (a big store takes a moment); at most :data:`MAX_RESULTS` messages are listed. The
dialog dismisses with the chosen :class:`~mqttchat.explorer.history_store.StoredMessage`, or None.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.coordinate import Coordinate
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Static

from mqttchat.explorer.conditions import ConditionError, parse_condition
from mqttchat.explorer.history_export import CsvExport, write_jsonl
from mqttchat.explorer.history_store import (
    HistoryError,
    HistoryQuery,
    HistoryReader,
    StoredMessage,
    parse_moment,
    payload_filter,
)
from mqttchat.labels import plural
from mqttchat.ui.safe import network_text

__all__ = ["MAX_RESULTS", "HistorySearchDialog", "run_export", "run_search", "run_step"]

MAX_RESULTS = 500
#: Characters of a payload shown in the results.
PREVIEW = 80


def _query(fields: dict[str, str], *, newest_first: bool, limit: int | None) -> HistoryQuery:
    topic = fields.get("topic", "").strip()
    moments: dict[str, float | None] = {}
    for name in ("since", "until"):
        value = fields.get(name, "").strip()
        try:
            moments[name] = parse_moment(value) if value else None
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    where = fields.get("where", "").strip()
    try:
        condition = parse_condition(where) if where else None
    except ConditionError as exc:
        raise ValueError(f"condition: {exc}") from None
    query = HistoryQuery(
        topics=(topic,) if topic else (),
        since=moments["since"],
        until=moments["until"],
        text=fields.get("text", "").strip() or None,
        condition=condition,
        newest_first=newest_first,
        limit=limit,
    )
    problems = query.problems()
    if problems:
        raise ValueError("; ".join(problems))
    return query


def _messages(
    reader: HistoryReader, fields: dict[str, str], *, newest_first: bool, limit: int | None
) -> Iterator[StoredMessage]:
    query = _query(fields, newest_first=newest_first, limit=limit)
    at = fields.get("at", "").strip()
    if not at:
        yield from reader.search(query)
        return
    try:
        moment = parse_moment(at)
    except ValueError as exc:
        raise ValueError(f"at: {exc}") from None
    accepts = payload_filter(query)
    state = [m for m in reader.state_at(moment, query.topics) if accepts(m.payload)]
    yield from state[:limit] if limit is not None else state


def run_search(path: Path, fields: dict[str, str]) -> list[StoredMessage]:
    """The search the dialog runs (in a thread): ``fields`` as typed (topic, text, since, until, where, at).

    Raises:
        ValueError: a field is not valid (the message names it). HistoryError: the store cannot be read.
    """
    with HistoryReader(path) as reader:
        return list(_messages(reader, fields, newest_first=True, limit=MAX_RESULTS))


def run_export(path: Path, fields: dict[str, str], target: Path) -> int:
    """Write every message the fields find (oldest first, no limit) to ``target``: CSV for a ``.csv`` name, else
    JSON lines (the recording format); how many.

    Raises:
        ValueError: a field is not valid. HistoryError: the store cannot be read. OSError: the file.
    """
    with HistoryReader(path) as reader:
        _query(fields, newest_first=False, limit=None)  # the fields' errors before the file is created
        with open(target, "w", encoding="utf-8", newline="") as out:
            if target.suffix.lower() == ".csv":
                return CsvExport().write(lambda: _messages(reader, fields, newest_first=False, limit=None), out)
            return write_jsonl(_messages(reader, fields, newest_first=False, limit=None), out)


def run_step(path: Path, message: StoredMessage, forward: bool) -> StoredMessage | None:
    """The change of ``message``'s topic after it (``forward``) or before it, or None.

    Raises:
        HistoryError: the store cannot be read.
    """
    with HistoryReader(path) as reader:
        return reader.step(message.id, forward, HistoryQuery(topics=(message.topic,)))


class HistorySearchDialog(ModalScreen[StoredMessage | None]):
    """See the module docstring."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Close"),
        Binding("left_square_bracket", "step(False)", "Previous change", show=False),
        Binding("right_square_bracket", "step(True)", "Next change", show=False),
    ]
    DEFAULT_CSS: ClassVar[str] = """
    HistorySearchDialog { align: center middle; }
    HistorySearchDialog > Vertical { width: 120; max-width: 100%; height: 90%; border: thick $accent;
                                     background: $surface; padding: 0 1; }
    HistorySearchDialog .title { text-style: bold; }
    HistorySearchDialog .row { height: auto; }
    HistorySearchDialog .row Label { width: 10; padding: 1 1 0 0; }
    HistorySearchDialog .row Input { width: 1fr; }
    HistorySearchDialog #history-status { height: auto; color: $text-muted; }
    HistorySearchDialog #history-status.error { color: $error; }
    HistorySearchDialog DataTable { height: 1fr; }
    HistorySearchDialog .buttons { height: auto; align-horizontal: right; }
    HistorySearchDialog .buttons Button { margin-left: 1; }
    """

    def __init__(self, path: Path, topic_filter: str = "") -> None:
        super().__init__()
        self.path = path
        self.topic_filter = topic_filter
        self.results: list[StoredMessage] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Search the lasting history", classes="title")
            with Horizontal(classes="row"):
                yield Label("Topic")
                yield Input(self.topic_filter, placeholder="topic filter, e.g. home/+/temp (empty: all)",
                            id="history-topic")  # fmt: skip
                yield Label("Words")
                yield Input(placeholder='payload words or "a phrase"', id="history-text")
            with Horizontal(classes="row"):
                yield Label("Since")
                yield Input(placeholder="1h, 14:02, 2026-12-03 14:02", id="history-since")
                yield Label("Until")
                yield Input(placeholder="now", id="history-until")
            with Horizontal(classes="row"):
                yield Label("Where")
                yield Input(placeholder="temp > 30 and state == 'on'", id="history-where")
                yield Label("At")
                yield Input(placeholder="each topic's last value at: 14:02, 2h", id="history-at")
            yield Static("Enter searches, newest first; with At, lists each topic's value then.", id="history-status")
            table: DataTable[Text | str] = DataTable(id="history-results", cursor_type="row", zebra_stripes=True)
            yield table
            with Horizontal(classes="buttons"):
                yield Button("Search", id="history-search", variant="primary")
                yield Button("Export…", id="history-export")
                yield Button("Close", id="history-close")

    def on_mount(self) -> None:
        table: DataTable[Text | str] = self.query_one(DataTable)
        table.add_columns("Received", "Topic", "Payload")
        self.query_one("#history-topic", Input).focus()

    def _fields(self) -> dict[str, str]:
        return {name: self.query_one(f"#history-{name}", Input).value for name in ("topic", "text", "since", "until",
                                                                                   "where", "at")}  # fmt: skip

    @on(Input.Submitted)
    @on(Button.Pressed, "#history-search")
    def _search(self) -> None:
        self._say("searching…")
        self._run(self._fields())

    @work(exclusive=True, group="history-search", thread=True, exit_on_error=False)
    def _run(self, fields: dict[str, str]) -> None:
        try:
            found = run_search(self.path, fields)
        except (ValueError, HistoryError) as exc:
            self.app.call_from_thread(self._say, str(exc), True)
            return
        self.app.call_from_thread(self._show, found)

    def _say(self, text: str, error: bool = False) -> None:
        status = self.query_one("#history-status", Static)
        status.update(Text(text))
        status.set_class(error, "error")

    @staticmethod
    def _cells(m: StoredMessage) -> tuple[str, Text, Text]:
        when = dt.datetime.fromtimestamp(m.t).isoformat(sep=" ", timespec="milliseconds")
        payload = m.payload[: PREVIEW * 4].decode(errors="replace")
        return when, network_text(m.topic), network_text(payload, limit=PREVIEW)

    def _show(self, found: list[StoredMessage]) -> None:
        self.results = found
        table: DataTable[Text | str] = self.query_one(DataTable)
        table.clear()
        for index, m in enumerate(found):
            table.add_row(*self._cells(m), key=str(index))
        more = " (the newest; narrow the search for older ones)" if len(found) >= MAX_RESULTS else ""
        self._say(
            f"{plural(len(found), 'message', grouped=True)}{more}. Enter on one jumps to its topic; [ and ] step "
            "through its topic's changes."
        )
        if found:
            table.focus()

    def action_step(self, forward: bool) -> None:
        table: DataTable[Text | str] = self.query_one(DataTable)
        row = table.cursor_row
        if not 0 <= row < len(self.results):
            return
        self._step(row, self.results[row], forward)

    @work(exclusive=True, group="history-step", thread=True, exit_on_error=False)
    def _step(self, row: int, message: StoredMessage, forward: bool) -> None:
        try:
            found = run_step(self.path, message, forward)
        except HistoryError as exc:
            self.app.call_from_thread(self._say, str(exc), True)
            return
        self.app.call_from_thread(self._stepped, row, message, found, forward)

    def _stepped(self, row: int, message: StoredMessage, found: StoredMessage | None, forward: bool) -> None:
        if found is None:
            self._say(f"no {'later' if forward else 'earlier'} change of this topic is stored")
            return
        if row >= len(self.results) or self.results[row] is not message:
            return  # the results changed meanwhile
        self.results[row] = found
        table: DataTable[Text | str] = self.query_one(DataTable)
        when, topic, payload = self._cells(found)
        table.update_cell_at(Coordinate(row, 0), when)
        table.update_cell_at(Coordinate(row, 1), topic)
        table.update_cell_at(Coordinate(row, 2), payload)
        self._say(f"{'next' if forward else 'previous'} change: {self._cells(found)[0]}")

    @on(Button.Pressed, "#history-export")
    def _export(self) -> None:
        from mqttchat.ui.screens.dialogs import PathDialog

        fields = self._fields()

        def chosen(target: str | None) -> None:
            if target:
                self._say("exporting…")
                self._write(fields, Path(target).expanduser())

        self.app.push_screen(PathDialog("Export what this search finds (a .csv name: CSV; else JSON lines) to",
                                        "history.jsonl"), chosen)  # fmt: skip

    @work(exclusive=True, group="history-export", thread=True, exit_on_error=False)
    def _write(self, fields: dict[str, str], target: Path) -> None:
        try:
            count = run_export(self.path, fields, target)
        except (ValueError, HistoryError, OSError) as exc:
            self.app.call_from_thread(self._say, f"not exported: {exc}", True)
            return
        self.app.call_from_thread(self._say, f"exported {plural(count, 'message', grouped=True)} to {target}")

    @on(DataTable.RowSelected)
    def _chosen(self, event: DataTable.RowSelected) -> None:
        index = int(str(event.row_key.value))
        if 0 <= index < len(self.results):
            self.dismiss(self.results[index])

    @on(Button.Pressed, "#history-close")
    def action_cancel(self) -> None:
        self.dismiss(None)
