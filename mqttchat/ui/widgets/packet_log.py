"""PacketLog: every packet in and out, decoded, filterable, with a pause (the packet inspector)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label, Log, Switch

from mqttchat.explorer.trace import PacketTrace, TraceRecord
from mqttchat.protocol.describe import describe
from mqttchat.untrusted import printable


def format_record(record: TraceRecord) -> str:
    stamp = dt.datetime.fromtimestamp(record.at).strftime("%H:%M:%S.%f")[:-3]
    arrow = "→" if record.direction == "out" else "←"
    return f"{stamp} {arrow} {printable(describe(record.packet))}  [{record.size} B]"


class PacketLog(Vertical):
    """Shows a :class:`~mqttchat.explorer.trace.PacketTrace`: the screen calls :meth:`refresh_from` on its timer,
    and the pause switch posts :class:`PacketLog.PauseToggled` (the screen pauses the trace)."""

    DEFAULT_CSS: ClassVar[str] = """
    PacketLog #packet-bar { height: 3; }
    PacketLog #packet-filter { width: 1fr; }
    PacketLog #packet-bar Label { padding: 1 1; }
    PacketLog Log { height: 1fr; }
    """

    @dataclass
    class PauseToggled(Message):
        """The user paused the trace (``paused``) or let it run again."""

        log: PacketLog
        paused: bool

        @property
        def control(self) -> PacketLog:
            return self.log

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
        event.stop()
        self.post_message(self.PauseToggled(self, event.value))

    def refresh_from(self, trace: PacketTrace) -> None:
        """Append the packets seen since the last call (none while the trace is paused)."""
        records = trace.since(self._seen)
        self._seen = trace.total
        lines = [format_record(r) for r in records]
        if self.filter:
            lines = [line for line in lines if self.filter in line.casefold()]
        if lines:
            self.query_one(Log).write_lines(lines)
