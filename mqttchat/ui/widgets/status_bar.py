"""StatusBar: connection state and target, protocol, round trip, rates, totals, memory budget and drops."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.widgets import Static

from mqttchat.client import Status
from mqttchat.labels import size_label
from mqttchat.protocol import ProtocolVersion
from mqttchat.ui.safe import network_text
from mqttchat.ui.widgets.quiet import show

if TYPE_CHECKING:
    from mqttchat.runtime import Runtime

_STATUS_STYLE = {
    Status.CONNECTED: "bold green",
    Status.CONNECTING: "bold yellow",
    Status.RECONNECTING: "bold yellow",
    Status.DISCONNECTED: "bold red",
    Status.CLOSED: "bold red",
}


def connection_problem(runtime: Runtime, now: float) -> Text | None:
    """While not connected: the next attempt and when it is made (or that none is), and why the last one failed.

    ``now`` is ``time.monotonic()``. None while connected, or before the first attempt ended.
    """
    client = runtime.client
    status = client.status
    failure = runtime.failure
    state = runtime.state
    retry_at: float | None
    if status is Status.CONNECTED:
        return None
    if status is Status.RECONNECTING and state is not None:
        attempt, error, retry_at = state.attempt, state.error, runtime.state_at + state.delay
    elif failure is not None:
        attempt, error, retry_at = failure.attempts + 1, failure.error, failure.retry_at
    else:
        return None
    text = Text()
    if status is Status.CONNECTING:
        text.append(f"│ attempt {attempt} ", style="yellow")
    elif retry_at is not None:
        text.append(f"│ attempt {attempt} in {max(0, math.ceil(retry_at - now))} s ", style="yellow")
    else:
        text.append("│ not retrying (c: connection) ", style="yellow")
    if error is not None:
        why = str(error).removeprefix("the broker refused the connection: ")
        text.append("│ ")
        text.append(network_text(f"{'refused: ' if why != str(error) else ''}{why} ", "red"))
    return text


class StatusBar(Static):
    """One line at the bottom of the screen, updated by the app's flush timer. While the connection is down it
    says why the last attempt failed and when the next one is made."""

    DEFAULT_CSS: ClassVar[str] = """
    StatusBar { height: 1; background: $panel; color: $text; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        #: ``time.monotonic`` (tests replace it).
        self.clock = time.monotonic

    def render_status(self, runtime: Runtime) -> Text:
        client = runtime.client
        status = client.status
        text = Text()
        # "│" separators, not runs of spaces: SVG renderers drop a styled span's leading spaces.
        text.append(f"● {status.value} ", style=_STATUS_STYLE.get(status, "bold"))
        problem = connection_problem(runtime, self.clock())
        if problem is not None:
            text.append_text(problem)
        text.append(f"│ {client.target}")
        if runtime.broker is not None:
            text.append(" (embedded broker)", style="cyan")
        caps = client.capabilities
        if caps is not None:
            text.append(f" │ MQTT {ProtocolVersion(caps.version).label}")
        stats = client.stats
        if stats.last_rtt is not None:
            text.append(f" │ rtt {stats.last_rtt * 1000:.1f} ms")
        rates = runtime.rates
        text.append(f" │ ↓{rates.in_per_s:,.0f}/s ↑{rates.out_per_s:,.0f}/s")
        tree = runtime.tree.stats
        text.append(f" │ {tree.messages:,} msgs, {tree.topics:,} topics")
        if tree.stale_topics:  # values restored from the lasting history, not yet replaced by live ones
            text.append(f", {tree.stale_topics:,} stale", style="italic")
        if runtime.discovery.active:  # discovering level by level: the tree holds what is followed
            text.append(" (partial)", style="yellow")
        if runtime.shared is not None:  # a filter read over several connections of a shared group
            text.append(f" │ shared over {len(runtime.shared.clients)}", style="cyan")
        budget = runtime.tree.history_budget
        text.append(f" │ history {size_label(tree.history_bytes)}/{size_label(budget)}")
        share = runtime.history_share
        if share is not None:  # several brokers open: this one's share of the one budget
            text.append(f" of {size_label(share[0])} shared")
        store = runtime.history
        if store is not None:
            kept = store.stats
            text.append(f" │ stored {size_label(kept.bytes)}/{size_label(kept.budget)}")
            if kept.error is not None:
                text.append(f" ({kept.error})", style="red")
            elif kept.evicted or kept.dropped:
                text.append(f", evicted {kept.evicted:,}, not stored {kept.dropped:,}", style="yellow")
        elif runtime.history_elsewhere:
            text.append(" │ history kept by another mqttchat", style="yellow")
        elif runtime.history_problem is not None:
            text.append(" │ no lasting history", style="red")
        dropped = stats.dropped
        if tree.evicted_entries or tree.truncated or dropped:
            text.append(" │ ")
            text.append(
                f"evicted {tree.evicted_entries:,}, truncated {tree.truncated:,}, dropped {dropped:,}", style="yellow"
            )
        if tree.sampled:  # hot topics' messages kept out of the history (!: hot topics)
            text.append(f" │ history sampled {tree.sampled:,}", style="yellow")
        return text

    def refresh_from(self, runtime: Runtime) -> None:
        show(self, self.render_status(runtime), fixed_size=True)
