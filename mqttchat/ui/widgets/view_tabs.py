"""ViewTabs: the app's views as tabs at the top of each: the explorer of each broker open, and the chat.

With one broker the tabs read "Explorer" and "Chat" (Ctrl+T switches). With several, each broker has a tab of its
own, named after its profile or address, with a dot of its connection's colour; ``[`` and ``]`` move between them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.message import Message
from textual.widgets import Tab, Tabs

VIEWS = (("explorer", "Explorer"), ("chat", "Chat"))


@dataclass(frozen=True, slots=True)
class ViewEntry:
    """One tab: the view it shows (``explorer``, ``chat``, or ``broker-N`` with several brokers) and its label."""

    id: str
    label: Text


def default_entries() -> list[ViewEntry]:
    return [ViewEntry(name, Text(f"{label} ^t")) for name, label in VIEWS]


class ViewTabs(Tabs):
    """Shows which view is current; choosing another tab posts :class:`ViewTabs.ViewChosen` (the app switches)."""

    DEFAULT_CSS: ClassVar[str] = """
    ViewTabs { height: 2; }
    ViewTabs #tabs-list { min-height: 1; }
    """

    @dataclass
    class ViewChosen(Message):
        """The user chose the tab of another view (``explorer``, ``chat`` or ``broker-N``)."""

        tabs: ViewTabs
        view: str

        @property
        def control(self) -> ViewTabs:
            return self.tabs

    def __init__(self, current: str, entries: Sequence[ViewEntry] | None = None) -> None:
        shown = tuple(entries) if entries is not None else tuple(default_entries())
        super().__init__(*(Tab(entry.label, id=entry.id) for entry in shown), active=current, id="view-tabs")
        self.current = current
        self.entries = shown
        self.can_focus = False

    def same_tabs(self, entries: Sequence[ViewEntry], current: str) -> bool:
        """Whether these are the tabs shown (their labels aside), with ``current`` active."""
        return current == self.current and [e.id for e in entries] == [e.id for e in self.entries]

    def relabel(self, entries: Sequence[ViewEntry]) -> None:
        """New labels for the tabs shown (a connection's colour changed)."""
        for old, new in zip(self.entries, entries, strict=True):
            if old.label != new.label:
                tab = self.get_tab(new.id)
                if tab is not None:
                    tab.label = new.label
        self.entries = tuple(entries)

    @on(Tabs.TabActivated)
    def _activated(self, event: Tabs.TabActivated) -> None:
        event.stop()
        if event.tab.id is not None and event.tab.id != self.current:
            self.active = self.current  # the other screen shows its own tab as active
            self.post_message(self.ViewChosen(self, event.tab.id))
