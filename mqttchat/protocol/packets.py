"""Every MQTT 3.1.1 and 5.0 control packet as an immutable object that encodes and decodes itself.

A packet does not know the protocol version of the connection it travels on (only CONNECT names it), so
``encode(version)`` and ``decode(..., version)`` take it. Encoding for MQTT 3.1.1 leaves out what 3.1.1 cannot
carry (properties, reason codes of acknowledgements, subscription options beyond QoS) and maps reason codes to
3.1.1 return codes, so a broker can forward a 5.0 message to a 3.1.1 subscriber as the specification intends.

Decoders work on ``buf[pos:end]``, the body of one whole packet whose fixed header has been read (see
:mod:`mqttchat.protocol.reader`), and raise only :class:`RemoteProtocolError` and its subclasses.
"""

from __future__ import annotations

from typing import ClassVar

from mqttchat.protocol.cache import BoundedCache
from mqttchat.protocol.constants import MAX_PACKET_ID, PacketType, ProtocolVersion, RetainHandling
from mqttchat.protocol.errors import (
    LocalProtocolError,
    MalformedPacket,
    RemoteProtocolError,
    UnsupportedProtocolVersion,
)
from mqttchat.protocol.fastinit import builder, dataclass
from mqttchat.protocol.properties import (
    EMPTY_PROPERTIES,
    WILL_PROPERTIES,
    Properties,
    decode_properties,
    encode_properties,
)
from mqttchat.protocol.reason_codes import (
    CONNACK_V311_TO_V5,
    VALID_REASON_CODES,
    ReasonCode,
    connack_code_v311,
    suback_code_v311,
)
from mqttchat.protocol.topics import topic_filter_problem, topic_name_problem
from mqttchat.protocol.wire import (
    check_text,
    decode_binary,
    decode_string,
    decode_u16,
    encode_binary,
    encode_string,
    encode_varint,
    has_control_character,
)

V5 = 5
_REASON_BY_INT: dict[int, ReasonCode] = {int(rc): rc for rc in ReasonCode}


def fixed_header(first_byte: int, remaining_length: int) -> bytes:
    """The fixed header: packet type and flags, then the remaining length as a variable byte integer."""
    if remaining_length < 128:
        return bytes((first_byte, remaining_length))
    return bytes((first_byte,)) + encode_varint(remaining_length)


def _check_packet_id(packet_id: int | None, what: str) -> int:
    if packet_id is None or not 0 < packet_id <= MAX_PACKET_ID:
        raise LocalProtocolError(f"{what} needs a packet identifier in 1..65535, not {packet_id!r}")
    return packet_id


