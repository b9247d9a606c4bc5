"""ChartPanel: a chart with axes and time of numeric fields of decoded payloads, several series at once.

| Key (in the panel) | Action |
| --- | --- |
| Tab | the field picker, Add, the window, Pause, the series list |
| Enter (in the field picker) | chart that field of the topic selected in the tree |
| Delete or x (in the series list) | stop charting the series highlighted |

A series is a topic (the one selected in the tree when it was added) and a field of its decoded payloads: a JSON
path (``a.b.0``), a Sparkplug B metric name, or the payload itself when it is a number. The window cycles through
1, 5, 15 and 60 minutes; Pause freezes the time shown while points still arrive. Each series shows its last,
lowest and highest value in the window. The panel posts messages; the screen changes the charts model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Input, OptionList, Static
from textual.widgets.option_list import Option
from textual_plotext import PlotextPlot

from mqttchat.labels import plural
from mqttchat.ui.safe import network_text
from mqttchat.untrusted import printable

if TYPE_CHECKING:
    from mqttchat.explorer.charts import Charts

#: Plotext's colour of each series in turn, and the same colour for its line in the list.
COLOURS: tuple[tuple[str, str], ...] = (
    ("cyan", "cyan"),
    ("orange", "dark_orange"),
    ("green", "green"),
    ("magenta", "magenta"),
    ("red", "red"),
    ("blue", "blue"),
    ("yellow", "yellow"),
    ("gray", "grey50"),
)
#: Fields offered by the picker at most (a Sparkplug birth may have thousands).
PICKER_FIELDS = 200


def _comparable(one: tuple[float, float], other: tuple[float, float]) -> bool:
    """Whether two ranges of values read well on one axis (neither spans less than a tenth of both together)."""
    low, high = min(one[0], other[0]), max(one[1], other[1])
    span = high - low
    if span <= 0:
        return True
    return min(one[1] - one[0], other[1] - other[0]) >= span / 10 or (
        min(abs(one[1]), abs(other[1])) >= max(abs(one[1]), abs(other[1])) / 10
    )


def window_label(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds / 60:g} min"


class SeriesList(OptionList):
    """The series charted; Delete or x removes the one highlighted."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("delete", "remove", "Remove series"),
        Binding("x", "remove", "Remove series", show=False),
    ]

    @dataclass
    class RemoveRequested(Message):
        series_list: SeriesList
        index: int

        @property
        def control(self) -> SeriesList:
            return self.series_list

    def action_remove(self) -> None:
        if self.highlighted is not None:
            self.post_message(self.RemoveRequested(self, self.highlighted))


