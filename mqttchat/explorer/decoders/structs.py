"""Fixed binary structs: a Python ``struct`` format per topic filter (``<hhf``, ``>IfH``) with optional field
names, for devices that send raw numbers. A payload holding several records of the format is shown as rows."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from mqttchat.config.decoder_rules import struct_problem
from mqttchat.explorer.decoders.base import DecodeContext, Decoder
from mqttchat.explorer.decoders.result import Decoded, DecodeFailure, Node, Scalar, leaf, render_outline

__all__ = ["MAX_RECORDS", "StructDecoder"]

#: Records of one payload shown at most.
MAX_RECORDS = 10_000


class StructDecoder(Decoder):
    name = "struct"

    def __init__(self, fmt: str, names: Sequence[str] = ()) -> None:
        problem = struct_problem(fmt, names)
        if problem is not None:
            raise ValueError(problem)
        self.format = fmt
        self.struct = struct.Struct(fmt)
        count = len(self.struct.unpack(bytes(self.struct.size)))
        self.names = tuple(names) or tuple(str(index) for index in range(count))

    def decode(self, data: bytes, ctx: DecodeContext) -> Decoded:
        size = self.struct.size
        if not data or len(data) % size:
            raise DecodeFailure(f"the payload has {len(data)} bytes; the format {self.format} needs {size}")
        records = len(data) // size
        if records > MAX_RECORDS:
            raise DecodeFailure(f"the payload holds {records} records of {self.format} (at most {MAX_RECORDS})")
        fields: dict[str, float] = {}
        rows: list[Node] = []
        for index, values in enumerate(self.struct.iter_unpack(data)):
            prefix = f"{index}." if records > 1 else ""
            children = []
            for name, value in zip(self.names, values, strict=True):
                children.append(_leaf(name, value))
                number = _number(value)
                if number is not None:
                    fields[prefix + name] = number
            rows.append(Node(str(index), None, "record", tuple(children)))
        if records == 1:
            root = Node("", None, f"struct {self.format}", rows[0].children)
        else:
            root = Node("", None, "array", tuple(rows), f"{records} records of {self.format}")
        return Decoded("struct", root, lambda: render_outline(root), fields)


def _leaf(name: str, value: object) -> Node:
    if isinstance(value, bytes):
        return leaf(name, value, "bytes")
    if isinstance(value, bool | int | float):
        return leaf(name, value)
    return leaf(name, str(value))


def _number(value: Scalar | object) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int):
        return float(value)
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None
