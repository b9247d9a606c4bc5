"""``mqttchat sub -F``: mosquitto_sub's output format language, and how each message is written out.

A template is parsed once into parts (:func:`compile_format`), so a bad one is refused before connecting, with
one line naming the problem, as mosquitto_sub refuses it. The language is mosquitto_sub's (see its manual):

* ``%`` codes, each with optional flags ``-`` (align left) and ``0`` (pad numbers with zeros), a field width and
  a ``.precision`` (the longest a string may be): ``%t`` topic, ``%p`` payload (raw bytes), ``%x``/``%X`` the
  payload in lower/upper-case hex, ``%l`` its length, ``%q`` QoS, ``%r`` retained (0/1), ``%m`` the message id,
  ``%I`` ISO-8601 time, ``%U`` Unix time with nanoseconds, ``%j`` a JSON object with the payload as a string,
  ``%J`` the same with the payload as JSON, the MQTT 5 properties ``%A`` topic alias, ``%C`` content type, ``%D``
  correlation data, ``%E`` message expiry, ``%F`` payload format indicator, ``%P`` user properties (``k:v``
  pairs), ``%R`` response topic, ``%S`` subscription identifier, and ``%%``;
* ``@`` codes: ``@X`` is ``strftime``'s ``%X`` (``@Y-@m-@d``), ``@N`` nanoseconds, ``@@`` an ``@``;
* ``\\`` escapes: ``\\\\ \\0 \\a \\e \\n \\r \\t \\v``.

The time is the message's arrival time. Widths count bytes, as mosquitto_sub's do; for ``%p`` the width is also
the most that is written, and for ``%x``/``%X`` the most hex digits (mosquitto_sub's rules, kept so that scripts
written for it print the same). ``%J`` on a payload that is not JSON writes nothing for that code and one line on
stderr, as mosquitto_sub does.

Text from the network goes to a terminal only neutralised: :class:`Output` with ``terminal=True`` passes every
field that came from the broker (topic, payload, properties, the JSON objects) through
:func:`mqttchat.untrusted.printable` (payload line breaks and tabs kept), while what the template itself writes
(``\\e[31m`` colours) goes out as written. To a pipe or a file everything is written as received: the payload's
bytes are data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from mqttchat.protocol.fastinit import dataclass
from mqttchat.untrusted import printable, printable_bytes

if TYPE_CHECKING:
    import datetime as dt

    from mqttchat.client import Message

# json and datetime load when a template first needs them (%j, %J, %I): ``mqttchat sub`` starts without them.

#: The ``%`` codes and what they show (for errors and ``--help``).
PERCENT_CODES = {
    "%": "a percent sign",
    "A": "topic alias",
    "C": "content type",
    "D": "correlation data",
    "E": "message expiry interval",
    "F": "payload format indicator",
    "I": "ISO-8601 time",
    "J": "JSON, payload as JSON",
    "j": "JSON, payload as a string",
    "l": "payload length",
    "m": "message id",
    "P": "user properties",
    "p": "payload",
    "q": "QoS",
    "R": "response topic",
    "r": "retained flag",
    "S": "subscription identifier",
    "t": "topic",
    "U": "Unix time with nanoseconds",
    "X": "payload in upper-case hex",
    "x": "payload in lower-case hex",
}

ESCAPES = {"\\": b"\\", "0": b"\0", "a": b"\a", "e": b"\x1b", "n": b"\n", "r": b"\r", "t": b"\t", "v": b"\v"}
_KNOWN_ESCAPES = " ".join("\\" + e for e in ESCAPES)


#: The publish properties in ``%j``, by mosquitto_sub's names.
_JSON_PROPERTY_NAMES = {
    "payload_format_indicator": "payload-format-indicator",
    "message_expiry_interval": "message-expiry-interval",
    "content_type": "content-type",
    "response_topic": "response-topic",
    "correlation_data": "correlation-data",
    "subscription_identifier": "subscription-identifier",
    "topic_alias": "topic-alias",
    "user_property": "user-properties",
}


class FormatError(ValueError):
    """The ``-F`` template is not valid; the message says where and why."""


@dataclass(frozen=True, slots=True)
class _Code:
    code: str
    left: bool = False
    zero: bool = False
    width: int = 0
    precision: int = -1


@dataclass(frozen=True, slots=True)
class _Time:
    code: str  # the strftime letter, or N for nanoseconds


Part = bytes | _Code | _Time


def compile_format(template: str) -> list[Part]:
    """Parse ``template`` into literal bytes and codes.

    Raises:
        FormatError: an unknown ``%`` code or ``\\`` escape, or a sequence cut off at the end.
    """
    parts: list[Part] = []
    literal = bytearray()
    i = 0
    n = len(template)

    def incomplete(what: str) -> FormatError:
        return FormatError(f"incomplete {what} at the end of the format {template!r}")

    while i < n:
        char = template[i]
        if char == "%":
            i += 1
            left = zero = False
            width = 0
            precision = -1
            if i < n and template[i] == "-":
                left = True
                i += 1
            if i < n and template[i] == "0":
                zero = True
                i += 1
            start = i
            while i < n and template[i].isdigit():
                i += 1
            if i > start:
                width = int(template[start:i])
            if i < n and template[i] == ".":
                i += 1
                start = i
                while i < n and template[i].isdigit():
                    i += 1
                precision = int(template[start:i] or 0)
            if i >= n:
                raise incomplete("% code")
            code = template[i]
            if code not in PERCENT_CODES:
                known = " ".join(f"%{c}" for c in PERCENT_CODES)
                raise FormatError(f"unknown format code %{code} in {template!r} (known: {known})")
            if code == "%":
                literal += b"%"
            else:
                if literal:
                    parts.append(bytes(literal))
                    literal.clear()
                parts.append(_Code(code, left, zero and not left, width, precision))
        elif char == "@":
            i += 1
            if i >= n:
                raise incomplete("@ time code")
            if template[i] == "@":
                literal += b"@"
            else:
                if literal:
                    parts.append(bytes(literal))
                    literal.clear()
                parts.append(_Time(template[i]))
        elif char == "\\":
            i += 1
            if i >= n:
                raise incomplete("\\ escape")
            escape = ESCAPES.get(template[i])
            if escape is None:
                raise FormatError(f"unknown escape \\{template[i]} in {template!r} (known: {_KNOWN_ESCAPES})")
            literal += escape
        else:
            literal += char.encode("utf-8", "surrogateescape")
        i += 1
    if literal:
        parts.append(bytes(literal))
    return parts


# ---------------------------------------------------------------------------------------------------- values


def _int(value: int | None, spec: _Code) -> bytes:
    if value is None:  # an absent property: the width in padding, as mosquitto_sub writes it
        return (b"0" if spec.zero else b" ") * spec.width
    if spec.left:
        return f"{value:<{spec.width}d}".encode()
    if spec.zero:
        return f"{value:0{spec.width}d}".encode()
    return f"{value:>{spec.width}d}".encode()


def _str(value: bytes, spec: _Code) -> bytes:
    if spec.precision >= 0:
        value = value[: spec.precision]
    pad = b" " * max(0, spec.width - len(value))
    return value + pad if spec.left else pad + value


def _payload(payload: bytes, spec: _Code, hexcase: str | None) -> bytes:
    """mosquitto_sub's rules: a width is also the most written (hex: the most digits, whole bytes only)."""
    data = payload
    pad = 0
    if spec.width > 0:
        data = data[: spec.width]
        if hexcase is not None:
            data = data[: len(data) // 2]
            pad = spec.width - 2 * len(data)
        else:
            pad = spec.width - len(data)
    body = data if hexcase is None else (data.hex() if hexcase == "x" else data.hex().upper()).encode()
    padding = (b"0" if spec.zero else b" ") * pad
    return body + padding if spec.left else padding + body


def _local(at: float) -> dt.datetime:
    from datetime import datetime

    return datetime.fromtimestamp(at).astimezone()


def _nanoseconds(at: float) -> int:
    return min(999_999_999, round((at - int(at)) * 1e9))


def _json_string(value: bytes | str) -> str:
    """A JSON string; bytes that are not UTF-8 stay as they were (written back as the bytes they were)."""
    import json

    text = value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value
    return json.dumps(text, ensure_ascii=False)


def json_object(message: Message, payload_as_json: bool) -> str | None:
    """mosquitto_sub's ``%j`` (``%J``) object: time, topic, QoS, retain, length, message id, MQTT 5 properties and
    the payload as a string (as JSON: None when the payload is not JSON)."""
    at = message.received_at
    tst = _local(at).strftime("%Y-%m-%dT%H:%M:%S.") + f"{_nanoseconds(at) // 1000:06d}" + _local(at).strftime("%z")
    fields = [
        f'"tst":"{tst}"',
        f'"topic":{_json_string(message.topic)}',
        f'"qos":{message.qos}',
        f'"retain":{int(message.retain)}',
        f'"payloadlen":{len(message.payload)}',
    ]
    if message.qos > 0:
        fields.append(f'"mid":{message.packet_id or 0}')
    props = message.properties
    if props:
        # In the order the broker sent them, with mosquitto_sub's names (repeated keys where the property repeats).
        items: list[str] = []
        for name, value in props.as_dict().items():
            key = _JSON_PROPERTY_NAMES.get(name)
            if key is None:
                continue
            if name == "user_property":
                pairs = ",".join(f"{_json_string(k)}:{_json_string(v)}" for k, v in value)
                items.append(f'"{key}":{{{pairs}}}')
            elif name == "subscription_identifier":
                items.extend(f'"{key}":{identifier}' for identifier in value)
            elif isinstance(value, int):
                items.append(f'"{key}":{value}')
            else:
                items.append(f'"{key}":{_json_string(value)}')
        fields.append(f'"properties":{{{",".join(items)}}}')
    if payload_as_json:
        import json

        try:
            value = json.loads(message.payload) if message.payload else None
        except ValueError:
            return None
        fields.append(f'"payload":{json.dumps(value, ensure_ascii=False, separators=(",", ":"))}')
    else:
        fields.append(f'"payload":{_json_string(message.payload) if message.payload else "null"}')
    return "{" + ",".join(fields) + "}"


# ---------------------------------------------------------------------------------------------------- output


class Output:
    """Writes messages as ``sub`` prints them: raw, ``-v``, ``-F json`` or a ``-F`` template.

    Args:
        terminal: the output is a terminal: text from the network is neutralised (see the module docstring).
        warn: where to report a ``%J`` payload that is not JSON (one line each).
    """

    def __init__(
        self,
        template: str | None,
        *,
        verbose: bool = False,
        terminal: bool = False,
        warn: Callable[[str], None] | None = None,
        json_line: Callable[[Message], str] | None = None,
    ) -> None:
        self.parts = compile_format(template) if template is not None and template != "json" else None
        self.recording = template == "json"
        self.verbose = verbose
        self.terminal = terminal
        self.warn = warn
        self.json_line = json_line

    def text(self, value: str) -> bytes:
        """Network text as bytes for the output (neutralised on a terminal)."""
        if self.terminal:
            value = printable(value)
        return value.encode("utf-8", "surrogateescape")

    def data(self, value: bytes) -> bytes:
        """Network bytes for the output: as they are, or neutralised on a terminal (line breaks kept)."""
        if self.terminal:
            return printable_bytes(value, keep="\n\t").encode("utf-8", "surrogateescape")
        return value

    def render(self, message: Message) -> bytes:
        """The bytes written for ``message`` (without the line end)."""
        if self.recording:
            assert self.json_line is not None
            return self.text(self.json_line(message))
        if self.parts is not None:
            return b"".join(self._part(part, message) for part in self.parts)
        if self.verbose:
            return self.text(message.topic) + b" " + self.data(message.payload)
        return self.data(message.payload)

    def _part(self, part: Part, message: Message) -> bytes:
        if type(part) is bytes:
            return part
        if isinstance(part, _Time):
            at = message.received_at
            if part.code == "N":
                return f"{_nanoseconds(at):09d}".encode()
            return time.strftime(f"%{part.code}", time.localtime(at)).encode("utf-8", "surrogateescape")
        assert isinstance(part, _Code)
        code = part.code
        props = message.properties
        if code == "t":
            return _str(self.text(message.topic), part)
        if code == "p":
            return _payload(self.data(message.payload) if self.terminal else message.payload, part, None)
        if code in "xX":
            return _payload(message.payload, part, code)
        if code == "l":
            return _int(len(message.payload), part)
        if code == "q":
            return str(message.qos).encode()
        if code == "r":
            return b"1" if message.retain else b"0"
        if code == "m":
            return _int(message.packet_id or 0, part)
        if code == "A":
            return _int(props.topic_alias, part)
        if code == "E":
            return _int(props.message_expiry_interval, part)
        if code == "F":
            return _int(props.payload_format_indicator, part)
        if code == "S":
            ids = props.subscription_identifier
            return _int(ids[0] if ids else None, part)
        if code == "C":
            if props.content_type is None:
                return b" " * part.width
            return _str(self.text(props.content_type), part)
        if code == "R":
            return b"" if props.response_topic is None else _str(self.text(props.response_topic), part)
        if code == "D":
            return b"" if props.correlation_data is None else self.data(props.correlation_data)
        if code == "P":
            return b" ".join(self.text(f"{k}:{v}") for k, v in props.user_property)
        if code == "I":
            return _str(_local(message.received_at).strftime("%Y-%m-%dT%H:%M:%S%z").encode(), part)
        if code == "U":
            at = message.received_at
            return f"{int(at)}.{_nanoseconds(at):09d}".encode()
        # j or J
        line = json_object(message, code == "J")
        if line is None:
            if self.warn is not None:
                self.warn(f"the payload on topic {printable(message.topic)} is not valid JSON (%J)")
            return b""
        return self.text(line)
