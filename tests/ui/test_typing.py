"""Typing into the explorer as a person does (tests/helpers/typist.py): at human pace, with the screen refreshing
between keys, and in bursts (several keys, Enter included, in one terminal read)."""

from __future__ import annotations

from textual.widgets import Input, TextArea

from mqttchat.ui.widgets.publish_pane import PublishPane
from mqttchat.ui.widgets.topic_tree import TopicTreeView
from tests.helpers.scenes import make_app
from tests.helpers.typist import spell, type_burst, type_slowly

SIZE = (120, 40)


async def open_payload(pilot: object) -> TextArea:
    app = pilot.app  # type: ignore[attr-defined]
    await pilot.press("p")  # type: ignore[attr-defined]
    area = app.screen.query_one("#pub-payload", TextArea)
    area.focus()
    await pilot.pause()  # type: ignore[attr-defined]
    return area


async def test_payload_typed_slowly_keeps_the_order_and_the_cursor() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        area = await open_payload(pilot)
        await type_slowly(pilot, *spell("world"))
        assert area.text == "world"  # each key landed at the start: "dlrow"
        await type_slowly(pilot, "home", "end", "backspace", "backspace")
        assert area.text == "wor"
        assert area.cursor_location == (0, 3)


async def test_payload_json_typed_slowly_stays_in_order() -> None:
    """The first "{" switches the area to JSON: the cursor stays where the user is typing."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        area = await open_payload(pilot)
        await type_slowly(pilot, *spell('{"on": 1}'))
        assert area.text == '{"on": 1}'
        assert area.language == "json"
        await type_slowly(pilot, "home", "delete")
        assert area.text == '"on": 1}' and area.language is None and area.cursor_location == (0, 0)


async def test_payload_bursts_and_publish() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        area = await open_payload(pilot)
        await type_burst(pilot, *spell("retained-hello"))
        await type_slowly(pilot, *spell(" Q"))
        await type_burst(pilot, *spell("oS1"))
        assert area.text == "retained-hello QoS1"
        area.clear()
        await type_burst(pilot, *spell('[1,\n {"x": 2}]'))  # a paste: becomes JSON on its first key
        assert area.text == '[1,\n {"x": 2}]'
        pane = app.screen.query_one(PublishPane)
        app.screen.query_one("#pub-topic", Input).value = "t/x"
        await type_slowly(pilot, "ctrl+s")
        assert [d.payload for d in pane.history] == [b'[1,\n {"x": 2}]']


async def test_filter_typed_slowly_and_in_a_burst() -> None:
    """The tree refreshes between keys (and the filter is re-applied on slow refreshes): the text stays as typed."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await type_slowly(pilot, "slash", *spell("kit"))
        field = app.screen.query_one("#tree-filter", Input)
        assert field.value == "kit" and field.cursor_position == 3
        await type_burst(pilot, *spell("chen"), "enter")
        assert field.value == "kitchen"
        view = app.screen.query_one(TopicTreeView)
        assert app.focused is view  # Enter went back to the tree
        assert {row.topic for row in view.rows if view.model.get(row.topic).messages} == {  # type: ignore[union-attr]
            "home/kitchen/light",
            "home/kitchen/temp",
        }
