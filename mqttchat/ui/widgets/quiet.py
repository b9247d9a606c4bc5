"""Updating a Static only when what it shows changed, and without a layout pass when its size cannot change.

A ``Static.update`` re-lays out the whole screen by default (tens of milliseconds on a big screen); the widgets
refreshed by the 15 Hz flush would otherwise pay that on every tick, even when nothing changed.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

_LAST = "_mqttchat_last_shown"


def show(widget: Static, content: str | Text, *, fixed_size: bool = False) -> bool:
    """Show ``content`` in ``widget`` unless it already does; whether it changed.

    ``fixed_size``: the widget's height and width do not depend on its content (e.g. ``height: 1``), so the
    screen's layout does not need recomputing.
    """
    if getattr(widget, _LAST, None) == content:
        return False
    setattr(widget, _LAST, content)
    widget.update(content, layout=not fixed_size)
    return True
