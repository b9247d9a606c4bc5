"""The typist helper itself: slow typing lets refreshes run between keys; a burst arrives as one terminal read."""

from __future__ import annotations

from typing import ClassVar

import pytest
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Input

from tests.helpers.typist import spell, terminal_bytes, type_burst, type_slowly


class Recorder(App[None]):
    """An input that records, for each Changed it handles, the value it carries, the input's value by then and
    the refreshes so far; and the values submitted."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+s", "saved", "Save")]

    def __init__(self) -> None:
        super().__init__()
        self.flush_count = 0
        self.changes: list[tuple[str, str, int]] = []
        self.submitted: list[str] = []
        self.saved = 0

    def compose(self) -> ComposeResult:
        yield Input(id="field")

    def on_mount(self) -> None:
        self.set_interval(1 / 30, self._tick)
        self.query_one(Input).focus()

    def _tick(self) -> None:
        self.flush_count += 1

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        self.changes.append((event.value, event.input.value, self.flush_count))

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.submitted.append(event.value)

    def action_saved(self) -> None:
        self.saved += 1


async def test_slowly_lets_the_screen_refresh_between_keys() -> None:
    app = Recorder()
    async with app.run_test() as pilot:
        await type_slowly(pilot, *spell("abc\n"), "ctrl+s")
        # Each key was handled (and its Changed message too) before the next one came...
        assert [(value, now) for value, now, _ in app.changes] == [("a", "a"), ("ab", "ab"), ("abc", "abc")]
        ticks = [tick for _, _, tick in app.changes]
        assert ticks[1] - ticks[0] >= 2 and ticks[2] - ticks[1] >= 2  # and two refreshes in between
        assert app.submitted == ["abc"] and app.saved == 1


async def test_burst_is_one_read_processed_after_it_arrived() -> None:
    app = Recorder()
    async with app.run_test() as pilot:
        await type_burst(pilot, *spell("one\ntwo\n"))
        # Every key was handled before the first Changed message was: by then the input held all of the text.
        assert [value for value, _, _ in app.changes] == ["o", "on", "one", "onet", "onetw", "onetwo"]
        assert {now for _, now, _ in app.changes} == {"onetwo"}
        assert len({tick for _, _, tick in app.changes}) == 1  # and no refresh ran in between
        assert len(app.submitted) == 2  # both Enters arrived


def test_terminal_bytes() -> None:
    assert terminal_bytes("a") == "a"
    assert terminal_bytes("enter") == "\r"
    assert terminal_bytes("ctrl+s") == "\x13"
    assert terminal_bytes("shift+tab") == "\x1b[Z"
    with pytest.raises(ValueError, match="no terminal bytes"):
        terminal_bytes("hyper+x")
