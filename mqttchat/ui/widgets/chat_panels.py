"""The chat view's side panels: the room list (unread counts, presence of direct contacts) and the members."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from mqttchat.chat.model import ChatModel
from mqttchat.ui.chat_layout import nick_colour
from mqttchat.ui.widgets.quiet import show
from mqttchat.untrusted import printable

STATUS_MARK = {"online": ("●", "green"), "away": ("◐", "yellow"), "offline": ("○", "grey50")}


def _mark(status: str) -> tuple[str, str]:
    return STATUS_MARK.get(status, ("?", "grey50"))


class RoomList(OptionList):
    """Rooms, direct conversations and raw topics; selecting one shows it. Rebuilt only when it changed."""

    DEFAULT_CSS: ClassVar[str] = """
    RoomList { height: 1fr; border: none; padding: 0; background: $surface; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._signature: tuple[object, ...] = ()

    def refresh_from(self, model: ChatModel) -> None:
        rows = []
        for room in model.ordered_rooms():
            presence = model.presence.get(room.name[1:]) if room.kind == "direct" else None
            status = presence.status if presence is not None else ""
            rows.append((room.name, room.kind, room.unread, status, room.name == model.current))
        room_width = max(8, self.size.width - 6) if self.size.width else 64
        signature = (room_width, *rows)
        if signature == self._signature:
            return
        self._signature = signature
        options = []
        highlighted = None
        for index, (name, kind, unread, status, current) in enumerate(rows):
            text = Text(no_wrap=True, overflow="ellipsis")
            shown = printable(name[1:] if kind in ("direct", "raw") else name)
            if len(shown) > room_width:
                shown = shown[: room_width - 1] + "…"
            if kind == "direct":
                mark, colour = _mark(status or "unknown")
                text.append(f"{mark} ", colour)
                text.append(shown, nick_colour(name[1:]))
            elif kind == "raw":
                text.append("≡ ", "cyan")
                text.append(shown)
            else:
                text.append("# ", "bold blue")
                text.append(shown, "bold" if unread else "")
            if unread:
                text.append(f" {unread if unread < 1000 else '999+'}", "bold reverse yellow")
            options.append(Option(text, id=name))
            if current:
                highlighted = index
        self.clear_options()
        self.add_options(options)
        if highlighted is not None:
            self.highlighted = highlighted


class MemberList(Static):
    """Who is in the current room, online first, with their nicks' colours."""

    DEFAULT_CSS: ClassVar[str] = """
    MemberList { height: 1fr; padding: 0 1; background: $surface; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self._signature: tuple[object, ...] = ()

    def refresh_from(self, model: ChatModel) -> None:
        room = model.rooms.get(model.current)
        members = model.members(model.current) if room is not None and room.kind == "room" else []
        nicks = {user: model.presence[user].nick for user, _ in members if user in model.presence}
        other = model.presence.get(model.current[1:]) if room is not None and room.kind == "direct" else None
        signature = (model.current, tuple(members), tuple(sorted(nicks.items())), other)
        if signature == self._signature:
            return
        self._signature = signature
        text = Text(no_wrap=True, overflow="ellipsis")
        if room is None:
            text.append("no room", "dim")
        elif room.kind == "direct":
            user = room.name[1:]
            status = model.presence[user].status if user in model.presence else "unknown"
            mark, colour = _mark(status)
            text.append(f"{mark} ", colour)
            text.append(printable(user), nick_colour(user))
            text.append(f"\n{printable(status)}", "dim")
        elif room.kind == "raw":
            text.append("a raw MQTT topic:\n", "dim")
            text.append(printable(room.topic or ""))
            text.append("\n\npayloads are shown as lines; what you type is published as plain text", "dim")
        elif not members:
            text.append("nobody seen yet", "dim")
        for user, status in members:
            mark, colour = _mark(status)
            text.append(f"{mark} ", colour)
            text.append(printable(user), nick_colour(user) if status == "online" else "dim")
            nick = nicks.get(user)
            if nick and nick != user:
                text.append(f" ({printable(nick)})", "dim")
            text.append("\n")
        show(self, text)
