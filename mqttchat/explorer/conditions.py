"""Conditions on a payload's fields (``temp > 30``, ``state == "on" and battery.level < 20``): a small language
parsed here and compiled to closures, never handed to ``eval``.

Grammar (keywords in any case)::

    condition := or
    or        := and ("or" and)*
    and       := not ("and" not)*
    not       := "not" not | compare
    compare   := operand (("==" | "!=" | "<" | "<=" | ">" | ">=" | "~") operand)?
    operand   := path | number | string | "true" | "false" | "null" | "(" condition ")"
    path      := name ("." name | "[" integer "]")*       name: letters, digits, _ $ -; or `any text`

Strings are in ``'`` or ``"``; a backslash escapes the quote and itself and is kept before anything else (a
regular expression reads as written). The payload is read as JSON when it is JSON, as its text otherwise;
``payload`` names that whole value (so ``payload > 30`` works on a bare number), any other path starts inside it
(``temp`` is ``payload.temp``). A path that leads nowhere is *missing*: every comparison with it is false (``!=``
too), and alone it is false. Numbers compare with numbers, and with strings that hold a number (``"21.5" > 20``);
strings compare with strings; other mixes are unequal and unordered. ``~`` matches a regular expression (a string
literal) anywhere in the value's text. An operand alone is true when present and not false, null, 0 or empty.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: The longest condition accepted, in characters, and the deepest nesting of parentheses and ``not``.
MAX_CONDITION = 2000
MAX_DEPTH = 32


class ConditionError(ValueError):
    """A condition that cannot be parsed: the message says what and at which column (from 1)."""

    def __init__(self, problem: str, column: int) -> None:
        super().__init__(f"{problem} (column {column})")
        self.problem = problem
        self.column = column


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


#: What a path that leads nowhere evaluates to.
MISSING: Any = _Missing()

Value = Any
Getter = Callable[[Value], Value]


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # name, number, string, op, lparen, rparen, end
    text: str
    value: object
    column: int


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<number>-?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?))
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<quoted>`[^`]*`)
    | (?P<op>==|!=|<=|>=|<|>|~|=)
    | (?P<name>[A-Za-z_$][A-Za-z0-9_$-]*)
    | (?P<punct>[().\[\]])
    )""",
    re.VERBOSE,
)


def _unquote(text: str) -> str:
    """A quoted string's value: a backslash before the quote or a backslash stands for it; any other backslash is
    kept (so that a regular expression reads as written: ``'^21\\.5$'``)."""
    quote = text[0]
    body = text[1:-1]
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body) and body[index + 1] in (quote, "\\"):
            out.append(body[index + 1])
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            column = position + len(text[position:]) - len(text[position:].lstrip()) + 1
            raise ConditionError(f"unexpected {text[column - 1]!r}", column)
        kind = match.lastgroup
        assert kind is not None
        raw = match.group(kind)
        column = match.start(kind) + 1
        if kind == "number":
            number = float(raw)
            if not math.isfinite(number):
                raise ConditionError(f"number out of range: {raw}", column)
            out.append(_Token("number", raw, number, column))
        elif kind == "string":
            out.append(_Token("string", raw, _unquote(raw), column))
        elif kind == "quoted":
            out.append(_Token("name", raw, raw[1:-1], column))
        elif kind == "op":
            if raw == "=":
                raise ConditionError("'=' compares nothing: write '=='", column)
            out.append(_Token("op", raw, raw, column))
        elif kind == "name":
            lowered = raw.lower()
            if lowered in ("and", "or", "not"):
                out.append(_Token(lowered, raw, lowered, column))
            elif lowered in ("true", "false", "null"):
                out.append(_Token("literal", raw, {"true": True, "false": False, "null": None}[lowered], column))
            else:
                out.append(_Token("name", raw, raw, column))
        else:
            out.append(_Token(raw, raw, raw, column))
        position = match.end()
    out.append(_Token("end", "", None, len(text) + 1))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Evaluation helpers


