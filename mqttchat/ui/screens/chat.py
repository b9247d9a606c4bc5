"""ChatScreen: rooms on the left, the conversation in the middle, members on the right, the input below.

Everything shown comes from the runtime's :class:`~mqttchat.chat.service.ChatService` model; the app's timer
calls :meth:`ChatScreen.flush`. What the user types goes to :meth:`ChatService.command` (messages and /commands);
command output appears in the room as local notices.
"""

from __future__ import annotations

import sqlite3
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, OptionList, Static

from mqttchat.chat.model import Delivery
from mqttchat.client import Status
from mqttchat.labels import plural
from mqttchat.protocol import MQTTError, ProtocolVersion
from mqttchat.ui.widgets.chat_input import ChatInput
from mqttchat.ui.widgets.chat_log import ChatLog
from mqttchat.ui.widgets.chat_panels import MemberList, RoomList
from mqttchat.ui.widgets.quiet import show
from mqttchat.ui.widgets.status_bar import connection_problem
from mqttchat.ui.widgets.view_tabs import ViewTabs
from mqttchat.untrusted import printable

if TYPE_CHECKING:
    from textual import getters

    from mqttchat.chat.service import ChatService
    from mqttchat.runtime import Runtime
    from mqttchat.ui.app import MQTTChatApp

INPUT_HISTORY = 100


def typing_line(users: list[str]) -> str:
    users = [printable(user, limit=40) for user in users]
    if not users:
        return ""
    if len(users) == 1:
        return f"{users[0]} is typing…"
    if len(users) <= 3:
        return f"{', '.join(users[:-1])} and {users[-1]} are typing…"
    return f"{len(users)} people are typing…"


class ChatScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+t", "app.show_view('explorer')", "Explorer"),
        Binding("alt+down", "next_room(1)", "Next room"),
        Binding("alt+up", "next_room(-1)", "Previous room", show=False),
        Binding("pageup", "log('page', -1)", "Page up", show=False),
        Binding("pagedown", "log('page', 1)", "Page down", show=False),
        Binding("escape", "focus_input", "Type", show=False),
    ]

    if TYPE_CHECKING:
        app = getters.app(MQTTChatApp)

    def __init__(self, runtime: Runtime) -> None:
        super().__init__()
        self.runtime = runtime
        self.ready = False
        self._sent_lines: list[str] = []
        #: Lines entered and not run yet, and whether the worker running them is busy.
        self._lines: deque[str] = deque()
        self._line_worker_busy = False
        #: The time typing indicators are compared with (tests fix it).
        self.clock: Callable[[], float] = time.time
        self._recall = 0

    @property
    def chat(self) -> ChatService | None:
        return self.runtime.chat

    def compose(self) -> ComposeResult:
        yield ViewTabs(self.app.view_id(self), self.app.view_entries())
        with Horizontal(id="chat-main"):
            with Vertical(id="chat-left"):
                yield Static("Rooms", classes="chat-heading")
                yield RoomList(id="room-list")
            with Vertical(id="chat-center"):
                yield Static("", id="chat-title")
                yield ChatLog(id="chat-log")
                yield Static("", id="chat-typing")
                yield ChatInput(placeholder="connecting…", id="chat-input")
            with Vertical(id="chat-right"):
                yield Static("Members", classes="chat-heading")
                yield MemberList(id="member-list")
        yield Static("", id="chat-status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#chat-input", Input).focus()
        self.ready = True

    def on_resize(self, event: events.Resize) -> None:
        """Narrow terminals give the conversation the room: members go first, then the room list."""
        width = event.size.width
        self.set_class(width < 100, "-no-members")
        self.set_class(width < 70, "-no-rooms")

    def on_screen_resume(self) -> None:
        self.query_one("#chat-input", Input).focus()
        self.app.ensure_chat()

    # ------------------------------------------------------------------------------------------ flush

    def flush(self, dirty: bool, slow: bool) -> None:
        """Bring the widgets up to date with the chat model (the app calls this about 15 times a second)."""
        chat = self.chat
        log = self.query_one(ChatLog)
        status = self.query_one("#chat-status", Static)
        if chat is None:
            log.show(None)
            show(status, self._status_without_chat(), fixed_size=True)
            chat_input = self.query_one("#chat-input", Input)
            placeholder = self._placeholder()
            if chat_input.placeholder != placeholder:
                chat_input.placeholder = placeholder
            return
        model = chat.model
        room = model.rooms.get(model.current)
        log.me = (chat.nick, chat.identity)
        log.show(room if room is not None else model.home)  # no room open: the local lines, "/join ROOM"
        log.prepare(model.ordered_rooms())
        if (
            room is not None
            and not room.history_exhausted
            and log.scroll_y <= 0
            and not log.at_bottom  # the reader scrolled up to the top (not a view still being laid out)
            and chat.history is not None
        ):
            added = chat.load_history(room.name)
            if added:
                log.show(room)
        self.query_one(RoomList).refresh_from(model)
        self.query_one(MemberList).refresh_from(model)
        show(self.query_one("#chat-title", Static), self._title(), fixed_size=True)
        typing = typing_line(room.typing_now(self.clock())) if room is not None else ""
        show(self.query_one("#chat-typing", Static), Text(typing), fixed_size=True)  # nicks: never markup
        chat_input = self.query_one("#chat-input", Input)
        placeholder = self._placeholder()
        if chat_input.placeholder != placeholder:
            chat_input.placeholder = placeholder
        show(status, self._status(), fixed_size=True)

    def _placeholder(self) -> str:
        chat = self.chat
        if chat is None:
            # A failed connect is no longer "connecting": the status line below says why.
            return "not connected: see below" if self.runtime.chat_error else "connecting…"
        room = chat.model.rooms.get(chat.model.current)
        if room is None:
            return "/join ROOM to start"
        if room.kind == "raw" and room.topic and ("+" in room.topic or "#" in room.topic):
            return f"{printable(room.topic)} is a filter: read only (/raw a single topic to publish to it)"
        where = f"@{room.name[1:]}" if room.kind == "direct" else room.topic if room.kind == "raw" else f"#{room.name}"
        return f"message {printable(where or '')}  (/help for commands)"

    def _title(self) -> Text:
        chat = self.chat
        text = Text(no_wrap=True, overflow="ellipsis")
        if chat is None:
            return text
        model = chat.model
        room = model.rooms.get(model.current)
        if room is None:
            text.append("no room: /join ROOM", "dim")
            return text
        if room.kind == "direct":
            text.append(f"@{printable(room.name[1:])}", "bold")
            text.append("  direct messages", "dim")
        elif room.kind == "raw":
            text.append(f"≡ {printable(room.topic or '')}", "bold")
            text.append("  a raw MQTT topic: payloads as lines of text", "dim")
        else:
            members = model.members(room.name)
            online = sum(1 for _, s in members if s == "online")
            text.append(f"#{printable(room.name)}", "bold")
            text.append(f"  {online} online, {plural(len(members), 'member')}", "dim")
        count = len(room.messages)
        text.append(f"  │ {plural(count, 'message', grouped=True)}", "dim")
        return text

    def _status_without_chat(self) -> Text:
        text = Text()
        error = self.runtime.chat_error
        if error:
            text.append("● not chatting ", "bold red")
            text.append(f"│ {printable(error)}")
        else:
            text.append("● connecting the chat… ", "bold yellow")
            problem = connection_problem(self.runtime, time.monotonic())
            if problem is not None:  # the app retries: when, and why the last attempt failed
                text.append_text(problem)
            else:
                text.append(f"│ {self.runtime.options.target.url}")
        return text

    def _status(self) -> Text:
        chat = self.chat
        assert chat is not None
        client = chat.client
        status = client.status
        text = Text(no_wrap=True, overflow="ellipsis")
        colour = {Status.CONNECTED: "bold green", Status.CONNECTING: "bold yellow", Status.RECONNECTING: "bold yellow"}
        text.append(f"● {status.value} ", colour.get(status, "bold red"))
        text.append(f"│ {chat.nick}")
        if chat.identity != chat.nick:
            text.append(f" (as {chat.identity})", "dim")
        text.append(f" @ {client.target}")
        if self.runtime.broker is not None:
            text.append(" (embedded broker)", "cyan")
        caps = client.capabilities
        if caps is not None:
            text.append(f" │ MQTT {ProtocolVersion(caps.version).label}")
            text.append(" │ session resumed" if caps.session_present else " │ new session")
        error = self.runtime.chat_state_error
        if status is not Status.CONNECTED and error:
            text.append(f" │ {error}", "red")
        counts = chat.delivery_counts
        sending, failed = counts.get(Delivery.SENDING, 0), counts.get(Delivery.FAILED, 0)
        if sending:
            text.append(f" │ ⋯ {sending} sending", "yellow")
        if failed:
            text.append(f" │ ✗ {failed} failed", "bold red")
        model = chat.model
        if model.invalid:  # first: the figures after it are cut first in a narrow terminal
            reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(model.dropped.items()))
            text.append(f" │ ⚠ dropped {reasons} (last: {model.last_drop})", "yellow")
        if model.gaps:
            text.append(f" │ {plural(model.gaps, 'message')} lost", "dim")
        if model.duplicates:
            text.append(f" │ {plural(model.duplicates, 'duplicate')} dropped", "dim")
        return text

    # ------------------------------------------------------------------------------------------ input

    @on(Input.Changed, "#chat-input")
    def _typing(self, event: Input.Changed) -> None:
        chat = self.chat
        if chat is not None and event.value and not event.value.startswith("/"):
            chat.typing(chat.model.current)

    @on(ChatInput.LineEntered, "#chat-input")
    def _line_entered(self, event: ChatInput.LineEntered) -> None:
        line = event.line.strip()
        if not line:
            return
        if self.chat is None:
            self.notify("the chat is not connected yet", severity="warning")
            event.input.value = event.line + event.input.value  # keep it for when it is
            return
        self._sent_lines.append(line)
        del self._sent_lines[:-INPUT_HISTORY]
        self._recall = len(self._sent_lines)
        self._lines.append(line)
        if not self._line_worker_busy:
            self._line_worker_busy = True
            self.run_lines()

    @work(group="chat", exit_on_error=False)
    async def run_lines(self) -> None:
        """Run the lines entered, one at a time and in order, each in the room shown when its turn comes (so
        that a line after ``/join dev`` goes to dev)."""
        try:
            while self._lines:
                await self.run_command(self._lines.popleft())
        finally:
            self._line_worker_busy = False

    async def run_command(self, line: str) -> None:
        chat = self.chat
        if chat is None:
            return
        room = chat.model.current
        try:
            answer = await chat.command(room, line)
        except (MQTTError, OSError, ValueError, sqlite3.Error) as exc:  # a line in the room, never a traceback
            answer = f"not done: {exc}"
        if answer:
            chat.model.add_notice(chat.model.current, answer, self.clock())
        for notice in chat.notices:
            chat.model.add_notice(chat.model.current, notice, self.clock())
        chat.notices.clear()
        self.app.flush()

    def on_key(self, event: events.Key) -> None:
        """Up and down in the input recall what was sent before."""
        chat_input = self.query_one("#chat-input", Input)
        if not chat_input.has_focus or event.key not in ("up", "down") or not self._sent_lines:
            return
        step = -1 if event.key == "up" else 1
        self._recall = max(0, min(len(self._sent_lines), self._recall + step))
        chat_input.value = self._sent_lines[self._recall] if self._recall < len(self._sent_lines) else ""
        chat_input.cursor_position = len(chat_input.value)
        event.stop()

    # ------------------------------------------------------------------------------------------ rooms

    @on(OptionList.OptionSelected, "#room-list")
    def _room_chosen(self, event: OptionList.OptionSelected) -> None:
        chat = self.chat
        if chat is not None and event.option.id is not None:
            chat.model.select(event.option.id)
            self.app.flush()
        self.query_one("#chat-input", Input).focus()

    def action_next_room(self, step: int) -> None:
        chat = self.chat
        if chat is None or not chat.model.rooms:
            return
        names = [room.name for room in chat.model.ordered_rooms()]
        current = names.index(chat.model.current) if chat.model.current in names else 0
        chat.model.select(names[(current + step) % len(names)])
        self.app.flush()

    def action_log(self, unit: str, direction: int) -> None:
        log = self.query_one(ChatLog)
        chat = self.chat
        if direction < 0 and log.scroll_y <= 0 and chat is not None:
            # At the top already (or a room too short to scroll): older messages come from the local history.
            room = chat.model.rooms.get(chat.model.current)
            if room is not None and not room.history_exhausted and chat.load_history(room.name):
                log.show(room)
        log.action_move(unit, direction)

    def action_focus_input(self) -> None:
        self.query_one("#chat-input", Input).focus()
