"""ExplorerTabs: the explorer's right-hand tabs, labelled with their keys, in short words when the space is short.

| Key (on the screen) | Tab |
| --- | --- |
| m h t p r u e k b | Message, History, Chart, Publish, Retained, Subs, Record, Packets, Broker |

The bar is not a focus stop: Tab goes from the tree straight to the controls of the tab shown, and letters typed
next go into the field focused (the bar took them as tab keys). Each tab shows its key letter underlined.
"""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.content import Content
from textual.widgets import TabbedContent
from textual.widgets._tabbed_content import ContentTabs

#: Tab id → (label, short label, shortest label, key). The key letter is underlined in the label.
TABS: dict[str, tuple[str, str, str, str]] = {
    "message": ("Message", "Msg", "Msg", "m"),
    "history": ("History", "Hist", "Hst", "h"),
    "chart": ("Chart", "Chart", "Cht", "t"),
    "publish": ("Publish", "Pub", "Pub", "p"),
    "retained": ("Retained", "Ret", "Ret", "r"),
    "subscriptions": ("Subs", "Subs", "Sub", "u"),
    "record": ("Record", "Rec", "Rec", "e"),
    "packets": ("Packets", "Pkts", "Pkt", "k"),
    "broker": ("Broker", "Brkr", "Brk", "b"),
}

#: Cells each tab takes besides its label (Tab's padding: 0 1).
TAB_PADDING = 2


def tab_label(text: str, key: str) -> Content:
    """``text`` with the first ``key`` letter (either case) underlined."""
    at = text.lower().find(key)
    if at < 0:
        return Content(text)
    return Content(text).stylize("underline", at, at + 1)


def labels_fit(width: int, short: bool | int) -> bool:
    """Whether the tabs' labels (0 or False: long, 1 or True: short, 2: shortest) fit in ``width`` cells."""
    index = int(short)
    return sum(len(labels[index]) + TAB_PADDING for labels in TABS.values()) <= width


def label_size(width: int) -> int:
    """The longest labels that fit: 0 long, 1 short, 2 shortest (which may still not fit)."""
    return next((size for size in (0, 1) if labels_fit(width, size)), 2)


class ExplorerTabs(TabbedContent):
    """The tabbed panes on the right of the explorer; see the module docstring."""

    DEFAULT_CSS: ClassVar[str] = """
    ExplorerTabs Tab { padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None, initial: str = "") -> None:
        super().__init__(id=id, initial=initial)
        #: Which labels are shown: 0 long, 1 short, 2 shortest (None before the first layout).
        self.short: int | None = None

    def on_mount(self) -> None:
        self.query_one(ContentTabs).can_focus = False
        self._label_tabs(self.size.width)

    def on_resize(self, event: events.Resize) -> None:
        self._label_tabs(event.size.width)

    def _label_tabs(self, width: int) -> None:
        short = label_size(width) if width else 0
        if short == self.short:
            return
        self.short = short
        for pane_id, (*labels, key) in TABS.items():
            self.get_tab(pane_id).label = tab_label(labels[short], key)
