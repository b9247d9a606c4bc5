"""The status bar fits its width by whole segments: with several brokers open, the least needed parts take a short
form or go, and no word is cut at the edge (it cut "shared" at 120 columns)."""

from __future__ import annotations

import re

import pytest

from mqttchat.ui.widgets.status_bar import StatusBar
from tests.helpers.scenes import freeze, two_brokers
from tests.helpers.waiting import until


@pytest.mark.parametrize("columns", [120, 80])
async def test_status_bar_drops_whole_segments_with_several_brokers(columns: int) -> None:
    app = two_brokers()
    async with app.run_test(size=(columns, 36)) as pilot:
        freeze(app)
        app.flush()
        await pilot.pause()
        bar = app.screen.query(StatusBar).first()
        width = bar.content_size.width
        full = bar.render_status(app.runtime).plain
        assert len(full) > width, "the test needs a line wider than the bar"
        await until(lambda: "topics" in str(bar.render()))
        line = str(bar.render())  # what the bar shows
        assert len(line) <= width
        assert line.startswith("● connected │ ")
        segments = [part.strip() for part in line.split("│")]
        shown = [part.strip() for part in full.split("│")]
        for part in segments:  # each whole segment, or its short form (a prefix of words)
            assert any(part == whole or whole.startswith(part + " ") for whole in shown), part
        assert re.search(r"\d[\d,]* topics", line), "the counts are among the last to go"
        if "history" in line:
            assert line.rstrip().endswith(("shared", "MiB")), line
