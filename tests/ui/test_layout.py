"""The explorer at 80x24 and at 200x60: whole tab labels, values that do not wrap, labels clear of their fields,
ages at the edge of the tree, and a retained table whose topics use the width."""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Label, TabbedContent
from textual.widgets._tabbed_content import ContentTabs

from mqttchat.explorer.tree import TopicTree
from mqttchat.ui.widgets.broker_panel import BrokerPanel
from mqttchat.ui.widgets.explorer_tabs import TABS, label_size
from mqttchat.ui.widgets.retained_table import RetainedTable
from mqttchat.ui.widgets.topic_tree import TopicTreeView
from tests.helpers.scenes import NOW, freeze, make_app, sample_tree
from tests.helpers.typist import press, settle
from tests.helpers.waiting import until
from tests.helpers.widget_text import text_of


def screen_text(pilot: Pilot[Any], widget: Any) -> list[str]:
    """The lines ``widget`` shows on screen, as plain text."""
    region = widget.region
    lines = []
    for y in range(region.y, region.bottom):
        strip = pilot.app.screen._compositor.render_strips()[y]  # type: ignore[attr-defined]
        text = "".join(segment.text for segment in strip)
        lines.append(text[region.x : region.right])
    return lines


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (120, 40), (200, 60)], ids=str)
async def test_tab_labels_are_whole(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        tabs = app.screen.query_one(TabbedContent)
        bar = tabs.query_one(ContentTabs)
        for pane_id in TABS:
            tab = tabs.get_tab(pane_id)
            assert tab.region.width == len(tab.label.plain) + 2
            assert bar.region.contains_region(tab.region), f"{pane_id} ({tab.label.plain}) at {size}"
        labels = [tabs.get_tab(pane_id).label.plain for pane_id in TABS]
        chosen = label_size(tabs.size.width)  # the longest labels that fit the bar
        assert labels == [names[chosen] for *names, _key in TABS.values()]
        if size[0] >= 200:
            assert chosen == 0  # a wide terminal shows the words whole


async def test_tree_rows_end_with_the_age_at_the_edge() -> None:
    tree = sample_tree()
    tree.ingest("home/kitchen/blob", b"x" * 500, received_at=NOW - 3 * 3600)
    for size in ((80, 24), (200, 60)):
        app = make_app(tree)
        async with app.run_test(size=size) as pilot:
            freeze(app)
            view = app.screen.query_one(TopicTreeView)
            await press(pilot, "end", "right", "down", "down", "right")
            await settle(pilot)
            lines = {line.split("·")[0].strip("│ •▶▼"): line for line in screen_text(pilot, view)}
            assert lines["blob"].endswith("· 3h") and "= xxxx" in lines["blob"], lines["blob"]
            assert lines["light ®"].endswith("· 1m") and "= on" in lines["light ®"]
            assert len(lines["blob"]) == view.size.width


async def test_retained_topics_use_the_width_at_160_columns() -> None:
    tree = TopicTree()
    long_topic = "plant/building-7/line-3/station-12/spindle/temperature"
    tree.ingest(long_topic, b"21.5", 1, True, received_at=NOW - 5)
    app = make_app(tree)
    async with app.run_test(size=(160, 40)) as pilot:
        await press(pilot, "r")
        table = app.screen.query_one(RetainedTable)
        freeze(app)
        table.refresh_from_model()
        await settle(pilot)
        assert table.columns["topic"].width >= len(long_topic)  # type: ignore[index]
        assert any(long_topic in line for line in screen_text(pilot, table))
        await pilot.resize_terminal(80, 24)
        await until(lambda: table.columns["topic"].width < 30, what="narrower columns", pilot=pilot)  # type: ignore[index]
        await settle(pilot)
        assert len(table.shown_topics) == 1


async def test_broker_values_do_not_wrap_at_80_columns() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "b")
        panel = app.screen.query_one(BrokerPanel)
        panel.refresh_from(app.runtime)  # type: ignore[attr-defined]
        await settle(pilot)
        text = text_of(panel, width=panel.content_region.width)
        assert "protocol                  MQTT 5.0" in text
        assert "maximum packet size       protocol limit" in text
        assert all(len(line) <= panel.content_region.width for line in text.splitlines())


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=str)
async def test_publish_labels_are_clear_of_their_fields(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await press(pilot, "p")
        await settle(pilot)
        for field_id in ("pub-content-type", "pub-response-topic", "pub-user-props", "pub-correlation"):
            field = app.screen.query_one(f"#{field_id}", Input)
            label = field.parent.query_one(Label)  # type: ignore[union-attr]
            assert label.region.height in (1, 3), f"{label.content!r} wraps"
            text = str(label.content)
            if label.region.y == field.region.y:  # beside the field: a gap between them
                assert label.region.x + len(text) < field.region.x, text
            else:  # above it (a narrow pane)
                assert label.region.bottom <= field.region.y, text
