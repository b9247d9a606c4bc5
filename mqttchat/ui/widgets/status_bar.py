"""StatusBar: connection state and target, protocol, round trip, rates, totals, memory budget and drops."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
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


@dataclass(slots=True)
class Segment:
    """A part of the status line: ``rank`` 0 is kept whatever the width, higher ranks are needed less."""

    rank: int
    full: Text
    short: Text | None = None
    shown: Text | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.shown = self.full


def fit(segments: list[Segment], width: int) -> None:
    """Make the line fit in ``width`` cells by whole segments, the highest rank first: one with a short form takes
    it, and goes if that is still too wide; one without goes."""

    def used() -> int:
        return sum(s.shown.cell_len for s in segments if s.shown is not None)

    for segment in sorted(segments, key=lambda s: -s.rank):
        if used() <= width:
            return
        if segment.rank == 0:
            continue
        if segment.short is not None:
            segment.shown = segment.short
            if used() <= width:
                return
        segment.shown = None


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

    def render_status(self, runtime: Runtime, width: int = 0) -> Text:
        """The line; with ``width``, made to fit it by whole segments: the least needed ones first take their
        short form, then go (never a word cut at the edge)."""
        segments = self._segments(runtime)
        if width > 0:
            fit(segments, width)
        text = Text()
        for segment in segments:
            if segment.shown is not None:
                text.append_text(segment.shown)
        return text

    def _segments(self, runtime: Runtime) -> list[Segment]:
        client = runtime.client
        status = client.status
        segments: list[Segment] = []

        def add(rank: int, full: Text | str, short: Text | str | None = None, style: str = "") -> None:
            def as_text(part: Text | str) -> Text:
                return Text(part, style=style) if isinstance(part, str) else part

            segments.append(Segment(rank, as_text(full), None if short is None else as_text(short)))

        # "│" separators, not runs of spaces: SVG renderers drop a styled span's leading spaces.
        head = Text()
        head.append(f"● {status.value} ", style=_STATUS_STYLE.get(status, "bold"))
        problem = connection_problem(runtime, self.clock())
        if problem is not None:
            head.append_text(problem)
        head.append(f"│ {client.target}")
        add(0, head)
        if runtime.broker is not None:
            add(3, " (embedded broker)", " (embedded)", style="cyan")
        caps = client.capabilities
        if caps is not None:
            add(8, f" │ MQTT {ProtocolVersion(caps.version).label}")
        stats = client.stats
        if stats.last_rtt is not None:
            add(9, f" │ rtt {stats.last_rtt * 1000:.1f} ms")
        rates = runtime.rates
        add(4, f" │ ↓{rates.in_per_s:,.0f}/s ↑{rates.out_per_s:,.0f}/s")
        tree = runtime.tree.stats
        counts = Text(f" │ {tree.messages:,} msgs, {tree.topics:,} topics")
        if tree.stale_topics:  # values restored from the lasting history, not yet replaced by live ones
            counts.append(f", {tree.stale_topics:,} stale", style="italic")
        if runtime.discovery.active:  # discovering level by level: the tree holds what is followed
            counts.append(" (partial)", style="yellow")
        add(1, counts, Text(f" │ {tree.topics:,} topics"))
        if runtime.shared is not None:  # a filter read over several connections of a shared group
            add(2, f" │ shared over {len(runtime.shared.clients)}", style="cyan")
        budget = runtime.tree.history_budget
        history = f" │ history {size_label(tree.history_bytes)}/{size_label(budget)}"
        share = runtime.history_share
        if share is not None:  # several brokers open: this one's share of the one budget
            add(5, f"{history} of {size_label(share[0])} shared", history)
        else:
            add(5, history)
        store = runtime.history
        if store is not None:
            kept = store.stats
            stored = Text(f" │ stored {size_label(kept.bytes)}/{size_label(kept.budget)}")
            if kept.error is not None:
                stored.append(f" ({kept.error})", style="red")
                add(2, stored)
            elif kept.evicted or kept.dropped:
                short = stored.copy()
                stored.append(f", evicted {kept.evicted:,}, not stored {kept.dropped:,}", style="yellow")
                add(6, stored, short)
            else:
                add(6, stored)
        elif runtime.history_elsewhere:
            add(2, " │ history kept by another mqttchat", " │ history elsewhere", style="yellow")
        elif runtime.history_problem is not None:
            add(2, " │ no lasting history", style="red")
        dropped = stats.dropped
        if tree.evicted_entries or tree.truncated or dropped:
            add(3, f" │ evicted {tree.evicted_entries:,}, truncated {tree.truncated:,}, dropped {dropped:,}",
                f" │ dropped {dropped:,}", style="yellow")  # fmt: skip
        if tree.sampled:  # hot topics' messages kept out of the history (!: hot topics)
            add(3, f" │ history sampled {tree.sampled:,}", f" │ sampled {tree.sampled:,}", style="yellow")
        return segments

    def refresh_from(self, runtime: Runtime) -> None:
        show(self, self.render_status(runtime, self.content_size.width), fixed_size=True)
