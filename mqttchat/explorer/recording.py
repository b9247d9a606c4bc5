"""Recording received messages to a JSONL file, loading a recording back, and the timing of its replay.

The file holds one JSON object a line (UTF-8, ``\\n``-terminated), one line a message, in arrival order::

    {"t": 1718000000.125, "topic": "home/kitchen/temp", "qos": 1, "retain": false, "payload": "21.5"}
    {"t": 1718000000.5, "topic": "cam/frame", "qos": 0, "retain": false, "payload_base64": "/9j/4AAQ",
     "properties": {"content_type": "image/jpeg", "user_properties": [["camera", "front"]]}}

(the second object is on one line in a file; the recorder writes no spaces). The keys:

==================  ================================================================================================
``t``               when the message was received, seconds since the epoch (a JSON number; required)
``topic``           the topic name (required; checked as a PUBLISH topic name: no wildcards, no U+0000)
``qos``             0, 1 or 2 (0 when absent)
``retain``          true or false (false when absent)
``payload``         the payload when it is valid UTF-8, as a JSON string
``payload_base64``  the payload otherwise, in standard base64 (at most one of the two; neither means empty)
``properties``      only when the message carried MQTT 5 publish properties, and only those present:
                    ``content_type`` (string), ``payload_format_indicator`` (0 or 1),
                    ``message_expiry_interval`` (seconds), ``response_topic`` (a topic name),
                    ``correlation_data`` (base64), ``user_properties`` (a list of ``[name, value]`` pairs, in order,
                    repeats allowed) and ``subscription_identifiers`` (a list of integers)
``decoder``         only where a decoder makes something else of the payload than its own text (Sparkplug B,
                    CBOR, MessagePack, protobuf, gzip..., by the settings' rules or automatically): the decoders
                    applied, e.g. ``sparkplug`` or ``gzip+json``
``decoded``         with ``decoder``: the payload decoded, as JSON (a Sparkplug B payload's metrics named by the
                    aliases of their births; bytes as hex strings; numbers JSON cannot hold as strings)
``decode_error``    with ``decoder``, instead of ``decoded``: why the payload could not be decoded
==================  ================================================================================================

``decoder`` and ``decoded`` are what ``mqttchat sub --decode -F json`` writes too. They are for reading: loading
ignores them (a replay publishes ``payload`` as it came), so recordings without them, made before they existed,
load and replay as before. The recorder decodes for at most :data:`DECODE_SHARE` of each second; a message that
arrives when that is spent is written without them (counted in :attr:`Recorder.undecoded`).

Other properties a received PUBLISH may carry (a topic alias, already resolved by the client) are not recorded.
Loading skips empty lines, ignores unknown top-level keys (room for later additions) but refuses unknown property
names, and reports the first problem as a :class:`RecordingError` naming the file and the line.

Replaying reproduces the original gaps between messages divided by the speed, each wait capped at
:data:`MAX_REPLAY_GAP` seconds so that a recording spanning a night (or a clock jump) does not stall the replay.

Nothing here imports asyncio or Textual: the client's reader calls :meth:`Recorder.offer` for every message, and the
screen drives a replay with :func:`replay_delays`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mqttchat.explorer.tree import FilterKind, TopicFilter
from mqttchat.labels import plural, size_label
from mqttchat.protocol import EMPTY_PROPERTIES, MAX_VARIABLE_INTEGER, Properties, PropertyId, topic_name_problem
from mqttchat.protocol.wire import check_text

if TYPE_CHECKING:
    from mqttchat.explorer.decoders import DecodeResult, PayloadDecoders
    from mqttchat.explorer.decoders.sparkplug.state import SparkplugObservation

#: A replay publishes at most this many messages a second, whatever the speed chosen.
REPLAY_RATE = 1000
#: The longest wait between two replayed messages, in seconds, whatever the recorded gap and the speed.
MAX_REPLAY_GAP = 10.0

#: The recorder's file buffer: a write reaches the disk when this fills, on :meth:`Recorder.flush` or on close.
RECORDER_BUFFER = 64 * 1024
#: The share of each second the recorder may spend decoding payloads (it runs in the client's reader).
DECODE_SHARE = 0.1

_FOUR_BYTE_MAX = 0xFFFF_FFFF


class RecordingError(ValueError):
    """A recording that cannot be read: the message names the file, the line and what is wrong with it."""

    def __init__(self, path: str | os.PathLike[str], line: int, problem: str) -> None:
        super().__init__(f"{os.fspath(path)}, line {line}: {problem}")
        self.path = os.fspath(path)
        self.line = line
        self.problem = problem


class ReceivedMessage(Protocol):
    """What the recorder needs of a message (the client's ``Message`` has it; this module does not import it)."""

    @property
    def topic(self) -> str: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def qos(self) -> int: ...
    @property
    def retain(self) -> bool: ...
    @property
    def properties(self) -> Properties: ...
    @property
    def received_at(self) -> float: ...


@dataclass(frozen=True, slots=True)
class RecordedMessage:
    """One message of a recording."""

    #: When it was received, seconds since the epoch.
    t: float
    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    properties: Properties = EMPTY_PROPERTIES

    @property
    def publish_properties(self) -> Properties:
        """The properties to publish it again with: a client may not send subscription identifiers."""
        return self.properties.without(PropertyId.SUBSCRIPTION_IDENTIFIER)


# ---------------------------------------------------------------------------------------------------------------
# One line


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def properties_record(properties: Properties) -> dict[str, Any]:
    """The ``properties`` object of a line for these properties (empty when none is recorded)."""
    props: dict[str, Any] = {}
    if not properties:
        return props
    if properties.content_type is not None:
        props["content_type"] = properties.content_type
    if properties.payload_format_indicator is not None:
        props["payload_format_indicator"] = properties.payload_format_indicator
    if properties.message_expiry_interval is not None:
        props["message_expiry_interval"] = properties.message_expiry_interval
    if properties.response_topic is not None:
        props["response_topic"] = properties.response_topic
    if properties.correlation_data is not None:
        props["correlation_data"] = _b64(properties.correlation_data)
    if properties.user_property:
        props["user_properties"] = [[name, value] for name, value in properties.user_property]
    if properties.subscription_identifier:
        props["subscription_identifiers"] = list(properties.subscription_identifier)
    return props


def format_line(
    topic: str,
    payload: bytes,
    qos: int,
    retain: bool,
    properties: Properties,
    t: float,
    decoded: DecodeResult | None = None,
) -> str:
    """The JSON object for one message, without the line end; with ``decoder`` and ``decoded`` (or
    ``decode_error``) from ``decoded`` when given."""
    record: dict[str, Any] = {"t": t, "topic": topic, "qos": qos, "retain": retain}
    try:
        record["payload"] = payload.decode()
    except UnicodeDecodeError:
        record["payload_base64"] = _b64(payload)
    props = properties_record(properties)
    if props:
        record["properties"] = props
    if decoded is not None:
        record["decoder"] = decoded.decoder
        if decoded.ok:
            record["decoded"] = decoded.to_json()
        else:
            record["decode_error"] = decoded.error or "cannot decode"
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def _unb64(value: object, key: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be a base64 string, not {_json_type(value)}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"bad base64 in {key!r}: {exc}") from None


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _surrogate_problem(text: str) -> str | None:
    try:
        text.encode()
    except UnicodeEncodeError:
        return "contains a lone surrogate escape (not valid UTF-8)"
    return None


def _string(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be a string, not {_json_type(value)}")
    problem = check_text(value) or _surrogate_problem(value)
    if problem:
        raise ValueError(f"{key!r} {problem}")
    return value


def _integer(value: object, key: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{key!r} must be an integer from {low} to {high}, not {json.dumps(value)[:40]}")
    return value


def parse_properties(value: object) -> Properties:
    """Properties from a line's ``properties`` object.

    Raises:
        ValueError: it is not a valid ``properties`` object (the message says why).
    """
    if not isinstance(value, dict):
        raise ValueError(f"'properties' must be an object, not {_json_type(value)}")
    props: dict[str, Any] = {}
    for key, item in value.items():
        if key == "content_type":
            props["content_type"] = _string(item, key)
        elif key == "payload_format_indicator":
            props["payload_format_indicator"] = _integer(item, key, 0, 1)
        elif key == "message_expiry_interval":
            props["message_expiry_interval"] = _integer(item, key, 0, _FOUR_BYTE_MAX)
        elif key == "response_topic":
            problem = topic_name_problem(_string(item, key))
            if problem:
                raise ValueError(f"'response_topic': {problem}")
            props["response_topic"] = item
        elif key == "correlation_data":
            props["correlation_data"] = _unb64(item, key)
        elif key == "user_properties":
            if not isinstance(item, list):
                raise ValueError(f"'user_properties' must be a list of [name, value] pairs, not {_json_type(item)}")
            pairs = []
            for pair in item:
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise ValueError(f"'user_properties': {json.dumps(pair)[:40]} is not a [name, value] pair")
                pairs.append((_string(pair[0], "user_properties"), _string(pair[1], "user_properties")))
            props["user_property"] = pairs or None
        elif key == "subscription_identifiers":
            if not isinstance(item, list):
                raise ValueError(f"'subscription_identifiers' must be a list of integers, not {_json_type(item)}")
            props["subscription_identifier"] = [_integer(i, key, 1, MAX_VARIABLE_INTEGER) for i in item] or None
        else:
            raise ValueError(f"unknown property {key!r}")
    return Properties(**props) if props else EMPTY_PROPERTIES


def parse_line(line: str) -> RecordedMessage:
    """One line of a recording.

    Raises:
        ValueError: what is wrong with it (without the file and line, which :func:`load_recording` adds).
    """
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"bad JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, found {_json_type(record)}")
    if "topic" not in record:
        raise ValueError("missing 'topic'")
    topic = record["topic"]
    if not isinstance(topic, str):
        raise ValueError(f"'topic' must be a string, not {_json_type(topic)}")
    problem = topic_name_problem(topic) or _surrogate_problem(topic)
    if problem:
        raise ValueError(f"invalid topic name: {problem}")
    if "t" not in record:
        raise ValueError("missing 't' (the receive time)")
    t = record["t"]
    if not isinstance(t, int | float) or isinstance(t, bool) or not math.isfinite(t):
        raise ValueError(f"'t' must be a number of seconds, not {json.dumps(t)[:40]}")
    qos = record.get("qos", 0)
    if qos not in (0, 1, 2) or isinstance(qos, bool | float):
        raise ValueError(f"bad qos {json.dumps(qos)[:40]}: it must be 0, 1 or 2")
    retain = record.get("retain", False)
    if not isinstance(retain, bool):
        raise ValueError(f"'retain' must be true or false, not {json.dumps(retain)[:40]}")
    if "payload" in record and "payload_base64" in record:
        raise ValueError("both 'payload' and 'payload_base64': give one")
    if "payload_base64" in record:
        payload = _unb64(record["payload_base64"], "payload_base64")
    else:
        text = record.get("payload", "")
        if not isinstance(text, str):
            raise ValueError(f"'payload' must be a string, not {_json_type(text)} (use 'payload_base64' for binary)")
        if _surrogate_problem(text):
            raise ValueError("'payload' contains a lone surrogate escape (use 'payload_base64' for binary)")
        payload = text.encode()
    properties = parse_properties(record["properties"]) if "properties" in record else EMPTY_PROPERTIES
    return RecordedMessage(float(t), topic, payload, qos, retain, properties)


def load_recording(path: str | os.PathLike[str]) -> list[RecordedMessage]:
    """Every message of a recording, in file order; empty lines are skipped.

    Raises:
        RecordingError: a line is not a valid record (line numbers count from 1), or it is not UTF-8.
        OSError: the file cannot be read.
    """
    out: list[RecordedMessage] = []
    with open(path, "rb") as file:
        for number, raw in enumerate(file, 1):
            try:
                line = raw.decode()
            except UnicodeDecodeError as exc:
                raise RecordingError(path, number, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
            if not line.strip():
                continue
            try:
                out.append(parse_line(line))
            except ValueError as exc:
                raise RecordingError(path, number, str(exc)) from None
    return out


# ---------------------------------------------------------------------------------------------------------------
# Recording


class Recorder:
    """Writes the messages that match a filter to a JSONL file, from the client's reader.

    :meth:`offer` never raises and never waits for more than a buffered write: when a write fails (a full disk),
    recording stops, :attr:`error` says why, and later offers return False. Call :meth:`flush` from a timer to
    bound what a crash can lose, and :meth:`close` at the end.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        topic_filter: TopicFilter,
        *,
        buffer_size: int = RECORDER_BUFFER,
        decoders: PayloadDecoders | None = None,
        decode_share: float = DECODE_SHARE,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """Create (or truncate) ``path``. With ``decoders``, a payload that a decoder makes something else of
        than its own text is written with its decoded form too, for at most ``decode_share`` of each second
        of ``clock``.

        Raises:
            ValueError: the filter is invalid.
            OSError: the file cannot be created; the message names it (the subclass says why: PermissionError,
                FileNotFoundError for a missing folder, IsADirectoryError …).
        """
        self.path = Path(path)
        self.topic_filter = topic_filter
        self._match: Callable[[str, bytes | None], bool] = topic_filter.matcher()
        try:
            self._file = open(self.path, "wb", buffering=buffer_size)  # noqa: SIM115 - closed by close()
        except OSError as exc:
            # One readable sentence for the status line; errno and the subclass still say why.
            error = type(exc)(f"cannot record to {self.path}: {exc.strerror or exc}")
            error.errno = exc.errno
            raise error from exc
        #: Messages written.
        self.written = 0
        #: Bytes written (including line ends), whether or not they reached the disk yet.
        self.bytes_written = 0
        #: Messages offered that did not match the filter.
        self.skipped = 0
        #: Why recording stopped early, if it did.
        self.error: OSError | None = None
        #: Messages written with their decoded form, and written without it because decoding had used up its
        #: share of the second.
        self.decoded = 0
        self.undecoded = 0
        self._closed = False
        self._decoders = decoders
        self._decode_share = decode_share
        self._clock = clock
        self._second = -1
        self._decode_left = 0.0

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def active(self) -> bool:
        """Still recording: not closed and no write error."""
        return not self._closed and self.error is None

    def summary(self) -> str:
        """One line for a status label: ``recording home/# to recording.jsonl: 120 messages, 14.2 KiB``."""
        f = self.topic_filter
        what = "every message" if not f.text else f"/{f.text}/" if f.kind is FilterKind.REGEX else f.text
        counts = f"{plural(self.written, 'message')}, {size_label(self.bytes_written)}"
        if self.undecoded:
            counts += f", {self.undecoded:,} without the decoded form (no time to decode)"
        if self.error is not None:
            return f"recording to {self.path} stopped: {self.error.strerror or self.error} ({counts} written)"
        verb = "recorded" if self._closed else "recording"
        return f"{verb} {what} to {self.path}: {counts}"

    def offer(self, message: ReceivedMessage, observation: SparkplugObservation | None = None) -> bool:
        """Write ``message`` if it matches the filter; whether it was written. ``observation``: what the
        decoders' ``observe()`` made of it (a Sparkplug B message's aliases), to decode it."""
        if self._closed or self.error is not None:
            return False
        topic = message.topic
        payload = message.payload
        if not self._match(topic, payload):
            self.skipped += 1
            return False
        properties = message.properties
        decoded = None
        decoders = self._decoders
        if decoders is not None and decoders.transforms(topic, payload, properties.content_type):
            decoded = self._decode(decoders, topic, payload, properties.content_type, observation)
        data = (
            format_line(topic, payload, message.qos, message.retain, properties, message.received_at, decoded) + "\n"
        ).encode()
        try:
            self._file.write(data)
        except OSError as exc:
            self.error = exc
            return False
        self.written += 1
        self.bytes_written += len(data)
        return True

    def _decode(
        self,
        decoders: PayloadDecoders,
        topic: str,
        payload: bytes,
        content_type: str | None,
        observation: SparkplugObservation | None,
    ) -> DecodeResult | None:
        """The payload decoded, if this second's share of decoding time is not spent (None: it is, or the
        decoder is an external command, which the reader cannot wait for, or it made the payload's own text)."""
        now = self._clock()
        second = int(now)
        if second != self._second:
            self._second = second
            self._decode_left = self._decode_share
        if self._decode_left <= 0:
            self.undecoded += 1
            return None
        result = decoders.decode(topic, payload, content_type=content_type, observation=observation)
        self._decode_left -= self._clock() - now
        if result.pending or result.plain:
            return None
        self.decoded += 1
        return result

    def flush(self) -> None:
        """Hand the buffered lines to the operating system (a write error is kept in :attr:`error`)."""
        if self._closed or self.error is not None:
            return
        try:
            self._file.flush()
        except OSError as exc:
            self.error = exc

    def close(self) -> None:
        """Flush and close the file (idempotent; a write error is kept in :attr:`error`)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._file.close()
        except OSError as exc:
            if self.error is None:
                self.error = exc


# ---------------------------------------------------------------------------------------------------------------
# Replay


def replay_delays(records: Iterable[RecordedMessage] | Sequence[float], speed: float) -> list[float]:
    """The wait before each message to replay ``records`` at ``speed`` times the original pace.

    The first message goes at once; each later one after its recorded gap to the previous message divided by
    ``speed``. A negative gap (the clock went back) becomes 0 and no wait exceeds :data:`MAX_REPLAY_GAP`. A speed
    of 0 or infinity means as fast as possible (every wait 0). ``records`` may also be bare receive times.

    Raises:
        ValueError: ``speed`` is negative or not a number.
    """
    if math.isnan(speed) or speed < 0:
        raise ValueError(f"replay speed must be positive (0 for as fast as possible), not {speed}")
    times = [r if isinstance(r, int | float) else r.t for r in records]
    if speed == 0 or math.isinf(speed):
        return [0.0] * len(times)
    delays: list[float] = []
    previous: float | None = None
    for t in times:
        gap = 0.0 if previous is None else t - previous
        previous = t
        delays.append(min(max(gap, 0.0) / speed, MAX_REPLAY_GAP))
    return delays


def replay_waits(records: Iterable[RecordedMessage] | Sequence[float], speed: float) -> list[float]:
    """:func:`replay_delays`, each at least ``1 / REPLAY_RATE`` s: what a replay waits before each message.

    Raises:
        ValueError: ``speed`` is negative or not a number.
    """
    floor = 1 / REPLAY_RATE
    return [max(delay, floor) for delay in replay_delays(records, speed)]
