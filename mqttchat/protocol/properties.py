"""MQTT 5.0 properties: identifiers, wire types, where each may appear, and their encoding and decoding.

:class:`Properties` is an immutable mapping from :class:`PropertyId` to value, with an attribute for each
property (``props.content_type``). User Property and Subscription Identifier are the two properties that may
repeat; their values are tuples (of ``(name, value)`` pairs and of ints). Every other property may appear once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from enum import IntEnum
from typing import Any, Generic, TypeVar, overload

from mqttchat.protocol.constants import MAX_VARIABLE_INTEGER, PacketType
from mqttchat.protocol.errors import LocalProtocolError, MalformedPacket, RemoteProtocolError
from mqttchat.protocol.fastinit import dataclass
from mqttchat.protocol.reason_codes import ReasonCode
from mqttchat.protocol.wire import (
    decode_binary,
    decode_string,
    decode_varint,
    encode_binary,
    encode_string,
    encode_varint,
)

T = TypeVar("T")


class PropertyId(IntEnum):
    PAYLOAD_FORMAT_INDICATOR = 0x01
    MESSAGE_EXPIRY_INTERVAL = 0x02
    CONTENT_TYPE = 0x03
    RESPONSE_TOPIC = 0x08
    CORRELATION_DATA = 0x09
    SUBSCRIPTION_IDENTIFIER = 0x0B
    SESSION_EXPIRY_INTERVAL = 0x11
    ASSIGNED_CLIENT_IDENTIFIER = 0x12
    SERVER_KEEP_ALIVE = 0x13
    AUTHENTICATION_METHOD = 0x15
    AUTHENTICATION_DATA = 0x16
    REQUEST_PROBLEM_INFORMATION = 0x17
    WILL_DELAY_INTERVAL = 0x18
    REQUEST_RESPONSE_INFORMATION = 0x19
    RESPONSE_INFORMATION = 0x1A
    SERVER_REFERENCE = 0x1C
    REASON_STRING = 0x1F
    RECEIVE_MAXIMUM = 0x21
    TOPIC_ALIAS_MAXIMUM = 0x22
    TOPIC_ALIAS = 0x23
    MAXIMUM_QOS = 0x24
    RETAIN_AVAILABLE = 0x25
    USER_PROPERTY = 0x26
    MAXIMUM_PACKET_SIZE = 0x27
    WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28
    SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
    SHARED_SUBSCRIPTION_AVAILABLE = 0x2A


class PropertyType(IntEnum):
    BYTE = 1
    TWO_BYTE_INTEGER = 2
    FOUR_BYTE_INTEGER = 3
    VARIABLE_BYTE_INTEGER = 4
    UTF8_STRING = 5
    BINARY_DATA = 6
    UTF8_STRING_PAIR = 7


#: Where a property may appear: a packet type, or the will properties inside CONNECT.
WILL_PROPERTIES = 16
PropertyContext = int

_P = PacketType
_ALL = frozenset(
    {
        _P.CONNECT, _P.CONNACK, _P.PUBLISH, WILL_PROPERTIES, _P.PUBACK, _P.PUBREC, _P.PUBREL, _P.PUBCOMP,
        _P.SUBSCRIBE, _P.SUBACK, _P.UNSUBSCRIBE, _P.UNSUBACK, _P.DISCONNECT, _P.AUTH,
    }
)  # fmt: skip
_ACKS_WITH_REASON = frozenset(
    {_P.CONNACK, _P.PUBACK, _P.PUBREC, _P.PUBREL, _P.PUBCOMP, _P.SUBACK, _P.UNSUBACK, _P.DISCONNECT, _P.AUTH}
)


@dataclass(frozen=True, slots=True)
class PropertySpec:
    """What the specification says of one property (section 2.2.2.2)."""

    id: PropertyId
    name: str
    type: PropertyType
    contexts: frozenset[int]
    #: Allowed values for integer properties, as (low, high) inclusive; None means the type's full range.
    value_range: tuple[int, int] | None = None
    #: The reason code for a value outside ``value_range``.
    range_reason: ReasonCode = ReasonCode.PROTOCOL_ERROR

    @property
    def repeatable(self) -> bool:
        return self.id in (PropertyId.USER_PROPERTY, PropertyId.SUBSCRIPTION_IDENTIFIER)


_T = PropertyType
_SPECS: list[PropertySpec] = [
    PropertySpec(PropertyId.PAYLOAD_FORMAT_INDICATOR, "payload_format_indicator", _T.BYTE,
                 frozenset({_P.PUBLISH, WILL_PROPERTIES}), (0, 1)),
    PropertySpec(PropertyId.MESSAGE_EXPIRY_INTERVAL, "message_expiry_interval", _T.FOUR_BYTE_INTEGER,
                 frozenset({_P.PUBLISH, WILL_PROPERTIES})),
    PropertySpec(PropertyId.CONTENT_TYPE, "content_type", _T.UTF8_STRING, frozenset({_P.PUBLISH, WILL_PROPERTIES})),
    PropertySpec(PropertyId.RESPONSE_TOPIC, "response_topic", _T.UTF8_STRING,
                 frozenset({_P.PUBLISH, WILL_PROPERTIES})),
    PropertySpec(PropertyId.CORRELATION_DATA, "correlation_data", _T.BINARY_DATA,
                 frozenset({_P.PUBLISH, WILL_PROPERTIES})),
    PropertySpec(PropertyId.SUBSCRIPTION_IDENTIFIER, "subscription_identifier", _T.VARIABLE_BYTE_INTEGER,
                 frozenset({_P.PUBLISH, _P.SUBSCRIBE}), (1, MAX_VARIABLE_INTEGER)),
    PropertySpec(PropertyId.SESSION_EXPIRY_INTERVAL, "session_expiry_interval", _T.FOUR_BYTE_INTEGER,
                 frozenset({_P.CONNECT, _P.CONNACK, _P.DISCONNECT})),
    PropertySpec(PropertyId.ASSIGNED_CLIENT_IDENTIFIER, "assigned_client_identifier", _T.UTF8_STRING,
                 frozenset({_P.CONNACK})),
    PropertySpec(PropertyId.SERVER_KEEP_ALIVE, "server_keep_alive", _T.TWO_BYTE_INTEGER, frozenset({_P.CONNACK})),
    PropertySpec(PropertyId.AUTHENTICATION_METHOD, "authentication_method", _T.UTF8_STRING,
                 frozenset({_P.CONNECT, _P.CONNACK, _P.AUTH})),
    PropertySpec(PropertyId.AUTHENTICATION_DATA, "authentication_data", _T.BINARY_DATA,
                 frozenset({_P.CONNECT, _P.CONNACK, _P.AUTH})),
    PropertySpec(PropertyId.REQUEST_PROBLEM_INFORMATION, "request_problem_information", _T.BYTE,
                 frozenset({_P.CONNECT}), (0, 1)),
    PropertySpec(PropertyId.WILL_DELAY_INTERVAL, "will_delay_interval", _T.FOUR_BYTE_INTEGER,
                 frozenset({WILL_PROPERTIES})),
    PropertySpec(PropertyId.REQUEST_RESPONSE_INFORMATION, "request_response_information", _T.BYTE,
                 frozenset({_P.CONNECT}), (0, 1)),
    PropertySpec(PropertyId.RESPONSE_INFORMATION, "response_information", _T.UTF8_STRING, frozenset({_P.CONNACK})),
    PropertySpec(PropertyId.SERVER_REFERENCE, "server_reference", _T.UTF8_STRING,
                 frozenset({_P.CONNACK, _P.DISCONNECT})),
    PropertySpec(PropertyId.REASON_STRING, "reason_string", _T.UTF8_STRING, _ACKS_WITH_REASON),
    PropertySpec(PropertyId.RECEIVE_MAXIMUM, "receive_maximum", _T.TWO_BYTE_INTEGER,
                 frozenset({_P.CONNECT, _P.CONNACK}), (1, 65_535)),
    PropertySpec(PropertyId.TOPIC_ALIAS_MAXIMUM, "topic_alias_maximum", _T.TWO_BYTE_INTEGER,
                 frozenset({_P.CONNECT, _P.CONNACK})),
    PropertySpec(PropertyId.TOPIC_ALIAS, "topic_alias", _T.TWO_BYTE_INTEGER, frozenset({_P.PUBLISH}),
                 (1, 65_535), ReasonCode.TOPIC_ALIAS_INVALID),
    PropertySpec(PropertyId.MAXIMUM_QOS, "maximum_qos", _T.BYTE, frozenset({_P.CONNACK}), (0, 1)),
    PropertySpec(PropertyId.RETAIN_AVAILABLE, "retain_available", _T.BYTE, frozenset({_P.CONNACK}), (0, 1)),
    PropertySpec(PropertyId.USER_PROPERTY, "user_property", _T.UTF8_STRING_PAIR, _ALL),
    PropertySpec(PropertyId.MAXIMUM_PACKET_SIZE, "maximum_packet_size", _T.FOUR_BYTE_INTEGER,
                 frozenset({_P.CONNECT, _P.CONNACK}), (1, 0xFFFF_FFFF)),
    PropertySpec(PropertyId.WILDCARD_SUBSCRIPTION_AVAILABLE, "wildcard_subscription_available", _T.BYTE,
                 frozenset({_P.CONNACK}), (0, 1)),
    PropertySpec(PropertyId.SUBSCRIPTION_IDENTIFIER_AVAILABLE, "subscription_identifier_available", _T.BYTE,
                 frozenset({_P.CONNACK}), (0, 1)),
    PropertySpec(PropertyId.SHARED_SUBSCRIPTION_AVAILABLE, "shared_subscription_available", _T.BYTE,
                 frozenset({_P.CONNACK}), (0, 1)),
]  # fmt: skip

#: Every property by identifier.
PROPERTY_SPECS: dict[PropertyId, PropertySpec] = {spec.id: spec for spec in _SPECS}
_BY_NAME: dict[str, PropertyId] = {spec.name: spec.id for spec in _SPECS}
# Lookup by raw int is the decoder's hot path: avoid constructing enum members there.
_BY_INT: dict[int, PropertySpec] = {int(spec.id): spec for spec in _SPECS}
_INT_MAX = {_T.BYTE: 0xFF, _T.TWO_BYTE_INTEGER: 0xFFFF, _T.FOUR_BYTE_INTEGER: 0xFFFF_FFFF,
            _T.VARIABLE_BYTE_INTEGER: MAX_VARIABLE_INTEGER}  # fmt: skip


def _normalise(pid: PropertyId, value: Any) -> Any:
    if pid is PropertyId.USER_PROPERTY:
        if isinstance(value, Mapping):
            value = value.items()
        return tuple((k, v) for k, v in value)
    if pid is PropertyId.SUBSCRIPTION_IDENTIFIER:
        if isinstance(value, int):
            return (value,)
        return tuple(value)
    if PROPERTY_SPECS[pid].type is PropertyType.BINARY_DATA and isinstance(value, bytearray | memoryview):
        return bytes(value)
    return value


class _Accessor(Generic[T]):
    """Attribute access to one property of a :class:`Properties`."""

    __slots__ = ("pid",)

    def __init__(self, pid: PropertyId) -> None:
        self.pid = pid

    @overload
    def __get__(self, obj: None, owner: type[Properties]) -> _Accessor[T]: ...
    @overload
    def __get__(self, obj: Properties, owner: type[Properties]) -> T: ...
    def __get__(self, obj: Properties | None, owner: type[Properties]) -> T | _Accessor[T]:
        if obj is None:
            return self
        value: T = obj._items.get(self.pid, _DEFAULTS.get(self.pid))  # type: ignore[assignment]
        return value


_DEFAULTS: dict[PropertyId, Any] = {PropertyId.USER_PROPERTY: (), PropertyId.SUBSCRIPTION_IDENTIFIER: ()}


class Properties(Mapping[PropertyId, Any]):
    """An immutable set of MQTT 5.0 properties.

    >>> p = Properties(content_type="application/json", user_property=[("k", "v")])
    >>> p.content_type, p.user_property, p.topic_alias
    ('application/json', (('k', 'v'),), None)
    """

    __slots__ = ("_encoded", "_items")
    _items: dict[PropertyId, Any]
    #: Encodings already computed, by context: a Properties object is immutable, so they stay valid.
    _encoded: dict[int, bytes] | None

    def __init__(
        self,
        items: Mapping[PropertyId, Any] | Iterable[tuple[PropertyId, Any]] | None = None,
        /,
        **kwargs: Any,
    ) -> None:
        d: dict[PropertyId, Any] = {}
        if items is not None:
            pairs = items.items() if isinstance(items, Mapping) else items
            for key, value in pairs:
                pid = PropertyId(key)
                d[pid] = _normalise(pid, value)
        for name, value in kwargs.items():
            try:
                pid = _BY_NAME[name]
            except KeyError:
                raise TypeError(f"unknown MQTT property {name!r}") from None
            if value is not None:
                d[pid] = _normalise(pid, value)
        object.__setattr__(self, "_items", d)
        object.__setattr__(self, "_encoded", None)

    @classmethod
    def _from_dict(cls, d: dict[PropertyId, Any]) -> Properties:
        p = object.__new__(cls)
        object.__setattr__(p, "_items", d)
        object.__setattr__(p, "_encoded", None)
        return p

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Properties are immutable; use replace()")

    def __getitem__(self, key: PropertyId) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[PropertyId]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Properties):
            return self._items == other._items
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{PROPERTY_SPECS[k].name}={v!r}" for k, v in self._items.items())
        return f"Properties({inner})"

    def replace(self, **kwargs: Any) -> Properties:
        """A copy with the named properties set (``None`` removes one)."""
        d = dict(self._items)
        for name, value in kwargs.items():
            try:
                pid = _BY_NAME[name]
            except KeyError:
                raise TypeError(f"unknown MQTT property {name!r}") from None
            if value is None:
                d.pop(pid, None)
            else:
                d[pid] = _normalise(pid, value)
        return Properties._from_dict(d)

    def without(self, *pids: PropertyId) -> Properties:
        """A copy without the given properties."""
        if not any(p in self._items for p in pids):
            return self
        return Properties._from_dict({k: v for k, v in self._items.items() if k not in pids})

    def as_dict(self) -> dict[str, Any]:
        """Property names to values, for display and JSON (binary values stay bytes)."""
        return {PROPERTY_SPECS[k].name: v for k, v in self._items.items()}

    payload_format_indicator: _Accessor[int | None] = _Accessor(PropertyId.PAYLOAD_FORMAT_INDICATOR)
    message_expiry_interval: _Accessor[int | None] = _Accessor(PropertyId.MESSAGE_EXPIRY_INTERVAL)
    content_type: _Accessor[str | None] = _Accessor(PropertyId.CONTENT_TYPE)
    response_topic: _Accessor[str | None] = _Accessor(PropertyId.RESPONSE_TOPIC)
    correlation_data: _Accessor[bytes | None] = _Accessor(PropertyId.CORRELATION_DATA)
    subscription_identifier: _Accessor[tuple[int, ...]] = _Accessor(PropertyId.SUBSCRIPTION_IDENTIFIER)
    session_expiry_interval: _Accessor[int | None] = _Accessor(PropertyId.SESSION_EXPIRY_INTERVAL)
    assigned_client_identifier: _Accessor[str | None] = _Accessor(PropertyId.ASSIGNED_CLIENT_IDENTIFIER)
    server_keep_alive: _Accessor[int | None] = _Accessor(PropertyId.SERVER_KEEP_ALIVE)
    authentication_method: _Accessor[str | None] = _Accessor(PropertyId.AUTHENTICATION_METHOD)
    authentication_data: _Accessor[bytes | None] = _Accessor(PropertyId.AUTHENTICATION_DATA)
    request_problem_information: _Accessor[int | None] = _Accessor(PropertyId.REQUEST_PROBLEM_INFORMATION)
    will_delay_interval: _Accessor[int | None] = _Accessor(PropertyId.WILL_DELAY_INTERVAL)
    request_response_information: _Accessor[int | None] = _Accessor(PropertyId.REQUEST_RESPONSE_INFORMATION)
    response_information: _Accessor[str | None] = _Accessor(PropertyId.RESPONSE_INFORMATION)
    server_reference: _Accessor[str | None] = _Accessor(PropertyId.SERVER_REFERENCE)
    reason_string: _Accessor[str | None] = _Accessor(PropertyId.REASON_STRING)
    receive_maximum: _Accessor[int | None] = _Accessor(PropertyId.RECEIVE_MAXIMUM)
    topic_alias_maximum: _Accessor[int | None] = _Accessor(PropertyId.TOPIC_ALIAS_MAXIMUM)
    topic_alias: _Accessor[int | None] = _Accessor(PropertyId.TOPIC_ALIAS)
    maximum_qos: _Accessor[int | None] = _Accessor(PropertyId.MAXIMUM_QOS)
    retain_available: _Accessor[int | None] = _Accessor(PropertyId.RETAIN_AVAILABLE)
    user_property: _Accessor[tuple[tuple[str, str], ...]] = _Accessor(PropertyId.USER_PROPERTY)
    maximum_packet_size: _Accessor[int | None] = _Accessor(PropertyId.MAXIMUM_PACKET_SIZE)
    wildcard_subscription_available: _Accessor[int | None] = _Accessor(PropertyId.WILDCARD_SUBSCRIPTION_AVAILABLE)
    subscription_identifier_available: _Accessor[int | None] = _Accessor(PropertyId.SUBSCRIPTION_IDENTIFIER_AVAILABLE)
    shared_subscription_available: _Accessor[int | None] = _Accessor(PropertyId.SHARED_SUBSCRIPTION_AVAILABLE)


#: The empty property set; the decoder returns this very object when a packet carries no properties.
EMPTY_PROPERTIES = Properties()


# ---------------------------------------------------------------------------------------------------------------
# Encoding


def _encode_value(spec: PropertySpec, value: Any) -> bytes:
    t = spec.type
    if t is PropertyType.UTF8_STRING:
        if not isinstance(value, str):
            raise LocalProtocolError(f"property {spec.name} must be a string, not {type(value).__name__}")
        return encode_string(value, LocalProtocolError)
    if t is PropertyType.BINARY_DATA:
        if not isinstance(value, bytes | bytearray):
            raise LocalProtocolError(f"property {spec.name} must be bytes, not {type(value).__name__}")
        return encode_binary(value, LocalProtocolError)
    if isinstance(value, bool) or not isinstance(value, int):
        raise LocalProtocolError(f"property {spec.name} must be an integer, not {type(value).__name__}")
    low, high = spec.value_range or (0, _INT_MAX[t])
    if not low <= value <= high:
        raise LocalProtocolError(f"property {spec.name}={value} is outside {low}..{high}")
    if t is PropertyType.BYTE:
        return bytes((value,))
    if t is PropertyType.TWO_BYTE_INTEGER:
        return value.to_bytes(2, "big")
    if t is PropertyType.FOUR_BYTE_INTEGER:
        return value.to_bytes(4, "big")
    return encode_varint(value)


def encode_properties(props: Properties, context: PropertyContext) -> bytes:
    """The property block (length prefix included) of ``props`` for a packet of type ``context``.

    Raises:
        LocalProtocolError: a property that may not appear in ``context``, or a value of the wrong type or range.
    """
    items = props._items
    if not items:
        return b"\x00"
    cache = props._encoded
    if cache is not None:
        encoded = cache.get(context)
        if encoded is not None:
            return encoded
    encoded = _encode_properties(items, context)
    if cache is None:
        object.__setattr__(props, "_encoded", {context: encoded})
    else:
        cache[context] = encoded
    return encoded


def _encode_properties(items: dict[PropertyId, Any], context: PropertyContext) -> bytes:
    parts: list[bytes] = []
    for pid, value in items.items():
        spec = PROPERTY_SPECS[pid]
        if context not in spec.contexts:
            raise LocalProtocolError(f"property {spec.name} is not allowed in {_context_name(context)}")
        if pid is PropertyId.RESPONSE_TOPIC and isinstance(value, str) and (not value or "+" in value or "#" in value):
            raise LocalProtocolError(f"response topic {value!r} must be a topic name without wildcards")
        ident = bytes((pid,))
        if pid is PropertyId.USER_PROPERTY:
            for pair in value:
                if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(s, str) for s in pair)):
                    raise LocalProtocolError("user_property must be a sequence of (str, str) pairs")
                parts.append(ident)
                parts.append(encode_string(pair[0], LocalProtocolError))
                parts.append(encode_string(pair[1], LocalProtocolError))
        elif pid is PropertyId.SUBSCRIPTION_IDENTIFIER:
            for sub_id in value:
                parts.append(ident)
                parts.append(_encode_value(spec, sub_id))
        else:
            parts.append(ident)
            parts.append(_encode_value(spec, value))
    body = b"".join(parts)
    return encode_varint(len(body)) + body


def _context_name(context: PropertyContext) -> str:
    return "will properties" if context == WILL_PROPERTIES else PacketType(context).name


# ---------------------------------------------------------------------------------------------------------------
# Decoding


def decode_properties(
    buf: bytes, pos: int, end: int, context: PropertyContext, strict: bool = False
) -> tuple[Properties, int]:
    """Decode the property block at ``buf[pos:end]``; return the properties and the position after them.

    Raises:
        MalformedPacket: truncated block, unknown identifier, bad UTF-8.
        RemoteProtocolError: a property repeated or not allowed in ``context``, or a value out of range
            (0x82 Protocol Error, or the reason code the specification names for that property).
    """
    length, pos = decode_varint(buf, pos, end)
    if length == 0:
        return EMPTY_PROPERTIES, pos
    stop = pos + length
    if stop > end:
        raise MalformedPacket("property length exceeds the packet")
    d: dict[PropertyId, Any] = {}
    repeated: dict[PropertyId, list[Any]] = {}
    while pos < stop:
        ident = buf[pos]
        pos += 1
        spec = _BY_INT.get(ident)
        if spec is None:
            raise MalformedPacket(f"unknown property identifier 0x{ident:02X}")
        pid = spec.id
        t = spec.type
        value: Any
        if t is PropertyType.BYTE:
            if pos + 1 > stop:
                raise MalformedPacket(f"property {spec.name} is truncated")
            value = buf[pos]
            pos += 1
        elif t is PropertyType.TWO_BYTE_INTEGER:
            if pos + 2 > stop:
                raise MalformedPacket(f"property {spec.name} is truncated")
            value = (buf[pos] << 8) | buf[pos + 1]
            pos += 2
        elif t is PropertyType.FOUR_BYTE_INTEGER:
            if pos + 4 > stop:
                raise MalformedPacket(f"property {spec.name} is truncated")
            value = int.from_bytes(buf[pos : pos + 4], "big")
            pos += 4
        elif t is PropertyType.VARIABLE_BYTE_INTEGER:
            value, pos = decode_varint(buf, pos, stop)
        elif t is PropertyType.UTF8_STRING:
            value, pos = decode_string(buf, pos, stop, strict)
        elif t is PropertyType.BINARY_DATA:
            value, pos = decode_binary(buf, pos, stop)
        else:
            key, pos = decode_string(buf, pos, stop, strict)
            val, pos = decode_string(buf, pos, stop, strict)
            value = (key, val)
        if context not in spec.contexts:
            # MQTT 5.0 section 2.2.2.2: an identifier not valid for the packet type is a Malformed Packet.
            raise MalformedPacket(f"property {spec.name} is not allowed in {_context_name(context)}")
        if spec.value_range is not None and not spec.value_range[0] <= value <= spec.value_range[1]:
            raise RemoteProtocolError(f"property {spec.name} has the invalid value {value}", spec.range_reason)
        if pid is PropertyId.USER_PROPERTY or pid is PropertyId.SUBSCRIPTION_IDENTIFIER:
            if pid in repeated:
                repeated[pid].append(value)
            else:
                repeated[pid] = [value]
                d[pid] = None  # keeps the first appearance's place in the order
        elif pid in d:
            raise RemoteProtocolError(f"property {spec.name} appears more than once")
        else:
            d[pid] = value
    if pos != stop:
        raise MalformedPacket("property block overruns its length")
    response_topic = d.get(PropertyId.RESPONSE_TOPIC)
    if response_topic is not None and ("+" in response_topic or "#" in response_topic or not response_topic):
        raise RemoteProtocolError(f"response topic {response_topic!r} is not a valid topic name")
    for pid, values in repeated.items():
        d[pid] = tuple(values)
    return Properties._from_dict(d), pos
