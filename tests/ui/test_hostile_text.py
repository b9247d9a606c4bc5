"""Text from the network on screen: every explorer view, dialog and notification shown with hostile strings.

Topics, payloads, user properties, reason strings, client ids and $SYS values hold escape sequences that would
retitle and clear the terminal, C1 controls, bidirectional overrides, newlines and Textual markup (``[/]``,
``[@click=app.quit]``, ``[link=…]``). Each view is rendered as the terminal would receive it (the compositor's
full update) and checked: no control character but those Textual itself writes (colours, cursor moves), no link,
and the markup shown as text (a ``[/]`` in a topic must not crash a dialog either).
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import TabbedContent

from mqttchat.client import ConnackRefused, PublishResult
from mqttchat.protocol import (
    Properties,
    ReasonCode,
)
from mqttchat.ui.screens.dialogs import ConfirmDialog, EditValueDialog
from mqttchat.ui.widgets.retained_table import RetainedTable
from mqttchat.ui.widgets.topic_tree import TopicTreeView
from tests.helpers.hostile_text import (
    CLEAR,
    CLICK,
    HOSTILE,
    LINK,
    TOPICS,
    check_screen,
    hostile_app,
)
from tests.helpers.scenes import NOW, freeze, make_app

TABS = ["message", "history", "retained", "subscriptions", "record", "packets", "broker", "publish"]


async def _settle(pilot: Any) -> None:
    freeze(pilot.app)
    pilot.app.flush()
    await pilot.pause()
    for table in pilot.app.screen.query(RetainedTable):
        table.refresh_from_model()
    pilot.app.screen.query_one("BrokerPanel").refresh_from(pilot.app.runtime)
    await pilot.pause()


@pytest.mark.parametrize("tab", TABS)
async def test_every_tab_shows_hostile_topics_as_text(tab: str) -> None:
    app = hostile_app()
    async with app.run_test(size=(160, 50), notifications=True) as pilot:
        await _settle(pilot)
        view = app.screen.query_one(TopicTreeView)
        app.screen.query_one(TabbedContent).active = tab
        shown = ""
        for topic in TOPICS:
            assert view.select_topic(topic)
            await _settle(pilot)
            shown += check_screen(app, f"{tab} with {topic!r} selected")
        assert "␛]0;TITLE␛\\␛[2J" in shown  # made visible
        assert "[@click=app.quit]x[" in shown  # the markup is on screen as the characters it is made of


@pytest.mark.parametrize("action", ["edit", "delete"])
async def test_retained_dialogs_on_hostile_topics(action: str) -> None:
    app = hostile_app()
    async with app.run_test(size=(160, 50), notifications=True) as pilot:
        await _settle(pilot)
        await pilot.press("r")
        await _settle(pilot)
        table = app.screen.query_one(RetainedTable)
        table.focus()
        for topic in TOPICS:
            table.move_cursor(row=table.get_row_index(topic))
            await pilot.press("e" if action == "edit" else "delete")
            await pilot.pause()
            dialog = app.screen
            assert isinstance(dialog, EditValueDialog if action == "edit" else ConfirmDialog), topic
            text = check_screen(app, f"{action} dialog for {topic!r}")
            assert topic.split("/")[-1].split("\n")[0][-6:] in text.replace("␊", "\n") or "␛" in text
            await pilot.press("escape")
            await pilot.pause()


async def test_notifications_with_hostile_text() -> None:
    app = hostile_app()

    async def refuse(topic: str, payload: bytes, qos: int = 0, retain: bool = False, *args: Any) -> PublishResult:
        return PublishResult(ReasonCode.NOT_AUTHORIZED, Properties(reason_string=HOSTILE))

    async def cannot_connect() -> None:
        raise ConnackRefused(ReasonCode.NOT_AUTHORIZED, Properties(reason_string=HOSTILE))

    async with app.run_test(size=(160, 50), notifications=True) as pilot:
        await _settle(pilot)
        app.runtime.client.publish = refuse  # type: ignore[method-assign]
        app.runtime.start = cannot_connect  # type: ignore[method-assign]
        screen = app.screen
        screen.delete_retained(TOPICS[:3])  # each refused: a notification naming the topic and the reason
        app.start_runtime()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert len(app._notifications) >= 2
        text = check_screen(app, "notifications")
        assert "Not authorized" in text


async def test_chat_view_shows_hostile_text_as_text() -> None:
    """The chat screen (rooms, members, messages, typing, errors) with hostile nicks, text and topics."""
    from mqttchat.chat.model import ChatMessage, Delivery
    from mqttchat.chat.protocol import Envelope, Presence

    app = make_app(view="chat")
    model = app.runtime.chat.model
    nick = f"m{CLEAR}\u202e"
    model.presence[nick] = Presence("online", HOSTILE, ("lobby",), HOSTILE)
    lobby = model.rooms["lobby"]
    lobby.members.add(nick)
    lobby.typing[nick] = NOW + 5
    for i, text in enumerate([HOSTILE, f"**{HOSTILE}** `{CLICK}` {LINK}", "\x1b[31m" * 5]):
        envelope = Envelope(f"h-{i}", 100 + i, "s-h", NOW - 2 + i, HOSTILE, text)
        model._append(lobby, ChatMessage("lobby", nick, envelope, NOW - 2 + i))
    model._append(lobby, ChatMessage("lobby", "alice", Envelope("h-9", 9, "s-a", NOW, "alice", "x"), NOW, own=True,
                                     delivery=Delivery.FAILED, error=HOSTILE))  # fmt: skip
    raw = model.room(f"#{TOPICS[0]}", "raw", TOPICS[0])
    model._append(raw, ChatMessage(raw.name, TOPICS[0], Envelope("r-1", 1, "", NOW, HOSTILE, HOSTILE), NOW))
    app.runtime.chat_error = f"cannot connect the chat: {HOSTILE}"
    async with app.run_test(size=(160, 50), notifications=True) as pilot:
        freeze(app)
        app.flush()
        await pilot.pause()
        text = check_screen(app, "chat, lobby", autolinks=True)
        assert "␛[2J" in text
        model.select(raw.name)
        app.flush()
        await pilot.pause()
        check_screen(app, "chat, a raw room on a hostile topic", autolinks=True)
