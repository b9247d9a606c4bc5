"""What a decoder made of a payload: a tree of values, a text rendering and numeric fields, or why it failed."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mqttchat.explorer.payload import hexdump

__all__ = [
    "CONTAINER",
    "HEX_LIMIT",
    "PLAIN_DECODERS",
    "DecodeFailure",
    "DecodeResult",
    "Decoded",
    "Lazy",
    "Node",
    "Scalar",
    "failure",
    "leaf",
    "numeric_fields",
    "render_diagnostic",
    "render_outline",
]

#: A leaf's value.
Scalar = None | bool | int | float | str | bytes

#: How much of a payload a failure shows as hex (the rest is counted).
HEX_LIMIT = 4096
#: Numeric fields collected per message at most (for charts and filters).
MAX_FIELDS = 50_000
#: Bytes one tree node costs beyond its strings (the object, its tuple slot): for the caches' byte budgets.
NODE_OVERHEAD = 120

#: Decoders that make of a payload its own text (or its bytes): a result of these alone says nothing the payload
#: does not (``auto`` is a rule's way of asking for them).
PLAIN_DECODERS = frozenset({"auto", "json", "text", "hex", "empty", "binary"})

#: The kind of the containers that JSON, CBOR and MessagePack make (rendered as ``{...}`` and ``[...]``).
CONTAINER = frozenset({"object", "array"})


class Node:
    """One value of a decoded payload (never changed once made).

    ``children`` is None for a leaf (whose value is ``value``) and a tuple, maybe empty, for a container; a
    container may have a value too (a Sparkplug metric with properties). ``kind`` says what the value is:
    ``object``, ``array``, ``string``, ``int``, ``float``, ``bool``, ``null``, ``bytes`` for JSON-like formats; the
    formats add their own (a Sparkplug datatype such as ``Int32``, a protobuf wire type such as ``varint``, ``tag 1``
    for a CBOR tag). ``note`` is shown beside the value (``alias 3``, a timestamp as a date, ``historical``).

    A plain class with slots rather than a frozen dataclass: trees have thousands of nodes, and a frozen
    dataclass takes about four times as long to make one.
    """

    __slots__ = ("children", "kind", "name", "note", "value")

    def __init__(
        self, name: str, value: Scalar = None, kind: str = "", children: tuple[Node, ...] | None = None, note: str = ""
    ) -> None:
        self.name = name
        self.value = value
        self.kind = kind
        self.children = children
        self.note = note

    def _key(self) -> tuple[str, Scalar, str, tuple[Node, ...] | None, str]:
        return (self.name, self.value, self.kind, self.children, self.note)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Node) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Node({self.name!r}, {self.value!r}, {self.kind!r}, {self.children!r}, {self.note!r})"

    @property
    def is_leaf(self) -> bool:
        return self.children is None

    def walk(self, prefix: str = "", sep: str = ".") -> Iterator[tuple[str, Node]]:
        """(path, node) for this node's descendants, depth first; a path joins names with ``sep``."""
        stack: list[tuple[str, Node]] = [(prefix, self)]
        while stack:
            path, node = stack.pop()
            if node is not self:
                yield path, node
            if node.children:
                stack.extend(
                    (f"{path}{sep}{child.name}" if path else child.name, child) for child in reversed(node.children)
                )


def leaf(name: str, value: Scalar, kind: str = "", note: str = "") -> Node:
    """A leaf whose kind, when not given, follows the Python type of its value."""
    return Node(name, value, kind or _kind_of(value), None, note)


def _kind_of(value: Scalar) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "bytes"


class DecodeFailure(Exception):
    """A decoder could not decode its input; the message is the reason shown to the user (one line)."""


#: Text made when first asked for (a rendering costs more than the tree: it is made only for what is shown).
Lazy = str | Callable[[], str]


@dataclass(frozen=True, slots=True)
class Decoded:
    """What one terminal decoder returns: the tree, its rendering (or a function making it), its numeric fields
    when it has its own names for them (Sparkplug metric names; otherwise the tree's numeric leaves by path), and
    a one-line summary when it has a better one than the rendering's first lines."""

    format: str
    root: Node
    text: Lazy
    fields: Mapping[str, float] | None = None
    notes: tuple[str, ...] = ()
    summary: Lazy | None = None


