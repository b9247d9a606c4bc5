"""`mqttchat sub -F`: the template language (checked against mosquitto_sub in test_sub_format_mosquitto.py), its
errors, and what reaches a terminal."""

from __future__ import annotations

import json

import pytest

from mqttchat.client import Message
from mqttchat.commands.sub import json_line
from mqttchat.commands.sub_format import FormatError, Output, compile_format
from mqttchat.protocol import Properties

HOSTILE_TOPIC = "t/\x1b]0;TITLE\x1b\\\x1b[2J\u202eevil"
HOSTILE_PAYLOAD = b"line1\nline2\t\x1b[2J\x07\x9b\xc2\x9b31m\r"


def render(template: str, message: Message, *, terminal: bool = False) -> bytes:
    return Output(template, terminal=terminal, json_line=json_line).render(message)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("%t %p", b"a/b 50%pct 100%%"),
        ("%t|%q|%r|%p", b"a/b|1|1|50%pct 100%%"),
        ("100%% of %t", b"100% of a/b"),
        ("%%p is literal", b"%p is literal"),  # %% first: no payload here
        ("", b""),
        ("%l %m %-4l| %04l", b"12 9 12  | 0012"),
        ("%5.2t|%-5t|%.1t", b"   a/|a/b  |a"),
        ("\\t\\\\@@", b"\t\\@"),
    ],
)
def test_template_codes_are_replaced_once(template: str, expected: bytes) -> None:
    message = Message("a/b", b"50%pct 100%%", qos=1, retain=True, received_at=1.5, packet_id=9)
    assert render(template, message) == expected


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("%y", "unknown format code %y"),
        ("%-10.5y", "unknown format code %y"),
        ("%", "incomplete % code at the end"),
        ("%-10", "incomplete % code at the end"),
        ("@", "incomplete @ time code"),
        ("\\", "incomplete \\ escape"),
        ("\\z", "unknown escape \\z"),
    ],
)
def test_unknown_and_incomplete_codes_are_refused(template: str, problem: str) -> None:
    with pytest.raises(FormatError, match=problem.replace("\\", "\\\\").replace("%", "%").replace(".", "\\.")):
        compile_format(template)


def test_json_keeps_the_recording_format_and_percent_j_is_mosquitto_subs() -> None:
    message = Message("t/%q%p", bytes([0, 255, 37, 112]), qos=0, received_at=2.0)
    assert render("json", message) == json_line(message).encode()
    record = json.loads(render("%j", Message("a", b"x", qos=1, received_at=2.0, packet_id=3)))
    assert {k: v for k, v in record.items() if k != "tst"} == {
        "topic": "a", "qos": 1, "retain": 0, "payloadlen": 1, "mid": 3, "payload": "x",
    }  # fmt: skip
    # %t is never read again as a code: a topic holding %p stays as it is
    assert render("[%t] %p", message) == b"[t/%q%p] " + bytes([0, 255, 37, 112])


def test_to_a_pipe_everything_is_written_as_received() -> None:
    message = Message(HOSTILE_TOPIC, HOSTILE_PAYLOAD)
    out = Output(None, verbose=True, terminal=False).render(message)
    assert out == HOSTILE_TOPIC.encode() + b" " + HOSTILE_PAYLOAD


@pytest.mark.parametrize("template", [None, "%t %p", "%t %x %C %P %R %D", "%j", "json", "%10.3t|%-20p"])
def test_to_a_terminal_network_text_holds_no_control_character(template: str | None) -> None:
    props = Properties(
        content_type="\x1b[31m", user_property=[("k\x1b", "v\x07")], response_topic="r\x9b", correlation_data=b"\x1b"
    )
    message = Message(HOSTILE_TOPIC, HOSTILE_PAYLOAD, properties=props)
    # (a width cuts bytes, as mosquitto_sub's does, and may cut a character in two: shown as a replacement mark)
    out = Output(template, verbose=True, terminal=True, json_line=json_line).render(message).decode(errors="replace")
    assert not any((ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F for c in out), repr(out)
    assert "\u202e" not in out
    if template in (None, "%t %p"):
        assert "␛]0;TITLE" in out and "line1\nline2\t" in out  # visible, and the payload's lines kept


def test_to_a_terminal_the_templates_own_escapes_still_work() -> None:
    out = render("\\e[31m%t\\e[0m", Message("a\x1b[2J"), terminal=True)
    assert out == b"\x1b[31ma\xe2\x90\x9b[2J\x1b[0m"  # the colour codes stay, the topic's ESC is shown as ␛
