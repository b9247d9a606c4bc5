"""PublishPane: topic, payload, QoS, retain and MQTT 5 properties; posts PublishRequested, shows the outcome."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, Label, Select, Switch, TextArea

from mqttchat.protocol import Properties, topic_name_problem

TEMPLATE_HELP = "{{uuid}} {{timestamp}} {{counter}} are replaced when sending"


def expand_template(text: str, counter: int) -> str:
    return (
        text.replace("{{uuid}}", str(uuid.uuid4()))
        .replace("{{timestamp}}", f"{time.time():.3f}")
        .replace("{{counter}}", str(counter))
    )


def parse_user_properties(text: str) -> list[tuple[str, str]]:
    """``k=v; k2=v2`` → pairs. Raises ValueError naming the bad part."""
    pairs = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"user property {part!r} is not name=value")
        pairs.append((key.strip(), value.strip()))
    return pairs


@dataclass(frozen=True)
class PublishDraft:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: Properties


class PublishPane(VerticalScroll):
    """The publish form. Ctrl+S or the button validates and posts :class:`PublishPane.PublishRequested`.

    | Key | Action |
    | --- | --- |
    | ctrl+s | publish |
    | ctrl+up / ctrl+down | recall earlier publishes |
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "publish", "Publish", priority=True),
        Binding("ctrl+up", "recall(-1)", "Previous", show=False),
        Binding("ctrl+down", "recall(1)", "Next", show=False),
    ]

    DEFAULT_CSS: ClassVar[str] = """
    PublishPane { padding: 0 1; }
    PublishPane .row { height: auto; margin-bottom: 1; }
    PublishPane .row > Label { width: 12; padding: 1 0; }
    PublishPane .row > Label.inline { width: auto; padding: 1 1 1 2; }
    PublishPane .row > Input { width: 1fr; }
    PublishPane #pub-payload { height: 8; }
    PublishPane #pub-qos { width: 16; }
    PublishPane .field-error { color: $error; height: auto; width: 1fr; }
    PublishPane #pub-outcome { height: auto; padding: 1 2; width: 1fr; }
    PublishPane .hint, PublishPane .section { color: $text-muted; margin-bottom: 1; }
    PublishPane .section { text-style: bold; }
    """

    @dataclass
    class PublishRequested(Message):
        """The user asked to publish ``draft`` (already validated)."""

        pane: PublishPane
        draft: PublishDraft

        @property
        def control(self) -> PublishPane:
            return self.pane

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.history: list[PublishDraft] = []
        self._recall = 0
        self.counter = 0

    def compose(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Label("Topic")
            yield Input(placeholder="home/kitchen/light", id="pub-topic")
        yield Label("", id="pub-topic-error", classes="field-error")
        yield TextArea("", id="pub-payload", language=None, soft_wrap=True, tab_behavior="indent")
        yield Label("", id="pub-payload-error", classes="field-error")
        with Horizontal(classes="row"):
            yield Label("QoS")
            yield Select([("QoS 0", 0), ("QoS 1", 1), ("QoS 2", 2)], value=1, allow_blank=False, id="pub-qos")
            yield Label("Retain", classes="inline")
            yield Switch(False, id="pub-retain")
            yield Label("JSON", classes="inline")
            yield Switch(True, id="pub-json")
        with Horizontal(classes="row"):
            yield Button("Publish (ctrl+s)", id="pub-send", variant="primary")
            yield Label("", id="pub-outcome")
        yield Label(TEMPLATE_HELP, classes="hint")
        yield Label("MQTT 5 properties", classes="section")
        with Horizontal(classes="row"):
            yield Label("Content type")
            yield Input(placeholder="application/json", id="pub-content-type")
        with Horizontal(classes="row"):
            yield Label("User props")
            yield Input(placeholder="name=value; other=value", id="pub-user-props")
        with Horizontal(classes="row"):
            yield Label("Expiry (s)")
            yield Input(placeholder="message expiry interval", id="pub-expiry", type="integer")
        with Horizontal(classes="row"):
            yield Label("Response topic")
            yield Input(placeholder="replies/me", id="pub-response-topic")
        with Horizontal(classes="row"):
            yield Label("Correlation")
            yield Input(placeholder="correlation data (text)", id="pub-correlation")
        yield Label("", id="pub-props-error", classes="field-error")

    def set_topic(self, topic: str) -> None:
        """Prefill the topic (from the tree selection) unless the user is typing one."""
        field = self.query_one("#pub-topic", Input)
        if not field.has_focus:
            field.value = topic

    def set_suggestions(self, topics: list[str]) -> None:
        self.query_one("#pub-topic", Input).suggester = SuggestFromList(topics, case_sensitive=True)

    @on(TextArea.Changed, "#pub-payload")
    def _payload_changed(self, event: TextArea.Changed) -> None:
        text = event.text_area.text.strip()
        area = event.text_area
        looks_json = text[:1] in ("{", "[")
        area.language = "json" if looks_json else None
        error = self.query_one("#pub-payload-error", Label)
        if looks_json and self.query_one("#pub-json", Switch).value:
            try:
                json.loads(expand_template(text, self.counter))
                error.update("")
            except ValueError as exc:
                error.update(f"invalid JSON: {exc}")
        else:
            error.update("")

    @on(Input.Changed, "#pub-topic")
    def _topic_changed(self, event: Input.Changed) -> None:
        problem = topic_name_problem(event.value) if event.value else None
        self.query_one("#pub-topic-error", Label).update(problem or "")

    @on(Button.Pressed, "#pub-send")
    def _pressed(self) -> None:
        self.action_publish()

    def validated(self) -> PublishDraft | None:
        """The draft if the form is valid; otherwise errors are shown inline and None is returned."""
        topic = self.query_one("#pub-topic", Input).value
        problem = topic_name_problem(topic)
        self.query_one("#pub-topic-error", Label).update(problem or "")
        text = self.query_one("#pub-payload", TextArea).text
        payload_text = expand_template(text, self.counter + 1)
        payload_error = ""
        if payload_text.strip()[:1] in ("{", "[") and self.query_one("#pub-json", Switch).value:
            try:
                json.loads(payload_text)
            except ValueError as exc:
                payload_error = f"invalid JSON: {exc} (turn off JSON check to send it anyway)"
        self.query_one("#pub-payload-error", Label).update(payload_error)
        props_error = ""
        properties = Properties()
        try:
            expiry_text = self.query_one("#pub-expiry", Input).value.strip()
            response_topic = self.query_one("#pub-response-topic", Input).value.strip() or None
            if response_topic and topic_name_problem(response_topic):
                raise ValueError(f"response topic: {topic_name_problem(response_topic)}")
            properties = Properties(
                content_type=self.query_one("#pub-content-type", Input).value.strip() or None,
                user_property=parse_user_properties(self.query_one("#pub-user-props", Input).value) or None,
                message_expiry_interval=int(expiry_text) if expiry_text else None,
                response_topic=response_topic,
                correlation_data=self.query_one("#pub-correlation", Input).value.encode() or None,
            )
        except ValueError as exc:
            props_error = str(exc)
        self.query_one("#pub-props-error", Label).update(props_error)
        if problem or payload_error or props_error:
            return None
        qos = self.query_one("#pub-qos", Select).value
        retain = self.query_one("#pub-retain", Switch).value
        return PublishDraft(topic, payload_text.encode(), qos if isinstance(qos, int) else 0, bool(retain), properties)

    def action_publish(self) -> None:
        draft = self.validated()
        if draft is None:
            self.show_outcome("fix the highlighted fields first", error=True)
            return
        self.counter += 1
        self.history.append(draft)
        self._recall = len(self.history)
        self.show_outcome(f"sending to {draft.topic} …")
        self.post_message(self.PublishRequested(self, draft))

    def show_outcome(self, text: str, error: bool = False) -> None:
        label = self.query_one("#pub-outcome", Label)
        label.update(text)
        label.set_class(error, "field-error")

    def action_recall(self, step: int) -> None:
        if not self.history:
            return
        self._recall = max(0, min(len(self.history) - 1, self._recall + step))
        draft = self.history[self._recall]
        self.query_one("#pub-topic", Input).value = draft.topic
        self.query_one("#pub-payload", TextArea).text = draft.payload.decode(errors="replace")
        self.query_one("#pub-qos", Select).value = draft.qos
        self.query_one("#pub-retain", Switch).value = draft.retain