def _number(value: Value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _equal(left: Value, right: Value) -> bool:
    if left is MISSING or right is MISSING:
        return False
    if isinstance(left, bool) or isinstance(right, bool) or left is None or right is None:
        return left is right or (isinstance(left, bool) and isinstance(right, bool) and left == right)
    if isinstance(left, str) and isinstance(right, str):
        return left == right
    a, b = _number(left), _number(right)
    if a is not None and b is not None and (not isinstance(left, str) or not isinstance(right, str)):
        return a == b
    return bool(left == right) if type(left) is type(right) else False


def _order(left: Value, right: Value) -> tuple[Any, Any] | None:
    """The two values in a comparable form, or None when they have no order."""
    if left is MISSING or right is MISSING:
        return None
    if isinstance(left, str) and isinstance(right, str):
        return left, right
    a, b = _number(left), _number(right)
    if a is None or b is None:
        return None
    return a, b


def _truthy(value: Value) -> bool:
    if value is MISSING or value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return bool(value)
    return bool(value != 0)


def _text(value: Value) -> str | None:
    if value is MISSING or value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _path_getter(steps: tuple[str | int, ...]) -> Getter:
    def get(root: Value) -> Value:
        value = root
        for step in steps:
            if isinstance(step, int):
                if not isinstance(value, list) or not -len(value) <= step < len(value):
                    return MISSING
                value = value[step]
            else:
                if not isinstance(value, dict) or step not in value:
                    return MISSING
                value = value[step]
        return value

    return get


def _either(a: Getter, b: Getter) -> Getter:
    return lambda root: _truthy(a(root)) or _truthy(b(root))


def _both(a: Getter, b: Getter) -> Getter:
    return lambda root: _truthy(a(root)) and _truthy(b(root))


def _constant(value: Value) -> Getter:
    return lambda root: value


_COMPARE: dict[str, Callable[[Value, Value], bool]] = {
    "==": _equal,
    "!=": lambda a, b: a is not MISSING and b is not MISSING and not _equal(a, b),
}


def _ordered(op: str) -> Callable[[Value, Value], bool]:
    def compare(left: Value, right: Value) -> bool:
        pair = _order(left, right)
        if pair is None:
            return False
        a, b = pair
        if op == "<":
            return bool(a < b)
        if op == "<=":
            return bool(a <= b)
        if op == ">":
            return bool(a > b)
        return bool(a >= b)

    return compare


for _op in ("<", "<=", ">", ">="):
    _COMPARE[_op] = _ordered(_op)


# ---------------------------------------------------------------------------------------------------------------
# Parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.index = 0
        self.depth = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, kind: str, what: str) -> _Token:
        token = self.token
        if token.kind != kind:
            found = "the end" if token.kind == "end" else repr(token.text)
            raise ConditionError(f"expected {what}, found {found}", token.column)
        return self.take()

    def nested(self, column: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ConditionError(f"nested more than {MAX_DEPTH} deep", column)

    def condition(self) -> Getter:
        left = self.conjunction()
        while self.token.kind == "or":
            self.take()
            right = self.conjunction()
            left = _either(left, right)
        return left

    def conjunction(self) -> Getter:
        left = self.negation()
        while self.token.kind == "and":
            self.take()
            right = self.negation()
            left = _both(left, right)
        return left

    def negation(self) -> Getter:
        if self.token.kind == "not":
            self.nested(self.take().column)
            inner = self.negation()
            self.depth -= 1
            return lambda root: not _truthy(inner(root))
        return self.comparison()

    def comparison(self) -> Getter:
        left = self.operand()
        if self.token.kind != "op":
            return left
        op = self.take()
        if op.text == "~":
            pattern_token = self.expect("string", "a regular expression in quotes after '~'")
            try:
                pattern = re.compile(str(pattern_token.value))
            except re.error as exc:
                raise ConditionError(f"bad regular expression: {exc}", pattern_token.column) from None
            search = pattern.search

            def matches(root: Value) -> bool:
                text = _text(left(root))
                return text is not None and search(text) is not None

            return matches
        right = self.operand()
        compare = _COMPARE[op.text]
        return lambda root: compare(left(root), right(root))

    def operand(self) -> Getter:
        token = self.token
        if token.kind in ("number", "string", "literal"):
            self.take()
            return _constant(token.value)
        if token.kind == "(":
            self.nested(self.take().column)
            inner = self.condition()
            self.expect(")", "')'")
            self.depth -= 1
            return inner
        if token.kind == "name":
            return self.path()
        found = "the end" if token.kind == "end" else repr(token.text)
        raise ConditionError(f"expected a field, a number or a string, found {found}", token.column)

    def path(self) -> Getter:
        first = self.take()
        steps: list[str | int] = [] if first.value == "payload" and first.text == "payload" else [str(first.value)]
        while self.token.kind in (".", "["):
            if self.take().kind == ".":
                steps.append(str(self.expect("name", "a field name after '.'").value))
            else:
                index = self.expect("number", "an index after '['")
                number = index.value
                if not isinstance(number, float) or not number.is_integer() or "." in index.text:
                    raise ConditionError(f"an index must be an integer, not {index.text}", index.column)
                steps.append(int(number))
                self.expect("]", "']'")
        return _path_getter(tuple(steps))


@dataclass(frozen=True, slots=True)
class Condition:
    """A parsed condition: ``condition(payload)`` says whether a payload meets it."""

    text: str
    _test: Getter

    def __call__(self, payload: bytes) -> bool:
        return self.test_value(payload_value(payload))

    def test_value(self, value: Value) -> bool:
        """Whether an already decoded value (see :func:`payload_value`) meets the condition."""
        return _truthy(self._test(value))


def parse_condition(text: str) -> Condition:
    """Parse a condition.

    Raises:
        ConditionError: it is empty, too long, or not in the grammar (the message says where).
    """
    if not text.strip():
        raise ConditionError("the condition is empty", 1)
    if len(text) > MAX_CONDITION:
        raise ConditionError(f"longer than {MAX_CONDITION} characters", MAX_CONDITION + 1)
    parser = _Parser(text)
    test = parser.condition()
    if parser.token.kind != "end":
        raise ConditionError(f"unexpected {parser.token.text!r}", parser.token.column)
    return Condition(text, test)


def payload_value(payload: bytes) -> Value:
    """The payload as a condition reads it: its JSON value, else its text (binary: decoded with replacements)."""
    text = payload.decode(errors="replace")
    stripped = text.strip()
    if stripped[:1] in ("{", "[", '"') or stripped in ("true", "false", "null"):
        try:
            return json.loads(stripped)
        except (json.JSONDecodeError, RecursionError):
            return text
    return text
