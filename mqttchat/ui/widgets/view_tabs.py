"""ViewTabs: the app's two views, Explorer and Chat, as tabs at the top of each (Ctrl+T switches)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.message import Message
from textual.widgets import Tab, Tabs

VIEWS = (("explorer", "Explorer"), ("chat", "Chat"))


class ViewTabs(Tabs):
    """Shows which view is current; choosing the other tab posts :class:`ViewTabs.ViewChosen` (the app switches)."""

    DEFAULT_CSS: ClassVar[str] = """
    ViewTabs { height: 2; }
    ViewTabs #tabs-list { min-height: 1; }
    """

    @dataclass
    class ViewChosen(Message):
        """The user chose the tab of another view (``explorer`` or ``chat``)."""

        tabs: ViewTabs
        view: str

        @property
        def control(self) -> ViewTabs:
            return self.tabs

    def __init__(self, current: str) -> None:
        super().__init__(*(Tab(f"{label} ^t", id=name) for name, label in VIEWS), active=current, id="view-tabs")
        self.current = current
        self.can_focus = False

    @on(Tabs.TabActivated)
    def _activated(self, event: Tabs.TabActivated) -> None:
        event.stop()
        if event.tab.id is not None and event.tab.id != self.current:
            self.active = self.current  # the other screen shows its own tab as active
            self.post_message(self.ViewChosen(self, event.tab.id))
