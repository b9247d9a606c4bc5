"""Every control of every explorer tab is reached with Tab and Shift+Tab alone, in the order it is shown, and is on
screen when focused (at 120x40 and at 80x24); text typed into a focused field goes into it, even letters that
are keys elsewhere (m h t d p r u e k b g c s / ? * - +)."""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Button, Input, Select, Switch, TabbedContent, TextArea

from tests.helpers.scenes import make_app
from tests.helpers.typist import press, send_key, settle, spell, type_burst
from tests.helpers.waiting import until

#: Tab key → (tab id, the controls after the tree in Tab order). Then the filter and the tree again.
EXPLORER_TABS: dict[str, tuple[str, list[str]]] = {
    "m": ("message", ["message-view"]),
    "h": ("history", ["plot-field", "history-scroll"]),
    "t": ("chart", ["chart-field", "chart-add", "chart-window", "chart-pause"]),
    "p": ("publish", [
        "pub-topic", "pub-payload", "pub-encoding", "pub-qos", "pub-retain", "pub-json", "pub-send", "pub-content-type",
        "pub-user-props", "pub-expiry", "pub-response-topic", "pub-correlation", "pub-template", "pub-template-save",
        "pub-template-delete",
    ]),
    "r": ("retained", ["retained-filter", "retained-table"]),
    "u": ("subscriptions", [
        "sub-table", "sub-filter", "sub-qos", "sub-nl", "sub-rap", "sub-rh", "sub-id", "sub-add", "sub-remove",
    ]),
    "e": ("record", ["rec-filter", "rec-path", "rec-toggle", "replay-path", "replay-speed", "replay-toggle"]),
    "k": ("packets", ["packet-filter", "packet-pause", "packet-log"]),
    "b": ("broker", ["broker-scroll"]),
}  # fmt: skip

SIZES = [(120, 40), (80, 24)]

#: Letters bound to keys on the explorer screen or the tree: typed into a field, they must land in it.
PROBE = "mhtdprueKbgcs/?*-+ x"


def focused_id(pilot: Pilot[Any]) -> str | None:
    focused = pilot.app.focused
    return focused.id if focused is not None else None


def on_screen(pilot: Pilot[Any], widget: Widget) -> bool:
    """Whether ``widget`` is on screen: whole for a field or a button, in part for a list or a log."""
    screen = pilot.app.screen
    small = isinstance(widget, (Input, Button, Select, Switch))
    return screen.can_view_entire(widget) if small else screen.can_view_partial(widget)


