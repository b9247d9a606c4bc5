"""ChatInput: the chat's line input, which hands over each line the moment Enter is pressed.

Textual's ``Input`` posts ``Submitted`` on Enter and leaves its value for the handler to clear; when a terminal
delivers a fast typist's or a paste's keys in one read (``burst one⏎burst two⏎``), the keys after the first Enter
are typed into the input *before* the handler runs, so the handler saw ``burst oneburst two``. Here the line is
taken and the input cleared in the Enter key's own handler, before any later key is processed.

| Key | Action |
| --- | --- |
| Enter | send the line (the screen receives it as ``ChatInput.LineEntered``) |

A paste is typed as it is: each line of it is entered, the last one (if the paste did not end with a line break)
stays in the input.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
from textual.message import Message
from textual.widgets import Input


class ChatInput(Input):
    """An ``Input`` whose Enter posts the line as it is at that key and empties the input at once."""

    @dataclass
    class LineEntered(Message):
        """A line was entered (Enter pressed); ``line`` is exactly what the input held then."""

        input: ChatInput
        line: str

        @property
        def control(self) -> ChatInput:
            return self.input

    async def _on_key(self, event: events.Key) -> None:
        # Enter is handled here, in the order the keys arrived: as a binding it would run only after the key had
        # bubbled up to the app, by which time the keys behind it in the same read are in the input already.
        # Textual then calls Input's own _on_key (handlers run along the class hierarchy) unless prevented.
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self._enter()

    def _on_paste(self, event: events.Paste) -> None:
        """A paste is typed: each line break is an Enter (``Input`` would keep the first line only)."""
        event.stop()
        event.prevent_default()  # Input's own _on_paste would insert the first line again
        lines = event.text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        for number, line in enumerate(lines):
            if number:
                self._enter()
            if line:
                self.insert_text_at_cursor(line)

    async def action_submit(self) -> None:
        self._enter()

    def _enter(self) -> None:
        line = self.value
        self.value = ""
        self.post_message(self.LineEntered(self, line))
