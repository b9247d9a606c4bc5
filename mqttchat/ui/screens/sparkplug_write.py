"""The dialog that writes a Sparkplug B metric (an NCMD to an edge node, a DCMD to a device): a metric from the
birth, and its value as text, checked against the metric's datatype.

| Key | Action |
| --- | --- |
| ↑ ↓ | choose the metric |
| Tab | the value, the buttons |
| Enter (in the value) | write |
| Escape | cancel |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from mqttchat.explorer.decoders.sparkplug import DataType, parse_metric_value
from mqttchat.explorer.decoders.sparkplug.codec import datatype_name
from mqttchat.ui.safe import network_text

__all__ = ["MetricWrite", "WriteMetricDialog"]

#: Metrics that are the edge node's own business (its session number).
_NOT_WRITABLE = frozenset({"bdSeq"})


@dataclass(frozen=True, slots=True)
class MetricWrite:
    name: str
    datatype: DataType
    value: Any


class WriteMetricDialog(ModalScreen[MetricWrite | None]):
    """See the module docstring. ``metrics``: (name, datatype) from the birth; their names came from the network."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS: ClassVar[str] = """
    WriteMetricDialog { align: center middle; }
    WriteMetricDialog > Vertical { width: 72; max-width: 100%; height: auto; max-height: 100%;
                                   border: thick $accent; background: $surface; padding: 0 1; }
    WriteMetricDialog .title { text-style: bold; }
    WriteMetricDialog OptionList { height: auto; max-height: 10; }
    WriteMetricDialog #write-error { color: $error; height: auto; }
    WriteMetricDialog .buttons { height: auto; align-horizontal: right; }
    WriteMetricDialog .buttons Button { margin-left: 1; }
    """

    def __init__(self, target: str, metrics: list[tuple[str, int]]) -> None:
        super().__init__()
        self.target = target
        self.metrics = [(name, datatype) for name, datatype in metrics if name not in _NOT_WRITABLE]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("Write a metric of ", style="bold") + network_text(self.target), classes="title")
            if self.metrics:
                yield OptionList(
                    *(
                        Option(network_text(name) + Text(f"  ({datatype_name(datatype)})", style="dim"), id=str(i))
                        for i, (name, datatype) in enumerate(self.metrics)
                    ),
                    id="write-metric",
                )
            else:
                yield Static("No birth seen with metrics to write: ask for a rebirth first.", id="write-none")
            yield Input(placeholder="value, e.g. 1500, true, text, [1, 2]", id="write-value")
            yield Static("", id="write-error")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="write-cancel", compact=True)
                yield Button("Write", id="write-ok", variant="primary", compact=True)

    def on_mount(self) -> None:
        if self.metrics:
            self.query_one(OptionList).focus()
        else:
            self.query_one("#write-cancel", Button).focus()

    @on(OptionList.OptionSelected, "#write-metric")
    def _selected(self) -> None:
        self.query_one("#write-value", Input).focus()

    @on(Input.Submitted, "#write-value")
    @on(Button.Pressed, "#write-ok")
    def _write(self) -> None:
        error = self.query_one("#write-error", Static)
        if not self.metrics:
            error.update("no metric to write")
            return
        index = self.query_one(OptionList).highlighted
        if index is None:
            error.update("choose a metric")
            return
        name, datatype = self.metrics[index]
        try:
            kind = DataType(datatype)
            value = parse_metric_value(self.query_one("#write-value", Input).value, kind)
        except ValueError as exc:
            error.update(network_text(str(exc)))
            return
        self.dismiss(MetricWrite(name, kind, value))

    @on(Button.Pressed, "#write-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
