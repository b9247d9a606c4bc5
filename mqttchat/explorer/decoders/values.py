"""Python values made by JSON, CBOR and MessagePack libraries as trees of :class:`Node`, within a node budget."""

from __future__ import annotations

import datetime
import math
from typing import Any

from mqttchat.explorer.decoders.result import Node, leaf

__all__ = ["Budget", "tree_of"]


class Budget:
    """How many more nodes a tree may have and how deep it may go; counts what was left out."""

    __slots__ = ("cut", "depth", "nodes")

    def __init__(self, nodes: int, depth: int) -> None:
        self.nodes = nodes
        self.depth = depth
        self.cut = 0

    def notes(self) -> tuple[str, ...]:
        return (f"{self.cut} values not shown (too many or too deeply nested)",) if self.cut else ()


def tree_of(value: Any, budget: Budget, name: str = "") -> Node:
    """The tree of a value: dicts become ``object`` nodes, lists and tuples ``array`` nodes, scalars leaves.

    Library types are shown for what they are (a CBOR tag as ``tag N`` holding its content, a date as a string of
    kind ``datetime``, MessagePack extension types as ``ext N`` bytes). A value met again inside itself (CBOR's
    shared references can build cycles) is shown as ``<cycle>``.
    """
    return _tree(value, name, budget, 0, set())


#: The kind of a leaf by the exact type of its value (subclasses, such as a library's own types, go the slow way).
_SCALARS: dict[type, str] = {type(None): "null", bool: "bool", int: "int", float: "float", str: "string",
                             bytes: "bytes"}  # fmt: skip
_CONTAINERS = frozenset({dict, list, tuple, set, frozenset})


def _tree(value: Any, name: str, budget: Budget, depth: int, path: set[int]) -> Node:
    budget.nodes -= 1
    kind = _SCALARS.get(type(value))
    if kind is not None:
        return Node(name, value, kind)
    if isinstance(value, bool | int | float | str | bytes):
        return leaf(name, value)
    if isinstance(value, bytearray | memoryview):
        return leaf(name, bytes(value))
    if type(value) in _CONTAINERS:
        return _container(value, name, budget, depth, path)
    return _library_value(value, name, budget, depth, path)


def _container(value: Any, name: str, budget: Budget, depth: int, path: set[int]) -> Node:
    if depth >= budget.depth:
        budget.cut += 1
        return leaf(name, None, "…", "nested too deeply")
    if id(value) in path:
        return leaf(name, None, "<cycle>")
    path.add(id(value))
    try:
        if isinstance(value, dict):
            items: Any = ((key if type(key) is str else _key_text(key), item) for key, item in value.items())
            kind = "object"
        else:
            kind = "set" if isinstance(value, set | frozenset) else "array"
            items = ((str(index), item) for index, item in enumerate(value))
        total = len(value)
        children: list[Node] = []
        scalars = _SCALARS
        for key, item in items:
            if budget.nodes <= 0:
                budget.cut += total - len(children)
                children.append(leaf("…", f"{total - len(children)} more", "…"))
                break
            leaf_kind = scalars.get(type(item))
            if leaf_kind is not None:
                budget.nodes -= 1
                children.append(Node(key, item, leaf_kind))
            else:
                children.append(_tree(item, key, budget, depth + 1, path))
        return Node(name, None, "array" if kind == "set" else kind, tuple(children), "set" if kind == "set" else "")
    finally:
        path.discard(id(value))


def _key_text(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bytes):
        return f"h'{key.hex()}'"
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, float) and not math.isfinite(key):
        return str(key)
    text = repr(key)
    return text if len(text) <= 200 else text[:199] + "…"


def _library_value(value: Any, name: str, budget: Budget, depth: int, path: set[int]) -> Node:
    """CBOR and MessagePack types (imported lazily: either library may not be the one in use)."""
    kind = type(value).__name__
    module = type(value).__module__
    if module.startswith("cbor2"):
        if kind == "CBORTag":
            inner = _tree(value.value, "value", budget, depth + 1, path)
            return Node(name, None, f"tag {value.tag}", (inner,))
        if kind == "CBORSimpleValue":
            return leaf(name, int(value.value), "simple")
        if kind == "UndefinedType":
            return leaf(name, None, "undefined")

    if module.startswith("msgpack"):
        if kind == "ExtType":
            return leaf(name, bytes(value.data), f"ext {value.code}")
        if kind == "Timestamp":
            try:
                return leaf(name, value.to_datetime().isoformat(), "datetime")
            except (OverflowError, ValueError, OSError):
                return leaf(name, f"{value.seconds}.{value.nanoseconds:09d}", "timestamp")
    if isinstance(value, dict | list | set | frozenset) or (isinstance(value, tuple) and not hasattr(value, "_fields")):
        return _container(value, name, budget, depth, path)  # a library's own mapping or sequence type
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return leaf(name, value.isoformat(), "datetime")
    if isinstance(value, complex):
        return leaf(name, str(value), "complex")
    try:
        text = str(value)
    except ValueError:  # an integer too long to show (Python's digit limit)
        text = f"<{kind}>"
    return leaf(name, text if len(text) <= 10_000 else text[:9_999] + "…", kind.lower())
