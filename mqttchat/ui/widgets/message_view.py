"""MessageView: the latest message of the selected topic, decoded, with every flag and MQTT 5 property."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from mqttchat.explorer.payload import PayloadKind, pretty
from mqttchat.explorer.tree import Entry, TopicNode
from mqttchat.labels import plural, size_label
from mqttchat.ui.safe import network_text
from mqttchat.untrusted import printable

#: Payloads are rendered up to this many bytes; beyond it a "truncated" marker says how much is shown.
DISPLAY_LIMIT = 64 * 1024


def entry_table(topic: str, entry: Entry) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    received = dt.datetime.fromtimestamp(entry.received_at).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    table.add_row("topic", network_text(topic))
    table.add_row("received", received)
    table.add_row(
        "flags", f"QoS {entry.qos}   retain {'yes' if entry.retain else 'no'}   dup {'yes' if entry.dup else 'no'}"
    )
    table.add_row("size", f"{entry.size} bytes ({size_label(entry.size)})")
    for name, value in entry.properties.as_dict().items():
        label = name.replace("_", " ")
        if name == "user_property":
            for key, val in value:
                table.add_row("user property", network_text(f"{key} = {val}"))
        elif isinstance(value, bytes):
            table.add_row(label, Text(value.hex(" ") if len(value) <= 64 else value[:64].hex(" ") + " …"))
        elif name == "subscription_identifier":
            table.add_row("subscription ids", ", ".join(map(str, value)))
        elif name == "message_expiry_interval":
            table.add_row("message expiry", f"{value} s")
        else:
            table.add_row(label, network_text(str(value)))
    return table


def payload_renderable(entry: Entry, limit: int = DISPLAY_LIMIT) -> RenderableType:
    data = entry.payload[:limit]
    shown = len(data)
    kind, text = pretty(data)
    parts: list[RenderableType] = []
    if kind is PayloadKind.JSON:
        # JSON escapes C0 controls but keeps C1 controls and bidirectional overrides as they are.
        json_text = printable(text, keep="\n")
        parts.append(Syntax(json_text, "json", theme="ansi_dark", word_wrap=True, background_color="default"))
    elif kind is PayloadKind.EMPTY:
        parts.append(Text("(empty payload)", style="dim italic"))
    else:
        parts.append(network_text(text, keep="\n\t"))
    label = {PayloadKind.JSON: "JSON", PayloadKind.TEXT: "text", PayloadKind.BINARY: "binary (hex dump)"}
    header = Text(label.get(kind, ""), style="dim")
    if shown < entry.size:
        header.append(f"   truncated: {shown} of {entry.size} bytes shown", style="bold yellow")
    return Group(header, *parts)


class MessageView(VerticalScroll):
    """Shows one topic's latest message; :meth:`show` is cheap when nothing changed."""

    DEFAULT_CSS: ClassVar[str] = """
    MessageView { padding: 0 1; }
    MessageView > #message-meta { margin-bottom: 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._node: TopicNode | None = None
        self._entry: Entry | None = None
        self._below = -1

    def compose(self):  # type: ignore[no-untyped-def]
        yield Static("Select a topic in the tree.", id="message-meta")
        yield Static("", id="message-payload")

    def show(self, node: TopicNode | None) -> None:
        entry = node.last if node is not None else None
        below = node.topics_below if node is not None else -1
        if node is self._node and entry is self._entry and below == self._below:
            return
        self._node, self._entry, self._below = node, entry, below
        meta = self.query_one("#message-meta", Static)
        body = self.query_one("#message-payload", Static)
        if node is None:
            meta.update("Select a topic in the tree.")
            body.update("")
        elif entry is None:
            count = plural(node.topics_below, "topic")
            meta.update(
                network_text(node.topic) + Text(f"\n{count} below; no message was published to this level itself.")
            )
            body.update("")
        else:
            meta.update(entry_table(node.topic, entry))
            body.update(payload_renderable(entry))
