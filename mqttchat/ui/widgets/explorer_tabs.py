"""ExplorerTabs: the explorer's right-hand tabs, labelled with their keys, in short words when the space is short.

| Key (on the screen) | Tab |
| --- | --- |
| m h p r u e k b | Message, History, Publish, Retained, Subs, Record, Packets, Broker |

The bar is not a focus stop: Tab goes from the tree straight to the controls of the tab shown, and letters typed
next go into the field focused (the bar took them as tab keys). Each tab shows its key letter underlined.
"""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.content import Content
from textual.widgets import TabbedContent
from textual.widgets._tabbed_content import ContentTabs

#: Tab id → (label, short label, key). The key letter is underlined in the label.
TABS: dict[str, tuple[str, str, str]] = {
    "message": ("Message", "Msg", "m"),
    "history": ("History", "Hist", "h"),
    "publish": ("Publish", "Pub", "p"),
    "retained": ("Retained", "Ret", "r"),
    "subscriptions": ("Subs", "Subs", "u"),
    "record": ("Record", "Rec", "e"),
    "packets": ("Packets", "Pkts", "k"),
    "broker": ("Broker", "Brkr", "b"),
}

#: Cells each tab takes besides its label (Tab's padding: 0 1).
TAB_PADDING = 2


def tab_label(text: str, key: str) -> Content:
    """``text`` with the first ``key`` letter (either case) underlined."""
    at = text.lower().find(key)
    if at < 0:
        return Content(text)
    return Content(text).stylize("underline", at, at + 1)


def labels_fit(width: int, short: bool) -> bool:
    """Whether the tabs' labels (long or short) fit in ``width`` cells."""
    index = 1 if short else 0
    return sum(len(labels[index]) + TAB_PADDING for labels in TABS.values()) <= width


class ExplorerTabs(TabbedContent):
    """The tabbed panes on the right of the explorer; see the module docstring."""

    DEFAULT_CSS: ClassVar[str] = """
    ExplorerTabs Tab { padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None, initial: str = "") -> None:
        super().__init__(id=id, initial=initial)
        #: Whether the short labels are shown.
        self.short: bool | None = None

    def on_mount(self) -> None:
        self.query_one(ContentTabs).can_focus = False
        self._label_tabs(self.size.width)

    def on_resize(self, event: events.Resize) -> None:
        self._label_tabs(event.size.width)

    def _label_tabs(self, width: int) -> None:
        short = not labels_fit(width, short=False) if width else False
        if short == self.short:
            return
        self.short = short
        for pane_id, (label, short_label, key) in TABS.items():
            self.get_tab(pane_id).label = tab_label(short_label if short else label, key)
