"""ChatLog: one room's messages, drawn with the Line API so 100,000 messages cost only the visible lines.

Each message is a block of lines: an optional day separator, an optional "while you were away" marker, an
optional sequence-gap warning, then the message wrapped to the width. Block heights are kept in a list with
running starts, so finding the message under a screen line is a bisection and appending a message costs one
height. Rendered blocks are cached while the width stays the same.

| Key | Action |
| --- | --- |
| PgUp PgDn | scroll by a page (also while typing) |
| Home End | oldest loaded / newest message |
"""

from __future__ import annotations

import datetime as dt
import hashlib
from bisect import bisect_right
from collections import OrderedDict
from functools import lru_cache
from typing import ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from mqttchat.chat.markup import inline, mentions
from mqttchat.chat.model import ChatMessage, Delivery, Room

#: Width of the nick column (longer nicks are cut with an ellipsis).
NICK_WIDTH = 12
#: "12:34 " + nick column + " │ "
GUTTER = 6 + NICK_WIDTH + 3
BLOCK_CACHE = 2_000

#: Nick colours that read well on dark and light themes.
NICK_COLOURS = (
    "#e06c75", "#98c379", "#e5c07b", "#61afef", "#c678dd", "#56b6c2",
    "#d19a66", "#be5046", "#7ec699", "#f08d49", "#a48bd6", "#4fb0c6",
)  # fmt: skip


def nick_colour(identity: str) -> str:
    """A stable colour per sender (the same in every run and for every reader)."""
    digest = hashlib.blake2s(identity.encode(), digest_size=2).digest()
    return NICK_COLOURS[int.from_bytes(digest, "big") % len(NICK_COLOURS)]


def _shown_time(message: ChatMessage) -> float:
    return message.envelope.ts or message.received_at


