"""BrokerPanel: what the broker said in CONNACK, its $SYS statistics when it publishes them, and, for the broker
this mqttchat hosts, how much it queues and whom its overload protection paused or declared stalled."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from mqttchat.protocol import ProtocolVersion
from mqttchat.ui.safe import network_text
from mqttchat.untrusted import printable

if TYPE_CHECKING:
    from mqttchat.broker.server import Broker
    from mqttchat.explorer.broker_sys import BrokerSys
    from mqttchat.runtime import Runtime

#: The explanations are shown when at least this many columns are left for them beside the names and values.
NOTES_WIDTH = 24


def _yes(value: bool) -> str:
    return "yes" if value else "no"


#: Client ids listed per row of the hosted broker's overload state (the others are counted).
NAMES_SHOWN = 5


def _names(client_ids: list[str], extra: dict[str, str] | None = None) -> str:
    """``3: a, b (12 dropped), c``: how many, and the first few (network text: the table shows it safely)."""
    if not client_ids:
        return "none"
    ids = sorted(client_ids)
    shown = [printable(cid, limit=40) + (f" ({extra[cid]})" if extra and cid in extra else "") for cid in ids]
    more = f", {len(ids) - NAMES_SHOWN} more" if len(ids) > NAMES_SHOWN else ""
    return f"{len(ids)}: " + ", ".join(shown[:NAMES_SHOWN]) + more


def hosted_rows(broker: Broker) -> list[tuple[str, str, str]]:
    """How much the broker this mqttchat hosts queues, and what its overload protection does now."""
    config = broker.config
    core = broker.core
    overload = core.overload
    queue = f"{config.max_queued_messages} messages" if config.max_queued_messages else "no limit"
    if config.max_queued_bytes:
        queue += f", {config.max_queued_bytes} bytes"
    rows = [
        ("queue per client", queue, "offline, or beyond its in-flight window; beyond it: dropped"),
        ("in flight per client", str(config.max_inflight_messages or 65535), "QoS 1/2 sent and not yet acknowledged"),
    ]
    if overload.enabled:
        rows += [
            ("overload protection", f"on: pause at {overload.high_water}, resume at {overload.low_water}",
             "publishers to a subscriber with this many queued are not read"),
            ("stalled after", f"{overload.stall_timeout:g} s", "a subscriber not back down by then: drops as above"),
        ]  # fmt: skip
    else:
        rows.append(("overload protection", "off", "a slow subscriber's messages beyond its queue are dropped"))
    paused = [conn.client_id for conn in overload.paused_publishers()]  # type: ignore[attr-defined]
    congested = [session.client_id for session in overload.congested]
    stalled = {session.client_id: f"{session.dropped} dropped" for session in overload.stalled}
    rows += [
        ("paused publishers", _names(paused), f"{overload.pauses} pauses since start" if overload.enabled else ""),
        ("congested subscribers", _names(congested), ""),
        ("stalled subscribers", _names(list(stalled), stalled), f"{overload.stalls} since start"),
        ("dropped", str(core.stats.messages_dropped), "messages, since start"),
    ]
    return rows


#: What an MQTT 5.0 CONNACK may announce and a 3.1.1 CONNACK cannot.
V5_ONLY_ROWS = (
    "receive maximum",
    "maximum QoS",
    "retain available",
    "maximum packet size",
    "topic alias maximum",
    "wildcard subscriptions",
    "shared subscriptions",
    "subscription identifiers",
    "server keep alive",
)
NOT_ANNOUNCED = "not announced (3.1.1)"


def learned_rows(runtime: Runtime) -> list[Text]:
    """What the broker's answers showed beyond its CONNACK: QoS granted per subscription, downgrades, no retained
    messages through wildcards."""
    rows: list[Text] = []
    asked = {f: sub.qos for f, (sub, _) in runtime.client.session.subscriptions.items()}
    for topic_filter, code in sorted(runtime.granted.items()):
        line = Text("granted ")
        line.append(f"QoS {int(code)}", "bold")
        line.append(" for ")
        line.append(network_text(topic_filter))
        wanted = asked.get(topic_filter)
        if wanted is not None and int(code) < wanted:
            line.append(f"  (QoS {wanted} asked: the broker downgrades)", "yellow")
        rows.append(line)
    downgraded = runtime.client.downgraded_publishes
    if downgraded:
        rows.append(
            Text(
                f"{downgraded} QoS 2 publish(es) answered with PUBACK: delivered at QoS 1, not exactly once",
                style="yellow",
            )
        )
    note = runtime.retained_note()
    if note:
        rows.append(Text(note, style="yellow"))
    compared = runtime.retained_comparison(time.monotonic())
    if compared is not None:
        rows.append(Text(compared[0], style="yellow" if compared[1] else ""))
    if runtime.client.version_fallback:
        rows.append(network_text(runtime.client.version_fallback))
    return rows


class BrokerPanel(Static):
    DEFAULT_CSS: ClassVar[str] = """
    BrokerPanel { padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        #: ``time.monotonic`` (tests replace it).
        self.clock = time.monotonic

    def refresh_from(self, runtime: Runtime) -> None:
        caps = runtime.client.capabilities
        if caps is None:
            self.update(Text("Not connected yet.", style="dim"))
            return
        rows: list[tuple[str, str, str]] = [
            ("protocol", f"MQTT {ProtocolVersion(caps.version).label}", ""),
            ("client id", runtime.client.client_id or "(none)",
             "assigned by the broker" if caps.assigned_client_identifier else ""),
            ("session present", _yes(caps.session_present), "whether the broker kept our session"),
        ]  # fmt: skip
        if caps.version == ProtocolVersion.MQTT_5:
            rows += [
                ("receive maximum", str(caps.receive_maximum), "QoS 1/2 messages it accepts in flight from us"),
                ("maximum QoS", str(caps.maximum_qos), ""),
                ("retain available", _yes(caps.retain_available), ""),
                ("maximum packet size", str(caps.maximum_packet_size or "protocol limit"), ""),
                ("topic alias maximum", str(caps.topic_alias_maximum), "aliases we may use towards it"),
                ("wildcard subscriptions", _yes(caps.wildcard_subscription_available), ""),
                ("shared subscriptions", _yes(caps.shared_subscription_available), ""),
                ("subscription identifiers", _yes(caps.subscription_identifier_available), ""),
                ("server keep alive", str(caps.server_keep_alive or "as requested"), ""),
            ]
        else:
            # A 3.1.1 CONNACK carries a session flag and a return code, nothing else: show nothing invented.
            rows += [(name, NOT_ANNOUNCED, "") for name in V5_ONLY_ROWS]
        if caps.response_information:
            rows.append(("response information", printable(caps.response_information), ""))
        if caps.reason_string:
            rows.append(("reason string", printable(caps.reason_string), ""))
        table = self._table(rows)
        parts: list[Table | Text] = [Text("Broker capabilities (CONNACK)", style="bold underline"), table]
        learned = learned_rows(runtime)
        if learned:
            parts += [Text(""), Text("Learned from its answers", style="bold underline")]
            parts += learned
        if runtime.broker is not None:
            parts += [Text(""), Text("This broker (hosted here): queues and overload", style="bold underline")]
            parts.append(self._table(hosted_rows(runtime.broker)))
        parts += self._sys_parts(runtime.broker_sys)
        if runtime.events:
            parts += [Text(""), Text("Connection events", style="bold underline")]
            parts += [network_text(line) for line in list(runtime.events)[-10:]]
        self.update(Group(*parts))

    def _sys_parts(self, sys: BrokerSys) -> list[Table | Text]:
        """The broker's $SYS figures: its dialect, a summary per node where it has several, then every figure."""
        status = sys.status(self.clock())
        if not sys.nodes:
            return [Text(""), Text("$SYS", style="bold underline"), Text(status, style="dim")]
        parts: list[Table | Text] = [Text(""), Text(f"$SYS statistics: {status}", style="bold underline")]
        nodes = sorted(sys.nodes)
        for node in nodes:
            figures = sys.nodes[node]
            if node:
                parts.append(network_text(f"node {node}", "bold"))
            parts.append(self._table([(key, figures[key], "") for key in sorted(figures)]))
        if sys.not_kept:
            parts.append(Text(f"{sys.not_kept:,} $SYS messages not kept (client events, beyond the bounds)", "dim"))
        return parts

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
            # Rich parses a str cell as markup, and names and values come from the broker ($SYS topics and
            # payloads, the client id it assigned, its reason string): they go in as network_text().
            table.add_row(network_text(name), network_text(value), *([note] if notes else []))
        return table
