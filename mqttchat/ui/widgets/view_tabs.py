"""ViewTabs: the app's two views, Explorer and Chat, as tabs at the top of each (Ctrl+T switches)."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.widgets import Tab, Tabs

VIEWS = (("explorer", "Explorer"), ("chat", "Chat"))


class ViewTabs(Tabs):
    """Shows which view is current; choosing the other tab asks the app to switch."""

    DEFAULT_CSS: ClassVar[str] = """
    ViewTabs { height: 2; }
    ViewTabs #tabs-list { min-height: 1; }
    """

    def __init__(self, current: str) -> None:
        super().__init__(*(Tab(f"{label} ^t", id=name) for name, label in VIEWS), active=current, id="view-tabs")
        self.current = current
        self.can_focus = False

    @on(Tabs.TabActivated)
    def _activated(self, event: Tabs.TabActivated) -> None:
        event.stop()
        if event.tab.id is not None and event.tab.id != self.current:
            self.active = self.current  # the other screen shows its own tab as active
            self.app.action_show_view(event.tab.id)  # type: ignore[attr-defined]