class DecodeResult:
    """A payload as the user sees it once decoded, or why it could not be.

    ``decoder`` names the steps taken (``gzip+json``, ``sparkplug``, ``text``); ``format`` is the format of the
    tree (``json``, ``sparkplug``, ``binary``...). On failure ``root`` is None, ``error`` is the reason and
    ``text`` is the reason followed by a hex dump of what the failing step was given. ``pending`` is true while
    an external command is still running (``text`` says so); a later call returns the finished result.
    ``notes`` are warnings about a payload that was decoded (an unknown alias, a seq gap, values left out).
    ``auto``: the decoders were chosen automatically (no rule matched the topic).

    ``text``, ``fields`` and :meth:`summary` are made when first asked for, then kept.
    """

    __slots__ = ("_fields", "_line", "_text", "auto", "decoder", "error", "format", "notes", "pending", "root")

    def __init__(
        self,
        decoder: str,
        format: str,
        root: Node | None,
        text: Lazy,
        fields: Mapping[str, float] | None = None,
        error: str | None = None,
        notes: tuple[str, ...] = (),
        pending: bool = False,
        auto: bool = False,
        summary: Lazy | None = None,
    ) -> None:
        self.decoder = decoder
        self.format = format
        self.root = root
        self.error = error
        self.notes = notes
        self.pending = pending
        self.auto = auto
        self._text = text
        self._fields = fields
        self._line = summary

    def __repr__(self) -> str:
        state = "pending" if self.pending else f"error={self.error!r}" if self.error else "ok"
        return f"<DecodeResult {self.decoder} {self.format} {state}>"

    @property
    def ok(self) -> bool:
        return self.error is None and not self.pending

    @property
    def plain(self) -> bool:
        """Whether it is the payload's own text or bytes (JSON, text, a hex dump): no decoder transformed it."""
        return self.decoder in PLAIN_DECODERS

    @property
    def text(self) -> str:
        """The full rendering: indented JSON, CBOR diagnostic notation, a Sparkplug metric list, an outline."""
        if not isinstance(self._text, str):
            self._text = self._text()
        return self._text

    @property
    def fields(self) -> Mapping[str, float]:
        """Numeric fields by path (``a.b.0``) or Sparkplug metric name, for charts and filters."""
        if self._fields is None:
            self._fields = numeric_fields(self.root) if self.root is not None else {}
        return self._fields

    def number(self, path: str) -> float | None:
        """The numeric field at path (a JSON path such as ``a.b.0``, or a Sparkplug metric name), or None."""
        return self.fields.get(path)

    def summary(self, width: int = 60) -> str:
        """One line for a table cell (the tree's value column), cut with ``…`` at width."""
        if self.pending:
            line = "decoding…"
        elif self.error is not None:
            line = f"⚠ {self.error}"
        else:
            if self._line is not None and not isinstance(self._line, str):
                self._line = self._line()
            if self._line is not None:
                line = self._line
            else:
                line = " ".join(part.strip() for part in self.text[: width * 4].splitlines() if part.strip())
        line = line.replace("\r", "").replace("\n", "⏎")
        return line if len(line) <= width else line[: width - 1] + "…"

    def to_json(self) -> Any:
        """The decoded value as JSON data (for ``sub -F json`` and recordings): bytes become hex strings, numbers
        that JSON cannot hold become strings, every key a string. None when the payload was not decoded."""
        if self.root is None:
            return None
        return _jsonable(self.root)

    @property
    def cost(self) -> int:
        """About how many bytes this result holds or will hold (for byte-bounded caches): its tree, its fields,
        and its text, or until the text is made, an estimate of it (the tree's strings and 32 bytes a node)."""
        total = 200
        tree = _tree_cost(self.root) if self.root is not None else 0
        total += tree
        total += len(self._text) if isinstance(self._text, str) else tree // 3
        if isinstance(self._fields, Mapping):
            total += sum(len(key) + 64 for key in self._fields)
        elif self.root is not None:
            total += tree // 4
        return total


def _tree_cost(root: Node) -> int:
    total = 0
    stack = [root]
    while stack:
        node = stack.pop()
        total += NODE_OVERHEAD + len(node.name) + len(node.note)
        value = node.value
        if isinstance(value, str | bytes):
            total += len(value)
        if node.children:
            stack.extend(node.children)
    return total


def _jsonable(node: Node) -> Any:
    if node.children is not None:
        if node.kind == "array":
            return [_jsonable(child) for child in node.children]
        out: dict[str, Any] = {}
        repeated: set[str] = set()
        for child in node.children:
            value = _jsonable(child)
            if child.name not in out:
                out[child.name] = value
            elif child.name in repeated:
                out[child.name].append(value)
            else:  # a repeated protobuf field, a CBOR map with keys that differ only in type: a list of them
                out[child.name] = [out[child.name], value]
                repeated.add(child.name)
        if node.value is not None:
            out.setdefault("value", _jsonable_scalar(node.value))
        return out
    return _jsonable_scalar(node.value)


