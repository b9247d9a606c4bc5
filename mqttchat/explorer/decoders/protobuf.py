"""Protocol Buffers with the ``protobuf`` library: raw, without a schema (field numbers, wire types and guesses
at nested messages, as ``protoc --decode_raw`` shows them), and with a user's descriptor set
(``protoc --descriptor_set_out``) and a message type."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mqttchat.explorer.decoders.base import DecodeContext, Decoder
from mqttchat.explorer.decoders.result import Decoded, DecodeFailure, Node, leaf, render_outline
from mqttchat.explorer.decoders.values import Budget
from mqttchat.labels import size_label

if TYPE_CHECKING:
    from google.protobuf.descriptor import Descriptor, FieldDescriptor
    from google.protobuf.message import Message

__all__ = ["MAX_DESCRIPTOR_SET", "ProtobufDecoder", "load_message_class", "raw_tree"]

#: The largest descriptor set file read.
MAX_DESCRIPTOR_SET = 64 * 1024 * 1024
#: Nested messages guessed inside each other at most (the library's own limit is 100).
MAX_RAW_DEPTH = 32

_WIRE_KINDS = {0: "varint", 1: "fixed64", 2: "bytes", 3: "group", 5: "fixed32"}


def _parse_unknown(data: bytes) -> Any:
    """The fields of data parsed as a message of no known type (an UnknownFieldSet), or DecodeError."""
    from google.protobuf import empty_pb2, unknown_fields

    message = empty_pb2.Empty()
    message.ParseFromString(data)
    return unknown_fields.UnknownFieldSet(message)


def _printable(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if all(char.isprintable() or char in "\t\r\n" for char in text) else None


def raw_tree(fields: Any, budget: Budget, depth: int = 0) -> list[Node]:
    """Nodes for an UnknownFieldSet: each field by number, its wire type as the kind, nested guesses opened."""
    from google.protobuf.message import DecodeError

    nodes: list[Node] = []
    for item in fields:
        budget.nodes -= 1
        if budget.nodes <= 0:
            budget.cut += 1
            continue
        number, wire, data = str(item.field_number), item.wire_type, item.data
        kind = _WIRE_KINDS.get(wire, f"wire type {wire}")
        if wire == 0:
            nodes.append(leaf(number, data, kind, f"signed {data - (1 << 64)}" if data >= 1 << 63 else ""))
        elif wire == 5:
            (as_float,) = struct.unpack("<f", data.to_bytes(4, "little"))
            nodes.append(leaf(number, data, kind, f"float {as_float:g}"))
        elif wire == 1:
            (as_double,) = struct.unpack("<d", data.to_bytes(8, "little"))
            nodes.append(leaf(number, data, kind, f"double {as_double:g}"))
        elif wire == 3:
            children = raw_tree(data, budget, depth + 1) if depth < MAX_RAW_DEPTH else []
            nodes.append(Node(number, None, kind, tuple(children)))
        else:
            text = _printable(data)
            if text is not None or not data:
                nodes.append(leaf(number, text or "", "string"))
                continue
            nested = None
            if depth < MAX_RAW_DEPTH:
                try:
                    nested = _parse_unknown(data)
                except DecodeError:
                    nested = None
            if nested is not None and len(nested):
                nodes.append(Node(number, None, "message", tuple(raw_tree(nested, budget, depth + 1))))
            else:
                nodes.append(leaf(number, bytes(data), kind))
    return nodes


def load_message_class(descriptor_set: str | Path, message: str) -> type[Message]:
    """The class of the named message type (``package.Message``) from a descriptor set file.

    Files of the set are added to a pool of their own in the order of their imports; imports missing from the set
    (it was written without ``--include_imports``) are taken from the library's well-known types when they are
    among them.

    Raises:
        ValueError: the file cannot be read, is not a descriptor set, or has no such message type (the message says
            which).
    """
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from google.protobuf.message import DecodeError

    path = Path(descriptor_set)
    try:
        size = path.stat().st_size
        if size > MAX_DESCRIPTOR_SET:
            limit = size_label(MAX_DESCRIPTOR_SET)
            raise ValueError(f"{path}: the descriptor set is {size_label(size)} (at most {limit})")
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the descriptor set {path}: {exc.strerror or exc}") from None
    try:
        files = descriptor_pb2.FileDescriptorSet.FromString(data).file
    except DecodeError:
        raise ValueError(f"{path} is not a descriptor set (protoc --descriptor_set_out writes one)") from None
    by_name = {file.name: file for file in files}
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()
    default_pool = descriptor_pool.Default()

    def add(name: str, chain: tuple[str, ...]) -> None:
        if name in added:
            return
        if name in chain:
            raise ValueError(f"{path}: the imports of {name} go round in a circle")
        file = by_name.get(name)
        if file is None:
            try:
                known = default_pool.FindFileByName(name)
            except KeyError:
                raise ValueError(f"{path}: {chain[-1]} imports {name}, which the set does not hold "
                                 "(write it with protoc --include_imports)") from None  # fmt: skip
            file = descriptor_pb2.FileDescriptorProto()
            known.CopyToProto(file)
        for dependency in file.dependency:
            add(dependency, (*chain, name))
        try:
            pool.Add(file)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {name} cannot be loaded: {exc}") from None
        added.add(name)

    for file in files:
        add(file.name, ())
    try:
        descriptor = pool.FindMessageTypeByName(message.removeprefix("."))
    except KeyError:
        known_types = sorted(_message_names(files))
        hint = f" (it has {', '.join(known_types[:8])}{'…' if len(known_types) > 8 else ''})" if known_types else ""
        raise ValueError(f"{path} has no message type {message!r}{hint}") from None
    return message_factory.GetMessageClass(descriptor)


def _message_names(files: Any) -> list[str]:
    names: list[str] = []

    def visit(prefix: str, messages: Any) -> None:
        for message in messages:
            full = f"{prefix}.{message.name}" if prefix else message.name
            names.append(full)
            visit(full, message.nested_type)

    for file in files:
        visit(file.package, file.message_type)
    return names


class ProtobufDecoder(Decoder):
    """Protobuf raw, or as a message type of a descriptor set when both are given."""

    name = "protobuf"

    def __init__(self, descriptor_set: str | Path | None = None, message: str | None = None) -> None:
        self.message_class: type[Message] | None = None
        if descriptor_set is not None and message:
            self.message_class = load_message_class(descriptor_set, message)

    def decode(self, data: bytes, ctx: DecodeContext) -> Decoded:
        from google.protobuf.message import DecodeError

        budget = Budget(ctx.limits.max_nodes, ctx.limits.max_depth)
        if self.message_class is None:
            try:
                fields = _parse_unknown(data)
            except DecodeError:
                raise DecodeFailure("not protobuf: the wire format is corrupt or cut short") from None
            root = Node("", None, "message", tuple(raw_tree(fields, budget)))
            return Decoded("protobuf", root, lambda: render_outline(root) or "(an empty message)", None,
                           budget.notes())  # fmt: skip
        try:
            message = self.message_class.FromString(data)
        except DecodeError:
            name = self.message_class.DESCRIPTOR.full_name
            raise DecodeFailure(f"not a {name}: the wire format is corrupt, cut short or of another type") from None
        root = Node("", None, message.DESCRIPTOR.full_name, tuple(message_tree(message, budget)))
        return Decoded("protobuf", root, lambda: render_outline(root) or "(an empty message)", None,
                       budget.notes())  # fmt: skip


def message_tree(message: Message, budget: Budget, depth: int = 0) -> list[Node]:
    """Nodes for a message's set fields by name (repeated fields as arrays, maps as objects, enums by name), then
    its unknown fields by number."""
    from google.protobuf import unknown_fields

    nodes: list[Node] = []
    for field, value in message.ListFields():
        budget.nodes -= 1
        if budget.nodes <= 0:
            budget.cut += 1
            break
        nodes.append(_field_node(field, value, budget, depth))
    unknown = unknown_fields.UnknownFieldSet(message)
    if len(unknown):
        nodes.append(Node("unknown fields", None, "message", tuple(raw_tree(unknown, budget, depth + 1))))
    return nodes


def _repeated(field: FieldDescriptor) -> bool:
    """Whether a field is repeated (``is_repeated`` in newer protobuf releases, ``label`` in older ones)."""
    repeated = getattr(field, "is_repeated", None)
    if repeated is None:
        return bool(getattr(field, "label", 0) == 3)  # FieldDescriptor.LABEL_REPEATED
    return bool(repeated)


def _field_node(field: FieldDescriptor, value: Any, budget: Budget, depth: int) -> Node:
    if _repeated(field):
        message_type = field.message_type
        if message_type is not None and message_type.GetOptions().map_entry:
            return _map_node(field.name, message_type, value, budget, depth)
        items = list(value)
        return Node(field.name, None, "array", tuple(
            _single(str(index), field, item, budget, depth + 1) for index, item in enumerate(items[: budget.nodes])
        ))  # fmt: skip
    return _single(field.name, field, value, budget, depth)


def _map_node(name: str, entry: Descriptor, value: Any, budget: Budget, depth: int) -> Node:
    value_field = entry.fields_by_name["value"]
    children = []
    for key in list(value)[: max(budget.nodes, 0)]:
        budget.nodes -= 1
        children.append(_single(str(key), value_field, value[key], budget, depth + 1))
    return Node(name, None, "object", tuple(children))


def _single(name: str, field: FieldDescriptor, value: Any, budget: Budget, depth: int) -> Node:
    if field.type in (field.TYPE_MESSAGE, field.TYPE_GROUP):
        if depth >= budget.depth:
            budget.cut += 1
            return leaf(name, None, "…", "nested too deeply")
        type_name = field.message_type.name if field.message_type is not None else "message"
        return Node(name, None, type_name, tuple(message_tree(value, budget, depth + 1)))
    if field.type == field.TYPE_ENUM and field.enum_type is not None:
        known = field.enum_type.values_by_number.get(value)
        return leaf(name, value, "enum", known.name if known is not None else "not a value of the enum")
    if field.type == field.TYPE_BYTES:
        return leaf(name, bytes(value), "bytes")
    return leaf(name, value)
