"""StatusBar: connection state and target, protocol, round trip, rates, totals, memory budget and drops."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.widgets import Static

from mqttchat.client import Status
from mqttchat.explorer.payload import size_label
from mqttchat.runtime import Runtime
from mqttchat.ui.widgets.quiet import show

_STATUS_STYLE = {
    Status.CONNECTED: "bold green",
    Status.CONNECTING: "bold yellow",
    Status.RECONNECTING: "bold yellow",
    Status.DISCONNECTED: "bold red",
    Status.CLOSED: "bold red",
}


class StatusBar(Static):
    """One line at the bottom of the screen, updated by the app's flush timer."""

    DEFAULT_CSS: ClassVar[str] = """
    StatusBar { height: 1; background: $panel; color: $text; padding: 0 1; }
    """

    def render_status(self, runtime: Runtime) -> Text:
        client = runtime.client
        status = client.status
        text = Text()
        # "│" separators, not runs of spaces: SVG renderers drop a styled span's leading spaces.
        text.append(f"● {status.value} ", style=_STATUS_STYLE.get(status, "bold"))
        text.append(f"│ {client.target}")
        if runtime.broker is not None:
            text.append(" (embedded broker)", style="cyan")
        caps = client.capabilities
        if caps is not None:
            text.append(f" │ MQTT {'5.0' if caps.version == 5 else '3.1.1'}")
        state = runtime.state
        if status is Status.RECONNECTING and state is not None:
            text.append(f" │ attempt {state.attempt}", style="yellow")
        stats = client.stats
        if stats.last_rtt is not None:
            text.append(f" │ rtt {stats.last_rtt * 1000:.1f} ms")
        rates = runtime.rates
        text.append(f" │ ↓{rates.in_per_s:,.0f}/s ↑{rates.out_per_s:,.0f}/s")
        tree = runtime.tree.stats
        text.append(f" │ {tree.messages:,} msgs, {tree.topics:,} topics")
        budget = runtime.tree.history_budget
        text.append(f" │ history {size_label(tree.history_bytes)}/{size_label(budget)}")
        dropped = stats.dropped
        if tree.evicted_entries or tree.truncated or dropped:
            text.append(" │ ")
            text.append(
                f"evicted {tree.evicted_entries:,}, truncated {tree.truncated:,}, dropped {dropped:,}", style="yellow"
            )
        return text

    def refresh_from(self, runtime: Runtime) -> None:
        show(self, self.render_status(runtime), fixed_size=True)
