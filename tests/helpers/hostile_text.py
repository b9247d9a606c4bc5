"""Hostile network text for the screens' tests: control sequences, markup and bidi overrides in topics,
payloads and names, and the check that a screen shows them as text."""

from __future__ import annotations

import re
from typing import Any

from rich.segment import Segment

from mqttchat.client import BrokerCapabilities
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
from tests.helpers.scenes import NOW, make_app

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
    runtime.broker_sys.offer(f"$SYS/broker/load/{HOSTILE}", HOSTILE.encode(), 0.0)
    runtime.broker_sys.offer(f"$SYS/brokers/{HOSTILE}/version", HOSTILE.encode(), 0.0)
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
