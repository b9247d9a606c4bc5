"""PublishPane: topic, payload, QoS, retain and MQTT 5 properties; posts PublishRequested, shows the outcome.

Saved templates (the whole form under a name) live in ``templates.toml`` (see :mod:`mqttchat.config`).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Input, Label, Select, Switch, TextArea

from mqttchat.config import (
    ConfigError,
    PublishTemplate,
    delete_template,
    load_templates,
    save_template,
    template_name_problem,
)
from mqttchat.config import templates_path as default_templates_path
from mqttchat.explorer.decoders.encoders import ENCODINGS, encode_payload_text
from mqttchat.protocol import Properties, topic_name_problem
from mqttchat.ui.safe import network_text
from mqttchat.ui.screens.dialogs import ConfirmDialog, NameDialog
from mqttchat.untrusted import printable

if TYPE_CHECKING:
    from mqttchat.client import PublishResult

#: Below this many columns the form puts each label above its field.
NARROW = 60

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
    #: What was typed, and how it became the payload (one of ``ENCODINGS``): a recall shows the text again.
    text: str | None = None
    encoding: str = "text"


#: Content types set for an encoded payload when the form names none.
ENCODING_CONTENT_TYPES = {"cbor": "application/cbor", "msgpack": "application/msgpack"}


class PublishPane(VerticalScroll, can_focus=False):
    """The publish form. Ctrl+S or the button validates and posts :class:`PublishPane.PublishRequested`.

    | Key | Action |
    | --- | --- |
    | ctrl+s | publish |
    | ctrl+up / ctrl+down | recall earlier publishes |
    | tab / shift+tab | next / previous field, also from the payload (which takes no tab characters: indent
      with spaces) |

    The pane itself is not a focus stop: a focused field scrolls into view.

    Under the form, "Template" lists the saved templates (choosing one fills the form), "Save as template" saves
    the form under a name (replacing a template of that name) and "Delete template" removes the chosen one. They
    are kept in ``templates_path`` (``templates.toml`` in the config directory by default); a file that cannot be
    read or written is reported in a notification.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "publish", "Publish", priority=True),
        Binding("ctrl+up", "recall(-1)", "Previous", show=False),
        Binding("ctrl+down", "recall(1)", "Next", show=False),
    ]

    DEFAULT_CSS: ClassVar[str] = """
    PublishPane { padding: 0 1; }
    PublishPane .row { height: auto; margin-bottom: 1; }
    PublishPane .row > Label { width: 16; padding: 1 1 1 0; }
    PublishPane.-narrow .row { layout: vertical; margin-bottom: 0; }
    PublishPane.-narrow .row > Label, PublishPane.-narrow .row > Label.inline { width: 1fr; padding: 0; }
    PublishPane.-narrow .row > Input, PublishPane.-narrow .row > Select { width: 1fr; }
    PublishPane.-narrow #pub-outcome { padding: 0; }
    PublishPane .row > Label.inline { width: auto; padding: 1 1 1 2; }
    PublishPane .row > Input { width: 1fr; }
    PublishPane #pub-payload { height: 8; }
    PublishPane #pub-qos { width: 16; }
    PublishPane #pub-encoding { width: 1fr; }
    PublishPane .field-error { color: $error; height: auto; width: 1fr; }
    PublishPane #pub-outcome { height: auto; padding: 1 2; width: 1fr; }
    PublishPane .hint, PublishPane .section { color: $text-muted; margin-bottom: 1; }
    PublishPane .section { text-style: bold; }
    PublishPane #pub-template { width: 1fr; }
    PublishPane #pub-template-delete { margin-left: 2; }
    """

    @dataclass
    class PublishRequested(Message):
        """The user asked to publish ``draft`` (already validated)."""

        pane: PublishPane
        draft: PublishDraft

        @property
        def control(self) -> PublishPane:
            return self.pane

    def __init__(self, *, templates_path: Path | None = None, id: str | None = None) -> None:
        """``templates_path``: the saved templates file; ``templates.toml`` in the config directory when None."""
        super().__init__(id=id)
        self.history: list[PublishDraft] = []
        self._recall = 0
        self.counter = 0
        self.templates_path = templates_path if templates_path is not None else default_templates_path()
        #: The saved templates as last read, by name in file order.
        self.templates: dict[str, PublishTemplate] = {}

    def compose(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Label("Topic")
            yield Input(placeholder="home/kitchen/light", id="pub-topic")
        yield Label("", id="pub-topic-error", classes="field-error")
        yield TextArea("", id="pub-payload", language=None, soft_wrap=True, tab_behavior="focus")
        yield Label("", id="pub-payload-error", classes="field-error")
        with Horizontal(classes="row"):
            yield Label("Send as")
            yield Select([(f"{name}: {what}", name) for name, what in ENCODINGS.items()], value="text",
                         allow_blank=False, id="pub-encoding")  # fmt: skip
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
        yield Label("Saved templates", classes="section")
        with Horizontal(classes="row"):
            yield Label("Template")
            yield Select[str]([], prompt="choose a saved template", id="pub-template")
        with Horizontal(classes="row"):
            yield Label("")
            yield Button("Save as template", id="pub-template-save")
            yield Button("Delete template", id="pub-template-delete", variant="error")

    def on_mount(self) -> None:
        self.reload_templates()

    def on_resize(self) -> None:
        # Too narrow for a label beside each field (an 80-column terminal): labels go above their fields.
        self.set_class(self.size.width < NARROW, "-narrow")

    def set_topic(self, topic: str) -> None:
        """Prefill the topic (from the tree selection) unless the user is typing one.

        A topic with control or invisible characters is not copied: an input field shows its value as it is, and
        the topic came from the network.
        """
        field = self.query_one("#pub-topic", Input)
        if not field.has_focus and printable(topic) == topic:
            field.value = topic

    @on(TextArea.Changed, "#pub-payload")
    def _payload_changed(self, event: TextArea.Changed) -> None:
        text = event.text_area.text.strip()
        area = event.text_area
        looks_json = text[:1] in ("{", "[")
        language = "json" if looks_json else None
        if area.language != language:
            # Setting the language rebuilds the document and puts the cursor at the start, so it is set only
            # when it changes, and the cursor goes back where the user left it (setting it on every change
            # made each key land at the start: typing "world" gave "dlrow").
            selection = area.selection
            area.language = language
            area.selection = selection
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
        encoding = self.query_one("#pub-encoding", Select).value
        encoding = encoding if isinstance(encoding, str) else "text"
        payload = payload_text.encode()
        if not payload_error and encoding != "text":
            try:
                payload = encode_payload_text(payload_text, encoding)
            except ValueError as exc:
                payload_error = str(exc)
        self.query_one("#pub-payload-error", Label).update(payload_error)
        props_error = ""
        properties = Properties()
        try:
            expiry_text = self.query_one("#pub-expiry", Input).value.strip()
            response_topic = self.query_one("#pub-response-topic", Input).value.strip() or None
            if response_topic and topic_name_problem(response_topic):
                raise ValueError(f"response topic: {topic_name_problem(response_topic)}")
            properties = Properties(
                content_type=self.query_one("#pub-content-type", Input).value.strip()
                or ENCODING_CONTENT_TYPES.get(encoding),
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
        return PublishDraft(topic, payload, qos if isinstance(qos, int) else 0, bool(retain), properties, payload_text,
                            encoding)  # fmt: skip

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

    def show_result(self, draft: PublishDraft, result: PublishResult, took_ms: float) -> None:
        """What the broker answered for ``draft``, published ``took_ms`` milliseconds before."""
        if result.ok and result.downgraded:
            self.show_outcome(f"acknowledged with PUBACK: delivered at QoS 1, not exactly once, in {took_ms:.1f} ms")
        elif result.ok:
            what = {0: "sent (QoS 0: no acknowledgement)", 1: "acknowledged (PUBACK)", 2: "completed (PUBCOMP)"}
            self.show_outcome(f"{what[draft.qos]}: {result.reason_code.title} in {took_ms:.1f} ms")
        else:
            detail = f": {result.reason_string}" if result.reason_string else ""
            self.show_outcome(f"refused by the broker: {result.reason_code.title}{detail}", error=True)

    def show_outcome(self, text: str, error: bool = False) -> None:
        """What became of a publish; ``text`` may quote the broker's reason string: shown as network text."""
        label = self.query_one("#pub-outcome", Label)
        label.update(network_text(text))
        label.set_class(error, "field-error")

    def action_recall(self, step: int) -> None:
        if not self.history:
            return
        self._recall = max(0, min(len(self.history) - 1, self._recall + step))
        draft = self.history[self._recall]
        self.query_one("#pub-topic", Input).value = draft.topic
        text = draft.text if draft.text is not None else draft.payload.decode(errors="replace")
        self.query_one("#pub-payload", TextArea).text = text
        self.query_one("#pub-encoding", Select).value = draft.encoding
        self.query_one("#pub-qos", Select).value = draft.qos
        self.query_one("#pub-retain", Switch).value = draft.retain

    # ------------------------------------------------------------------------------------------ templates

    def reload_templates(self, select: str | None = None) -> None:
        """Read the templates file again and list its templates; ``select`` one of them (without filling the form).

        A file that cannot be read is reported in a notification, and no template is listed.
        """
        try:
            self.templates = load_templates(self.templates_path)
        except ConfigError as exc:
            self.templates = {}
            self.notify(str(exc), title="Cannot read the publish templates", severity="error", timeout=15)
        field = self.query_one("#pub-template", Select)
        with self.prevent(Select.Changed):
            field.set_options((name, name) for name in self.templates)
            if select is not None and select in self.templates:
                field.value = select

    def selected_template(self) -> str | None:
        """The name chosen in "Template", or None."""
        value = self.query_one("#pub-template", Select).value
        return value if isinstance(value, str) else None

    def template_from_form(self, name: str) -> PublishTemplate:
        """The form as it is, as a template named ``name`` (the payload keeps its placeholders).

        Raises:
            ValueError: the user properties or the expiry cannot be read.
        """
        expiry_text = self.query_one("#pub-expiry", Input).value.strip()
        try:
            expiry = int(expiry_text) if expiry_text else None
        except ValueError:
            raise ValueError(f"expiry: {expiry_text!r} is not a whole number of seconds") from None
        qos = self.query_one("#pub-qos", Select).value
        return PublishTemplate(
            name=name,
            topic=self.query_one("#pub-topic", Input).value.strip(),
            payload=self.query_one("#pub-payload", TextArea).text,
            qos=qos if isinstance(qos, int) else 0,
            retain=bool(self.query_one("#pub-retain", Switch).value),
            content_type=self.query_one("#pub-content-type", Input).value.strip(),
            user_properties=tuple(parse_user_properties(self.query_one("#pub-user-props", Input).value)),
            message_expiry_interval=expiry,
            response_topic=self.query_one("#pub-response-topic", Input).value.strip(),
            correlation_data=self.query_one("#pub-correlation", Input).value,
        )

    def fill_from_template(self, template: PublishTemplate) -> None:
        """Put a template into the form: every field it has, the others emptied."""
        self.query_one("#pub-topic", Input).value = template.topic
        self.query_one("#pub-payload", TextArea).text = template.payload
        self.query_one("#pub-qos", Select).value = template.qos
        self.query_one("#pub-retain", Switch).value = template.retain
        self.query_one("#pub-content-type", Input).value = template.content_type
        self.query_one("#pub-user-props", Input).value = "; ".join(
            f"{name}={value}" for name, value in template.user_properties
        )
        expiry = template.message_expiry_interval
        self.query_one("#pub-expiry", Input).value = "" if expiry is None else str(expiry)
        self.query_one("#pub-response-topic", Input).value = template.response_topic
        self.query_one("#pub-correlation", Input).value = template.correlation_data
        self.query_one("#pub-props-error", Label).update("")

    @on(Select.Changed, "#pub-template")
    def _template_chosen(self, event: Select.Changed) -> None:
        template = self.templates.get(event.value) if isinstance(event.value, str) else None
        if template is not None:
            self.fill_from_template(template)
            self.show_outcome(f"filled from template {template.name!r}")

    @on(Button.Pressed, "#pub-template-save")
    def _ask_template_name(self) -> None:
        # A form that cannot be saved is reported before asking for a name.
        try:
            problems = self.template_from_form("-").validate()
        except ValueError as exc:
            problems = {"properties": str(exc)}
        if problems:
            detail = "; ".join(f"{key}: {problem}" for key, problem in problems.items())
            self.notify(detail, title="Cannot save the template", severity="error")
            return
        self.app.push_screen(
            NameDialog(
                "Save the form as a template (a template of the same name is replaced)",
                self.selected_template() or "",
                placeholder="template name",
                check=template_name_problem,
            ),
            self.save_template_as,
        )

    def save_template_as(self, name: str | None) -> None:
        """Save the form as the template ``name`` (None: do nothing), replacing one of that name."""
        if name is None:
            return
        try:
            template = self.template_from_form(name)
            save_template(template, self.templates_path)
        except (ValueError, ConfigError, OSError) as exc:
            self.notify(_reason(exc), title="Cannot save the template", severity="error", timeout=15)
            return
        replaced = name in self.templates
        self.reload_templates(select=name)
        self.notify(f"{'replaced' if replaced else 'saved'} template {name!r} in {self.templates_path}")

    @on(Button.Pressed, "#pub-template-delete")
    def _ask_delete_template(self) -> None:
        name = self.selected_template()
        if name is None:
            self.notify("choose a template to delete first", severity="warning")
            return
        self.app.push_screen(
            ConfirmDialog(f"Delete the template {name!r}?", f"It is removed from {self.templates_path}.", "Delete"),
            lambda answer: self.remove_template(name) if answer == "yes" else None,
        )

    def remove_template(self, name: str) -> None:
        """Remove the saved template ``name`` from the file and the list."""
        try:
            found = delete_template(name, self.templates_path)
        except (ConfigError, OSError) as exc:
            self.notify(_reason(exc), title="Cannot delete the template", severity="error", timeout=15)
            return
        self.reload_templates()
        self.notify(f"deleted template {name!r}" if found else f"there was no template {name!r} any more")


def _reason(exc: Exception) -> str:
    """An error as one line for a notification (an OSError with its file name, a ConfigError as it reads)."""
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return str(exc)
