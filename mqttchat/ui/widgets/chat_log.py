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
import re
import time
from bisect import bisect_right
from collections import OrderedDict
from functools import lru_cache
from itertools import accumulate
from typing import ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from mqttchat.chat.markup import inline, mentions, plain
from mqttchat.chat.model import ChatMessage, Delivery, Room
from mqttchat.chat.protocol import TS_MAX, TS_MIN
from mqttchat.untrusted import printable

#: Width of the nick column (longer nicks are cut with an ellipsis).
NICK_WIDTH = 12
#: "12:34 " + nick column + " │ "
GUTTER = 6 + NICK_WIDTH + 3
BLOCK_CACHE = 2_000
#: Rooms up to this many messages are laid out at once after a resize; bigger ones in the background.
SYNC_LAYOUT = 2_000

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


def local_time(stamp: float) -> dt.datetime:
    """The local time of a timestamp, for any number at all: the reader checks ``ts`` (1970 to 2100), and this
    keeps a value that slipped through (an old history) from ending the app."""
    if not TS_MIN <= stamp < TS_MAX:  # also NaN
        stamp = TS_MIN
    try:
        return dt.datetime.fromtimestamp(stamp)
    except (ValueError, OverflowError, OSError):
        return dt.datetime(1970, 1, 1)


