"""Inline chat formatting: bold, italic, code, links and mentions, and what stays as typed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttchat.chat.markup import inline, mentions


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("plain", [("plain", "")]),
        ("a **bold** b", [("a ", ""), ("bold", "bold"), (" b", "")]),
        ("*it* and _it_", [("it", "italic"), (" and ", ""), ("it", "italic")]),
        ("run `mosquitto_sub -t '#'` now", [("run ", ""), ("mosquitto_sub -t '#'", "code"), (" now", "")]),
        ("`**not bold**`", [("**not bold**", "code")]),
        ("see https://mqtt.org/faq.", [("see ", ""), ("https://mqtt.org/faq", "link"), (".", "")]),
        ("(https://en.wikipedia.org/wiki/MQTT_(protocol))", [("(", ""),
         ("https://en.wikipedia.org/wiki/MQTT_(protocol)", "link"), (")", "")]),
        ("mqtts://broker:8883/x", [("mqtts://broker:8883/x", "link")]),
        # What does not pair up, or is arithmetic or a name with underscores, stays as typed.
        ("2*3*4 and a * b * c", [("2*3*4 and a * b * c", "")]),
        ("snake_case_name", [("snake_case_name", "")]),
        ("**unclosed", [("**unclosed", "")]),
    ],
)  # fmt: skip
def test_inline_pieces(text: str, pieces: list[tuple[str, str]]) -> None:
    assert inline(text) == pieces


def test_mentions_are_whole_words_in_any_case() -> None:
    assert inline("hey @Alice, and alice!", ["alice"]) == [
        ("hey ", ""), ("@Alice", "mention"), (", and ", ""), ("alice", "mention"), ("!", "")
    ]  # fmt: skip
    assert mentions("ping alice", ["alice"]) and mentions("@ALICE?", ["alice"])
    assert not mentions("malice and alices", ["alice"]) and not mentions("anything", [])
    assert mentions("a.b+c", ["a.b+c"])  # names are matched literally, not as patterns


@given(st.text(max_size=200))
def test_formatting_never_loses_or_invents_text(text: str) -> None:
    """Only the markers are removed: the pieces are the text minus the markers, in order."""
    joined = "".join(piece for piece, _ in inline(text, ["bob"]))
    markers = len(text) - len(joined)
    assert markers >= 0 and all(c in "*_`" for c in _removed(text, joined))
    assert joined == "".join(piece for piece, _ in inline(text))


def _removed(text: str, joined: str) -> str:
    """The characters of ``text`` not in ``joined`` (joined is a subsequence of text)."""
    out, j = [], 0
    for c in text:
        if j < len(joined) and joined[j] == c:
            j += 1
        else:
            out.append(c)
    assert j == len(joined)
    return "".join(out)
