"""BrokerPanel: what the broker said in CONNACK, and its $SYS statistics when it publishes them."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from mqttchat.runtime import Runtime


def _yes(value: bool) -> str:
    return "yes" if value else "no"


class BrokerPanel(Static):
    DEFAULT_CSS: ClassVar[str] = """
    BrokerPanel { padding: 0 1; }
    """

    def refresh_from(self, runtime: Runtime) -> None:
        caps = runtime.client.capabilities
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        table.add_column(style="dim")
        if caps is None:
            self.update(Text("Not connected yet.", style="dim"))
            return
        table.add_row("protocol", "MQTT 5.0" if caps.version == 5 else "MQTT 3.1.1", "")
        table.add_row("client id", runtime.client.client_id or "(none)",
                      "assigned by the broker" if caps.assigned_client_identifier else "")  # fmt: skip
        table.add_row("session present", _yes(caps.session_present), "whether the broker kept our session")
        table.add_row("receive maximum", str(caps.receive_maximum), "QoS 1/2 messages it accepts in flight from us")
        table.add_row("maximum QoS", str(caps.maximum_qos), "")
        table.add_row("retain available", _yes(caps.retain_available), "")
        table.add_row("maximum packet size", str(caps.maximum_packet_size or "protocol limit"), "")
        table.add_row("topic alias maximum", str(caps.topic_alias_maximum), "aliases we may use towards it")
        table.add_row("wildcard subscriptions", _yes(caps.wildcard_subscription_available), "")
        table.add_row("shared subscriptions", _yes(caps.shared_subscription_available), "")
        table.add_row("subscription identifiers", _yes(caps.subscription_identifier_available), "")
        table.add_row("server keep alive", str(caps.server_keep_alive or "as requested"), "")
        if caps.response_information:
            table.add_row("response information", caps.response_information, "")
        if caps.reason_string:
            table.add_row("reason string", caps.reason_string, "")
        parts: list[Table | Text] = [Text("Broker capabilities (CONNACK)", style="bold underline"), table]
        if runtime.sys_stats:
            sys_table = Table.grid(padding=(0, 2))
            sys_table.add_column(style="bold", no_wrap=True)
            sys_table.add_column()
            for key in sorted(runtime.sys_stats):
                sys_table.add_row(key, runtime.sys_stats[key])
            parts += [Text(""), Text("$SYS/broker statistics", style="bold underline"), sys_table]
        else:
            parts += [Text(""), Text("No $SYS statistics received (subscribe to $SYS/# to see them).", style="dim")]
        if runtime.events:
            parts += [Text(""), Text("Connection events", style="bold underline")]
            parts += [Text(line) for line in list(runtime.events)[-10:]]
        self.update(Group(*parts))
