"""Network text for Textual: always through ``mqttchat.untrusted`` and never parsed as markup.

Widgets show text from the network (topics, payloads, nicks, reason strings, client ids, user properties) only
as the ``Text`` objects made here, and notifications built from it go through ``notify_text``: a string passed to
``Label``, ``Static.update`` or ``App.notify`` would be parsed as Textual markup (``[@click=app.quit]``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text

from mqttchat.untrusted import printable

if TYPE_CHECKING:
    from textual.app import App
    from textual.notifications import SeverityLevel

__all__ = ["network_text", "notify_text"]


def network_text(text: str, style: str = "", *, keep: str = "", limit: int | None = None, **kwargs: object) -> Text:
    """``text`` from the network as a ``Text``: control characters made visible, markup never interpreted."""
    return Text(printable(text, keep=keep, limit=limit), style=style, **kwargs)  # type: ignore[arg-type]


def notify_text(
    app: App[Any],
    message: str,
    *,
    title: str = "",
    severity: SeverityLevel = "information",
    timeout: float | None = None,
) -> None:
    """``app.notify`` for a message that holds network text: neutralised and shown without markup."""
    app.notify(printable(message, keep="\n"), title=printable(title), severity=severity, timeout=timeout, markup=False)