def _day(stamp: float) -> dt.date:
    """The local date of a timestamp (cached per quarter hour: every UTC offset is a multiple of 15 minutes)."""
    return _quarter_day(int(stamp // 900))


@lru_cache(maxsize=4096)
def _quarter_day(quarter: int) -> dt.date:
    return dt.datetime.fromtimestamp(quarter * 900).date()


class ChatLog(ScrollView, can_focus=True):
    """The messages of one :class:`~mqttchat.chat.model.Room`; the chat screen calls :meth:`show` on its timer."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "scroll_up", "Up", show=False),
        Binding("down", "scroll_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "scroll_home", "Oldest", show=False),
        Binding("end", "scroll_end", "Newest", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "chat-log--time",
        "chat-log--separator",
        "chat-log--away",
        "chat-log--gap",
        "chat-log--notice",
        "chat-log--mention",
        "chat-log--code",
        "chat-log--link",
        "chat-log--sending",
        "chat-log--acked",
        "chat-log--failed",
    }

    DEFAULT_CSS = """
    ChatLog { background: $surface; scrollbar-gutter: stable; overflow-x: hidden; }
    ChatLog > .chat-log--time { color: $text-muted; }
    ChatLog > .chat-log--separator { color: $text-muted; }
    ChatLog > .chat-log--away { color: $warning; text-style: bold; }
    ChatLog > .chat-log--gap { color: $warning; }
    ChatLog > .chat-log--notice { color: $text-muted; text-style: italic; }
    ChatLog > .chat-log--mention { background: $warning-muted; }
    ChatLog > .chat-log--code { background: $panel; color: $accent; }
    ChatLog > .chat-log--link { color: $primary; text-style: underline; }
    ChatLog > .chat-log--sending { color: $text-disabled; }
    ChatLog > .chat-log--acked { color: $success; }
    ChatLog > .chat-log--failed { color: $error; text-style: bold; }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.room: Room | None = None
        #: Names that count as mentioning the reader.
        self.me: tuple[str, ...] = ()
        self._count = 0
        self._first: ChatMessage | None = None
        self._version = -1
        self._width = 0
        self._heights: list[int] = []
        self._starts: list[int] = []
        self._total = 0
        self._cache: OrderedDict[tuple[int, Delivery], list[Strip]] = OrderedDict()
        self._follow = True
        self._scrolling_to_end = False
        self._text_width = 10
        #: Own messages still being sent, by index: their delivery mark may need more lines later.
        self._sending: dict[int, ChatMessage] = {}

    # ------------------------------------------------------------------------------------------ updates

    @property
    def text_width(self) -> int:
        return max(10, self.scrollable_content_region.width - GUTTER - 1)

    @property
    def at_bottom(self) -> bool:
        """Whether the view follows new messages (it does until the reader scrolls up)."""
        return self._follow

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if not self._scrolling_to_end:
            self._follow = new_value >= self.max_scroll_y - 1

    def _to_end(self) -> None:
        """Scroll to the newest line once the new virtual size has been laid out."""
        self._follow = True
        self._scrolling_to_end = True

        def scroll() -> None:
            self.scroll_end(animate=False, immediate=True)
            self._scrolling_to_end = False
            self._follow = True

        self.call_after_refresh(scroll)

    @property
    def total_lines(self) -> int:
        return self._total

    def show(self, room: Room | None, force: bool = False) -> None:
        """Show ``room``; cheap when nothing changed. New messages keep the view at the bottom if it was there."""
        width = self.size.width
        if room is not self.room:
            self.room = room
            self._relayout()
            self._to_end()
            self.refresh()
            return
        if room is None or (room.version == self._version and width == self._width and not force):
            return
        follow = self.at_bottom
        messages = room.messages
        added = len(messages) - self._count
        if width == self._width and added > 0 and self._first is not None and messages[added] is self._first:
            self.prepend_layout(added)  # older history was put in front
        elif width != self._width or not messages or messages[0] is not self._first or added < 0:
            top = self._message_at(int(self.scroll_y))
            offset = int(self.scroll_y) - self._starts[top] if top is not None else 0
            self._relayout()
            if follow or top is None or top >= len(self._starts):
                self._to_end()
            else:
                self.scroll_to(y=self._starts[top] + min(offset, self._heights[top] - 1), animate=False,
                               immediate=True)  # fmt: skip
        elif self._delivery_changed_height(messages):
            top = self._message_at(int(self.scroll_y))
            self._relayout()
            if follow or top is None or top >= len(self._starts):
                self._to_end()
            else:
                self.scroll_to(y=self._starts[top], animate=False, immediate=True)
        else:
            for index in range(self._count, len(messages)):
                self._add_height(messages, index)
            self._count = len(messages)
            self._version = room.version
            self.virtual_size = Size(self.scrollable_content_region.width, self._total)
            if follow:
                self._to_end()
        self.refresh()

    def _relayout(self) -> None:
        self._cache.clear()
        self._sending.clear()
        self._heights = []
        self._starts = []
        self._total = 0
        self._width = self.size.width
        room = self.room
        if room is None:
            self._count = 0
            self._first = None
            self.virtual_size = Size(self.scrollable_content_region.width, 0)
            return
        messages = room.messages
        self._text_width = width = self.text_width
        # One tight loop (this lays out every message of the room): the common message is one line, on the
        # same day as the one before, not away, without a gap.
        heights, starts, sending = self._heights, self._starts, self._sending
        total = 0
        previous_day = None
        previous_away = False
        body_height = self._body_height
        day_of = _day
        plain = "message"
        for index, message in enumerate(messages):
            envelope = message.envelope
            day = day_of(envelope.ts or message.received_at)
            height = (day != previous_day) + (message.away and not previous_away) + (message.gap_before > 0)
            previous_day, previous_away = day, message.away
            text = envelope.text
            if message.own or envelope.kind != plain or "\n" in text:
                height += body_height(message)
                if message.own and message.delivery is Delivery.SENDING:
                    sending[index] = message
            elif len(text) * 2 <= width or cell_len(text) <= width:
                height += 1
            else:
                height += body_height(message)
            starts.append(total)
            heights.append(height)
            total += height
        self._total = total
        self._count = len(messages)
        self._first = messages[0] if messages else None
        self._version = room.version
        self.virtual_size = Size(self.scrollable_content_region.width, self._total)

    def _delivery_changed_height(self, messages: list[ChatMessage]) -> bool:
        """Own messages that were being sent got their outcome: does a block need more lines now?"""
        changed = False
        for index in list(self._sending):
            message = messages[index] if index < len(messages) else None
            if message is None or message.delivery is not Delivery.SENDING:
                del self._sending[index]
                if message is not None:
                    height = self._extra_lines(messages, index) + self._body_height(message)
                    changed = changed or height != self._heights[index]
        return changed

    def _add_height(self, messages: list[ChatMessage], index: int) -> None:
        message = messages[index]
        if message.own and message.delivery is Delivery.SENDING:
            self._sending[index] = message
        height = self._extra_lines(messages, index) + self._body_height(message)
        self._starts.append(self._total)
        self._heights.append(height)
        self._total += height

    def _message_at(self, line: int) -> int | None:
        if not self._starts:
            return None
        return max(0, bisect_right(self._starts, line) - 1)

    def prepend_layout(self, added: int) -> None:
        """``added`` older messages were put in front: lay out again and keep the reader's place."""
        offset_in_block = 0
        top = self._message_at(int(self.scroll_y))
        if top is not None:
            offset_in_block = int(self.scroll_y) - self._starts[top]
        self._relayout()
        if top is not None and top + added < len(self._starts):
            self.scroll_to(y=self._starts[top + added] + offset_in_block, animate=False, immediate=True)
        self.refresh()

    # ------------------------------------------------------------------------------------------ layout

    @staticmethod
    def _extra_lines(messages: list[ChatMessage], index: int) -> int:
        """How many lines :meth:`_extras` gives (without building them: this runs for every message)."""
        message = messages[index]
        if not index:
            return 1 + message.away + (message.gap_before > 0)
        previous = messages[index - 1]
        envelope, before = message.envelope, previous.envelope
        new_day = _day(envelope.ts or message.received_at) != _day(before.ts or previous.received_at)
        return new_day + (message.away and not previous.away) + (message.gap_before > 0)

    def _extras(self, messages: list[ChatMessage], index: int) -> list[tuple[str, str]]:
        """Lines before a message: (text, component) for day separators, the away marker and gaps."""
        message = messages[index]
        previous = messages[index - 1] if index else None
        extras: list[tuple[str, str]] = []
        stamp = _shown_time(message)
        if previous is None or _day(_shown_time(previous)) != _day(stamp):
            extras.append((dt.datetime.fromtimestamp(stamp).strftime("%A %d %B %Y"), "chat-log--separator"))
        if message.away and (previous is None or not previous.away):
            extras.append(("while you were away", "chat-log--away"))
        if message.gap_before:
            count = message.gap_before
            what = "message" if count == 1 else "messages"
            extras.append((f"⚠ {count} {what} from {message.sender} missing here (lost on the way)", "chat-log--gap"))
        return extras

    def _body_text(self, message: ChatMessage) -> str:
        envelope = message.envelope
        if envelope.kind == "action":
            return f"{envelope.nick or message.sender} {envelope.text}"
        return envelope.text

    @staticmethod
    def _suffix(message: ChatMessage) -> str:
        """The delivery mark after one's own messages."""
        if not message.own:
            return ""
        if message.delivery is Delivery.SENDING:
            return " ⋯"
        if message.delivery is Delivery.ACKED:
            return " ✓"
        if message.delivery is Delivery.FAILED:
            return f" ✗ not delivered: {message.error or 'failed'}"
        return ""

    def _body_height(self, message: ChatMessage) -> int:
        envelope = message.envelope
        text = envelope.text
        size = len(text)
        if message.own or envelope.kind != "message":
            text = self._body_text(message) + self._suffix(message)
            size = len(text)
        width = self._text_width
        if "\n" not in text and (size * 2 <= width or cell_len(text) <= width):
            return 1
        return len(self._wrap(message))

    def _wrap(self, message: ChatMessage) -> list[Text]:
        text = self._styled_body(message)
        lines = text.wrap(self.app.console, self._text_width, overflow="fold")
        return list(lines) or [Text("")]

    def _styled_body(self, message: ChatMessage) -> Text:
        envelope = message.envelope
        if envelope.kind == "notice":
            return Text(envelope.text, style=self._style("chat-log--notice"))
        styles = {
            "": Style(),
            "bold": Style(bold=True),
            "italic": Style(italic=True),
            "code": self._style("chat-log--code"),
            "link": self._style("chat-log--link"),
            "mention": Style(bold=True),
        }
        text = Text()
        if envelope.kind == "action":
            text.append(f"{envelope.nick or message.sender} ", Style(color=nick_colour(message.sender), bold=True))
        if message.room.startswith("#") and message.envelope.session == "":  # raw rooms: payloads as typed
            text.append(envelope.text)
        else:
            for piece, kind in inline(envelope.text, self.me):
                if kind == "link":
                    text.append(piece, styles["link"] + Style(link=piece))
                else:
                    text.append(piece, styles[kind])
        suffix = self._suffix(message)
        if suffix:
            component = {Delivery.SENDING: "chat-log--sending", Delivery.ACKED: "chat-log--acked"}
            text.append(suffix, self._style(component.get(message.delivery, "chat-log--failed")))
        return text

    def _style(self, component: str) -> Style:
        return self.get_component_rich_style(component, partial=True)

    # ------------------------------------------------------------------------------------------ rendering

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        line = scroll_y + y
        width = self.size.width
        base = self.rich_style
        room = self.room
        if room is None or line >= self._total or not self._starts:
            return Strip.blank(width, base)
        index = bisect_right(self._starts, line) - 1
        block = self._block(room.messages, index)
        offset = line - self._starts[index]
        if offset >= len(block):
            return Strip.blank(width, base)
        return block[offset].crop_extend(scroll_x, scroll_x + width, base)

    def _block(self, messages: list[ChatMessage], index: int) -> list[Strip]:
        message = messages[index]
        key = (id(message), message.delivery)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        block = self._render_block(messages, index)
        self._cache[key] = block
        if len(self._cache) > BLOCK_CACHE:
            self._cache.popitem(last=False)
        return block

    def _render_block(self, messages: list[ChatMessage], index: int) -> list[Strip]:
        message = messages[index]
        base = self.rich_style
        width = self.size.width
        strips: list[Strip] = []
        for text, component in self._extras(messages, index):
            label = f" {text} "
            side = max(2, (width - cell_len(label)) // 2)
            rule = "─" * side
            strips.append(Strip([Segment(rule + label + rule, base + self._style(component))]))
        envelope = message.envelope
        own_names = self.me
        row = base
        if not message.own and envelope.kind != "notice" and mentions(envelope.text, own_names):
            row = base + self._style("chat-log--mention")
        stamp = dt.datetime.fromtimestamp(_shown_time(message)).strftime("%H:%M")
        time_style = row + self._style("chat-log--time")
        if envelope.kind == "notice":
            nick, nick_style = "--", row + self._style("chat-log--notice")
        elif envelope.kind == "action":
            nick, nick_style = "*", row + Style(color=nick_colour(message.sender), bold=True)
        else:
            nick = envelope.nick or message.sender
            nick_style = row + Style(color=nick_colour(message.sender), bold=message.own or row is not base)
        if cell_len(nick) > NICK_WIDTH:
            nick = nick[: NICK_WIDTH - 1] + "…"
        nick_cell = " " * (NICK_WIDTH - cell_len(nick))
        guide = row + self._style("chat-log--separator")
        body_lines = self._wrap(message)
        # The gutter's padding is "·"-free but never leading spaces inside a styled span (rsvg drops them).
        for number, body in enumerate(body_lines):
            segments: list[Segment] = []
            if number == 0:
                segments.append(Segment(stamp, time_style))
                segments.append(Segment(" " + nick_cell, row))
                segments.append(Segment(nick, nick_style))
            else:
                segments.append(Segment(" " * (6 + NICK_WIDTH - 1) + " ", row))
            segments.append(Segment(" │ ", guide))
            body.stylize_before(row)
            segments.extend(body.render(self.app.console))
            strips.append(Strip(segments).extend_cell_length(width, row))
        return strips