async def walk(pilot: Pilot[Any], key: str, count: int) -> list[str | None]:
    """Press ``key`` ``count`` times; the id focused after each press (each checked to be on screen)."""
    app = pilot.app
    seen: list[str | None] = []
    for _ in range(count):
        before = app.focused
        send_key(pilot, key)
        await until(lambda: app.focused is not before, 5, f"{key} moves the focus on from {before}", pilot=pilot)  # noqa: B023
        focused = app.focused
        assert focused is not None, f"nothing has the focus after {seen}"
        await until(lambda: on_screen(pilot, focused), 5, f"#{focused.id} on screen when focused", pilot=pilot)  # noqa: B023
        seen.append(focused.id)
    return seen


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
async def test_tab_and_shift_tab_reach_every_control_of_each_tab(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        tabs = app.screen.query_one(TabbedContent)
        for key, (tab, controls) in EXPLORER_TABS.items():
            await press(pilot, "escape", key, "escape")  # the tree, the tab, and back to the tree
            assert tabs.active == tab and focused_id(pilot) == "tree"
            order = [*controls, "tree-filter", "tree"]
            assert await walk(pilot, "tab", len(order)) == order, tab
            backwards = ["tree-filter", *reversed(controls), "tree"]
            assert await walk(pilot, "shift+tab", len(backwards)) == backwards, tab


async def test_one_tab_from_the_tree_reaches_the_plot_field_and_typing_goes_there() -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("h", "tab")
        assert focused_id(pilot) == "plot-field"
        await type_burst(pilot, *spell("temperature"))
        assert app.screen.query_one("#plot-field", Input).value == "temperature"
        assert app.screen.query_one(TabbedContent).active == "history"


async def test_tab_leaves_the_payload_without_inserting_a_tab() -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("p", "tab")
        assert focused_id(pilot) == "pub-payload"
        await type_burst(pilot, *spell("on"), "tab")
        assert app.screen.query_one("#pub-payload", TextArea).text == "on"
        assert focused_id(pilot) == "pub-encoding"  # the next control ('Send as'), not a tab in the payload
        await pilot.press("tab", "tab", "tab", "tab")
        assert focused_id(pilot) == "pub-send"


async def test_text_typed_into_any_field_goes_into_it() -> None:
    """Which field gets a key does not depend on the terminal's size (the Tab walks above check each field is on
    screen at both sizes): one size."""
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        tabs = app.screen.query_one(TabbedContent)
        for key, (tab, controls) in EXPLORER_TABS.items():
            await press(pilot, "escape", key, "escape")
            for control in ["tree-filter", *controls]:
                widget = app.screen.query_one(f"#{control}")
                if not isinstance(widget, (Input, TextArea)):
                    continue
                widget.focus()
                await settle(pilot)
                numeric = isinstance(widget, Input) and (widget.type == "integer" or widget.restrict is not None)
                probe = "123" if numeric else PROBE
                before = widget.value if isinstance(widget, Input) else widget.text
                if isinstance(widget, Input):
                    widget.cursor_position = len(before)
                else:
                    widget.move_cursor(widget.document.end)
                await type_burst(pilot, *spell(probe))
                after = widget.value if isinstance(widget, Input) else widget.text
                assert after == before + probe, f"#{control} in {tab}"
                assert tabs.active == tab and app.focused is widget, f"#{control} in {tab}"
                if isinstance(widget, Input):
                    widget.value = before
                else:
                    widget.text = before


#: The connection screen in Tab order from the URL: what a connection needs first, the buttons, then the rest.
CONNECT_ORDER = [
    "f-url", "f-username", "f-password", "f-save_password", "f-name", "connect", "save", "delete", "cancel",
    "f-version", "f-clean_start", "f-client_id", "f-keepalive", "f-session_expiry", "f-subscriptions",
    "f-ca_file", "f-cert_file", "f-key_file", "f-server_hostname", "f-alpn", "f-insecure", "f-proxy", "f-will_topic",
    "f-will_payload", "f-will_qos", "f-will_retain", "profile-list",
]  # fmt: skip


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
async def test_the_connection_screen_in_tab_order(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await press(pilot, "c")
        assert focused_id(pilot) == "f-url"  # the URL first
        assert await walk(pilot, "tab", len(CONNECT_ORDER)) == [*CONNECT_ORDER[1:], "f-url"]
        backwards = [*reversed(CONNECT_ORDER)]
        assert await walk(pilot, "shift+tab", len(backwards)) == backwards


@pytest.mark.parametrize("dialog_key", ["g", "D"])
async def test_dialogs_in_tab_order(dialog_key: str) -> None:
    """The jump dialog (g) and the bulk delete (D in the retained table): every control, in order."""
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        if dialog_key == "D":
            await press(pilot, "r")
            table = app.screen.query_one("#retained-table")
            table.refresh_from_model()  # type: ignore[attr-defined]
            table.focus()
        await press(pilot, dialog_key)
        order = ["cancel", "ok"] if dialog_key == "D" else ["path", "cancel", "ok"]
        start = focused_id(pilot)
        assert start in order
        at = order.index(start)
        expected = [*order[at + 1 :], *order[: at + 1]]
        assert await walk(pilot, "tab", len(order)) == expected


async def test_keys_after_a_tab_in_the_same_read_go_to_the_next_field() -> None:
    """A paste or a fast typist: 'abc', Tab, 'xyz' arriving in one read fill the topic and then the payload. (With
    Tab as the screen's ordinary binding, the focus moved only after the key had bubbled up through the topic
    field, and the keys behind it in the same read were in the topic already: 'abcxyz', an empty payload.)"""
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await press(pilot, "p")
        assert focused_id(pilot) == "pub-topic"
        topic = app.screen.query_one("#pub-topic", Input)
        topic.value = ""
        await type_burst(pilot, *spell("abc"), "tab", *spell("xyz"), "shift+tab")
        assert topic.value == "abc"
        assert app.screen.query_one("#pub-payload", TextArea).text == "xyz"
        assert focused_id(pilot) == "pub-topic"