def _day(stamp: float) -> dt.date:
    """The local date of a timestamp (cached per quarter hour: every UTC offset is a multiple of 15 minutes)."""
    if not TS_MIN <= stamp < TS_MAX:
        stamp = TS_MIN
    return _quarter_day(int(stamp // 900))


@lru_cache(maxsize=4096)
def _quarter_day(quarter: int) -> dt.date:
    return local_time(quarter * 900).date()


def identity_mark(message: ChatMessage) -> str:
    """``(@identity) `` before the text of a message whose nick is not its sender's identity (ignoring case), so
    that a nick copied from someone else cannot pass for theirs; empty otherwise."""
    nick = message.envelope.nick
    if not nick or nick == message.sender or not message.sender or message.envelope.kind in ("notice", "dropped"):
        return ""
    if nick.casefold() == message.sender.casefold() or message.envelope.session == "":  # raw rooms: no nicks
        return ""
    return f"(@{printable(message.sender)}) "


def wrap_breaks(text: str, width: int) -> list[int]:
    """Where ``text`` breaks into lines of at most ``width`` cells: at spaces (the spaces stay at the end of the
    line, where they are not drawn), at newlines, and inside words longer than a line. Returns the offset of
    each line after the first. The layout counts lines with it and the renderer breaks with it, so a message's
    height and its drawing always agree."""
    if "\n" not in text:
        if text.isascii():
            return [] if len(text) <= width else _ascii_breaks(text, 0, len(text), width)
        return [] if cell_len(text) <= width else _cell_breaks(text, 0, len(text), width)
    breaks: list[int] = []
    start = 0
    for paragraph in text.split("\n"):
        end = start + len(paragraph)
        if start:
            breaks.append(start)
        if paragraph.isascii():
            if len(paragraph) > width:
                breaks.extend(_ascii_breaks(text, start, end, width))
        elif cell_len(paragraph) > width:
            breaks.extend(_cell_breaks(text, start, end, width))
        start = end + 1
    return breaks


def _ascii_breaks(text: str, start: int, end: int, width: int) -> list[int]:
    """Greedy word wrap of ``text[start:end]`` (one cell per character): a few C-level searches per line."""
    breaks: list[int] = []
    find = text.rfind
    line = start
    while end - line > width:
        cut = find(" ", line + 1, line + width + 1)
        if cut <= line:
            line += width  # no space to break at: fold the word
        else:
            line = cut + 1
            while line < end and text[line] == " ":
                line += 1  # the spaces at a break stay on the line before
            if line >= end:
                break
        breaks.append(line)
    return breaks


_WORDS = re.compile(r" +|[^ ]+")


def _cell_breaks(text: str, start: int, end: int, width: int) -> list[int]:
    """Greedy word wrap of ``text[start:end]`` measured in cells (wide characters take two)."""
    breaks: list[int] = []
    column = 0
    for match in _WORDS.finditer(text, start, end):
        token = match.group()
        begin = match.start()
        size = cell_len(token)
        if token[0] == " ":
            column += size  # may pass the edge: trailing spaces are not drawn
            continue
        if column and column + size > width:
            breaks.append(begin)
            column = 0
        if column + size <= width:
            column += size
            continue
        for index, char in enumerate(token):  # a word longer than the line: fold it
            char_size = cell_len(char)
            if column + char_size > width and column:
                breaks.append(begin + index)
                column = 0
            column += char_size
    return breaks


class Layout:
    """The heights of a room's messages at one text width, from message ``base`` on (a room shown before its
    older messages are laid out starts late), with the first line of each."""

    __slots__ = ("base", "end", "first", "heights", "log", "room", "sending", "starts", "total", "width")

    def __init__(self, room: Room, width: int, log: ChatLog, base: int = 0) -> None:
        self.room = room
        self.width = width
        self.log = log
        self.base = base
        #: The next message to lay out (an index into room.messages).
        self.end = base
        self.heights: list[int] = []  # by index - base
        self.starts: list[int] = []
        self.total = 0
        self.first: ChatMessage | None = room.messages[0] if room.messages else None
        #: Own messages still being sent, by index: their outcome may take more lines.
        self.sending: dict[int, ChatMessage] = {}

    @property
    def done(self) -> bool:
        return self.end >= len(self.room.messages)

    def stale(self) -> bool:
        """The room's messages were replaced or removed (not only appended to)."""
        messages = self.room.messages
        return len(messages) < self.end or (bool(messages) and messages[0] is not self.first)

    def index_at(self, line: int) -> int | None:
        """The message drawn on ``line``."""
        if not self.starts:
            return None
        return self.base + max(0, bisect_right(self.starts, line) - 1)

    def line_of(self, index: int) -> int | None:
        """The first line of message ``index``, if it is laid out."""
        relative = index - self.base
        return self.starts[relative] if 0 <= relative < len(self.starts) else None

    def height_of(self, index: int) -> int:
        return self.heights[index - self.base]

    def _measure(self, index: int) -> int:
        messages = self.room.messages
        return ChatLog._extra_lines(messages, index) + self.log._body_height(messages[index], self.width)

    def _restart_from(self, relative: int) -> None:
        """Recompute the running starts from ``relative`` on (C speed: 100,000 in a few milliseconds)."""
        head = self.starts[relative] if relative < len(self.starts) else self.total
        self.starts[relative:] = accumulate(self.heights[relative:-1], initial=head) if self.heights[relative:] else []
        self.total = head + sum(self.heights[relative:])

    def outcome_changed(self) -> bool:
        """Own messages that were being sent got their outcome; their blocks may need more lines now. Returns
        whether any height changed."""
        changed = -1
        for index, message in list(self.sending.items()):
            if message.delivery is not Delivery.SENDING:
                del self.sending[index]
                height = self._measure(index)
                if height != self.height_of(index):
                    self.heights[index - self.base] = height
                    changed = index - self.base if changed < 0 else min(changed, index - self.base)
        if changed >= 0:
            self._restart_from(changed)
        return changed >= 0

    def prepend(self, added: int) -> None:
        """``added`` older messages were put in front of the room."""
        self.first = self.room.messages[0]
        self.sending = {index + added: message for index, message in self.sending.items()}
        old_base = self.base
        self.base += added
        self.end += added
        if old_base:
            return  # they are before what this layout covers
        # Lay out the new ones, and the old first message again (its day separator may have gone).
        front = Layout(self.room, self.width, self.log)
        front.extend(added + 1)
        self.heights[:1] = front.heights
        self.sending.update(front.sending)
        self.base = 0
        self.starts = [0]
        self._restart_from(0)

    def extend_until(self, deadline: float, chunk: int = 2_000) -> bool:
        """Lay out new messages in chunks until done or ``deadline`` (perf_counter); True when done."""
        while not self.done:
            if time.perf_counter() >= deadline:
                return False
            self.extend(chunk)
        return True

    def extend(self, limit: int | None = None) -> int:
        """Lay out the messages added since the last call (at most ``limit``); return how many."""
        messages = self.room.messages
        begin = self.end
        end = len(messages) if limit is None else min(len(messages), begin + limit)
        if begin >= end:
            return 0
        # One tight loop: the common message is one line, on the same day as the one before, not away, and
        # without a gap.
        heights, starts, sending = self.heights, self.starts, self.sending
        width = self.width
        body_height = self.log._body_height
        day_of = _day
        total = self.total
        if begin:
            before = messages[begin - 1]
            previous_day: dt.date | None = day_of(before.envelope.ts or before.received_at)
            previous_away = before.away
        else:
            previous_day, previous_away = None, False
        for index in range(begin, end):
            message = messages[index]
            envelope = message.envelope
            day = day_of(envelope.ts or message.received_at)
            height = (day != previous_day) + (message.away and not previous_away) + (message.gap_before > 0)
            previous_day, previous_away = day, message.away
            text = envelope.text
            if message.own:
                if message.delivery is Delivery.SENDING:
                    sending[index] = message
                height += body_height(message, width)
            elif (
                envelope.kind == "message"
                and (len(text) * 2 <= width or (len(text) <= width and text.isascii()))
                and "\n" not in text
                and (envelope.nick == message.sender or not identity_mark(message))
            ):
                height += 1  # fits (markers only make the text shorter)
            else:
                height += body_height(message, width)
            starts.append(total)
            heights.append(height)
            total += height
        self.total = total
        self.end = end
        return end - begin


class ChatLog(ScrollView, can_focus=True):
    """The messages of one :class:`~mqttchat.chat.model.Room`; the chat screen calls :meth:`show` on its timer."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move('line', -1)", "Up", show=False),
        Binding("down", "move('line', 1)", "Down", show=False),
        Binding("pageup", "move('page', -1)", "Page up", show=False),
        Binding("pagedown", "move('page', 1)", "Page down", show=False),
        Binding("home", "move('all', -1)", "Oldest", show=False),
        Binding("end", "move('all', 1)", "Newest", show=False),
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
        "chat-log--identity",
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
    ChatLog > .chat-log--identity { color: $text-muted; }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.room: Room | None = None
        #: Names that count as mentioning the reader.
        self.me: tuple[str, ...] = ()
        #: The layout of the room shown, and those of the other rooms (kept up to date by :meth:`prepare`).
        self._layout: Layout | None = None
        self._layouts: dict[int, Layout] = {}
        self._version = -1
        self._cache: OrderedDict[tuple[int, Delivery], list[Strip]] = OrderedDict()
        self._follow = True
        self._scrolling_to_end = False
        #: The shown room's layout at a new width, being built by prepare().
        self._pending: Layout | None = None

    # ------------------------------------------------------------------------------------------ updates

    @property
    def text_width(self) -> int:
        return max(10, self.scrollable_content_region.width - GUTTER - 1)

    @property
    def at_bottom(self) -> bool:
        """Whether the view follows new messages (it does until the reader scrolls up)."""
        return self._follow

    @property
    def total_lines(self) -> int:
        return self._layout.total if self._layout is not None else 0

    @property
    def _heights(self) -> list[int]:
        return self._layout.heights if self._layout is not None else []

    @property
    def _starts(self) -> list[int]:
        return self._layout.starts if self._layout is not None else []

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if not self._scrolling_to_end:
            self._follow = new_value >= self.max_scroll_y - 1

    def _to_end(self) -> None:
        """Scroll to the newest line once the new virtual size has been laid out."""
        self._follow = True
        self._scrolling_to_end = True
        self.scroll_end(animate=False, immediate=True)  # now, and again once the new size is laid out

        def scroll() -> None:
            self.scroll_end(animate=False, immediate=True)
            self._scrolling_to_end = False
            self._follow = True

        self.call_after_refresh(scroll)

    def action_move(self, unit: str, direction: int) -> None:
        """Scroll by a line, a page or all the way, at once (no animation: a chat log is read, not watched)."""
        step = {"line": 1, "page": max(1, self.scrollable_content_region.height - 1), "all": self.total_lines}[unit]
        self.scroll_to(y=self.scroll_y + direction * step, animate=False, immediate=True)

    def _set_virtual_size(self) -> None:
        self.virtual_size = Size(self.scrollable_content_region.width, self.total_lines)

    def prepare(self, rooms: list[Room], seconds: float = 0.008) -> None:
        """Lay out in the background, at most ``seconds`` per call: first what the shown room still needs (its
        older messages, or all of them at a new width), then the new messages of the other rooms, so that
        switching rooms costs nothing."""
        deadline = time.perf_counter() + seconds
        pending = self._pending
        if pending is not None:
            if pending.room is not self.room or pending.stale() or pending.width != self.text_width:
                self._pending = None
            elif pending.extend_until(deadline):
                self._swap_in(pending)
        width = self.text_width
        live = {id(room) for room in rooms}
        for key in [key for key in self._layouts if key not in live]:
            del self._layouts[key]
        for room in rooms:
            if time.perf_counter() >= deadline:
                return
            if room is self.room:
                continue
            layout = self._layouts.get(id(room))
            if layout is None or layout.width != width or layout.stale():
                layout = self._layouts[id(room)] = Layout(room, width, self)
            layout.extend_until(deadline)

    def _keep_place(self, old: Layout | None, new: Layout, follow: bool) -> None:
        """After switching layouts, show the message that was at the top (or follow the newest)."""
        top = old.index_at(int(self.scroll_y)) if old is not None else None
        offset = 0
        if old is not None and top is not None:
            line = old.line_of(top)
            offset = int(self.scroll_y) - line if line is not None else 0
        self._set_virtual_size()
        line = new.line_of(top) if top is not None else None
        if follow or line is None:
            self._to_end()
        else:
            offset = min(offset, new.height_of(top) - 1) if top is not None else 0
            self.scroll_to(y=line + offset, animate=False, immediate=True)

    def _swap_in(self, layout: Layout) -> None:
        """Draw the shown room with ``layout`` (complete now), keeping the reader's place."""
        old, follow = self._layout, self.at_bottom
        self._pending = None
        self._cache.clear()
        self._layout = self._layouts[id(layout.room)] = layout
        self._keep_place(old, layout, follow)
        self.refresh()

    def _lay_out(self, room: Room, width: int) -> Layout:
        """A layout to draw ``room`` with now: complete, or, for a room of many messages not laid out yet, its
        newest messages only, while the whole room is laid out in the background (``_pending``)."""
        layout = self._layouts.get(id(room))
        if layout is None or layout.width != width or layout.stale():
            layout = self._layouts[id(room)] = Layout(room, width, self)
        missing = len(room.messages) - layout.end
        if missing <= SYNC_LAYOUT:
            layout.extend()
            return layout
        self._pending = layout
        newest = Layout(room, width, self, base=len(room.messages) - SYNC_LAYOUT)
        newest.extend()
        return newest

    def show(self, room: Room | None, force: bool = False) -> None:
        """Show ``room``; cheap when nothing changed. New messages keep the view at the bottom if it was there."""
        width = self.text_width
        if room is not self.room:
            self.room = room
            self._cache.clear()
            self._pending = None
            self._layout = None if room is None else self._lay_out(room, width)
            self._version = room.version if room is not None else -1
            self._set_virtual_size()
            self._to_end()
            self.refresh()
            return
        layout = self._layout
        if self._follow and not self._scrolling_to_end and self.scroll_y < self.max_scroll_y:
            # Following, yet above the end: the last scroll to the end ran before the size it needed was laid out
            # (a long message wrapping into many lines). Catch up now, at the next flush.
            self.scroll_end(animate=False, immediate=True)
        if room is None or layout is None or (room.version == self._version and width == layout.width and not force):
            return
        self._version = room.version
        follow = self.at_bottom
        messages = room.messages
        added = len(messages) - layout.end
        if added > 0 and layout.first is not None and messages[added] is layout.first and width == layout.width:
            self.prepend_layout(added)  # older history was put in front
            return
        if layout.stale() or width != layout.width:
            # Replaced messages, or a resize: lay out again (a big room in the background, drawn meanwhile
            # at the old width).
            self._cache.clear()
            if layout.stale() or len(messages) - layout.base <= SYNC_LAYOUT:
                new = self._lay_out(room, width)
                old, self._layout = layout, new
                self._keep_place(old, new, follow)
            elif self._pending is None or self._pending.width != width:
                self._pending = Layout(room, width, self)
            self.refresh()
            return
        if layout.outcome_changed():
            self._cache.clear()
        if added > 0:
            layout.extend()
        self._set_virtual_size()
        if follow and added > 0:
            self._to_end()
        self.refresh()

    def _message_at(self, line: int) -> int | None:
        return self._layout.index_at(line) if self._layout is not None else None

    def prepend_layout(self, added: int) -> None:
        """``added`` older messages were put in front: lay them out and keep the reader's place."""
        layout = self._layout
        if layout is None:
            return
        top = layout.index_at(int(self.scroll_y))
        line = layout.line_of(top) if top is not None else None
        offset = int(self.scroll_y) - line if line is not None else 0
        layout.prepend(added)
        if self._pending is not None:
            self._pending.prepend(added)
        self._cache.clear()
        self._set_virtual_size()
        if top is not None:
            new_line = layout.line_of(top + added)
            if new_line is not None:
                self.scroll_to(y=new_line + offset, animate=False, immediate=True)
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
            extras.append((local_time(stamp).strftime("%A %d %B %Y"), "chat-log--separator"))
        if message.away and (previous is None or not previous.away):
            extras.append(("while you were away", "chat-log--away"))
        if message.gap_before:
            count = message.gap_before
            what = "message" if count == 1 else "messages"
            sender = printable(message.sender)
            extras.append((f"⚠ {count} {what} from {sender} missing here (lost on the way)", "chat-log--gap"))
        return extras

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
            return f" ✗ not delivered: {printable(message.error or 'failed')}"
        return ""

    @staticmethod
    def _is_raw(message: ChatMessage) -> bool:
        return message.room.startswith("#") and message.envelope.session == ""

    def _plain_body(self, message: ChatMessage) -> str:
        """The text :meth:`_styled_body` shows, without styles (what the layout measures)."""
        envelope = message.envelope
        text = printable(envelope.text, keep="\n")
        if envelope.kind in ("notice", "dropped"):
            return self._notice_text(message)
        if not self._is_raw(message):
            text = plain(text)
        if envelope.kind == "action":
            text = f"{self._nick(message)} {text}"
        return identity_mark(message) + text + self._suffix(message)

    def _body_height(self, message: ChatMessage, width: int | None = None) -> int:
        width = self._layout.width if width is None and self._layout is not None else width or self.text_width
        envelope = message.envelope
        text = envelope.text
        if (
            not message.own
            and envelope.kind == "message"
            and (len(text) * 2 <= width or (len(text) <= width and text.isascii()))
            and "\n" not in text
            and (envelope.nick == message.sender or not identity_mark(message))
        ):
            return 1  # the common case, without measuring
        return len(wrap_breaks(self._plain_body(message), width)) + 1

    def _wrap(self, message: ChatMessage) -> list[Text]:
        """The body in lines of the layout's width (the breaks :func:`wrap_breaks` chose for its height)."""
        text = self._styled_body(message)
        width = self._layout.width if self._layout is not None else self.text_width
        breaks = wrap_breaks(text.plain, width)
        if not breaks:
            return [text]
        lines = list(text.divide(breaks))
        for line in lines:
            line.rstrip()
        return lines

    def _styled_body(self, message: ChatMessage) -> Text:
        envelope = message.envelope
        if envelope.kind in ("notice", "dropped"):
            component = "chat-log--notice" if envelope.kind == "notice" else "chat-log--gap"
            notice = Text(self._notice_text(message))
            notice.stylize(self._style(component))  # a span: the row's style goes beneath it, not over it
            return notice
        styles = {
            "": Style(),
            "bold": Style(bold=True),
            "italic": Style(italic=True),
            "code": self._style("chat-log--code"),
            "link": self._style("chat-log--link"),
            "mention": Style(bold=True),
        }
        text = Text()
        mark = identity_mark(message)
        if envelope.kind == "action":
            text.append(f"{self._nick(message)} ", Style(color=nick_colour(message.sender), bold=True))
        if mark:
            text.append(mark, self._style("chat-log--identity"))
        # The reader neutralised what it accepted; shown text goes through printable() all the same (the one
        # rule for network text; history rows written by older versions, raw rooms' payloads as typed).
        shown = printable(envelope.text, keep="\n")
        if self._is_raw(message):
            text.append(shown)
        else:
            for piece, piece_kind in inline(shown, self.me):
                if piece_kind == "link":
                    text.append(piece, styles["link"] + Style(link=piece))
                else:
                    text.append(piece, styles[piece_kind])
        suffix = self._suffix(message)
        if suffix:
            state = {Delivery.SENDING: "chat-log--sending", Delivery.ACKED: "chat-log--acked"}
            text.append(suffix, self._style(state.get(message.delivery, "chat-log--failed")))
        return text

    @staticmethod
    def _nick(message: ChatMessage) -> str:
        """The name shown for the sender: the nick, else the identity."""
        return printable(message.envelope.nick or message.sender)

    @staticmethod
    def _notice_text(message: ChatMessage) -> str:
        text = printable(message.envelope.text, keep="\n")  # command output quotes nicks, texts, topics
        return f"⚠ {text}" if message.envelope.kind == "dropped" else text

    def _style(self, component: str) -> Style:
        return self.get_component_rich_style(component, partial=True)

    # ------------------------------------------------------------------------------------------ rendering

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        line = scroll_y + y
        width = self.size.width
        base = self.rich_style
        room = self.room
        layout = self._layout
        if room is None or layout is None or line >= layout.total:
            return Strip.blank(width, base)
        index = layout.index_at(line)
        if index is None or index >= len(room.messages):
            return Strip.blank(width, base)
        block = self._block(room.messages, index)
        start = layout.line_of(index) or 0
        offset = line - start
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
        if not message.own and envelope.kind not in ("notice", "dropped") and mentions(envelope.text, own_names):
            row = base + self._style("chat-log--mention")
        stamp = local_time(_shown_time(message)).strftime("%H:%M")
        time_style = row + self._style("chat-log--time")
        if envelope.kind in ("notice", "dropped"):
            nick, nick_style = "--", row + self._style("chat-log--notice")
        elif envelope.kind == "action":
            nick, nick_style = "*", row + Style(color=nick_colour(message.sender), bold=True)
        else:
            nick = self._nick(message)
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
