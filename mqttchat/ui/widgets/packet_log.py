"""PacketLog: every packet in and out, decoded, filterable, with a pause (the packet inspector)."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Log, Switch

from mqttchat.protocol.describe import describe
from mqttchat.runtime import Runtime, TraceRecord
from mqttchat.untrusted import printable


def format_record(record: TraceRecord) -> str:
    stamp = dt.datetime.fromtimestamp(record.at).strftime("%H:%M:%S.%f")[:-3]
    arrow = "→" if record.direction == "out" else "←"
    return f"{stamp} {arrow} {printable(describe(record.packet))}  [{record.size} B]"


class PacketLog(Vertical):
    """Shows the runtime's packet trace. New records are appended by :meth:`refresh_from` on the UI timer."""

    DEFAULT_CSS: ClassVar[str] = """
    PacketLog #packet-bar { height: 3; }
    PacketLog #packet-filter { width: 1fr; }
    PacketLog #packet-bar Label { padding: 1 1; }
    PacketLog Log { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._seen = 0
        self.filter = ""

    def compose(self) -> ComposeResult:
        with Horizontal(id="packet-bar"):
            yield Input(placeholder="filter packets (e.g. PUBLISH, SUBACK, a/topic)", id="packet-filter")
            yield Label("Pause")
            yield Switch(False, id="packet-pause")
        yield Log(id="packet-log", max_lines=5000, auto_scroll=True)

    @on(Input.Changed, "#packet-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter = event.value.strip().casefold()
        self._seen = 0
        self.query_one(Log).clear()

    @on(Switch.Changed, "#packet-pause")
    def _pause(self, event: Switch.Changed) -> None:
        self.app.runtime.trace_paused = event.value  # type: ignore[attr-defined]

    def refresh_from(self, runtime: Runtime) -> None:
        total = runtime.trace_total
        new = min(total - self._seen, len(runtime.trace))
        if runtime.trace_paused or new <= 0:
            self._seen = total
            return
        self._seen = total
        records = list(runtime.trace)[-new:]
        lines = [format_record(r) for r in records]
        if self.filter:
            lines = [line for line in lines if self.filter in line.casefold()]
        if lines:
            self.query_one(Log).write_lines(lines)
