"""RetainedTable: every retained topic → value, size, QoS and age; updated by diffing rows by topic."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, ColumnKey

from mqttchat.explorer.payload import preview
from mqttchat.explorer.tree import TopicFilter, TopicNode, TopicTree
from mqttchat.labels import age_label, size_label
from mqttchat.ui.safe import network_text


class RetainedTable(DataTable[Text]):
    """The retained-message key-value view.

    | Key | Action |
    | --- | --- |
    | e | edit the value (publishes a retained message) |
    | Delete | delete the retained message |
    | D | delete every retained message shown (dry-run count first) |
    | x / i | export / import the shown set as JSON |
    | o | cycle the sort: topic, size, age |
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("e", "edit", "Edit value"),
        Binding("delete", "delete", "Delete"),
        Binding("D", "delete_shown", "Delete shown"),
        Binding("x", "export", "Export"),
        Binding("i", "import", "Import"),
        Binding("o", "cycle_sort", "Sort"),
    ]

    @dataclass
    class ActionRequested(Message):
        """The user asked for an action on retained messages: ``edit``, ``delete``, ``delete_shown``, ..."""

        table: RetainedTable
        action: str
        topic: str | None

        @property
        def control(self) -> RetainedTable:
            return self.table

    SORTS = ("topic", "size", "age")

    def __init__(self, tree: TopicTree, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.model = tree
        self.filter = TopicFilter("")
        self.order = "topic"
        self._shown: dict[str, TopicNode] = {}
        self._versions: dict[str, object] = {}
        self.clock = time.time

    def on_mount(self) -> None:
        topic_width, value_width = column_widths(self.size.width, 0)
        self.add_column("Topic", key="topic", width=topic_width)
        self.add_column("Value", key="value", width=value_width)
        self.add_column("Size", key="size", width=8)
        self.add_column("QoS", key="qos", width=3)
        self.add_column("Age", key="age", width=4)

    def on_resize(self) -> None:
        if "topic" in self.columns:  # mounted
            self.refresh_from_model()

    def _fit_columns(self, longest_topic: int) -> None:
        """Share the width left by the fixed columns between topics and values; when that changes, the rows are
        drawn again (the value previews are cut to their column)."""
        widths = column_widths(self.size.width, longest_topic)
        if widths == (self.columns[ColumnKey("topic")].width, self.columns[ColumnKey("value")].width):
            return
        for key, width in zip(("topic", "value"), widths, strict=True):
            self.columns[ColumnKey(key)].width = width
        self.clear()
        self._shown.clear()
        self._versions.clear()

    @property
    def shown_topics(self) -> list[str]:
        return list(self._shown)

    def refresh_from_model(self) -> None:
        """Bring the table up to date: add, update and remove rows by topic key, only where something changed."""
        try:
            predicate = self.filter.predicate()
        except ValueError:
            predicate = lambda node: True  # noqa: E731 - the filter box shows the error
        now = self.clock()
        wanted = {n.topic: n for n in self.model.retained_nodes() if predicate(n)}
        self._fit_columns(max(map(len, wanted), default=0))
        for topic in [t for t in self._shown if t not in wanted]:
            self.remove_row(topic)
            del self._shown[topic]
            self._versions.pop(topic, None)
        structure_changed = False
        for topic, node in wanted.items():
            entry = node.retained_entry
            assert entry is not None
            cells = (
                network_text(topic, overflow="ellipsis", no_wrap=True),
                network_text(preview(entry.payload, self.columns[ColumnKey("value")].width)),
                Text(size_label(entry.size), justify="right"),
                Text(str(entry.qos), justify="right"),
                Text(age_label(now - entry.received_at), justify="right"),
            )
            if topic not in self._shown:
                self.add_row(*cells, key=topic)
                self._shown[topic] = node
                structure_changed = True
            elif self._versions.get(topic) is not entry:
                for key, cell in zip(("value", "size", "qos"), cells[1:4], strict=True):
                    self.update_cell(topic, key, cell)
            self.update_cell(topic, "age", cells[4])
            self._versions[topic] = entry
        if structure_changed:
            self._apply_sort()

    def _apply_sort(self) -> None:
        if self.order == "topic":
            self.sort("topic", key=str)
        elif self.order == "size":
            self.sort("size", key=lambda cell: -self._size_of(cell))
        else:
            self.sort("age", key=lambda cell: _age_seconds(str(cell)))

    @staticmethod
    def _size_of(cell: Text) -> float:
        number, _, unit = str(cell).partition(" ")
        scale = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}.get(unit, 1)
        return float(number) * scale

    def current_topic(self) -> str | None:
        if not self._shown or self.cursor_row < 0:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except CellDoesNotExist:  # the table is empty or the cursor is out of range
            return None
        return str(key.value) if key.value is not None else None

    def _request(self, action: str, topic: str | None) -> None:
        self.post_message(self.ActionRequested(self, action, topic))

    def action_edit(self) -> None:
        self._request("edit", self.current_topic())

    def action_delete(self) -> None:
        self._request("delete", self.current_topic())

    def action_delete_shown(self) -> None:
        self._request("delete_shown", None)

    def action_export(self) -> None:
        self._request("export", None)

    def action_import(self) -> None:
        self._request("import", None)

    def action_cycle_sort(self) -> None:
        self.order = self.SORTS[(self.SORTS.index(self.order) + 1) % len(self.SORTS)]
        self._apply_sort()
        self.notify(f"retained messages sorted by {self.order}", timeout=1.5)


#: Cells the fixed columns take (size, QoS, age), and each column's padding (DataTable's cell_padding, both sides).
FIXED_COLUMNS = 8 + 3 + 4
CELL_PADDING = 2


def column_widths(width: int, longest_topic: int) -> tuple[int, int]:
    """The topic and value columns' widths in a table ``width`` cells wide: the topics get what the longest
    needs (at least 22 cells) while the values keep 12; the values get the rest."""
    room = max(0, width - FIXED_COLUMNS - 5 * CELL_PADDING - 1)  # - 1: the vertical scrollbar's gutter
    topic = max(22, min(longest_topic, room - 12))
    return topic, max(12, room - topic)


def _age_seconds(label: str) -> float:
    if label == "now":
        return 0.0
    units = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
    return float(label[:-1]) * units.get(label[-1], 1) if label[:-1].isdigit() else 0.0