class ChartPanel(Vertical):
    """See the module docstring."""

    DEFAULT_CSS: ClassVar[str] = """
    ChartPanel { padding: 0 1; }
    ChartPanel #chart-bar { height: auto; }
    ChartPanel #chart-field { width: 1fr; min-width: 16; }
    ChartPanel #chart-bar Button { margin-left: 1; min-width: 7; }
    ChartPanel #chart-topic { color: $text-muted; height: 1; }
    ChartPanel #chart-error { color: $error; height: auto; display: none; }
    ChartPanel #chart-error.shown { display: block; }
    ChartPanel SeriesList { height: auto; max-height: 5; border: none; padding: 0; }
    ChartPanel PlotextPlot { height: 1fr; min-height: 8; }
    """

    @dataclass
    class SeriesAdded(Message):
        """The user wants field of topic charted."""

        panel: ChartPanel
        topic: str
        field: str

        @property
        def control(self) -> ChartPanel:
            return self.panel

    @dataclass
    class SeriesRemoved(Message):
        panel: ChartPanel
        index: int

        @property
        def control(self) -> ChartPanel:
            return self.panel

    @dataclass
    class WindowCycled(Message):
        panel: ChartPanel

        @property
        def control(self) -> ChartPanel:
            return self.panel

    @dataclass
    class PauseToggled(Message):
        panel: ChartPanel

        @property
        def control(self) -> ChartPanel:
            return self.panel

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.topic: str | None = None
        self._drawn: tuple[object, ...] = ()
        #: The clock the chart's time axis ends at; tests replace it for deterministic snapshots.
        self.clock = time.time

    def compose(self) -> ComposeResult:
        yield Static("", id="chart-topic")
        with Horizontal(id="chart-bar"):
            yield Input(placeholder="field: JSON path or metric name", id="chart-field", compact=True)
            yield Button("Add", id="chart-add", compact=True)
            yield Button("5 min", id="chart-window", compact=True)
            yield Button("Pause", id="chart-pause", compact=True)
        yield Static("", id="chart-error")
        yield SeriesList(id="chart-series")
        yield PlotextPlot(id="chart-plot")

    def on_mount(self) -> None:
        self.query_one(SeriesList).display = False

    # ------------------------------------------------------------------------------------------ calls down

    def show_topic(self, topic: str | None, fields: list[str]) -> None:
        """The topic selected in the tree and its numeric fields (offered by the picker)."""
        if topic == self.topic:
            return
        self.topic = topic
        label = self.query_one("#chart-topic", Static)
        field = self.query_one("#chart-field", Input)
        if topic is None:
            label.update("Select a topic with numbers in the tree, then add its fields.")
            return
        text = Text("chart a field of ") + network_text(topic)
        if fields:
            shown = ", ".join(fields[:3]) + (", …" if len(fields) > 3 else "")
            text.append_text(network_text(f"  ({plural(len(fields), 'numeric field')}: {shown})", style="dim"))
        else:
            text.append("  (no numeric field in its latest payload)", style="dim")
        label.update(text)
        from textual.suggester import SuggestFromList

        field.suggester = SuggestFromList(fields[:PICKER_FIELDS], case_sensitive=True)
        field.placeholder = printable(f"field, e.g. {fields[0]}") if fields else "field: JSON path or metric name"

    def show_error(self, text: str | None) -> None:
        error = self.query_one("#chart-error", Static)
        error.update(network_text(text or ""))
        error.set_class(bool(text), "shown")

    def redraw(self, charts: Charts, now: float, *, force: bool = False) -> None:
        """Draw the charts' series over their window (cheap when nothing changed in the last second)."""
        key = (charts.version, int(now) if not charts.paused else 0)
        if key == self._drawn and not force:
            return
        self._drawn = key
        start, end = charts.span(now)
        self.query_one("#chart-window", Button).label = window_label(charts.window)
        self.query_one("#chart-pause", Button).label = "Resume" if charts.paused else "Pause"
        series_list = self.query_one(SeriesList)
        highlighted = series_list.highlighted
        series_list.clear_options()
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        width = max(10, plot.size.width)
        left: tuple[float, float] | None = None
        right = False
        for index, series in enumerate(charts.series):
            plotext_colour, rich_colour = COLOURS[index % len(COLOURS)]
            stats = series.stats(start, end)
            line = Text("■ ", style=rich_colour) + network_text(series.label)
            if stats is None:
                line.append("  no value in the window", style="dim")
            else:
                line.append(f"  last {stats.last:g}  min {stats.low:g}  max {stats.high:g}  ({stats.count})",
                            style="dim")  # fmt: skip
            series_list.add_option(Option(line))
            points = series.sampled(start, end, width)
            if points and stats is not None:
                # A series on a scale of its own (a pressure beside a speed) goes on the right-hand axis.
                side = "left"
                if left is None:
                    left = (stats.low, stats.high)
                elif not _comparable(left, (stats.low, stats.high)):
                    side, right = "right", True
                # Plotext writes labels into its canvas, which is read back as ANSI: network text only printable.
                label = printable(series.label)[:60] + (" (right)" if side == "right" else "")
                plt.plot([t - end for t, _ in points], [v for _, v in points], color=plotext_colour, label=label,
                         marker="braille", yside=side)  # fmt: skip
        series_list.display = bool(charts.series)
        if highlighted is not None and charts.series:
            series_list.highlighted = min(highlighted, len(charts.series) - 1)
        plt.xlim(-charts.window, 0)
        if not right:
            plt.yaxes(True, False)
        ago = "paused: seconds before the pause" if charts.paused else "seconds ago"
        plt.xlabel(ago)
        if not charts.series:
            plt.title("add a series: select a topic in the tree, type or pick a field, Add")
        plot.refresh()

    # ------------------------------------------------------------------------------------------ messages up

    @on(Input.Submitted, "#chart-field")
    @on(Button.Pressed, "#chart-add")
    def _add(self, event: Input.Submitted | Button.Pressed) -> None:
        event.stop()
        if self.topic is None:
            self.show_error("select a topic in the tree first")
            return
        field = self.query_one("#chart-field", Input).value.strip()
        self.post_message(self.SeriesAdded(self, self.topic, field))

    @on(Button.Pressed, "#chart-window")
    def _window(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.WindowCycled(self))

    @on(Button.Pressed, "#chart-pause")
    def _pause(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.PauseToggled(self))

    @on(SeriesList.RemoveRequested)
    def _remove(self, event: SeriesList.RemoveRequested) -> None:
        event.stop()
        self.post_message(self.SeriesRemoved(self, event.index))
