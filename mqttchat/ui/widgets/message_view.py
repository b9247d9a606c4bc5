"""MessageView: the latest message of the selected topic, decoded, with every flag and MQTT 5 property."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Static

from mqttchat.explorer.payload import PayloadKind, pretty
from mqttchat.explorer.sparkplug_view import SparkplugPlace
from mqttchat.explorer.sparkplug_view import place as sparkplug_place
from mqttchat.explorer.tree import Entry, TopicNode
from mqttchat.labels import plural, size_label
from mqttchat.ui.safe import network_text
from mqttchat.untrusted import printable

if TYPE_CHECKING:
    from mqttchat.explorer.decoders import DecodeResult, PayloadDecoders

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


#: Names of the decoded formats, as the header above a payload says them.
FORMAT_LABELS = {
    "json": "JSON",
    "text": "text",
    "binary": "binary (hex dump)",
    "empty": "empty",
    "sparkplug": "Sparkplug B",
    "protobuf": "protobuf",
    "cbor": "CBOR",
    "msgpack": "MessagePack",
    "struct": "struct",
    "command": "command output",
}


class PayloadSource(Protocol):
    """Where the view gets decoded payloads and Sparkplug state from (the runtime)."""

    @property
    def decoders(self) -> PayloadDecoders: ...

    def decode(self, topic: str, entry: Entry) -> DecodeResult: ...


def raw_renderable(entry: Entry, limit: int = DISPLAY_LIMIT) -> RenderableType:
    """The payload as the explorer shows it without decoders: JSON, text or a hex dump (of at most limit bytes)."""
    data = entry.payload[:limit]
    kind, text = pretty(data)
    if kind is PayloadKind.JSON:
        # JSON escapes C0 controls but keeps C1 controls and bidirectional overrides as they are.
        return Syntax(printable(text, keep="\n"), "json", theme="ansi_dark", word_wrap=True, background_color="default")
    if kind is PayloadKind.EMPTY:
        return Text("(empty payload)", style="dim italic")
    return network_text(text, keep="\n\t")


def payload_renderable(entry: Entry, limit: int = DISPLAY_LIMIT) -> RenderableType:
    """The payload undecoded, with a header saying its kind (and how much is shown)."""
    kind, _ = pretty(entry.payload[:limit])
    label = {PayloadKind.JSON: "JSON", PayloadKind.TEXT: "text", PayloadKind.BINARY: "binary (hex dump)"}
    header = Text(label.get(kind, ""), style="dim")
    shown = min(len(entry.payload), limit)
    if shown < entry.size:
        header.append(f"   truncated: {shown} of {entry.size} bytes shown", style="bold yellow")
    return Group(header, raw_renderable(entry, limit))


def decoded_renderable(
    entry: Entry, result: DecodeResult, rule: str | None, limit: int = DISPLAY_LIMIT
) -> RenderableType:
    """A payload as its decoder made it: a header (format, decoder, automatic or by which rule), the decoder's
    notes and the message's Sparkplug problems, then the rendering (or why it failed, with the hex beside it).
    Everything the payload holds is shown through ``printable``: metric names, strings and keys are network text.
    """
    header = Text()
    if result.pending:
        header.append(f"decoding with {result.decoder}…", style="italic")
    elif result.error is not None:
        header.append("cannot decode: ", style="bold red")
        header.append_text(network_text(result.error, style="red"))
    else:
        header.append(FORMAT_LABELS.get(result.format, result.format), style="bold")
    header.append(f" · {result.decoder} ", style="dim")
    if rule is None:
        header.append("(automatic)", style="dim")
    else:
        header.append("(chosen for ", style="dim")
        header.append_text(network_text(rule, style="dim"))
        header.append(")", style="dim")
    parts: list[RenderableType] = [header]
    notes = list(result.notes)
    if entry.observation is not None:
        notes.extend(problem for problem in entry.observation.problems if problem not in notes)
    parts.extend(network_text(f"⚠ {note}", style="yellow") for note in notes)
    truncated = len(entry.payload) < entry.size
    if result.ok and result.format in ("binary", "text", "empty") and (truncated or entry.size > limit):
        shown = min(len(entry.payload), limit)
        parts.append(Text(f"truncated: {shown} of {entry.size} bytes shown", style="bold yellow"))
        parts.append(raw_renderable(entry, limit))
        return Group(*parts)
    if truncated:
        parts.append(Text(f"only {len(entry.payload)} of {entry.size} bytes were kept", style="bold yellow"))
    if result.ok and result.format == "empty":
        parts.append(Text("(empty payload)", style="dim italic"))
        return Group(*parts)
    text = result.text
    if len(text) > limit:
        parts.append(Text(f"truncated: the first {limit} of {len(text)} characters shown", style="bold yellow"))
        text = text[:limit]
    if result.ok and result.format == "json":
        parts.append(Syntax(printable(text, keep="\n"), "json", theme="ansi_dark", word_wrap=True,
                            background_color="default"))  # fmt: skip
    else:
        parts.append(network_text(text, keep="\n\t"))
    return Group(*parts)


class MessageView(VerticalScroll):
    """Shows one topic's latest message decoded, with "decode as…", and on a Sparkplug B topic the state of its
    edge node and device with the rebirth and write actions. :meth:`show` is cheap when nothing changed.

    | Key (on the screen) | Action |
    | --- | --- |
    | d | decode as… (the buttons are focus stops too) |
    """

    DEFAULT_CSS: ClassVar[str] = """
    MessageView { padding: 0 1; }
    MessageView > #message-meta { margin-bottom: 1; }
    MessageView > #message-actions { height: auto; margin-bottom: 1; display: none; }
    MessageView > #message-actions.shown { display: block; }
    MessageView #message-actions Button { min-width: 10; margin-right: 1; }
    MessageView #sparkplug-buttons { display: none; height: auto; width: auto; }
    MessageView #sparkplug-buttons.shown { display: block; }
    MessageView > #sparkplug-state { color: $text-muted; display: none; margin-bottom: 1; }
    MessageView > #sparkplug-state.shown { display: block; }
    """

    @dataclass
    class DecodeAsRequested(Message):
        """The user wants to choose how this topic's payloads are decoded."""

        view: MessageView
        topic: str

        @property
        def control(self) -> MessageView:
            return self.view

    @dataclass
    class RebirthRequested(Message):
        """The user asked the edge node of a Sparkplug topic for its births again (an NCMD)."""

        view: MessageView
        group: str
        edge_node: str

        @property
        def control(self) -> MessageView:
            return self.view

    @dataclass
    class WriteRequested(Message):
        """The user wants to write a metric of the edge node (device None) or device of a Sparkplug topic."""

        view: MessageView
        topic: str

        @property
        def control(self) -> MessageView:
            return self.view

    def __init__(self, source: PayloadSource | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.source = source
        self._node: TopicNode | None = None
        self._key: tuple[object, ...] = ()
        self._place: SparkplugPlace | None = None
        self._waiting: object = None

    def compose(self) -> ComposeResult:
        yield Static("Select a topic in the tree.", id="message-meta")
        yield Static("", id="sparkplug-state")
        with Horizontal(id="message-actions"):
            yield Button("Decode as… (d)", id="decode-as", compact=True)
            with Horizontal(id="sparkplug-buttons"):
                yield Button("Rebirth", id="sparkplug-rebirth", compact=True)
                yield Button("Write metric…", id="sparkplug-write", compact=True)
        yield Static("", id="message-payload")

    @property
    def topic(self) -> str | None:
        """The topic shown, when it has a message."""
        node = self._node
        return node.topic if node is not None and node.last is not None else None

    def show(self, node: TopicNode | None) -> None:
        entry = node.last if node is not None else None
        below = node.topics_below if node is not None else -1
        source = self.source
        version = source.decoders.rules.version if source is not None else 0
        place = None
        if source is not None and node is not None and node.topic.startswith("spBv1.0/"):
            place = sparkplug_place(source.decoders.sparkplug, node.topic)
        key = (node, entry, below, version, place.key() if place is not None else None)
        if node is self._node and key == self._key:
            return
        self._node, self._key, self._place = node, key, place
        meta = self.query_one("#message-meta", Static)
        body = self.query_one("#message-payload", Static)
        state = self.query_one("#sparkplug-state", Static)
        actions = self.query_one("#message-actions")
        actions.set_class(entry is not None, "shown")
        self.query_one("#sparkplug-buttons").set_class(
            place is not None and not place.is_host and entry is not None, "shown"
        )
        state.set_class(place is not None, "shown")
        state.update(network_text("\n".join(place.lines()), keep="\n") if place is not None else "")
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
            if source is None:
                body.update(payload_renderable(entry))
                return
            result = source.decode(node.topic, entry)
            rule = source.decoders.rule_for(node.topic)
            body.update(decoded_renderable(entry, result, rule.filter if rule is not None else None))
            if result.pending:
                self._finish(node, entry)

    def _finish(self, node: TopicNode, entry: Entry) -> None:
        """An external command decodes this payload: show its result when it is done."""
        if self._waiting is entry:
            return
        self._waiting = entry
        self.run_worker(self._decode_async(node, entry), group="decode", exclusive=True, exit_on_error=False)

    async def _decode_async(self, node: TopicNode, entry: Entry) -> None:
        source = self.source
        assert source is not None
        try:
            await source.decoders.decode_async(
                node.topic, entry.payload, content_type=entry.properties.content_type, observation=entry.observation
            )
        finally:
            self._waiting = None
        if self._node is node:
            self._key = ()
            self.show(node)

    @on(Button.Pressed, "#decode-as")
    def _decode_as(self, event: Button.Pressed) -> None:
        event.stop()
        if self.topic is not None:
            self.post_message(self.DecodeAsRequested(self, self.topic))

    @on(Button.Pressed, "#sparkplug-rebirth")
    def _rebirth(self, event: Button.Pressed) -> None:
        event.stop()
        place = self._place
        if place is not None and not place.is_host:
            self.post_message(self.RebirthRequested(self, place.group, place.edge_node))

    @on(Button.Pressed, "#sparkplug-write")
    def _write(self, event: Button.Pressed) -> None:
        event.stop()
        if self._place is not None and self.topic is not None:
            self.post_message(self.WriteRequested(self, self.topic))
