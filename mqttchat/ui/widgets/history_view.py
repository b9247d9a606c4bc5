"""HistoryView: a topic's recent messages, newest first, each with its diff from the one before, and a plot."""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from rich.console import Group, RenderableType
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Input, Label, Sparkline, Static

from mqttchat.explorer.payload import diff, number, numeric_fields, preview
from mqttchat.explorer.tree import Entry, TopicNode
from mqttchat.ui.safe import network_text
from mqttchat.untrusted import printable

if TYPE_CHECKING:
    from mqttchat.ui.widgets.message_view import PayloadSource

SHOWN = 50


class HistoryView(Vertical):
    """The selected topic's history ring with diffs, and a sparkline of a numeric value or JSON field.

    The plot's field comes first in the focus order (Tab from the tree), then the history list, which scrolls.
    """

    DEFAULT_CSS: ClassVar[str] = """
    HistoryView { padding: 0 1; }
    HistoryView #plot-bar { height: 3; }
    HistoryView #plot-field { width: 1fr; max-width: 36; min-width: 16; }
    HistoryView Sparkline { height: 3; margin: 0 1; width: 1fr; }
    HistoryView #plot-label { padding: 0 1; color: $text-muted; width: 1fr; height: auto; }
    HistoryView #history-scroll { height: 1fr; }
    """

    def __init__(self, source: PayloadSource | None = None, *, id: str | None = None) -> None:
        """``source``: decodes the entries (previews, diffs and plotted values are of the decoded payloads);
        without it the payloads are shown as they came."""
        super().__init__(id=id)
        self.source = source
        self._node: TopicNode | None = None
        self._last: Entry | None = None
        self.field: str | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="plot-bar"):
            yield Input(placeholder="JSON field to plot (e.g. temp)", id="plot-field")
            yield Sparkline([], id="plot")
        yield Label("", id="plot-label")
        with VerticalScroll(id="history-scroll"):
            yield Static("", id="history")

    @on(Input.Changed, "#plot-field")
    def _field_changed(self, event: Input.Changed) -> None:
        self.field = event.value.strip() or None
        self._last = None
        self.show(self._node)

    def show(self, node: TopicNode | None) -> None:
        last = node.last if node is not None else None
        if node is self._node and last is self._last:
            return
        if node is not self._node:
            self._suggest_field(node)
        self._node, self._last = node, last
        entries = node.history_newest_first()[:SHOWN] if node is not None else []
        source = self.source
        if source is not None and node is not None:
            topic = node.topic
            self.query_one("#history", Static).update(
                render_decoded_history(entries, lambda e: _decoded(source, topic, e))
            )
            values = [
                v for v in (_decoded_number(source, topic, e, self.field) for e in reversed(entries)) if v is not None
            ]
        else:
            self.query_one("#history", Static).update(render_history(entries))
            values = [v for v in (number(e.payload, self.field) for e in reversed(entries)) if v is not None]
        self.query_one("#plot", Sparkline).data = values
        label = self.query_one("#plot-label", Label)
        if values:
            label.update(network_text(f"{self.field or 'value'}: last {values[-1]:g}, min {min(values):g}, "
                                      f"max {max(values):g} ({len(values)} points)"))  # fmt: skip
        elif entries:
            label.update("no numeric values to plot" + ("" if self.field else ": choose a JSON field above"))
        else:
            label.update("")

    def _suggest_field(self, node: TopicNode | None) -> None:
        if node is None or node.last is None or self.field:
            return
        if self.source is not None:
            fields = list(self.source.decode(node.topic, node.last).fields)[:50]
        else:
            fields = numeric_fields(node.last.payload)
        if fields:
            self.query_one("#plot-field", Input).placeholder = f"JSON field to plot, e.g. {printable(fields[0])}"


def render_history(entries: list[Entry]) -> RenderableType:
    if not entries:
        return Text("No history yet.", style="dim")
    parts: list[RenderableType] = []
    for i, entry in enumerate(entries):
        stamp = dt.datetime.fromtimestamp(entry.received_at).strftime("%H:%M:%S.%f")[:-3]
        head = Text(f"{stamp}  q{entry.qos}{' r' if entry.retain else ''}  {entry.size} B  ", style="bold")
        head.append(printable(preview(entry.payload, 60)), style="")
        if entry.truncated:
            head.append(f"  (truncated: {len(entry.payload)} of {entry.size} bytes kept)", style="yellow")
        parts.append(head)
        if i + 1 < len(entries):
            for line in diff(entries[i + 1].payload, entry.payload)[:12]:
                style = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
                parts.append(network_text("    " + line, style=style))
    return Group(*parts)


def _decoded(source: PayloadSource, topic: str, entry: Entry) -> tuple[str, str]:
    """(one-line summary, full rendering) of an entry decoded; a cut entry as it came (it cannot be decoded)."""
    if entry.truncated:
        return preview(entry.payload, 60), entry.payload.decode(errors="replace")
    result = source.decode(topic, entry)
    return result.summary(60), result.text if result.ok else entry.payload.decode(errors="replace")


def _decoded_number(source: PayloadSource, topic: str, entry: Entry, field: str | None) -> float | None:
    if entry.truncated:
        return number(entry.payload, field)
    return source.decode(topic, entry).number(field or "")


def render_decoded_history(entries: list[Entry], decoded: Callable[[Entry], tuple[str, str]]) -> RenderableType:
    """As :func:`render_history`, of decoded payloads: each entry's decoded summary and the diff of its decoded
    rendering from the one before (a Sparkplug metric that changed, a CBOR field)."""
    if not entries:
        return Text("No history yet.", style="dim")
    shown = [decoded(entry) for entry in entries]
    parts: list[RenderableType] = []
    for i, entry in enumerate(entries):
        stamp = dt.datetime.fromtimestamp(entry.received_at).strftime("%H:%M:%S.%f")[:-3]
        head = Text(f"{stamp}  q{entry.qos}{' r' if entry.retain else ''}  {entry.size} B  ", style="bold")
        head.append(printable(shown[i][0]), style="")
        if entry.truncated:
            head.append(f"  (truncated: {len(entry.payload)} of {entry.size} bytes kept)", style="yellow")
        parts.append(head)
        if i + 1 < len(entries) and shown[i + 1][1] != shown[i][1]:
            lines = difflib.unified_diff(
                shown[i + 1][1].splitlines(), shown[i][1].splitlines(), "previous", "current", n=1, lineterm=""
            )
            for line in list(lines)[2:14]:
                style = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
                parts.append(network_text("    " + line, style=style))
    return Group(*parts)
