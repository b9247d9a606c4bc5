"""BrokerPanel: what the broker said in CONNACK, and its $SYS statistics when it publishes them."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from mqttchat.runtime import Runtime

#: The explanations are shown when at least this many columns are left for them beside the names and values.
NOTES_WIDTH = 24


def _yes(value: bool) -> str:
    return "yes" if value else "no"


class BrokerPanel(Static):
    DEFAULT_CSS: ClassVar[str] = """
    BrokerPanel { padding: 0 1; }
    """

    def refresh_from(self, runtime: Runtime) -> None:
        caps = runtime.client.capabilities
        if caps is None:
            self.update(Text("Not connected yet.", style="dim"))
            return
        rows: list[tuple[str, str, str]] = [
            ("protocol", "MQTT 5.0" if caps.version == 5 else "MQTT 3.1.1", ""),
            ("client id", runtime.client.client_id or "(none)",
             "assigned by the broker" if caps.assigned_client_identifier else ""),
            ("session present", _yes(caps.session_present), "whether the broker kept our session"),
            ("receive maximum", str(caps.receive_maximum), "QoS 1/2 messages it accepts in flight from us"),
            ("maximum QoS", str(caps.maximum_qos), ""),
            ("retain available", _yes(caps.retain_available), ""),
            ("maximum packet size", str(caps.maximum_packet_size or "protocol limit"), ""),
            ("topic alias maximum", str(caps.topic_alias_maximum), "aliases we may use towards it"),
            ("wildcard subscriptions", _yes(caps.wildcard_subscription_available), ""),
            ("shared subscriptions", _yes(caps.shared_subscription_available), ""),
            ("subscription identifiers", _yes(caps.subscription_identifier_available), ""),
            ("server keep alive", str(caps.server_keep_alive or "as requested"), ""),
        ]  # fmt: skip
        if caps.response_information:
            rows.append(("response information", caps.response_information, ""))
        if caps.reason_string:
            rows.append(("reason string", caps.reason_string, ""))
        table = self._table(rows)
        parts: list[Table | Text] = [Text("Broker capabilities (CONNACK)", style="bold underline"), table]
        if runtime.sys_stats:
            sys_table = self._table([(key, runtime.sys_stats[key], "") for key in sorted(runtime.sys_stats)])
            parts += [Text(""), Text("$SYS/broker statistics", style="bold underline"), sys_table]
        else:
            parts += [Text(""), Text("No $SYS statistics received (subscribe to $SYS/# to see them).", style="dim")]
        if runtime.events:
            parts += [Text(""), Text("Connection events", style="bold underline")]
            parts += [Text(line) for line in list(runtime.events)[-10:]]
        self.update(Group(*parts))

    def _table(self, rows: list[tuple[str, str, str]]) -> Table:
        """Names, values and (when there is room) explanations; names and values never wrap (a narrow terminal
        cut "MQTT 5.0" into two lines), and what does not fit is cut with an ellipsis."""
        width = self.content_region.width or 80
        names = max(len(name) for name, _, _ in rows)
        values = min(max(len(value) for _, value, _ in rows), max(8, width - names - 2))
        notes = width - names - values - 4 >= NOTES_WIDTH and any(note for _, _, note in rows)
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True, min_width=names)
        table.add_column(no_wrap=True, overflow="ellipsis", min_width=values, max_width=values)
        if notes:
            table.add_column(style="dim", no_wrap=True, overflow="ellipsis", ratio=1)
        for name, value, note in rows:
            table.add_row(name, value, *([note] if notes else []))
        return table
