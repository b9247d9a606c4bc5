"""A room's messages as lines of text at a width, without a widget: what each line says and how many lines each
message takes (pure functions and :class:`RoomLayout`; the chat log widget draws them).

Each message is a block of lines: an optional day separator, an optional "while you were away" marker, an
optional sequence-gap warning (the *extras*), then the message's body wrapped to the width beside a gutter of
time and nick. Block heights are kept in a list with running starts, so finding the message under a screen line
is a bisection and appending a message costs one height.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from bisect import bisect_right
from functools import lru_cache
from itertools import accumulate

from mqttchat.chat.markup import plain
from mqttchat.chat.model import ChatMessage, Delivery, Room
from mqttchat.chat.protocol import TS_MAX, TS_MIN
from mqttchat.labels import plural
from mqttchat.ui.wrap import wrap_breaks
from mqttchat.untrusted import printable

__all__ = [
    "GUTTER",
    "NICK_WIDTH",
    "RoomLayout",
    "body_height",
    "day_of",
    "delivery_mark",
    "extra_lines",
    "extras",
    "identity_mark",
    "is_raw",
    "local_time",
    "nick_colour",
    "notice_text",
    "plain_body",
    "shown_nick",
    "shown_time",
]

#: Width of the nick column (longer nicks are cut with an ellipsis).
NICK_WIDTH = 12
#: "12:34 " + nick column + " │ "
GUTTER = 6 + NICK_WIDTH + 3

#: Nick colours that read well on dark and light themes.
NICK_COLOURS = (
    "#e06c75", "#98c379", "#e5c07b", "#61afef", "#c678dd", "#56b6c2",
    "#d19a66", "#be5046", "#7ec699", "#f08d49", "#a48bd6", "#4fb0c6",
)  # fmt: skip


def nick_colour(identity: str) -> str:
    """A stable colour per sender (the same in every run and for every reader)."""
    digest = hashlib.blake2s(identity.encode(), digest_size=2).digest()
    return NICK_COLOURS[int.from_bytes(digest, "big") % len(NICK_COLOURS)]


def shown_time(message: ChatMessage) -> float:
    """When the message was sent (its sender's clock), else when it arrived."""
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


def day_of(stamp: float) -> dt.date:
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


def delivery_mark(message: ChatMessage) -> str:
    """The mark after one's own messages: ``⋯`` being sent, ``✓`` acknowledged, ``✗`` and the reason refused."""
    if not message.own:
        return ""
    if message.delivery is Delivery.SENDING:
        return " ⋯"
    if message.delivery is Delivery.ACKED:
        return " ✓"
    if message.delivery is Delivery.FAILED:
        return f" ✗ not delivered: {printable(message.error or 'failed')}"
    return ""


def is_raw(message: ChatMessage) -> bool:
    """A payload of a raw MQTT topic shown as a line (no chat markup, no nicks)."""
    return message.room.startswith("#") and message.envelope.session == ""


def shown_nick(message: ChatMessage) -> str:
    """The name shown for the sender: the nick, else the identity."""
    return printable(message.envelope.nick or message.sender)


def notice_text(message: ChatMessage) -> str:
    """A local line's text (command output quotes nicks, texts and topics: through printable())."""
    text = printable(message.envelope.text, keep="\n")
    return f"⚠ {text}" if message.envelope.kind == "dropped" else text


def plain_body(message: ChatMessage) -> str:
    """The text a message's body shows, without styles: what is measured and wrapped."""
    envelope = message.envelope
    if envelope.kind in ("notice", "dropped"):
        return notice_text(message)
    text = printable(envelope.text, keep="\n")
    if not is_raw(message):
        text = plain(text)
    if envelope.kind == "action":
        text = f"{shown_nick(message)} {text}"
    return identity_mark(message) + text + delivery_mark(message)


def body_height(message: ChatMessage, width: int) -> int:
    """How many lines a message's body takes at ``width`` cells of text."""
    envelope = message.envelope
    text = envelope.text
    if (
        not message.own
        and envelope.kind == "message"
        and (len(text) * 2 <= width or (len(text) <= width and text.isascii()))
        and "\n" not in text
        and (envelope.nick == message.sender or not identity_mark(message))
    ):
        return 1  # the common case, without measuring (markers only make the text shorter)
    return len(wrap_breaks(plain_body(message), width)) + 1


def extra_lines(messages: list[ChatMessage], index: int) -> int:
    """How many lines :func:`extras` gives (without building them: this runs for every message)."""
    message = messages[index]
    if not index:
        return 1 + message.away + (message.gap_before > 0)
    previous = messages[index - 1]
    envelope, before = message.envelope, previous.envelope
    new_day = day_of(envelope.ts or message.received_at) != day_of(before.ts or previous.received_at)
    return new_day + (message.away and not previous.away) + (message.gap_before > 0)


def extras(messages: list[ChatMessage], index: int) -> list[tuple[str, str]]:
    """The lines before message ``index``, as (text, kind): ``separator`` for a new day, ``away`` where the
    messages sent while the reader was away begin, ``gap`` for messages lost before this one."""
    message = messages[index]
    previous = messages[index - 1] if index else None
    lines: list[tuple[str, str]] = []
    stamp = shown_time(message)
    if previous is None or day_of(shown_time(previous)) != day_of(stamp):
        lines.append((local_time(stamp).strftime("%A %d %B %Y"), "separator"))
    if message.away and (previous is None or not previous.away):
        lines.append(("while you were away", "away"))
    if message.gap_before:
        missing = plural(message.gap_before, "message")
        lines.append((f"⚠ {missing} from {printable(message.sender)} missing here (lost on the way)", "gap"))
    return lines


class RoomLayout:
    """The heights of a room's messages at one text width, from message ``base`` on (a room shown before its
    older messages are laid out starts late), with the first line of each."""

    __slots__ = ("base", "end", "first", "heights", "room", "sending", "starts", "total", "width")

    def __init__(self, room: Room, width: int, base: int = 0) -> None:
        self.room = room
        self.width = width
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
        return extra_lines(messages, index) + body_height(messages[index], self.width)

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
        front = RoomLayout(self.room, self.width)
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
        # without a gap (the one-line test of body_height, inlined).
        heights, starts, sending = self.heights, self.starts, self.sending
        width = self.width
        measure = body_height
        day = day_of
        total = self.total
        if begin:
            before = messages[begin - 1]
            previous_day: dt.date | None = day(before.envelope.ts or before.received_at)
            previous_away = before.away
        else:
            previous_day, previous_away = None, False
        for index in range(begin, end):
            message = messages[index]
            envelope = message.envelope
            today = day(envelope.ts or message.received_at)
            height = (today != previous_day) + (message.away and not previous_away) + (message.gap_before > 0)
            previous_day, previous_away = today, message.away
            text = envelope.text
            if message.own:
                if message.delivery is Delivery.SENDING:
                    sending[index] = message
                height += measure(message, width)
            elif (
                envelope.kind == "message"
                and (len(text) * 2 <= width or (len(text) <= width and text.isascii()))
                and "\n" not in text
                and (envelope.nick == message.sender or not identity_mark(message))
            ):
                height += 1  # fits (markers only make the text shorter)
            else:
                height += measure(message, width)
            starts.append(total)
            heights.append(height)
            total += height
        self.total = total
        self.end = end
        return end - begin
