"""`mqttchat sub -F`: templates, replaced in one pass, and the JSON line."""

from __future__ import annotations

import json

import pytest

from mqttchat.client import Message
from mqttchat.commands.sub import json_line, render_template


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("%t %p", b"a/b 50%pct 100%%"),
        ("%t|%q|%r|%p", b"a/b|1|1|50%pct 100%%"),
        ("100%% of %t", b"100% of a/b"),
        ("%%p is literal", b"%p is literal"),  # %% first: no payload here
        ("%x stays", b"%x stays"),  # not a token
        ("%", b"%"),
        ("", b""),
    ],
)
def test_template_tokens_are_replaced_once(template: str, expected: bytes) -> None:
    message = Message("a/b", b"50%pct 100%%", qos=1, retain=True, received_at=1.5)
    assert render_template(template, message) == expected


def test_template_keeps_binary_payloads_and_inserts_json_untouched() -> None:
    message = Message("t/%q%p", bytes([0, 255, 37, 112]), qos=0, received_at=2.0)
    out = render_template("[%j] %p", message)
    line, payload = out[1:].split(b"] ", 1)
    assert payload == bytes([0, 255, 37, 112])
    assert json.loads(line) == json.loads(json_line(message))
    assert json.loads(line)["topic"] == "t/%q%p"  # a topic that looks like tokens is not expanded
