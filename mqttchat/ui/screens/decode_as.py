"""The "decode as…" dialog: choose how the payloads of a topic (or of a filter) are decoded, with a preview.

| Key | Action |
| --- | --- |
| ↑ ↓ | choose a decoder (the preview follows) |
| Enter | use it (a decoder that needs options moves to them first) |
| Tab | the filter, the chain, the options, the buttons |
| Escape | cancel |

The decoders that decode this payload convincingly come first, each with what it makes of it; then the others;
last, "automatic", which forgets the rule for the filter. The dialog dismisses with a :class:`DecodeChoice`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from mqttchat.explorer.decoders import AUTO, DECODERS, DecodeResult, DecoderRule, parse_chain
from mqttchat.ui.safe import network_text

if TYPE_CHECKING:
    from mqttchat.explorer.decoders import PayloadDecoders
    from mqttchat.explorer.tree import Entry

__all__ = ["DecodeAsDialog", "DecodeChoice"]

#: Option inputs: rule key → (input id, placeholder).
OPTION_INPUTS: dict[str, tuple[str, str]] = {
    "struct": ("decode-struct", "struct format, e.g. <hhf"),
    "fields": ("decode-fields", "field names, e.g. temp humidity volts"),
    "command": ("decode-command", "command and arguments, e.g. my-decoder --json"),
    "descriptor_set": ("decode-descriptor", "descriptor set (protoc --descriptor_set_out), optional"),
    "message": ("decode-message", "message type in it, e.g. acme.Reading"),
}
#: Characters of a candidate's preview in the list.
PREVIEW_WIDTH = 40


@dataclass(frozen=True, slots=True)
class DecodeChoice:
    """What the user chose: a rule for ``topic_filter``, or None to decode it automatically again."""

    topic_filter: str
    rule: DecoderRule | None


class DecodeAsDialog(ModalScreen[DecodeChoice | None]):
    """See the module docstring."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS: ClassVar[str] = """
    DecodeAsDialog { align: center middle; }
    DecodeAsDialog > Vertical { width: 90; max-width: 100%; height: auto; max-height: 100%; border: thick $accent;
                                background: $surface; padding: 0 1; }
    DecodeAsDialog .title { text-style: bold; }
    DecodeAsDialog OptionList { height: auto; max-height: 9; }
    DecodeAsDialog .row { height: auto; }
    DecodeAsDialog .row Label { width: 12; padding: 1 1 0 0; }
    DecodeAsDialog .row Input { width: 1fr; }
    DecodeAsDialog .option { display: none; }
    DecodeAsDialog .option.shown { display: block; }
    DecodeAsDialog #decode-preview { height: auto; max-height: 3; color: $text-muted; }
    DecodeAsDialog #decode-error { color: $error; height: auto; }
    DecodeAsDialog .buttons { height: auto; align-horizontal: right; }
    DecodeAsDialog .buttons Button { margin-left: 1; }
    """

    def __init__(self, topic: str, entry: Entry, decoders: PayloadDecoders) -> None:
        super().__init__()
        self.topic = topic
        self.entry = entry
        self.decoders = decoders
        self.current = decoders.rule_for(topic)
        #: The chain in use now: the rule's, or the one automatic decoding took (``gzip+json``).
        self.in_use = self.current.decoder if self.current is not None else AUTO
        if self.current is None and not entry.truncated:
            chain = decoders.decode(topic, entry.payload, content_type=entry.properties.content_type,
                                    observation=entry.observation).decoder  # fmt: skip
            if all(name in DECODERS for name in parse_chain(chain)):
                self.in_use = chain
        self.candidates: list[tuple[str, DecodeResult]] = []
        if not entry.truncated:
            self.candidates = decoders.candidates(topic, entry.payload, observation=entry.observation)

    def compose(self) -> ComposeResult:
        current = self.current
        with Vertical():
            yield Label(Text("Decode as… ", style="bold") + network_text(self.topic), classes="title")
            with Horizontal(classes="row"):
                yield Label("for topics")
                yield Input(current.filter if current else self.topic, id="decode-filter",
                            placeholder="a topic or a filter such as plant/+/frames")  # fmt: skip
            yield OptionList(*self._options(), id="decode-list")
            with Horizontal(classes="row"):
                yield Label("decoder")
                yield Input(self.in_use, id="decode-chain",
                            placeholder="a decoder or a chain such as gzip+json")  # fmt: skip
            for key, (input_id, placeholder) in OPTION_INPUTS.items():
                with Horizontal(classes="row option", id=f"{input_id}-row"):
                    yield Label(key.replace("_", " "))
                    yield Input(self._option_value(key), id=input_id, placeholder=placeholder)
            yield Static("", id="decode-preview")
            yield Static("", id="decode-error")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="decode-cancel", compact=True)
                yield Button("Automatic", id="decode-auto", compact=True)
                yield Button("Use", id="decode-use", variant="primary", compact=True)

    def _option_value(self, key: str) -> str:
        rule = self.current
        if rule is None:
            return ""
        value = getattr(rule, key)
        if key == "command":
            return shlex.join(value)
        if key == "fields":
            return " ".join(value)
        return str(value or "")

    def _options(self) -> list[Option]:
        options = []
        shown = set()
        for name, result in self.candidates:
            prompt = Text(f"{name:<10}", style="bold") + network_text(result.summary(PREVIEW_WIDTH), style="dim")
            options.append(Option(prompt, id=name))
            shown.add(name)
        for name, info in DECODERS.items():
            if name in shown:
                continue
            description = "automatic: forget the rule for this filter" if name == AUTO else info.description
            options.append(Option(Text(f"{name:<10}") + Text(description, style="dim"), id=name))
        return options

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        wanted = parse_chain(self.in_use)[-1]
        index = next((i for i in range(options.option_count) if options.get_option_at_index(i).id == wanted), 0)
        options.highlighted = index
        options.focus()
        self._refresh()

    # ------------------------------------------------------------------------------------------ the form

    def _fill_chain(self, name: str) -> None:
        chain = self.query_one("#decode-chain", Input)
        with self.prevent(Input.Changed):
            chain.value = name
        self._refresh()

    @on(OptionList.OptionHighlighted, "#decode-list")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_index != event.option_list.highlighted:
            return  # a highlight from before the list was moved to the decoder in use
        if event.option.id is not None:
            self._fill_chain(event.option.id)

    @on(OptionList.OptionSelected, "#decode-list")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        name = event.option.id or ""
        self._fill_chain(name)
        if name == AUTO:
            self._forget()
            return
        missing = [key for key in DECODERS[name].required if not self._option_text(key)]
        if missing:
            self.query_one(f"#{OPTION_INPUTS[missing[0]][0]}", Input).focus()
            return
        self._use()

    @on(Input.Changed)
    def _changed(self) -> None:
        self._refresh()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self._use()

    def _option_text(self, key: str) -> str:
        return self.query_one(f"#{OPTION_INPUTS[key][0]}", Input).value.strip()

    def rule(self) -> DecoderRule:
        """The rule the form describes (not checked).

        Raises:
            ValueError: the command cannot be split into words (an open quote).
        """
        chain = self.query_one("#decode-chain", Input).value.strip()
        names = set(parse_chain(chain))
        options: dict[str, object] = {}
        if "struct" in names:
            options["struct"] = self._option_text("struct") or None
            options["fields"] = tuple(self._option_text("fields").replace(",", " ").split())
        if "command" in names:
            try:
                options["command"] = tuple(shlex.split(self._option_text("command")))
            except ValueError as exc:
                raise ValueError(f"command: {exc}") from None
        if "protobuf" in names:
            options["descriptor_set"] = self._option_text("descriptor_set") or None
            options["message"] = self._option_text("message") or None
        topic_filter = self.query_one("#decode-filter", Input).value.strip()
        return DecoderRule(topic_filter, chain, **options)  # type: ignore[arg-type]

    def _refresh(self) -> None:
        chain = set(parse_chain(self.query_one("#decode-chain", Input).value))
        for key, (input_id, _) in OPTION_INPUTS.items():
            used = any(key in DECODERS[name].options for name in chain if name in DECODERS)
            self.query_one(f"#{input_id}-row").set_class(used, "shown")
        preview = self.query_one("#decode-preview", Static)
        error = self.query_one("#decode-error", Static)
        error.update("")
        if AUTO in chain:
            preview.update("decode automatically: by topic, content type and magic bytes")
            return
        try:
            rule = self.rule()
        except ValueError as exc:
            preview.update("")
            error.update(network_text(str(exc)))
            return
        problems = rule.problems()
        if problems:
            key, problem = problems[0]
            preview.update("")
            error.update(network_text(f"{key}: {problem}"))
            return
        if self.entry.truncated:
            preview.update("only the start of this payload was kept: no preview")
            return
        entry = self.entry
        result = self.decoders.decode_as(rule, self.topic, entry.payload,
                                         content_type=entry.properties.content_type,
                                         observation=entry.observation)  # fmt: skip
        preview.update(network_text("preview: " + result.summary(200), style="red" if result.error else ""))

    # ------------------------------------------------------------------------------------------ answers

    @on(Button.Pressed, "#decode-use")
    def _use(self) -> None:
        error = self.query_one("#decode-error", Static)
        if AUTO in parse_chain(self.query_one("#decode-chain", Input).value):
            self._forget()
            return
        try:
            rule = self.rule()
        except ValueError as exc:
            error.update(network_text(str(exc)))
            return
        problems = rule.problems()
        if problems:
            key, problem = problems[0]
            error.update(network_text(f"{key}: {problem}"))
            return
        self.dismiss(DecodeChoice(rule.filter, rule))

    @on(Button.Pressed, "#decode-auto")
    def _forget(self) -> None:
        topic_filter = self.query_one("#decode-filter", Input).value.strip()
        if not topic_filter:
            self.query_one("#decode-error", Static).update("filter: must not be empty")
            return
        self.dismiss(DecodeChoice(topic_filter, None))

    @on(Button.Pressed, "#decode-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
