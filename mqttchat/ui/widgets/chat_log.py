"""ChatLog: one room's messages, drawn with the Line API so 100,000 messages cost only the visible lines.

What each line says and how many lines each message takes come from :mod:`mqttchat.ui.chat_layout` (a
:class:`~mqttchat.ui.chat_layout.RoomLayout` per room, kept up to date in the background by :meth:`ChatLog.prepare`);
the widget scrolls, keeps the reader's place, styles the lines and caches the rendered blocks.

| Key | Action |
| --- | --- |
| ↑ ↓ | scroll by a line |
| PgUp PgDn | scroll by a page (also while typing) |
| Home End | oldest loaded / newest message |
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import ClassVar, TypeAlias

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
from mqttchat.ui.chat_layout import (
    GUTTER,
    NICK_WIDTH,
    RoomLayout,
    delivery_mark,
    extras,
    identity_mark,
    is_raw,
    local_time,
    nick_colour,
    notice_text,
    shown_nick,
    shown_time,
)
from mqttchat.ui.wrap import wrap_breaks
from mqttchat.untrusted import printable

#: Rendered blocks kept, and the lines they may hold together (a block is a message's lines).
BLOCK_CACHE = 2_000
BLOCK_CACHE_LINES = 20_000
#: Rooms up to this many messages are laid out at once after a resize; bigger ones in the background.
SYNC_LAYOUT = 2_000

#: What a rendered block's drawing depends on: the message (its identity, envelope, delivery state and failure
#: reason, away and gap marks), the message before it (day separators, the away marker), the widget's and the
#: text's widths, the names that mention the reader, and the styles (a theme change bumps their version).
BlockKey: TypeAlias = tuple[int, int, Delivery, str | None, bool, int, int, int, int, tuple[str, ...], int]
#: A cached block with the objects whose ids are in its key (holding them keeps those ids from being reused).
CachedBlock: TypeAlias = tuple[ChatMessage, object, ChatMessage | None, list[Strip]]


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
        self._layout: RoomLayout | None = None
        self._layouts: dict[int, RoomLayout] = {}
        self._version = -1
        #: Rendered blocks, by everything their drawing depends on (see :meth:`_block`), least recently used first.
        self._cache: OrderedDict[BlockKey, CachedBlock] = OrderedDict()
        self._cached_lines = 0
        #: Bumped when the styles change (a theme, CSS): blocks drawn before are not reused.
        self._styles_version = 0
        self._follow = True
        self._scrolling_to_end = False
        #: The shown room's layout at a new width, being built by prepare().
        self._pending: RoomLayout | None = None

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
                layout = self._layouts[id(room)] = RoomLayout(room, width)
            layout.extend_until(deadline)

    def _keep_place(self, old: RoomLayout | None, new: RoomLayout, follow: bool) -> None:
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

    def _swap_in(self, layout: RoomLayout) -> None:
        """Draw the shown room with ``layout`` (complete now), keeping the reader's place."""
        old, follow = self._layout, self.at_bottom
        self._pending = None
        self._clear_cache()
        self._layout = self._layouts[id(layout.room)] = layout
        self._keep_place(old, layout, follow)
        self.refresh()

    def _lay_out(self, room: Room, width: int) -> RoomLayout:
        """A layout to draw ``room`` with now: complete, or, for a room of many messages not laid out yet, its
        newest messages only, while the whole room is laid out in the background (``_pending``)."""
        layout = self._layouts.get(id(room))
        if layout is None or layout.width != width or layout.stale():
            layout = self._layouts[id(room)] = RoomLayout(room, width)
        missing = len(room.messages) - layout.end
        if missing <= SYNC_LAYOUT:
            layout.extend()
            return layout
        self._pending = layout
        newest = RoomLayout(room, width, base=len(room.messages) - SYNC_LAYOUT)
        newest.extend()
        return newest

    def show(self, room: Room | None, force: bool = False) -> None:
        """Show ``room``; cheap when nothing changed. New messages keep the view at the bottom if it was there."""
        width = self.text_width
        if room is not self.room:
            self.room = room
            self._clear_cache()
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
            self._clear_cache()
            if layout.stale() or len(messages) - layout.base <= SYNC_LAYOUT:
                new = self._lay_out(room, width)
                old, self._layout = layout, new
                self._keep_place(old, new, follow)
            elif self._pending is None or self._pending.width != width:
                self._pending = RoomLayout(room, width)
            self.refresh()
            return
        if layout.outcome_changed():
            self._clear_cache()
        if added > 0:
            layout.extend()
        self._set_virtual_size()
        if follow and added > 0:
            self._to_end()
        self.refresh()

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
        self._clear_cache()
        self._set_virtual_size()
        if top is not None:
            new_line = layout.line_of(top + added)
            if new_line is not None:
                self.scroll_to(y=new_line + offset, animate=False, immediate=True)
        self.refresh()

    # ------------------------------------------------------------------------------------------ styling

    def _style(self, component: str) -> Style:
        return self.get_component_rich_style(component, partial=True)

    def notify_style_update(self) -> None:
        """The styles changed (a theme, CSS): blocks drawn with the old ones are not shown again."""
        super().notify_style_update()
        self._styles_version += 1
        self._clear_cache()

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
        """The body with its styles; its plain text is :func:`~mqttchat.ui.chat_layout.plain_body`."""
        envelope = message.envelope
        if envelope.kind in ("notice", "dropped"):
            component = "chat-log--notice" if envelope.kind == "notice" else "chat-log--gap"
            notice = Text(notice_text(message))
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
            text.append(f"{shown_nick(message)} ", Style(color=nick_colour(message.sender), bold=True))
        if mark:
            text.append(mark, self._style("chat-log--identity"))
        # The reader neutralised what it accepted; shown text goes through printable() all the same (the one
        # rule for network text; history rows written by older versions, raw rooms' payloads as typed).
        shown = printable(envelope.text, keep="\n")
        if is_raw(message):
            text.append(shown)
        else:
            for piece, piece_kind in inline(shown, self.me):
                if piece_kind == "link":
                    text.append(piece, styles["link"] + Style(link=piece))
                else:
                    text.append(piece, styles[piece_kind])
        suffix = delivery_mark(message)
        if suffix:
            state = {Delivery.SENDING: "chat-log--sending", Delivery.ACKED: "chat-log--acked"}
            text.append(suffix, self._style(state.get(message.delivery, "chat-log--failed")))
        return text

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
        block = self._block(room.messages, index, layout.width)
        start = layout.line_of(index) or 0
        offset = line - start
        if offset >= len(block):
            return Strip.blank(width, base)
        return block[offset].crop_extend(scroll_x, scroll_x + width, base)

    def _clear_cache(self) -> None:
        self._cache.clear()
        self._cached_lines = 0

    def _block(self, messages: list[ChatMessage], index: int, text_width: int) -> list[Strip]:
        """Message ``index``'s lines, rendered (from the cache when nothing they depend on changed)."""
        message = messages[index]
        previous = messages[index - 1] if index else None
        envelope = message.envelope
        key: BlockKey = (
            id(message), id(envelope), message.delivery, message.error, message.away, message.gap_before,
            id(previous), self.size.width, text_width, self.me, self._styles_version,
        )  # fmt: skip
        cache = self._cache
        cached = cache.get(key)
        if cached is not None:
            cache.move_to_end(key)
            return cached[3]
        block = self._render_block(messages, index)
        cache[key] = (message, envelope, previous, block)
        self._cached_lines += len(block)
        while len(cache) > BLOCK_CACHE or (self._cached_lines > BLOCK_CACHE_LINES and len(cache) > 1):
            _, (_, _, _, evicted) = cache.popitem(last=False)
            self._cached_lines -= len(evicted)
        return block

    def _render_block(self, messages: list[ChatMessage], index: int) -> list[Strip]:
        message = messages[index]
        base = self.rich_style
        width = self.size.width
        strips: list[Strip] = []
        for text, kind in extras(messages, index):
            label = f" {text} "
            side = max(2, (width - cell_len(label)) // 2)
            rule = "─" * side
            strips.append(Strip([Segment(rule + label + rule, base + self._style(f"chat-log--{kind}"))]))
        envelope = message.envelope
        own_names = self.me
        row = base
        if not message.own and envelope.kind not in ("notice", "dropped") and mentions(envelope.text, own_names):
            row = base + self._style("chat-log--mention")
        stamp = local_time(shown_time(message)).strftime("%H:%M")
        time_style = row + self._style("chat-log--time")
        if envelope.kind in ("notice", "dropped"):
            nick, nick_style = "--", row + self._style("chat-log--notice")
        elif envelope.kind == "action":
            nick, nick_style = "*", row + Style(color=nick_colour(message.sender), bold=True)
        else:
            nick = shown_nick(message)
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
