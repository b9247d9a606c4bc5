"""The chat log's layout without a widget: word wrapping in cells, each message's lines, and a room's layout kept
up to date by appending, putting history in front and learning own messages' outcomes."""

from __future__ import annotations

import random
import time
from itertools import pairwise

import pytest
from rich.cells import cell_len

from mqttchat.chat.model import ChatMessage, Delivery, Room
from mqttchat.chat.protocol import Envelope
from mqttchat.ui.chat_layout import RoomLayout, body_height, extra_lines, extras, plain_body
from mqttchat.ui.wrap import wrap_breaks


def _message(room: str, user: str, i: int, at: float) -> ChatMessage:
    return ChatMessage(room, user, Envelope(f"{user}-{i}", i, "s", at, user, f"message number {i}"), at)


def lines_of(text: str, width: int) -> list[str]:
    cuts = [0, *wrap_breaks(text, width), len(text)]
    return [text[a:b].rstrip("\n") for a, b in pairwise(cuts)]


def test_wrap_breaks_at_spaces_newlines_and_inside_long_words() -> None:
    assert wrap_breaks("short", 10) == []
    assert lines_of("the broker moved to the new rack", 10) == ["the broker ", "moved to ", "the new ", "rack"]
    assert lines_of("one\ntwo", 10) == ["one", "two"]
    assert lines_of("a" * 25, 10) == ["a" * 10, "a" * 10, "a" * 5]
    assert lines_of("wide 日本語の文字です", 8) == ["wide ", "日本語の", "文字です"]


@pytest.mark.parametrize("width", [5, 11, 40])
def test_wrapped_lines_fit_their_width(width: int) -> None:
    rng = random.Random(width)
    words = ["mqtt", "broker", "日本語", "a" * 30, " ", "  ", "\n", "x"]
    for _ in range(300):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 20)))
        pieces = lines_of(text, width)
        assert "".join(pieces) == text.replace("\n", "")
        assert all(cell_len(piece.rstrip(" ")) <= width for piece in pieces), pieces


def test_a_messages_lines_before_it_and_its_height() -> None:
    start = 1_800_000_000.0
    first = _message("lobby", "bob", 1, start)
    second = _message("lobby", "bob", 4, start + 86_400)
    second.gap_before = 2
    second.away = True
    messages = [first, second]
    assert [kind for _, kind in extras(messages, 0)] == ["separator"]
    assert [kind for _, kind in extras(messages, 1)] == ["separator", "away", "gap"]
    assert "2 messages from bob missing here" in extras(messages, 1)[2][0]
    assert [extra_lines(messages, i) for i in range(2)] == [1, 3]
    own = ChatMessage("lobby", "me", Envelope("m", 1, "s", start, "me", "**hi** there"), start, own=True)
    own.delivery = Delivery.FAILED
    own.error = "Not authorized"
    assert plain_body(own) == "hi there ✗ not delivered: Not authorized"
    assert body_height(own, 20) == len(lines_of(plain_body(own), 20)) == 3


def test_layout_operations_match_a_fresh_layout() -> None:
    """Appending in chunks, history put in front, and outcomes of own messages give the same heights and
    starts as laying the room out from scratch."""
    rng = random.Random(7)
    room = Room("lobby")
    start = time.time() - 10 * 86_400

    def make(i: int) -> ChatMessage:
        text = " ".join(rng.choice(["word", "**b**", "a" * 50, "\n", "日本"]) for _ in range(rng.randint(1, 25)))
        message = _message("lobby", "bob", i, start + i * 3000)
        message.envelope = Envelope(f"m{i}", i, "s", start + i * 3000, "bob", text, rng.choice(["message", "action"]))
        message.own = rng.random() < 0.3
        message.delivery = Delivery.SENDING if message.own else Delivery.RECEIVED
        message.away = rng.random() < 0.1
        return message

    def fresh() -> RoomLayout:
        layout = RoomLayout(room, 40)
        layout.extend()
        return layout

    room.messages = [make(i) for i in range(300, 600)]
    layout = RoomLayout(room, 40)
    while not layout.done:
        layout.extend(37)
    assert (layout.heights, layout.starts, layout.total) == (fresh().heights, fresh().starts, fresh().total)
    room.messages[:0] = [make(i) for i in range(100, 300)]
    layout.prepend(200)
    assert (layout.heights, layout.starts, layout.total) == (fresh().heights, fresh().starts, fresh().total)
    for message in room.messages:
        if message.own:
            message.delivery = rng.choice([Delivery.ACKED, Delivery.FAILED])
            message.error = "Quota exceeded, and a long explanation from the broker"
    assert layout.outcome_changed()
    assert (layout.heights, layout.starts, layout.total) == (fresh().heights, fresh().starts, fresh().total)
    partial = RoomLayout(room, 40, base=450)
    partial.extend()
    assert partial.heights == fresh().heights[450:] and partial.index_at(0) == 450
    assert partial.line_of(449) is None and partial.line_of(450) == 0