def _jsonable_scalar(value: Scalar) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def failure(decoder: str, reason: str, data: bytes, notes: tuple[str, ...] = ()) -> DecodeResult:
    """A failed result: the reason and a hex dump of (the start of) the bytes the failing step was given."""
    reason = " ".join(reason.split())[:300] or "cannot decode"
    return DecodeResult(decoder, "binary", None, lambda: _failure_text(reason, data), {}, reason, notes)


def _failure_text(reason: str, data: bytes) -> str:
    shown = data[:HEX_LIMIT]
    dump = hexdump(shown)
    if len(data) > len(shown):
        dump += f"\n… {len(data) - len(shown)} more bytes"
    return f"{reason}\n\n{dump}" if dump else reason


def numeric_fields(root: Node, limit: int = MAX_FIELDS) -> dict[str, float]:
    """The numeric leaves of a tree by path (names joined with ``.``): ints, finite floats, and booleans as 0/1.

    A tree that is a single number (a payload such as ``21.5``) has it at the empty path ``""``.
    """
    out: dict[str, float] = {}
    nodes = root.walk() if root.children is not None else iter((("", root),))
    for path, node in nodes:
        if node.children is not None:
            continue
        value = node.value
        if isinstance(value, bool):
            out[path] = 1.0 if value else 0.0
        elif isinstance(value, int):
            try:
                out[path] = float(value)
            except OverflowError:
                continue
        elif isinstance(value, float) and math.isfinite(value):
            out[path] = value
        else:
            continue
        if len(out) >= limit:
            break
    return out


# --------------------------------------------------------------------------------------------------------------
# Renderings


def render_diagnostic(root: Node, indent: int = 2, max_lines: int = 100_000) -> str:
    """JSON-like text for a tree of objects and arrays (as CBOR's diagnostic notation writes it): strings in JSON
    quotes, bytes as ``h'00ff'``, other kinds (a tag, a timestamp) named in a comment."""
    lines: list[str] = []
    _diagnostic(root, 0, indent, lines, max_lines, last=True, key=None)
    if len(lines) >= max_lines:
        lines.append("…")
    return "\n".join(lines)


def _scalar_text(node: Node) -> str:
    value = node.value
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null" if node.kind in ("null", "") else node.kind
    elif isinstance(value, bytes):
        text = f"h'{value.hex()}'"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, float):
        text = repr(value) if math.isfinite(value) else {"inf": "Infinity", "-inf": "-Infinity"}.get(str(value), "NaN")
    else:
        text = str(value) if value.bit_length() < 13_000 else f"<{value.bit_length()}-bit integer>"
    if node.note:
        text += f"  /{node.note}/"
    return text


def _diagnostic(
    node: Node, depth: int, indent: int, lines: list[str], max_lines: int, *, last: bool, key: str | None
) -> None:
    if len(lines) >= max_lines:
        return
    pad = " " * (indent * depth)
    head = pad + (f"{key}: " if key is not None else "")
    comma = "" if last else ","
    children = node.children
    if children is None:
        lines.append(head + _scalar_text(node) + comma)
        return
    is_array = node.kind == "array"
    opening, closing = ("[", "]") if is_array else ("{", "}")
    label = "" if node.kind in CONTAINER else f"{node.kind} "
    if node.note:
        label += f"/{node.note}/ "
    if not children:
        lines.append(f"{head}{label}{opening}{closing}{comma}")
        return
    lines.append(f"{head}{label}{opening}")
    for index, child in enumerate(children):
        child_key = None if is_array else json.dumps(child.name, ensure_ascii=False)
        _diagnostic(child, depth + 1, indent, lines, max_lines, last=index == len(children) - 1, key=child_key)
    lines.append(f"{pad}{closing}{comma}")


def render_outline(root: Node, indent: int = 2, max_lines: int = 100_000) -> str:
    """An indented outline for trees that are not JSON-like (protobuf fields, structs): ``name: value  (kind)``."""
    lines: list[str] = []
    stack: list[tuple[int, Node]] = [(0, child) for child in reversed(root.children or ())]
    while stack and len(lines) < max_lines:
        depth, node = stack.pop()
        pad = " " * (indent * depth)
        kind = f"  ({node.kind})" if node.kind else ""
        if node.children is None:
            lines.append(f"{pad}{node.name}: {_scalar_text(node)}{kind}")
        else:
            note = f"  /{node.note}/" if node.note else ""
            lines.append(f"{pad}{node.name}:{kind}{note}")
            stack.extend((depth + 1, child) for child in reversed(node.children))
    if stack:
        lines.append("…")
    return "\n".join(lines)