def _read_packet_id(buf: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    packet_id, pos = decode_u16(buf, pos, end, f"{what} packet identifier")
    if packet_id == 0:
        raise RemoteProtocolError(f"{what} has packet identifier 0")
    return packet_id, pos


def _reason(code: int, packet_type: PacketType) -> ReasonCode:
    rc = _REASON_BY_INT.get(code)
    if rc is None or rc not in VALID_REASON_CODES[packet_type]:
        raise MalformedPacket(f"reason code 0x{code:02X} is not valid in {packet_type.name}")
    return rc


def _check_reason(code: ReasonCode, packet_type: PacketType) -> None:
    if code not in VALID_REASON_CODES[packet_type]:
        raise LocalProtocolError(f"reason code {ReasonCode(code)!s} may not be sent in {packet_type.name}")


def _no_trailing(pos: int, end: int, what: str) -> None:
    if pos != end:
        raise MalformedPacket(f"{what} has {end - pos} unexpected trailing bytes")


class Packet:
    """Base of all control packets."""

    __slots__ = ()
    TYPE: ClassVar[PacketType]

    def encode(self, version: int = V5) -> bytes:
        raise NotImplementedError

    @classmethod
    def decode(cls, flags: int, buf: bytes, pos: int, end: int, version: int, strict: bool = False) -> Packet:
        raise NotImplementedError


# -------------------------------------------------------------------------------------------------------- CONNECT


@dataclass(frozen=True, slots=True)
class Will:
    """The will message of a CONNECT: published by the server when the connection ends uncleanly."""

    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    properties: Properties = EMPTY_PROPERTIES


@dataclass(frozen=True, slots=True)
class Connect(Packet):
    """CONNECT (3.1). ``protocol_version`` 3 is MQTT 3.1 (protocol name ``MQIsdp``), decoded to be refused."""

    TYPE: ClassVar[PacketType] = PacketType.CONNECT
    client_id: str = ""
    clean_start: bool = True
    keep_alive: int = 60
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None
    properties: Properties = EMPTY_PROPERTIES
    protocol_version: int = ProtocolVersion.MQTT_5

    @property
    def protocol_name(self) -> str:
        return "MQIsdp" if self.protocol_version == ProtocolVersion.MQTT_3_1 else "MQTT"

    def encode(self, version: int | None = None) -> bytes:
        """Encode with the packet's own ``protocol_version`` (the argument is ignored)."""
        v = self.protocol_version
        if v not in (3, 4, 5):
            raise LocalProtocolError(f"protocol level {v} is not one mqttchat can send")
        if not 0 <= self.keep_alive <= 0xFFFF:
            raise LocalProtocolError(f"keep alive {self.keep_alive} is outside 0..65535")
        if v != V5 and not self.client_id and not self.clean_start:
            raise LocalProtocolError("MQTT 3.1.1 requires clean session for an empty client identifier")
        flags = 0x02 if self.clean_start else 0
        if self.username is not None:
            flags |= 0x80
        if self.password is not None:
            if self.username is None and v != V5:
                raise LocalProtocolError("MQTT 3.1.1 does not allow a password without a user name")
            flags |= 0x40
        will = self.will
        if will is not None:
            if will.qos not in (0, 1, 2):
                raise LocalProtocolError(f"will QoS {will.qos} is not 0, 1 or 2")
            problem = topic_name_problem(will.topic)
            if problem:
                raise LocalProtocolError(f"will topic: {problem}")
            flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        parts = [
            encode_string(self.protocol_name),
            bytes((v, flags)),
            self.keep_alive.to_bytes(2, "big"),
        ]
        if v == V5:
            if self.properties.authentication_data is not None and self.properties.authentication_method is None:
                raise LocalProtocolError("authentication data needs an authentication method")
            parts.append(encode_properties(self.properties, PacketType.CONNECT))
        parts.append(encode_string(self.client_id))
        if will is not None:
            if v == V5:
                parts.append(encode_properties(will.properties, WILL_PROPERTIES))
            parts.append(encode_string(will.topic))
            parts.append(encode_binary(will.payload))
        if self.username is not None:
            parts.append(encode_string(self.username))
        if self.password is not None:
            parts.append(encode_binary(self.password))
        body = b"".join(parts)
        return fixed_header(0x10, len(body)) + body

    @classmethod
    def decode(cls, flags: int, buf: bytes, pos: int, end: int, version: int, strict: bool = False) -> Connect:
        name, pos = decode_string(buf, pos, end)
        if pos >= end:
            raise MalformedPacket("CONNECT is truncated after the protocol name")
        level = buf[pos]
        pos += 1
        if (name, level) not in (("MQTT", 4), ("MQTT", 5), ("MQIsdp", 3)):
            raise UnsupportedProtocolVersion(f"protocol {name!r} level {level} is not supported", level)
        try:
            return cls._decode_rest(buf, pos, end, level, strict)
        except RemoteProtocolError as exc:
            exc.protocol_level = level  # so a broker knows whether to answer with a 5.0 CONNACK or just close
            raise

    @classmethod
    def _decode_rest(cls, buf: bytes, pos: int, end: int, level: int, strict: bool) -> Connect:
        if pos >= end:
            raise MalformedPacket("CONNECT is truncated before the connect flags")
        cflags = buf[pos]
        pos += 1
        if cflags & 0x01:
            raise MalformedPacket("the reserved connect flag is set")
        will_flag = bool(cflags & 0x04)
        will_qos = (cflags >> 3) & 0x03
        will_retain = bool(cflags & 0x20)
        if will_qos == 3:
            raise MalformedPacket("will QoS is 3")
        if not will_flag and (will_qos or will_retain):
            raise MalformedPacket("will QoS or will retain set without the will flag")
        has_user = bool(cflags & 0x80)
        has_password = bool(cflags & 0x40)
        if has_password and not has_user and level != V5:
            raise RemoteProtocolError("password flag set without user name flag")
        keep_alive, pos = decode_u16(buf, pos, end, "keep alive")
        props = EMPTY_PROPERTIES
        if level == V5:
            props, pos = decode_properties(buf, pos, end, PacketType.CONNECT, strict)
            if props.authentication_data is not None and props.authentication_method is None:
                raise RemoteProtocolError("authentication data without an authentication method")
        client_id, pos = decode_string(buf, pos, end, strict)
        will = None
        if will_flag:
            will_props = EMPTY_PROPERTIES
            if level == V5:
                will_props, pos = decode_properties(buf, pos, end, WILL_PROPERTIES, strict)
            will_topic, pos = decode_string(buf, pos, end, strict)
            problem = topic_name_problem(will_topic, strict)
            if problem:
                raise RemoteProtocolError(f"will topic: {problem}", ReasonCode.TOPIC_NAME_INVALID)
            if has_control_character(will_topic):
                raise MalformedPacket("the will topic contains a control character")
            will_payload, pos = decode_binary(buf, pos, end)
            will = Will(will_topic, will_payload, will_qos, will_retain, will_props)
        username = None
        password = None
        if has_user:
            username, pos = decode_string(buf, pos, end, strict)
        if has_password:
            password, pos = decode_binary(buf, pos, end)
        _no_trailing(pos, end, "CONNECT")
        return cls(client_id, bool(cflags & 0x02), keep_alive, username, password, will, props, level)


@dataclass(frozen=True, slots=True)
class ConnAck(Packet):
    """CONNACK (3.2). For MQTT 3.1.1 the reason code maps to and from the six return codes."""

    TYPE: ClassVar[PacketType] = PacketType.CONNACK
    session_present: bool = False
    reason_code: ReasonCode = ReasonCode.SUCCESS
    properties: Properties = EMPTY_PROPERTIES

    def encode(self, version: int = V5) -> bytes:
        if self.session_present and self.reason_code != ReasonCode.SUCCESS:
            raise LocalProtocolError("a refusing CONNACK must not claim a session is present")
        if version == V5:
            _check_reason(self.reason_code, PacketType.CONNACK)
            body = bytes((int(self.session_present), self.reason_code)) + encode_properties(
                self.properties, PacketType.CONNACK
            )
        else:
            body = bytes((int(self.session_present), connack_code_v311(self.reason_code)))
        return fixed_header(0x20, len(body)) + body

    @classmethod
    def decode(cls, flags: int, buf: bytes, pos: int, end: int, version: int, strict: bool = False) -> ConnAck:
        if end - pos < 2:
            raise MalformedPacket("CONNACK is shorter than 2 bytes")
        ack_flags = buf[pos]
        if ack_flags & 0xFE:
            raise MalformedPacket("CONNACK reserved acknowledge flags are set")
        code = buf[pos + 1]
        pos += 2
        props = EMPTY_PROPERTIES
        if version == V5 and code == 0x01 and pos == end:
            # A server that speaks only 3.1.1 answers a 5.0 CONNECT with a 3.1.1 CONNACK "unacceptable protocol
            # version" (return code 1, no properties), as MQTT 5.0 section 3.1.2.2 allows.
            reason = ReasonCode.UNSUPPORTED_PROTOCOL_VERSION
        elif version == V5:
            reason = _reason(code, PacketType.CONNACK)
            props, pos = decode_properties(buf, pos, end, PacketType.CONNACK, strict)
        else:
            v311 = CONNACK_V311_TO_V5.get(code)
            if v311 is None:
                raise MalformedPacket(f"CONNACK return code {code} is reserved")
            reason = v311
        if ack_flags and reason != ReasonCode.SUCCESS:
            raise RemoteProtocolError("a refusing CONNACK claims a session is present")
        _no_trailing(pos, end, "CONNACK")
        return cls(bool(ack_flags), reason, props)


# -------------------------------------------------------------------------------------------------------- PUBLISH

# Topic name → its length-prefixed UTF-8 encoding, for topics already validated; raw topic bytes → topic, for
# topics already validated and free of control characters (so that a hit serves the lenient and the server-side
# decoding alike). Both are keyed by what peers send: bounded in bytes, long topics not cached (protocol.cache).
_TOPIC_ENCODED: BoundedCache[str, bytes] = BoundedCache(4096, 2 * 1024 * 1024)
_TOPIC_DECODED: BoundedCache[bytes, str] = BoundedCache(4096, 2 * 1024 * 1024)
_topic_encoded = _TOPIC_ENCODED.entries.get
_topic_decoded = _TOPIC_DECODED.entries.get


def _encode_topic_name(topic: str) -> bytes:
    encoded = _topic_encoded(topic)
    if encoded is None:
        problem = topic_name_problem(topic)
        if problem:
            raise LocalProtocolError(problem)
        encoded = encode_string(topic)
        _TOPIC_ENCODED.put(topic, encoded, len(encoded))
    return encoded


def encoded_topic_name(topic: str) -> bytes:
    """The length-prefixed UTF-8 encoding of topic name ``topic`` (cached), for senders that build PUBLISH bytes
    themselves.

    Raises:
        LocalProtocolError: ``topic`` is not a valid topic name (empty, a wildcard, U+0000, too long...).
    """
    if not topic:
        raise LocalProtocolError("a PUBLISH needs a topic name")
    return _encode_topic_name(topic)


@dataclass(frozen=True, slots=True)
class Publish(Packet):
    """PUBLISH (3.3). ``packet_id`` is None for QoS 0. An empty ``topic`` is valid only with a topic alias."""

    TYPE: ClassVar[PacketType] = PacketType.PUBLISH
    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None
    properties: Properties = EMPTY_PROPERTIES

    def encode(self, version: int = V5) -> bytes:
        qos = self.qos
        topic = self.topic
        if topic:
            head = _encode_topic_name(topic)
        elif version == V5 and self.properties.topic_alias is not None:
            head = b"\x00\x00"
        else:
            raise LocalProtocolError("a PUBLISH needs a topic name (or, in MQTT 5, a topic alias)")
        if qos:
            if qos not in (1, 2):
                raise LocalProtocolError(f"QoS {qos} is not 0, 1 or 2")
            pid = self.packet_id
            if pid is None or not 0 < pid <= MAX_PACKET_ID:
                _check_packet_id(pid, f"a QoS {qos} PUBLISH")
            head += pid.to_bytes(2, "big")  # type: ignore[union-attr]
        elif self.dup:
            raise LocalProtocolError("DUP must be 0 for a QoS 0 PUBLISH")
        if version == V5:
            props = self.properties
            head += b"\x00" if props is EMPTY_PROPERTIES else encode_properties(props, PacketType.PUBLISH)
        payload = self.payload
        first = 0x30 | (qos << 1) | (0x08 if self.dup else 0) | (0x01 if self.retain else 0)
        remaining = len(head) + len(payload)
        if remaining < 128:
            return bytes((first, remaining)) + head + payload
        return fixed_header(first, remaining) + head + payload

    @classmethod
    def decode(
        cls, flags: int, buf: bytes, pos: int, end: int, version: int, strict: bool = False, server: bool = False
    ) -> Publish:
        """``server``: the packet comes from a client; a topic name with a control character is then malformed."""
        qos = (flags >> 1) & 0x03
        if qos == 3:
            raise MalformedPacket("PUBLISH with QoS 3")
        dup = bool(flags & 0x08)
        if dup and not qos:
            raise MalformedPacket("PUBLISH with QoS 0 has the DUP flag set")
        if pos + 2 > end:
            raise MalformedPacket("PUBLISH topic length is truncated")
        stop = pos + 2 + ((buf[pos] << 8) | buf[pos + 1])
        if stop > end:
            raise MalformedPacket("PUBLISH topic is longer than the packet")
        topic: str | None
        if stop == pos + 2 and version == V5:
            topic = ""  # an aliased PUBLISH: checked against its properties below
        else:
            raw = buf[pos + 2 : stop]
            topic = None if strict else _topic_decoded(raw)
            if topic is None:
                topic = _decode_topic_name(raw, version, strict, server)
        pos = stop
        packet_id = None
        if qos:
            if pos + 2 > end:
                raise MalformedPacket("PUBLISH packet identifier is truncated")
            packet_id = (buf[pos] << 8) | buf[pos + 1]
            if not packet_id:
                raise RemoteProtocolError("PUBLISH has packet identifier 0")
            pos += 2
        props = EMPTY_PROPERTIES
        if version == V5:
            if pos < end and buf[pos] == 0:
                pos += 1
            elif pos + 4 <= end and buf[pos] == 3 and buf[pos + 1] == 0x23:
                # Only a Topic Alias, as a client using aliases sends on every message: one shared object each.
                alias = (buf[pos + 2] << 8) | buf[pos + 3]
                props = _ALIAS_PROPERTIES.get(alias) or _alias_only(alias)
                pos += 4
            else:
                props, pos = decode_properties(buf, pos, end, PacketType.PUBLISH, strict)
            if not topic and props.topic_alias is None:
                raise RemoteProtocolError("PUBLISH has an empty topic name and no topic alias")
        return _new_publish(topic, buf[pos:end], qos, bool(flags & 0x01), dup, packet_id, props)


_ALIAS_PROPERTIES: dict[int, Properties] = {}
#: Aliases above this get Properties of their own each time: a peer sending every alias up to 65,535 (which the
#: decoder sees before the alias maximum is checked) would otherwise leave 22 MB of them here.
_ALIAS_CACHED_UP_TO = 1024


def _alias_only(alias: int) -> Properties:
    if alias == 0:
        raise RemoteProtocolError("topic alias 0", ReasonCode.TOPIC_ALIAS_INVALID)
    props = Properties(topic_alias=alias)
    if alias <= _ALIAS_CACHED_UP_TO:
        _ALIAS_PROPERTIES[alias] = props
    return props


def alias_properties(alias: int) -> Properties:
    """The shared Properties holding only Topic Alias ``alias`` (their encoding is cached on first use)."""
    return _ALIAS_PROPERTIES.get(alias) or _alias_only(alias)


def _decode_topic_name(raw: bytes, version: int, strict: bool, server: bool) -> str:
    if b"\x00" in raw:
        raise MalformedPacket("PUBLISH topic contains U+0000")
    try:
        topic = raw.decode()
    except UnicodeDecodeError as exc:
        raise MalformedPacket(f"PUBLISH topic is not well-formed UTF-8 ({exc.reason})") from None
    if topic:
        if "+" in topic or "#" in topic:
            raise RemoteProtocolError(f"topic name {topic!r} contains a wildcard", ReasonCode.TOPIC_NAME_INVALID)
        if has_control_character(topic):
            # MQTT 1.5.4: such a string SHOULD NOT be sent and MAY be treated as malformed. A server does (as
            # mosquitto does): routed on, it would reach every subscriber's screen and log. A client accepts it
            # (from a broker we did not write) and leaves it to the screen to neutralise; it is never cached.
            if strict or server:
                raise MalformedPacket("PUBLISH topic name contains a control character")
        elif strict:
            if check_text(topic, strict):
                raise MalformedPacket("PUBLISH topic contains a Unicode non-character")
        else:
            _TOPIC_DECODED.put(raw, topic, 2 * len(raw))
    elif version != V5:
        raise RemoteProtocolError("PUBLISH has an empty topic name", ReasonCode.TOPIC_NAME_INVALID)
    return topic


#: A Publish from its fields in order (topic, payload, qos, retain, dup, packet_id, properties), built without
#: ``__init__`` (which checks nothing either): the decoder's and the senders' hot path.
build_publish = builder(Publish)
_new_publish = build_publish


# ---------------------------------------------------------------------------------- PUBACK PUBREC PUBREL PUBCOMP


@dataclass(frozen=True, slots=True)
class _Ack(Packet):
    """The four QoS acknowledgements share one layout: packet id, then (MQTT 5) reason code and properties."""

    FIRST_BYTE: ClassVar[int]
    packet_id: int
    reason_code: ReasonCode = ReasonCode.SUCCESS
    properties: Properties = EMPTY_PROPERTIES

    def encode(self, version: int = V5) -> bytes:
        pid = self.packet_id
        if pid is None or not 0 < pid <= MAX_PACKET_ID:
            _check_packet_id(pid, self.TYPE.name)  # raises; the name is looked up only for the message
        first = self.FIRST_BYTE
        if version != V5 or (self.reason_code == 0 and not self.properties):
            return bytes((first, 2, pid >> 8, pid & 0xFF))
        _check_reason(self.reason_code, self.TYPE)
        if not self.properties:
            return bytes((first, 3, pid >> 8, pid & 0xFF, self.reason_code))
        body = bytes((pid >> 8, pid & 0xFF, self.reason_code)) + encode_properties(self.properties, self.TYPE)
        return fixed_header(first, len(body)) + body

    @classmethod
    def decode(cls, flags: int, buf: bytes, pos: int, end: int, version: int, strict: bool = False) -> _Ack:
        if end - pos == 2:  # the common short form: just the packet identifier
            pid = (buf[pos] << 8) | buf[pos + 1]
            if pid:
                return cls(pid)
        name = cls.TYPE.name
        if end - pos < 2:
            raise MalformedPacket(f"{name} is shorter than 2 bytes")
        pid = (buf[pos] << 8) | buf[pos + 1]
        if not pid:
            raise RemoteProtocolError(f"{name} has packet identifier 0")
        pos += 2
        if version != V5:
            raise MalformedPacket(f"an MQTT 3.1.1 {name} must be 2 bytes long")
        reason = _reason(buf[pos], cls.TYPE)
        pos += 1
        props = EMPTY_PROPERTIES
        if pos < end:
            props, pos = decode_properties(buf, pos, end, cls.TYPE, strict)
            _no_trailing(pos, end, name)
        return cls(pid, reason, props)


@dataclass(frozen=True, slots=True)
class PubAck(_Ack):
    """PUBACK (3.4): the end of a QoS 1 flow."""

    TYPE: ClassVar[PacketType] = PacketType.PUBACK
    FIRST_BYTE: ClassVar[int] = 0x40


@dataclass(frozen=True, slots=True)
class PubRec(_Ack):
    """PUBREC (3.5): QoS 2 part 1; a failure reason code ends the flow."""

    TYPE: ClassVar[PacketType] = PacketType.PUBREC
    FIRST_BYTE: ClassVar[int] = 0x50


@dataclass(frozen=True, slots=True)
class PubRel(_Ack):
    """PUBREL (3.6): QoS 2 part 2."""

    TYPE: ClassVar[PacketType] = PacketType.PUBREL
    FIRST_BYTE: ClassVar[int] = 0x62


@dataclass(frozen=True, slots=True)
class PubComp(_Ack):
    """PUBCOMP (3.7): QoS 2 part 3, the end of the flow."""

    TYPE: ClassVar[PacketType] = PacketType.PUBCOMP
    FIRST_BYTE: ClassVar[int] = 0x70


# ---------------------------------------------------------------------------------------------- SUBSCRIBE / ACK


@dataclass(frozen=True, slots=True)
class Subscription:
    """One topic filter of a SUBSCRIBE with its options (3.8.3.1)."""

    topic_filter: str
    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: RetainHandling = RetainHandling.SEND_ON_SUBSCRIBE

    def options_byte(self, version: int) -> int:
        if version != V5:
            return self.qos
        return (
            self.qos
            | (0x04 if self.no_local else 0)
            | (0x08 if self.retain_as_published else 0)
            | (int(self.retain_handling) << 4)
        )


@dataclass(frozen=True, slots=True)
class Subscribe(Packet):
    """SUBSCRIBE (3.8)."""

    TYPE: ClassVar[PacketType] = PacketType.SUBSCRIBE
    packet_id: int
    subscriptions: tuple[Subscription, ...]
    properties: Properties = EMPTY_PROPERTIES

    def encode(self, version: int = V5) -> bytes:
        pid = _check_packet_id(self.packet_id, "SUBSCRIBE")
        if not self.subscriptions:
            raise LocalProtocolError("SUBSCRIBE needs at least one topic filter")
        parts = [pid.to_bytes(2, "big")]
        if version == V5:
            if len(self.properties.subscription_identifier) > 1:
                raise LocalProtocolError("SUBSCRIBE carries at most one subscription identifier")
            parts.append(encode_properties(self.properties, PacketType.SUBSCRIBE))
        for sub in self.subscriptions:
            problem = topic_filter_problem(sub.topic_filter)
            if problem:
                raise LocalProtocolError(problem)
            if sub.qos not in (0, 1, 2):
                raise LocalProtocolError(f"subscription QoS {sub.qos} is not 0, 1 or 2")
            if sub.retain_handling not in (0, 1, 2):
                raise LocalProtocolError(f"retain handling {sub.retain_handling} is not 0, 1 or 2")
            if version == V5 and sub.no_local and sub.topic_filter.startswith("$share/"):
                raise LocalProtocolError("no local may not be set on a shared subscription")
            parts.append(encode_string(sub.topic_filter))
            parts.append(bytes((sub.options_byte(version),)))
        body = b"".join(parts)
        return fixed_header(0x82, len(body)) + body

    @classmethod
    def decode(cls, flags: int, buf: bytes, pos: int, end: int, version: int, strict: bool = False) -> Subscribe:
        pid, pos = _read_packet_id(buf, pos, end, "SUBSCRIBE")
        props = EMPTY_PROPERTIES
        if version == V5:
            props, pos = decode_properties(buf, pos, end, PacketType.SUBSCRIBE, strict)
            if len(props.subscription_identifier) > 1:
                raise RemoteProtocolError("SUBSCRIBE carries more than one subscription identifier")
        subs: list[Subscription] = []
        while pos < end:
            topic_filter, pos = decode_string(buf, pos, end, strict)
            if pos >= end:
                raise MalformedPacket("SUBSCRIBE topic filter has no options byte")
            options = buf[pos]
            pos += 1
            qos = options & 0x03
            if qos == 3:
                if version == V5:  # MQTT 5.0 section 3.8.3.1: a Protocol Error; in 3.1.1, malformed
                    raise RemoteProtocolError("subscription QoS is 3")
                raise MalformedPacket("subscription QoS is 3")
            if version == V5:
                if options & 0xC0:
                    raise MalformedPacket("reserved subscription option bits are set")
                retain_handling = (options >> 4) & 0x03
                if retain_handling == 3:
                    raise RemoteProtocolError("retain handling is 3")
                no_local = bool(options & 0x04)
                rap = bool(options & 0x08)
            else:
                if options & 0xFC:
                    raise MalformedPacket("reserved subscription option bits are set")
                retain_handling, no_local, rap = 0, False, False
            problem = topic_filter_problem(topic_filter, strict)
            if problem:
                raise RemoteProtocolError(problem, ReasonCode.TOPIC_FILTER_INVALID)
            if has_control_character(topic_filter):
                raise MalformedPacket("SUBSCRIBE topic filter contains a control character")
            if no_local and topic_filter.startswith("$share/"):
                raise RemoteProtocolError("no local is set on a shared subscription")
            subs.append(Subscription(topic_filter, qos, no_local, rap, RetainHandling(retain_handling)))
        if not subs:
            raise RemoteProtocolError("SUBSCRIBE has no topic filter")
        return cls(pid, tuple(subs), props)


@dataclass(frozen=True, slots=True)
class SubAck(Packet):
    """SUBACK (3.9): one reason code per topic filter, in order (3.1.1: granted QoS or 0x80)."""

    TYPE: ClassVar[PacketType] = PacketType.SUBACK
    packet_id: int
    reason_codes: tuple[ReasonCode, ...]
    properties: Properties = EMPTY_PROPERTIES

    def encode(self, version: int = V5) -> bytes:
        pid = _check_packet_id(self.packet_id, "SUBACK")
        if version == V5:
            for rc in self.reason_codes:
                _check_reason(rc, PacketType.SUBACK)
            body = (
                pid.to_bytes(2, "big")
                + encode_properties(self.properties, PacketType.SUBACK)
                + bytes(int(rc) for rc in self.reason_codes)
            )
        else:
            body = pid.to_bytes(2, "big") + bytes(suback_code_v311(rc) for rc in self.reason_codes)
        return fixed_header(0x90, len(body)) + body

    @classmethod
    def decode(cls, flags: int, buf: bytes, pos: int, end: int, version: int, strict: bool = False) -> SubAck:
        pid, pos = _read_packet_id(buf, pos, end, "SUBACK")
        props = EMPTY_PROPERTIES
        if version == V5:
            props, pos = decode_properties(buf, pos, end, PacketType.SUBACK, strict)
            codes = tuple(_reason(c, PacketType.SUBACK) for c in buf[pos:end])
        else:
            out = []
            for c in buf[pos:end]:
                if c not in (0, 1, 2, 0x80):
                    raise MalformedPacket(f"SUBACK return code 0x{c:02X} is reserved")
                out.append(_REASON_BY_INT[c])
            codes = tuple(out)
        return cls(pid, codes, props)


@dataclass(frozen=True, slots=True)
class Unsubscribe(Packet):
    """UNSUBSCRIBE (3.10)."""

    TYPE: ClassVar[PacketType] = PacketType.UNSUBSCRIBE
    packet_id: int
    topic_filters: tuple[str, ...]
    properties: Properties = EMPTY_PROPERTIES

    def encode(self, version: int = V5) -> bytes:
        pid = _check_packet_id(self.packet_id, "UNSUBSCRIBE")
        if not self.topic_filters:
            raise LocalProtocolError("UNSUBSCRIBE needs at least one topic filter")
        parts = [pid.to_bytes(2, "big")]
        if version == V5:
            parts.append(encode_properties(self.properties, PacketType.UNSUBSCRIBE))
        for topic_filter in self.topic_filters:
            problem = topic_filter_problem(topic_filter)
            if problem:
                raise LocalProtocolError(problem)
            parts.append(encode_string(topic_filter))
        body = b"".join(parts)
        return fixed_header(0xA2, len(body)) + body

    @classmethod
    def decode(cls, flags: int, buf: bytes, pos: int, end: int, version: int, strict: bool = False) -> Unsubscribe:
        pid, pos = _read_packet_id(buf, pos, end, "UNSUBSCRIBE")
        props = EMPTY_PROPERTIES
        if version == V5:
            props, pos = decode_properties(buf, pos, end, PacketType.UNSUBSCRIBE, strict)
        filters: list[str] = []
        while pos < end:
            topic_filter, pos = decode_string(buf, pos, end, strict)
            problem = topic_filter_problem(topic_filter, strict)
            if problem:
                raise RemoteProtocolError(problem, ReasonCode.TOPIC_FILTER_INVALID)
            if has_control_character(topic_filter):
                raise MalformedPacket("UNSUBSCRIBE topic filter contains a control character")
            filters.append(topic_filter)
        if not filters:
            raise RemoteProtocolError("UNSUBSCRIBE has no topic filter")
        return cls(pid, tuple(filters), props)


@dataclass(frozen=True, slots=True)
class UnsubAck(Packet):
    """UNSUBACK (3.11). MQTT 3.1.1 carries no reason codes: ``reason_codes`` is then empty."""

    TYPE: ClassVar[PacketType] = PacketType.UNSUBACK
    packet_id: int
    reason_codes: tuple[ReasonCode, ...] = ()
    properties: Properties = EMPTY_PROPERTIES

    def encode(self, version: int = V5) -> bytes:
        pid = _check_packet_id(self.packet_id, "UNSUBACK")
        if version != V5:
            return bytes((0xB0, 2, pid >> 8, pid & 0xFF))
        for rc in self.reason_codes:
            _check_reason(rc, PacketType.UNSUBACK)
        body = (
            pid.to_bytes(2, "big")
            + encode_properties(self.properties, PacketType.UNSUBACK)
            + bytes(int(rc) for rc in self.reason_codes)
        )
        return fixed_header(0xB0, len(body)) + body

    @classmethod
    def decode(cls, flags: int, buf: bytes, pos: int, end: int, version: int, strict: bool = False) -> UnsubAck:
        pid, pos = _read_packet_id(buf, pos, end, "UNSUBACK")
        if version != V5:
            _no_trailing(pos, end, "UNSUBACK")
            return cls(pid)
        props, pos = decode_properties(buf, pos, end, PacketType.UNSUBACK, strict)
        codes = tuple(_reason(c, PacketType.UNSUBACK) for c in buf[pos:end])
        return cls(pid, codes, props)


# ------------------------------------------------------------------------------------ PINGREQ PINGRESP DISCONNECT AUTH


@dataclass(frozen=True, slots=True)
class PingReq(Packet):
    """PINGREQ (3.12)."""

    TYPE: ClassVar[PacketType] = PacketType.PINGREQ

    def encode(self, version: int = V5) -> bytes:
        return b"\xc0\x00"

    @classmethod
    def decode(cls, flags: int, buf: bytes, pos: int, end: int, version: int, strict: bool = False) -> PingReq:
        _no_trailing(pos, end, "PINGREQ")
        return _PINGREQ


@dataclass(frozen=True, slots=True)
class PingResp(Packet):
    """PINGRESP (3.13)."""

    TYPE: ClassVar[PacketType] = PacketType.PINGRESP

    def encode(self, version: int = V5) -> bytes:
        return b"\xd0\x00"

    @classmethod
    def decode(cls, flags: int, buf: bytes, pos: int, end: int, version: int, strict: bool = False) -> PingResp:
        _no_trailing(pos, end, "PINGRESP")
        return _PINGRESP


_PINGREQ = PingReq()
_PINGRESP = PingResp()


@dataclass(frozen=True, slots=True)
class Disconnect(Packet):
    """DISCONNECT (3.14). In MQTT 3.1.1 it has no body and only the client sends it."""

    TYPE: ClassVar[PacketType] = PacketType.DISCONNECT
    reason_code: ReasonCode = ReasonCode.SUCCESS
    properties: Properties = EMPTY_PROPERTIES

    def encode(self, version: int = V5) -> bytes:
        if version != V5 or (self.reason_code == 0 and not self.properties):
            return b"\xe0\x00"
        _check_reason(self.reason_code, PacketType.DISCONNECT)
        if not self.properties:
            return bytes((0xE0, 1, self.reason_code))
        body = bytes((self.reason_code,)) + encode_properties(self.properties, PacketType.DISCONNECT)
        return fixed_header(0xE0, len(body)) + body

    @classmethod
    def decode(cls, flags: int, buf: bytes, pos: int, end: int, version: int, strict: bool = False) -> Disconnect:
        if pos == end:
            return cls()
        if version != V5:
            raise MalformedPacket("an MQTT 3.1.1 DISCONNECT has no body")
        reason = _reason(buf[pos], PacketType.DISCONNECT)
        pos += 1
        props = EMPTY_PROPERTIES
        if pos < end:
            props, pos = decode_properties(buf, pos, end, PacketType.DISCONNECT, strict)
            _no_trailing(pos, end, "DISCONNECT")
        return cls(reason, props)


@dataclass(frozen=True, slots=True)
class Auth(Packet):
    """AUTH (3.15, MQTT 5.0 only): enhanced authentication exchange."""

    TYPE: ClassVar[PacketType] = PacketType.AUTH
    reason_code: ReasonCode = ReasonCode.SUCCESS
    properties: Properties = EMPTY_PROPERTIES

    def encode(self, version: int = V5) -> bytes:
        if version != V5:
            raise LocalProtocolError("AUTH exists only in MQTT 5.0")
        _check_reason(self.reason_code, PacketType.AUTH)
        if self.reason_code == 0 and not self.properties:
            return b"\xf0\x00"
        if self.properties.authentication_method is None:
            raise LocalProtocolError("AUTH needs an authentication method")
        body = bytes((self.reason_code,)) + encode_properties(self.properties, PacketType.AUTH)
        return fixed_header(0xF0, len(body)) + body

    @classmethod
    def decode(cls, flags: int, buf: bytes, pos: int, end: int, version: int, strict: bool = False) -> Auth:
        if version != V5:
            raise MalformedPacket("AUTH is not an MQTT 3.1.1 packet type")
        if pos == end:
            return cls()
        reason = _reason(buf[pos], PacketType.AUTH)
        pos += 1
        props = EMPTY_PROPERTIES
        if pos < end:
            props, pos = decode_properties(buf, pos, end, PacketType.AUTH, strict)
            _no_trailing(pos, end, "AUTH")
        elif reason != ReasonCode.SUCCESS:
            raise RemoteProtocolError("an AUTH with a reason code other than Success needs properties")
        if (reason != ReasonCode.SUCCESS or props) and props.authentication_method is None:
            raise RemoteProtocolError("AUTH without an authentication method")
        return cls(reason, props)


#: Packet classes by type; index 0 (reserved) is None.
PACKET_CLASSES: list[type[Packet] | None] = [None] * 16
for _cls in (
    Connect, ConnAck, Publish, PubAck, PubRec, PubRel, PubComp, Subscribe, SubAck, Unsubscribe, UnsubAck,
    PingReq, PingResp, Disconnect, Auth,
):  # fmt: skip
    PACKET_CLASSES[_cls.TYPE] = _cls

#: The flags each packet type must carry in the low nibble of the first byte (None: PUBLISH, flags vary).
REQUIRED_FLAGS: list[int | None] = [0] * 16
REQUIRED_FLAGS[PacketType.PUBLISH] = None
REQUIRED_FLAGS[PacketType.PUBREL] = 0x02
REQUIRED_FLAGS[PacketType.SUBSCRIBE] = 0x02
REQUIRED_FLAGS[PacketType.UNSUBSCRIBE] = 0x02


def with_packet_id(publish: Publish, packet_id: int | None, dup: bool) -> Publish:
    """A copy of ``publish`` with another packet identifier and DUP flag (faster than dataclasses.replace)."""
    return _new_publish(publish.topic, publish.payload, publish.qos, publish.retain, dup, packet_id, publish.properties)


def with_topic(publish: Publish, topic: str, properties: Properties) -> Publish:
    """A copy of ``publish`` with another topic and properties (for topic aliases)."""
    return _new_publish(topic, publish.payload, publish.qos, publish.retain, publish.dup, publish.packet_id, properties)


__all__ = [
    "PACKET_CLASSES",
    "Auth",
    "ConnAck",
    "Connect",
    "Disconnect",
    "Packet",
    "PingReq",
    "PingResp",
    "PubAck",
    "PubComp",
    "PubRec",
    "PubRel",
    "Publish",
    "SubAck",
    "Subscribe",
    "Subscription",
    "UnsubAck",
    "Unsubscribe",
    "Will",
    "build_publish",
    "encoded_topic_name",
    "fixed_header",
    "with_packet_id",
    "with_topic",
]
