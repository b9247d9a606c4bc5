"""The condition language of history search: parsing, meaning, and the errors it reports."""

from __future__ import annotations

import pytest

from mqttchat.explorer.conditions import MAX_DEPTH, ConditionError, parse_condition

READING = b'{"temp": 31.5, "state": "on", "battery": {"level": 18}, "tags": ["a", "b"], "ok": true, "n": null}'


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("temp > 30", True),
        ("temp > 31.5", False),
        ("temp >= 31.5", True),
        ("temp < 40 and state == 'on'", True),
        ('state == "off" or battery.level < 20', True),
        ("not (battery.level < 20)", False),
        ("tags[1] == 'b'", True),
        ("tags[-1] == 'b'", True),
        ("tags[5] == 'b'", False),
        ("ok", True),
        ("ok == true", True),
        ("n == null", True),
        ("missing", False),
        ("missing != 3", False),  # a missing field meets no comparison
        ("missing == null", False),
        ("state ~ '^o'", True),
        ("temp ~ '^31\\.5$'", True),
        ("`battery`.level == 18", True),
        ("STATE == 'on'", False),  # field names are case sensitive
        ("temp > 30 AND NOT ok", False),
        ("state > 'a'", True),  # strings order as strings
        ("state > 3", False),  # a word and a number have no order
        ("payload.temp == 31.5", True),
    ],
)
def test_conditions_on_a_json_object(condition: str, expected: bool) -> None:
    assert parse_condition(condition)(READING) is expected


def test_payload_names_the_whole_value_and_numeric_text_compares_as_a_number() -> None:
    assert parse_condition("payload > 30")(b"31") is True
    assert parse_condition("payload > 30")(b" 21.5 ") is False
    assert parse_condition("payload == 'hello'")(b"hello") is True
    assert parse_condition("payload ~ 'ell'")(b"hello") is True
    assert parse_condition("payload[0] == 1")(b"[1, 2]") is True
    assert parse_condition("temp > 30")(b"not json {") is False
    assert parse_condition("value > 30")(b'{"value": "35"}') is True  # a number sent as a string
    assert parse_condition("payload > 1")(b"\xff\xfe") is False  # binary is text with replacements


def test_booleans_are_not_numbers() -> None:
    assert parse_condition("ok == 1")(b'{"ok": true}') is False
    assert parse_condition("ok > 0")(b'{"ok": true}') is False


@pytest.mark.parametrize(
    ("condition", "column", "words"),
    [
        ("temp >", 7, "expected a field"),
        ("temp = 3", 6, "'=='"),
        ("(temp > 3", 10, "expected ')'"),
        ("temp > 3 junk", 10, "unexpected 'junk'"),
        ("a ~ b", 5, "regular expression in quotes"),
        ("a ~ '('", 5, "bad regular expression"),
        ("a[1.5] == 2", 3, "integer"),
        ("a # 3", 3, "unexpected '#'"),
        ("  ", 1, "empty"),
        ("'unterminated", 1, "unexpected"),
    ],
)
def test_errors_name_the_column(condition: str, column: int, words: str) -> None:
    with pytest.raises(ConditionError) as caught:
        parse_condition(condition)
    assert caught.value.column == column
    assert words in str(caught.value)


def test_nesting_and_length_are_bounded() -> None:
    with pytest.raises(ConditionError, match="nested"):
        parse_condition("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(ConditionError, match="nested"):
        parse_condition("not " * (MAX_DEPTH + 1) + "a")
    assert parse_condition("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH)(b'{"a": 1}') is True
    with pytest.raises(ConditionError, match="longer"):
        parse_condition("a == 1 or " * 300 + "a")


def test_no_python_is_evaluated() -> None:
    # Names that would mean something to eval are just missing fields here.
    assert parse_condition("__import__ == 1")(b'{"x": 1}') is False
    with pytest.raises(ConditionError):
        parse_condition("__import__('os').system('true')")
