"""Text from the network on screen: every explorer view, dialog and notification shown with hostile strings.

Topics, payloads, user properties, reason strings, client ids and $SYS values hold escape sequences that would
retitle and clear the terminal, C1 controls, bidirectional overrides, newlines and Textual markup (``[/]``,
``[@click=app.quit]``, ``[link=…]``). Each view is rendered as the terminal would receive it (the compositor's
full update) and checked: no control character but those Textual itself writes (colours, cursor moves), no link,
and the markup shown as text (a ``[/]`` in a topic must not crash a dialog either).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from rich.segment import Segment
from textual.widgets import TabbedContent

from mqttchat.client import BrokerCapabilities, ConnackRefused, PublishResult
from mqttchat.explorer.trace import TraceRecord
from mqttchat.explorer.tree import TopicTree
from mqttchat.protocol import (
    ConnAck,
    Disconnect,
    Properties,
    PubAck,
    Publish,
    ReasonCode,
    Subscription,
)
from mqttchat.ui.screens.dialogs import ConfirmDialog, EditValueDialog
from mqttchat.ui.widgets.retained_table import RetainedTable
from mqttchat.ui.widgets.topic_tree import TopicTreeView
from tests.ui.conftest import NOW, freeze, make_app

TITLE = "\x1b]0;TITLE\x1b\\"
CLEAR = "\x1b[2J"
CLICK = "[@click=app.quit]x[/]"
LINK = "[link=https://evil.example]L[/link]"
#: Every kind of trouble in one string.
HOSTILE = f"{TITLE}{CLEAR}\x07\x9b31m\u202eevil {CLICK} {LINK}\nforged"

TOPICS = [
    f"t/{TITLE}{CLEAR}",  # the retained topic
    "evil/[/]",
    f"m/{CLICK}",
    f"m/{LINK}",
    "b/\u202eabc",
    "n/line one\nline two",
]

#: What Textual itself writes around the text: colours (SGR), cursor moves, and hyperlinks of its own.
_TEXTUAL_SEQUENCES = re.compile(r"\x1b\[[0-9;]*m|\x1b\[\d+;\d+H|\x1b\]8;[^\x1b]*\x1b\\")


def _bad(char: str) -> bool:
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F or 0x202A <= code <= 0x202E or 0x2066 <= code <= 0x2069


def hostile_tree() -> TopicTree:
    tree = TopicTree()
    props = Properties(
        content_type=HOSTILE,
        user_property=[(HOSTILE, HOSTILE), ("k", CLICK)],
        response_topic=f"r/{TITLE}",
        correlation_data=TITLE.encode(),
    )
    for i, topic in enumerate(TOPICS):
        at = NOW - 60 + i
        tree.ingest(topic, HOSTILE.encode(), 1, True, False, props, at)
        tree.ingest(topic, f'{{"k{CLICK}": "{CLEAR}\\u009b\\u202e{LINK}", "n": {i}}}'.encode(), 1, True, False, props,
                    at + 1)  # fmt: skip
        tree.ingest(topic, HOSTILE.encode() + b"\xff", 1, True, False, props, at + 2)
    return tree


def hostile_app() -> Any:
    app = make_app(tree=hostile_tree())
    runtime = app.runtime
    runtime.client.session.capabilities = BrokerCapabilities(
        version=5,
        session_present=False,
        assigned_client_identifier=HOSTILE,
        reason_string=HOSTILE,
        response_information=HOSTILE,
        server_reference=HOSTILE,
    )
    runtime.client.session.client_id = HOSTILE
    runtime.sys_stats[f"load/{HOSTILE}"] = HOSTILE
    runtime.events.append(f"07:59:00 disconnected: the broker disconnected: {HOSTILE}")
    for topic in TOPICS[:3]:
        sub = Subscription(topic.replace("\n", ""), 1)
        runtime.client.session.subscriptions[sub.topic_filter] = (sub, Properties())
        runtime.granted[sub.topic_filter] = ReasonCode.GRANTED_QOS_1
    props = Properties(reason_string=HOSTILE, user_property=[(HOSTILE, HOSTILE)])
    runtime.trace.extend(
        [
            TraceRecord(NOW - 2, "in", ConnAck(False, properties=props), 80),
            TraceRecord(NOW - 1, "in", Publish(TOPICS[0], HOSTILE.encode(), 1, packet_id=3, properties=props), 90),
            TraceRecord(NOW - 1, "in", PubAck(3, ReasonCode.NOT_AUTHORIZED, props), 60),
            TraceRecord(NOW, "in", Disconnect(ReasonCode.ADMINISTRATIVE_ACTION, props), 60),
        ]
    )
    return app


def terminal_output(app: Any) -> tuple[str, list[Segment]]:
    """What the terminal would receive to draw the screen now, and the segments it is made of."""
    update = app.screen._compositor.render_full_update()
    segments = [segment for line in update.strips for strip in line for segment in strip]
    return update.render_segments(app.console), segments


def check_screen(app: Any, where: str, *, autolinks: bool = False) -> str:
    """Assert nothing the broker sent reached the terminal as a control, a link or an action; the screen's text.

    ``autolinks``: the view links URLs written in the text (the chat does): a link must then show its own target,
    never other text (``[link=URL]text[/link]`` must not make "text" a link).
    """
    output, segments = terminal_output(app)
    text = "".join(segment.text for segment in segments)
    assert [repr(c) for c in text if _bad(c)] == [], where
    links = {segment.style.link for segment in segments if segment.style is not None and segment.style.link}
    if autolinks:
        hidden = [(s.text, s.style.link) for s in segments if s.style and s.style.link and s.text not in s.style.link]
        assert not hidden, (where, hidden)
        assert not any("[" in link or "]" in link for link in links), (where, links)
    else:
        assert not any("evil" in link for link in links), (where, links)
    leftover = _TEXTUAL_SEQUENCES.sub("", output).replace("\n", "")
    assert [repr(c) for c in leftover if _bad(c)] == [], where
    clicks = [
        segment.style.meta.get("@click")
        for segment in segments
        if segment.style is not None and segment.style.meta and segment.text.strip() == "x"
    ]
    assert not clicks, (where, clicks)  # a topic's "[@click=app.quit]x[/]" did not become a clickable "x"
    return text


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
