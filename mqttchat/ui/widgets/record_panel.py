"""RecordPanel: record the messages matching a filter to a JSONL file, and replay a recording, with progress."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Input, Label, ProgressBar, Select

from mqttchat.explorer.tree import TopicFilter, parse_filter_text
from mqttchat.ui.safe import network_text

DEFAULT_RECORDING = "recording.jsonl"

#: Replay speeds offered; 0 means as fast as the broker's flow control allows.
SPEEDS: list[tuple[str, float]] = [("1x", 1.0), ("2x", 2.0), ("10x", 10.0), ("as fast as allowed", 0.0)]

#: Below this many columns the form puts each label above its field.
NARROW = 56

FILTER_HELP = "The filter is written as in the tree: text, a/+/b or /regex/. The file is overwritten."


class RecordPanel(VerticalScroll, can_focus=False):
    """The Record tab: a recorder (filter, file, start/stop) and a replayer (file, speed, start/stop, progress).

    The panel validates its fields and posts requests; the screen does the work and reports back through
    :meth:`show_recording` and :meth:`show_replay`, which also decide what the buttons say. Enter in a field of a
    section starts it (never stops it). The panel itself is not a focus stop: a focused field scrolls into view.
    """

    DEFAULT_CSS: ClassVar[str] = """
    RecordPanel { padding: 0 1; }
    RecordPanel .row { height: auto; }
    RecordPanel .row > Label { width: 10; padding: 1 0; }
    RecordPanel .row > Label.inline { width: auto; padding: 1 1 1 2; }
    RecordPanel .row > Input { width: 1fr; }
    RecordPanel .row > Label.status { height: auto; padding: 1 2; width: 1fr; }
    RecordPanel #replay-speed { width: 26; }
    RecordPanel #replay-progress { width: 1fr; height: 3; padding: 1 0 1 2; }
    RecordPanel .field-error { color: $error; height: auto; width: 1fr; }
    RecordPanel .hint, RecordPanel .section { color: $text-muted; margin-bottom: 1; }
    RecordPanel .hint { width: 1fr; height: auto; }
    RecordPanel .section { text-style: bold; }
    RecordPanel.-narrow .row { layout: vertical; }
    RecordPanel.-narrow .row > Label { width: 1fr; padding: 0; }
    RecordPanel.-narrow .row > Label.status { padding: 0 0 1 0; }
    RecordPanel.-narrow #replay-speed { width: 1fr; }
    RecordPanel.-narrow #replay-progress { padding: 0; height: 1; }
    """

    @dataclass
    class RecordRequested(Message):
        """The user asked to record the messages matching ``topic_filter`` (valid) to ``path`` (not empty)."""

        panel: RecordPanel
        topic_filter: TopicFilter
        path: str

        @property
        def control(self) -> RecordPanel:
            return self.panel

    @dataclass
    class StopRecordRequested(Message):
        """The user asked to stop recording."""

        panel: RecordPanel

        @property
        def control(self) -> RecordPanel:
            return self.panel

    @dataclass
    class ReplayRequested(Message):
        """The user asked to replay the recording at ``path`` at ``speed`` (0: as fast as allowed)."""

        panel: RecordPanel
        path: str
        speed: float

        @property
        def control(self) -> RecordPanel:
            return self.panel

    @dataclass
    class StopReplayRequested(Message):
        """The user asked to stop the replay."""

        panel: RecordPanel

        @property
        def control(self) -> RecordPanel:
            return self.panel

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        #: Whether a recording / a replay runs, as the screen last said.
        self.recording = False
        self.replaying = False

    def compose(self) -> ComposeResult:
        yield Label("Record", classes="section")
        with Horizontal(classes="row"):
            yield Label("Filter")
            yield Input(placeholder="home/# — empty: every message", id="rec-filter")
        yield Label("", id="rec-filter-error", classes="field-error")
        with Horizontal(classes="row"):
            yield Label("File")
            yield Input(DEFAULT_RECORDING, placeholder=DEFAULT_RECORDING, id="rec-path")
        yield Label("", id="rec-path-error", classes="field-error")
        with Horizontal(classes="row"):
            yield Button("Start recording", id="rec-toggle", variant="primary")
            yield Label("not recording", id="rec-status", classes="status")
        yield Label(FILTER_HELP, classes="hint")
        yield Label("Replay", classes="section")
        with Horizontal(classes="row"):
            yield Label("File")
            yield Input(DEFAULT_RECORDING, placeholder=DEFAULT_RECORDING, id="replay-path")
        yield Label("", id="replay-path-error", classes="field-error")
        with Horizontal(classes="row"):
            yield Label("Speed")
            yield Select[float](SPEEDS, value=1.0, allow_blank=False, id="replay-speed")
            yield ProgressBar(total=1, show_eta=False, id="replay-progress")
        with Horizontal(classes="row"):
            yield Button("Replay", id="replay-toggle", variant="primary")
            yield Label("", id="replay-status", classes="status")

    def on_resize(self) -> None:
        # Too narrow for a label beside each field (an 80-column terminal): labels go above their fields.
        self.set_class(self.size.width < NARROW, "-narrow")

    # ------------------------------------------------------------------------------------------ validation

    def _filter_problem(self, text: str) -> str:
        try:
            parse_filter_text(text).matcher()
        except ValueError as exc:
            return str(exc)
        return ""

    @on(Input.Changed, "#rec-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.query_one("#rec-filter-error", Label).update(self._filter_problem(event.value))

    @on(Input.Changed, "#rec-path")
    def _rec_path_changed(self, event: Input.Changed) -> None:
        if event.value.strip():
            self.query_one("#rec-path-error", Label).update("")

    @on(Input.Changed, "#replay-path")
    def _replay_path_changed(self, event: Input.Changed) -> None:
        if event.value.strip():
            self.query_one("#replay-path-error", Label).update("")

    def validated_recording(self) -> tuple[TopicFilter, str] | None:
        """The filter and path to record with, or None after showing what is wrong inline."""
        text = self.query_one("#rec-filter", Input).value
        filter_problem = self._filter_problem(text)
        self.query_one("#rec-filter-error", Label).update(filter_problem)
        path = self.query_one("#rec-path", Input).value.strip()
        path_problem = "" if path else "a file to record to is needed"
        self.query_one("#rec-path-error", Label).update(path_problem)
        if filter_problem or path_problem:
            return None
        return parse_filter_text(text), str(Path(path).expanduser())

    def validated_replay(self) -> tuple[str, float] | None:
        """The path and speed to replay with, or None after showing what is wrong inline."""
        text = self.query_one("#replay-path", Input).value.strip()
        problem = ""
        if not text:
            problem = "a recording to replay is needed"
        elif not Path(text).expanduser().is_file():
            problem = f"no such file: {text}"
        self.query_one("#replay-path-error", Label).update(problem)
        if problem:
            return None
        speed = self.query_one("#replay-speed", Select).value
        return str(Path(text).expanduser()), float(speed) if isinstance(speed, int | float) else 1.0

    # ------------------------------------------------------------------------------------------ requests

    @on(Button.Pressed, "#rec-toggle")
    def _record_pressed(self) -> None:
        if self.recording:
            self.post_message(self.StopRecordRequested(self))
        else:
            self.request_recording()

    @on(Input.Submitted, "#rec-filter, #rec-path")
    def _record_submitted(self) -> None:
        if not self.recording:
            self.request_recording()

    @on(Button.Pressed, "#replay-toggle")
    def _replay_pressed(self) -> None:
        if self.replaying:
            self.post_message(self.StopReplayRequested(self))
        else:
            self.request_replay()

    @on(Input.Submitted, "#replay-path")
    def _replay_submitted(self) -> None:
        if not self.replaying:
            self.request_replay()

    def request_recording(self) -> None:
        """Validate the record section and post :class:`RecordRequested` if it is valid."""
        valid = self.validated_recording()
        if valid is None:
            self._status("#rec-status", "fix the highlighted fields first", error=True)
            return
        topic_filter, path = valid
        self._status("#rec-status", f"opening {path} …")
        self.post_message(self.RecordRequested(self, topic_filter, path))

    def request_replay(self) -> None:
        """Validate the replay section and post :class:`ReplayRequested` if it is valid."""
        valid = self.validated_replay()
        if valid is None:
            self._status("#replay-status", "fix the highlighted fields first", error=True)
            return
        path, speed = valid
        self._status("#replay-status", f"loading {path} …")
        self.post_message(self.ReplayRequested(self, path, speed))

    # ------------------------------------------------------------------------------------------ calls from the screen

    def _status(self, selector: str, text: str, error: bool = False) -> None:
        # Plain text, never markup: it names files and filters, and quotes topics and errors from the broker.
        label = self.query_one(selector, Label)
        label.update(network_text(text))
        label.set_class(error, "field-error")

    def show_recording(self, active: bool, text: str, error: bool = False) -> None:
        """Whether a recording runs, and a line about it (``recording home/# to x.jsonl: 120 messages, 14 KiB``)."""
        started = active and not self.recording
        had_focus = self.screen.focused
        self.recording = active
        toggle = self.query_one("#rec-toggle", Button)
        toggle.label = "Stop recording" if active else "Start recording"
        for selector in ("#rec-filter", "#rec-path"):
            self.query_one(selector, Input).disabled = active
        if started and (had_focus is None or had_focus in self.query("*")):
            toggle.focus()  # the fields are disabled now: Enter on the button stops the recording
        self._status("#rec-status", text, error)

    def show_replay(self, active: bool, done: int, total: int, text: str, error: bool = False) -> None:
        """Whether a replay runs, how far it is (``done`` of ``total`` messages), and a line about it."""
        started = active and not self.replaying
        had_focus = self.screen.focused
        self.replaying = active
        toggle = self.query_one("#replay-toggle", Button)
        toggle.label = "Stop" if active else "Replay"
        self.query_one("#replay-path", Input).disabled = active
        self.query_one("#replay-speed", Select).disabled = active
        if started and (had_focus is None or had_focus in self.query("*")):
            toggle.focus()  # the fields are disabled now: Enter on the button stops the replay
        self.query_one("#replay-progress", ProgressBar).update(total=max(total, 1), progress=min(done, max(total, 1)))
        self._status("#replay-status", text, error)
