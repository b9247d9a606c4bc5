"""Pilot tests of the Record panel on its own: the requests it posts, inline validation, and what the screen shows."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual import on
from textual.app import App, ComposeResult
from textual.message import Message
from textual.widgets import Button, Input, Label, ProgressBar, Select

from mqttchat.explorer.tree import FilterKind, TopicFilter
from mqttchat.ui.widgets.record_panel import RecordPanel
from tests.helpers.widget_text import text_of


class PanelApp(App[None]):
    """The panel alone, collecting what it posts."""

    def __init__(self) -> None:
        super().__init__()
        self.posted: list[Message] = []

    def compose(self) -> ComposeResult:
        yield RecordPanel(id="record")

    def on_mount(self) -> None:
        # A button ignores clicks for 0.2 s after one (its "active" effect): tests click faster than that.
        for button in self.query(Button):
            button.active_effect_duration = 0

    @on(RecordPanel.RecordRequested)
    @on(RecordPanel.StopRecordRequested)
    @on(RecordPanel.ReplayRequested)
    @on(RecordPanel.StopReplayRequested)
    def _collect(self, event: Message) -> None:
        self.posted.append(event)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


async def test_start_and_stop_recording(in_tmp: Path) -> None:
    app = PanelApp()
    async with app.run_test(size=(100, 40)) as pilot:
        panel = app.query_one(RecordPanel)
        app.query_one("#rec-filter", Input).value = "home/#"
        await pilot.click("#rec-toggle")
        await pilot.pause()
        [request] = app.posted
        assert isinstance(request, RecordPanel.RecordRequested)
        assert request.topic_filter == TopicFilter("home/#", FilterKind.WILDCARD)
        assert request.path == "recording.jsonl"
        assert request.control is panel
        assert "opening recording.jsonl" in text_of(app.query_one("#rec-status"))

        panel.show_recording(True, "recording home/# to recording.jsonl: 120 messages, 14.2 KiB")
        await pilot.pause()
        assert str(app.query_one("#rec-toggle", Button).label) == "Stop recording"
        assert app.query_one("#rec-filter", Input).disabled and app.query_one("#rec-path", Input).disabled
        assert "120 messages, 14.2 KiB" in text_of(app.query_one("#rec-status"))
        await pilot.click("#rec-toggle")
        await pilot.pause()
        assert isinstance(app.posted[-1], RecordPanel.StopRecordRequested)
        assert len(app.posted) == 2

        panel.show_recording(False, "recorded home/# to recording.jsonl: 120 messages, 14.2 KiB")
        await pilot.pause()
        assert str(app.query_one("#rec-toggle", Button).label) == "Start recording"
        assert not app.query_one("#rec-filter", Input).disabled


async def test_enter_in_a_field_starts_recording_with_every_filter_kind(in_tmp: Path) -> None:
    app = PanelApp()
    async with app.run_test(size=(100, 40)) as pilot:
        for text, kind in [
            ("/temp$/", FilterKind.REGEX),
            ("kitchen", FilterKind.SUBSTRING),
            ("", FilterKind.SUBSTRING),
        ]:
            app.query_one("#rec-filter", Input).value = text
            app.query_one("#rec-path", Input).focus()
            await pilot.press("end", *"2", "enter")
            await pilot.pause()
            request = app.posted.pop()
            assert isinstance(request, RecordPanel.RecordRequested)
            assert request.topic_filter.kind is kind
            assert request.path.endswith("2")
            app.query_one("#rec-path", Input).value = "recording.jsonl"
        app.query_one(RecordPanel).show_recording(True, "recording")
        app.query_one("#rec-path", Input).disabled = False  # even if Enter reaches a field, it never stops
        app.query_one("#rec-path", Input).focus()
        await pilot.press("enter")
        await pilot.pause()
        assert app.posted == []


async def test_invalid_record_fields_show_inline_errors(in_tmp: Path) -> None:
    app = PanelApp()
    async with app.run_test(size=(100, 40)) as pilot:
        app.query_one("#rec-filter", Input).focus()
        await pilot.press(*"a/#/b")
        await pilot.pause()
        assert "'#' must be the last level" in text_of(app.query_one("#rec-filter-error", Label))
        app.query_one("#rec-path", Input).value = "  "
        await pilot.click("#rec-toggle")
        await pilot.pause()
        assert app.posted == []
        assert "a file to record to is needed" in text_of(app.query_one("#rec-path-error", Label))
        assert app.query_one("#rec-status").has_class("field-error")
        app.query_one("#rec-filter", Input).value = "/(unclosed/"
        await pilot.pause()
        assert "invalid regular expression" in text_of(app.query_one("#rec-filter-error", Label))
        app.query_one("#rec-filter", Input).value = "a/+/b"
        app.query_one("#rec-path", Input).value = "~/x.jsonl"
        await pilot.pause()
        assert text_of(app.query_one("#rec-filter-error", Label)) == ""
        assert text_of(app.query_one("#rec-path-error", Label)) == ""
        await pilot.click("#rec-toggle")
        await pilot.pause()
        [request] = app.posted
        assert isinstance(request, RecordPanel.RecordRequested)
        assert request.path == str(Path("~/x.jsonl").expanduser())
        assert not app.query_one("#rec-status").has_class("field-error")


async def test_replay_speed_progress_and_stop(in_tmp: Path) -> None:
    (in_tmp / "recording.jsonl").write_text('{"t": 1, "topic": "a"}\n')
    app = PanelApp()
    async with app.run_test(size=(100, 40)) as pilot:
        panel = app.query_one(RecordPanel)
        await pilot.click("#replay-toggle")
        await pilot.pause()
        [request] = app.posted
        assert isinstance(request, RecordPanel.ReplayRequested)
        assert (request.path, request.speed) == ("recording.jsonl", 1.0)
        app.query_one("#replay-speed", Select).value = 0.0
        await pilot.click("#replay-toggle")
        await pilot.pause()
        request = app.posted[-1]
        assert isinstance(request, RecordPanel.ReplayRequested) and request.speed == 0.0

        panel.show_replay(True, 3, 10, "replaying recording.jsonl: 3 of 10")
        await pilot.pause()
        assert str(app.query_one("#replay-toggle", Button).label) == "Stop"
        assert app.query_one("#replay-speed", Select).disabled
        progress = app.query_one("#replay-progress", ProgressBar)
        assert (progress.progress, progress.total) == (3, 10)
        await pilot.click("#replay-toggle")
        await pilot.pause()
        assert isinstance(app.posted[-1], RecordPanel.StopReplayRequested)

        panel.show_replay(False, 3, 10, "recording.jsonl, line 4: bad JSON", error=True)
        await pilot.pause()
        assert str(app.query_one("#replay-toggle", Button).label) == "Replay"
        assert not app.query_one("#replay-path", Input).disabled
        status = app.query_one("#replay-status")
        assert "line 4: bad JSON" in text_of(status) and status.has_class("field-error")
        panel.show_replay(False, 0, 0, "")
        assert (progress.progress, progress.total) == (0, 1)
        assert not status.has_class("field-error")


async def test_invalid_replay_fields_show_inline_errors(in_tmp: Path) -> None:
    app = PanelApp()
    async with app.run_test(size=(100, 40)) as pilot:
        field = app.query_one("#replay-path", Input)
        field.focus()
        await pilot.press("enter")  # recording.jsonl does not exist here
        await pilot.pause()
        assert app.posted == []
        assert "no such file: recording.jsonl" in text_of(app.query_one("#replay-path-error", Label))
        field.value = ""
        await pilot.press("enter")
        await pilot.pause()
        assert "a recording to replay is needed" in text_of(app.query_one("#replay-path-error", Label))
        (in_tmp / "other.jsonl").write_text("")
        field.value = "other.jsonl"
        await pilot.pause()
        assert text_of(app.query_one("#replay-path-error", Label)) == ""
        await pilot.press("enter")
        await pilot.pause()
        [request] = app.posted
        assert isinstance(request, RecordPanel.ReplayRequested) and request.path == "other.jsonl"
