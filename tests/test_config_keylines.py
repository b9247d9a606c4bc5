"""The key-line scanner shared by every TOML configuration file: the line of each key, table and array item."""

from __future__ import annotations

import tomllib

from mqttchat.config.keylines import key_lines


def test_lines_of_listener_tables_and_their_keys() -> None:
    text = (
        "allow_anonymous = true\n"  # 1
        "[[listener]]\n"  # 2
        "port = 1\n"  # 3
        "\n"  # 4
        "  [[ listener ]]  # indented, spaced, commented\n"  # 5
        "  host = '::'\n"  # 6
        "  port = 2\n"  # 7
        "[[listener]]\n"  # 8
        "port = 3\n"  # 9
    )
    lines = key_lines(text)
    assert lines[("allow_anonymous",)] == 1
    assert lines[("listener",)] == 2
    assert lines[("listener", 0)] == 2
    assert lines[("listener", 0, "port")] == 3
    assert lines[("listener", 1)] == 5
    assert lines[("listener", 1, "host")] == 6
    assert lines[("listener", 1, "port")] == 7
    assert lines[("listener", 2, "port")] == 9


def test_lines_are_not_fooled_by_strings_arrays_and_comments() -> None:
    text = (
        'a = """\n'  # 1
        "[[listener]]\n"  # 2
        "port = 1\n"  # 3
        '"""\n'  # 4
        "b = '''\n"  # 5
        "c = 2 '' ''' # x\n"  # 6
        "arr = [\n"  # 7
        '  "[[listener]]", # port = 9\n'  # 8
        "  { port = 5 },\n"  # 9
        "]\n"  # 10
        's = "a \\" # [[listener]] port = 4"\n'  # 11
        'm = """a\\"""b"""""\n'  # 12
        "[[listener]]\n"  # 13
        "port = 1\n"  # 14
        "when = 1979-05-27 07:32:00Z  # a date and time with a space\n"  # 15
        "n = -1_000\n"  # 16
    )
    assert tomllib.loads(text)["m"] == 'a"""b""'
    lines = key_lines(text)
    assert lines[("a",)] == 1
    assert ("c",) not in lines
    assert lines[("b",)] == 5
    assert lines[("arr",)] == 7
    assert lines[("arr", 1, "port")] == 9
    assert lines[("s",)] == 11
    assert lines[("m",)] == 12
    assert lines[("listener", 0)] == 13
    assert lines[("listener", 0, "port")] == 14
    assert ("listener", 1) not in lines
    assert lines[("listener", 0, "when")] == 15
    assert lines[("listener", 0, "n")] == 16


def test_lines_of_dotted_and_quoted_keys() -> None:
    text = (
        "a.b = 1\n"  # 1
        '"quoted key" = 2\n'  # 2
        "x . 'y z' . \"\\u0077\" = 3\n"  # 3
        '[t."u.v"]\n'  # 4
        "w = 4\n"  # 5
        "inline = { p = 1, q.r = 2 }\n"  # 6
    )
    assert tomllib.loads(text)["x"] == {"y z": {"w": 3}}
    lines = key_lines(text)
    assert lines[("a",)] == 1
    assert lines[("a", "b")] == 1
    assert lines[("quoted key",)] == 2
    assert lines[("x", "y z", "w")] == 3
    assert lines[("t",)] == 4
    assert lines[("t", "u.v")] == 4
    assert lines[("t", "u.v", "w")] == 5
    assert lines[("t", "u.v", "inline", "q", "r")] == 6


def test_lines_of_nested_arrays_of_tables() -> None:
    text = "[[a]]\n[[a.b]]\nx = 1\n[[a.b]]\nx = 2\n[[a]]\n[[a.b]]\nx = 3\n"
    lines = key_lines(text)
    assert lines[("a", 0, "b", 0, "x")] == 3
    assert lines[("a", 0, "b", 1, "x")] == 5
    assert lines[("a", 1, "b", 0, "x")] == 8


def test_a_document_the_scanner_cannot_follow_keeps_earlier_lines() -> None:
    # Not TOML that tomllib would accept; the scanner stops and keeps what it found.
    assert key_lines("a = 1\nb = @@@\n= 3\n") == {("a",): 1, ("b",): 2}
    assert key_lines('a = 1\nb = "unterminated\n') == {("a",): 1, ("b",): 2}
