"""Helpers of the broker conformance tests (tests/broker/conformance/): paho peers, a raw-socket MQTT codec and
client, a $SYS broker, and what the sections share."""

from __future__ import annotations

import contextlib
import queue
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tests.helpers.brokers import RunningBroker, free_port, start_mqttchat_broker

#: Every wait for something that should happen is bounded by this many seconds.
TIMEOUT = 5.0
#: How long a test waits to be sure something does not happen (when no fence message can prove it).
QUIET = 0.3
V311 = 4
V5 = 5
HOST = "127.0.0.1"

# Packet types (high nibble of the first byte).
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = 8, 9, 10, 11, 12, 13, 14, 15

# MQTT 5 property identifiers (the ones the tests use).
PAYLOAD_FORMAT = 0x01
MESSAGE_EXPIRY = 0x02
CONTENT_TYPE = 0x03
RESPONSE_TOPIC = 0x08
CORRELATION_DATA = 0x09
SUBSCRIPTION_ID = 0x0B
SESSION_EXPIRY = 0x11
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
TOPIC_ALIAS = 0x23
MAXIMUM_QOS = 0x24
RETAIN_AVAILABLE = 0x25
USER_PROPERTY = 0x26
MAXIMUM_PACKET_SIZE = 0x27

_BYTE_PROPS = {0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A}
_U16_PROPS = {0x13, 0x21, 0x22, 0x23}
_U32_PROPS = {0x02, 0x11, 0x18, 0x27}
_VARINT_PROPS = {0x0B}
_STRING_PROPS = {0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F}
_BINARY_PROPS = {0x09, 0x16}


# ----------------------------------------------------------------------------------------------------------------
# paho peers
# ----------------------------------------------------------------------------------------------------------------


def props(packet_type: int, **values: Any) -> Properties:
    """paho properties: ``props(PacketTypes.PUBLISH, UserProperty=[("a", "1")], ContentType="text/plain")``."""
    p = Properties(packet_type)
    for name, value in values.items():
        setattr(p, name, value)
    return p


def reason(packet_type: int, code: int) -> ReasonCode:
    return ReasonCode(packet_type, identifier=code)


class Peer:
    """One paho client with its network loop in a thread; records what it receives, waits boundedly."""

    def __init__(self, port: int, client_id: str, version: int = V5, *, clean: bool = True) -> None:
        self.port = port
        self.version = version
        self.client_id = client_id
        protocol = mqtt.MQTTv5 if version == V5 else mqtt.MQTTv311
        extra: dict[str, Any] = {} if version == V5 else {"clean_session": clean}
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            reconnect_on_failure=False,
            **extra,
        )
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connacked = threading.Event()
        self.session_present: bool | None = None
        self.connack_reason: ReasonCode | None = None
        self.connack_properties: Properties | None = None
        self.disconnected = threading.Event()
        self.disconnect_reason: ReasonCode | None = None
        self._acks = threading.Condition()
        self.subacks: dict[int, list[ReasonCode]] = {}
        self.unsubacks: dict[int, list[ReasonCode]] = {}
        self.pubacks: dict[int, ReasonCode] = {}
        self.started = False
        c = self.client
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.on_unsubscribe = self._on_unsubscribe
        c.on_publish = self._on_publish

    def __repr__(self) -> str:
        return f"<Peer {self.client_id} v{self.version}>"

    # paho callbacks (network thread)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, properties: Any) -> None:
        self.session_present = bool(flags.session_present)
        self.connack_reason = rc
        self.connack_properties = properties
        self.connacked.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, properties: Any) -> None:
        self.disconnect_reason = rc
        self.disconnected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.messages.put(message)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, codes: list[ReasonCode], p: Any) -> None:
        with self._acks:
            self.subacks[mid] = list(codes)
            self._acks.notify_all()

    def _on_unsubscribe(self, client: mqtt.Client, userdata: Any, mid: int, codes: list[ReasonCode], p: Any) -> None:
        with self._acks:
            self.unsubacks[mid] = list(codes)
            self._acks.notify_all()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, rc: ReasonCode, p: Any) -> None:
        with self._acks:
            self.pubacks[mid] = rc
            self._acks.notify_all()

    def _wait_ack(self, table: dict[int, Any], mid: int, what: str, timeout: float = TIMEOUT) -> Any:
        with self._acks:
            if not self._acks.wait_for(lambda: mid in table, timeout):
                raise AssertionError(f"{self}: no {what} for mid {mid} within {timeout} s")
            return table.pop(mid)

    # actions (test thread)

    def connect(
        self,
        *,
        clean_start: bool = True,
        session_expiry: int | None = None,
        keepalive: int = 60,
        will: tuple[str, bytes, int, bool] | None = None,
        will_properties: Properties | None = None,
        username: str | None = None,
        password: str | None = None,
        expect_success: bool = True,
    ) -> int:
        """Connect and wait for the CONNACK; returns its reason code (0 is success; 3.1.1 codes mapped by paho)."""
        if will is not None:
            topic, payload, qos, retain = will
            self.client.will_set(topic, payload, qos, retain, properties=will_properties)
        if username is not None:
            self.client.username_pw_set(username, password)
        if self.version == V5:
            connect_props = None
            if session_expiry is not None:
                connect_props = props(PacketTypes.CONNECT, SessionExpiryInterval=session_expiry)
            self.client.connect(HOST, self.port, keepalive, clean_start=clean_start, properties=connect_props)
        else:
            self.client.connect(HOST, self.port, keepalive)
        sock = self.client.socket()
        if isinstance(sock, socket.socket):  # paho leaves Nagle on: 40 ms stalls on QoS 2 flows otherwise
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.loop_start()
        self.started = True
        if not self.connacked.wait(TIMEOUT):
            raise AssertionError(f"{self}: no CONNACK within {TIMEOUT} s")
        assert self.connack_reason is not None
        code = int(self.connack_reason.value)
        if expect_success:
            assert code == 0, f"{self}: connection refused: {self.connack_reason}"
        return code

    def subscribe(
        self, topic: str, qos: int = 1, *, options: mqtt.SubscribeOptions | None = None, sub_id: int | None = None
    ) -> list[int]:
        """Subscribe and wait for the SUBACK; returns the reason codes (granted QoS or failure codes)."""
        properties = props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=sub_id) if sub_id is not None else None
        if self.version == V5:
            subscription: Any = (topic, options if options is not None else mqtt.SubscribeOptions(qos=qos))
            result, mid = self.client.subscribe([subscription], properties=properties)
        else:
            result, mid = self.client.subscribe(topic, qos)
        assert result == mqtt.MQTT_ERR_SUCCESS, f"{self}: subscribe failed locally: {result}"
        assert mid is not None
        return [int(c.value) for c in self._wait_ack(self.subacks, mid, "SUBACK")]

    def unsubscribe(self, topic: str) -> list[int]:
        result, mid = self.client.unsubscribe(topic)
        assert result == mqtt.MQTT_ERR_SUCCESS
        assert mid is not None
        return [int(c.value) for c in self._wait_ack(self.unsubacks, mid, "UNSUBACK")]

    def publish(
        self,
        topic: str,
        payload: bytes | str = b"",
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> int:
        """Publish and, for QoS 1 and 2, wait for the flow to finish; returns the PUBACK/PUBREC reason (0: ok)."""
        info = self.client.publish(topic, payload, qos, retain, properties=properties)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, f"{self}: publish failed locally: {info.rc}"
        if qos == 0:
            return 0
        rc: ReasonCode = self._wait_ack(self.pubacks, info.mid, "PUBACK/PUBCOMP")
        return int(rc.value)

    def expect(self, count: int = 1, timeout: float = TIMEOUT) -> list[mqtt.MQTTMessage]:
        """The next ``count`` messages, waiting at most ``timeout`` seconds in all."""
        deadline = time.monotonic() + timeout
        got: list[mqtt.MQTTMessage] = []
        while len(got) < count:
            remaining = deadline - time.monotonic()
            try:
                got.append(self.messages.get(timeout=max(remaining, 0.001)))
            except queue.Empty:
                shown = [(m.topic, m.payload) for m in got]
                raise AssertionError(f"{self}: {len(got)} of {count} messages within {timeout} s: {shown}") from None
        return got

    def expect_one(self, timeout: float = TIMEOUT) -> mqtt.MQTTMessage:
        return self.expect(1, timeout)[0]

    def expect_none(self, wait: float = QUIET) -> None:
        try:
            message = self.messages.get(timeout=wait)
        except queue.Empty:
            return
        raise AssertionError(f"{self}: unexpected message {message.topic!r} {message.payload!r}")

    def drain(self) -> list[mqtt.MQTTMessage]:
        out = []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except queue.Empty:
                return out

    def disconnect(self, code: int | None = None, properties: Properties | None = None) -> None:
        """A normal DISCONNECT (MQTT 5: with reason ``code``); waits until paho has closed the connection."""
        rc = reason(PacketTypes.DISCONNECT, code) if code is not None and self.version == V5 else None
        self.client.disconnect(reasoncode=rc, properties=properties)
        self.disconnected.wait(TIMEOUT)
        self.stop()

    def kill(self) -> None:
        """Drop the TCP connection without DISCONNECT (an unclean disconnect for the broker)."""
        sock = self.client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.disconnected.wait(TIMEOUT)
        self.stop()

    def stop(self) -> None:
        if self.started:
            self.started = False
            self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        """Teardown: disconnect if still connected, stop the thread."""
        if self.started and self.client.is_connected():
            with contextlib.suppress(Exception):
                self.client.disconnect()
            self.disconnected.wait(TIMEOUT)
        self.stop()


class Peers:
    """Creates peers and closes them all at the end of a test."""

    def __init__(self) -> None:
        self.all: list[Peer] = []
        self.raw: list[RawClient] = []

    def new(
        self,
        broker: RunningBroker | int,
        client_id: str,
        version: int = V5,
        *,
        clean: bool = True,
        connect: bool = True,
        **connect_args: Any,
    ) -> Peer:
        port = broker if isinstance(broker, int) else broker.port
        peer = Peer(port, client_id, version, clean=clean)
        self.all.append(peer)
        if connect:
            if version == V5 and "clean_start" not in connect_args:
                connect_args["clean_start"] = clean
            peer.connect(**connect_args)
        return peer

    def raw_client(self, broker: RunningBroker | int) -> RawClient:
        client = RawClient(broker if isinstance(broker, int) else broker.port)
        self.raw.append(client)
        return client

    def close(self) -> None:
        for peer in self.all:
            peer.close()
        for raw in self.raw:
            raw.close()


# ----------------------------------------------------------------------------------------------------------------
# A raw MQTT codec, independent of the project's own (so that both cannot share a misreading of the spec)
# ----------------------------------------------------------------------------------------------------------------


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value % 128, value // 128
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def utf8(text: str | bytes) -> bytes:
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text  # "\udcff": the byte 0xff
    return struct.pack("!H", len(data)) + data


def packet(first_byte: int, body: bytes) -> bytes:
    return bytes((first_byte,)) + varint(len(body)) + body


def encode_properties(*items: tuple[int, Any]) -> bytes:
    """MQTT 5 properties (with their length prefix) from (identifier, value) pairs."""
    out = bytearray()
    for pid, value in items:
        out += varint(pid)
        if pid in _BYTE_PROPS:
            out.append(value)
        elif pid in _U16_PROPS:
            out += struct.pack("!H", value)
        elif pid in _U32_PROPS:
            out += struct.pack("!I", value)
        elif pid in _VARINT_PROPS:
            out += varint(value)
        elif pid in _STRING_PROPS or pid in _BINARY_PROPS:
            out += utf8(value)
        elif pid == USER_PROPERTY:
            out += utf8(value[0]) + utf8(value[1])
        else:
            raise ValueError(f"unknown property {pid:#x}")
    return varint(len(out)) + bytes(out)


def decode_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def decode_properties(data: bytes, pos: int = 0) -> tuple[dict[int, list[Any]], int]:
    """Properties at ``pos`` (length first): {identifier: [values]}, and the position after them."""
    length, pos = decode_varint(data, pos)
    end = pos + length
    out: dict[int, list[Any]] = {}
    while pos < end:
        pid, pos = decode_varint(data, pos)
        value: Any
        if pid in _BYTE_PROPS:
            value, pos = data[pos], pos + 1
        elif pid in _U16_PROPS:
            value, pos = struct.unpack_from("!H", data, pos)[0], pos + 2
        elif pid in _U32_PROPS:
            value, pos = struct.unpack_from("!I", data, pos)[0], pos + 4
        elif pid in _VARINT_PROPS:
            value, pos = decode_varint(data, pos)
        elif pid in _STRING_PROPS or pid in _BINARY_PROPS:
            n = struct.unpack_from("!H", data, pos)[0]
            raw = data[pos + 2 : pos + 2 + n]
            value, pos = (raw.decode() if pid in _STRING_PROPS else raw), pos + 2 + n
        elif pid == USER_PROPERTY:
            n = struct.unpack_from("!H", data, pos)[0]
            key = data[pos + 2 : pos + 2 + n].decode()
            pos += 2 + n
            n = struct.unpack_from("!H", data, pos)[0]
            value = (key, data[pos + 2 : pos + 2 + n].decode())
            pos += 2 + n
        else:
            raise AssertionError(f"unknown property identifier {pid:#x} in {data!r}")
        out.setdefault(pid, []).append(value)
    return out, end


def connect_packet(
    client_id: str = "raw",
    version: int = V5,
    *,
    clean: bool = True,
    keepalive: int = 60,
    will: tuple[str, bytes, int, bool] | None = None,
    will_props: bytes = b"\x00",
    username: str | None = None,
    password: str | bytes | None = None,
    properties: bytes = b"\x00",
    protocol_name: bytes = b"MQTT",
    level: int | None = None,
    reserved_flag: bool = False,
) -> bytes:
    flags = 0x02 if clean else 0
    if reserved_flag:
        flags |= 0x01
    payload = utf8(client_id)
    if will is not None:
        topic, message, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += (will_props if version == V5 else b"") + utf8(topic) + utf8(message)
    if username is not None:
        flags |= 0x80
        payload += utf8(username)
    if password is not None:
        flags |= 0x40
        payload += utf8(password)
    header = (
        utf8(protocol_name) + bytes((level if level is not None else version, flags)) + struct.pack("!H", keepalive)
    )
    if version == V5:
        header += properties
    return packet(0x10, header + payload)


def publish_packet(
    topic: str | bytes,
    payload: bytes = b"",
    qos: int = 0,
    packet_id: int = 1,
    *,
    retain: bool = False,
    dup: bool = False,
    version: int = V5,
    properties: bytes = b"\x00",
) -> bytes:
    first = 0x30 | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = utf8(topic)
    if qos:
        body += struct.pack("!H", packet_id)
    if version == V5:
        body += properties
    return packet(first, body + payload)


def subscribe_packet(
    packet_id: int, filters: list[tuple[str, int]], *, version: int = V5, properties: bytes = b"\x00"
) -> bytes:
    body = struct.pack("!H", packet_id) + (properties if version == V5 else b"")
    for topic_filter, options in filters:
        body += utf8(topic_filter) + bytes((options,))
    return packet(0x82, body)


def unsubscribe_packet(packet_id: int, filters: list[str], version: int = V5) -> bytes:
    body = struct.pack("!H", packet_id) + (b"\x00" if version == V5 else b"")
    for topic_filter in filters:
        body += utf8(topic_filter)
    return packet(0xA2, body)


def pubrel_packet(packet_id: int) -> bytes:
    return packet(0x62, struct.pack("!H", packet_id))


PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"


@dataclass(frozen=True)
class Packet:
    """A packet read from the broker: the type, the flags of the first byte, and the rest."""

    type: int
    flags: int
    body: bytes

    def reason_code(self, version: int = V5) -> int:
        """The reason code of a CONNACK (3.1.1: the return code), DISCONNECT, PUBACK-family packet."""
        if self.type == CONNACK:
            return self.body[1]
        if self.type == DISCONNECT:
            return self.body[0] if self.body else 0
        if self.type in (PUBACK, PUBREC, PUBREL, PUBCOMP):
            return self.body[2] if len(self.body) > 2 else 0
        raise AssertionError(f"{self} has no reason code")

    def properties(self) -> dict[int, list[Any]]:
        """The MQTT 5 properties of a CONNACK or DISCONNECT."""
        if self.type == CONNACK:
            return decode_properties(self.body, 2)[0] if len(self.body) > 2 else {}
        if self.type == DISCONNECT:
            return decode_properties(self.body, 1)[0] if len(self.body) > 1 else {}
        raise AssertionError(f"properties of {self} are not decoded here")

    def suback_codes(self, version: int = V5) -> list[int]:
        assert self.type == SUBACK, self
        pos = 2
        if version == V5:
            _, pos = decode_properties(self.body, pos)
        return list(self.body[pos:])

    def publish_parts(self, version: int = V5) -> tuple[str, int, bytes, dict[int, list[Any]]]:
        """(topic, qos, payload, properties) of a PUBLISH."""
        assert self.type == PUBLISH, self
        n = struct.unpack_from("!H", self.body)[0]
        topic = self.body[2 : 2 + n].decode()
        pos = 2 + n
        qos = (self.flags >> 1) & 3
        if qos:
            pos += 2
        properties: dict[int, list[Any]] = {}
        if version == V5:
            properties, pos = decode_properties(self.body, pos)
        return topic, qos, self.body[pos:], properties


class RawClient:
    """A TCP connection to the broker speaking bytes: for input no well-behaved client would send."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.closed_by_peer = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> bool:
        """Read more bytes; False when the broker closed the connection."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        except TimeoutError:
            raise TimeoutError from None
        if not data:
            self.closed_by_peer = True
            return False
        self.buffer += data
        return True

    def read_packet(self, timeout: float = TIMEOUT) -> Packet | None:
        """The next packet, or None when the broker closed the connection first. Raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            buf = self.buffer
            if len(buf) >= 2:
                pos = 1
                length = shift = 0
                complete = False
                while pos < len(buf) and pos <= 4:
                    byte = buf[pos]
                    length += (byte & 0x7F) << shift
                    shift += 7
                    pos += 1
                    if not byte & 0x80:
                        complete = True
                        break
                if complete and len(buf) >= pos + length:
                    self.buffer = buf[pos + length :]
                    return Packet(buf[0] >> 4, buf[0] & 0x0F, buf[pos : pos + length])
            if self.closed_by_peer or not self._fill(deadline):
                return None

    def read_until_closed(self, timeout: float = TIMEOUT) -> list[Packet]:
        """Every packet until the broker closes the connection; AssertionError if it stays open."""
        deadline = time.monotonic() + timeout
        packets: list[Packet] = []
        while True:
            try:
                p = self.read_packet(max(deadline - time.monotonic(), 0.001))
            except TimeoutError:
                raise AssertionError(f"the broker kept the connection open for {timeout} s; got {packets}") from None
            if p is None:
                return packets
            packets.append(p)

    def expect(self, packet_type: int, timeout: float = TIMEOUT) -> Packet:
        p = self.read_packet(timeout)
        assert p is not None, f"the broker closed the connection instead of sending packet type {packet_type}"
        assert p.type == packet_type, f"expected packet type {packet_type}, got {p}"
        return p

    def connect(self, client_id: str = "raw", version: int = V5, **kwargs: Any) -> Packet:
        """Send CONNECT, return the CONNACK (asserting success)."""
        self.send(connect_packet(client_id, version, **kwargs))
        connack = self.expect(CONNACK)
        assert connack.reason_code(version) == 0, f"CONNACK refused: {connack}"
        return connack

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


# ----------------------------------------------------------------------------------------------------------------
# A broker process with $SYS topics (the shared fixture switches them off)
# ----------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def broker_with_sys(directory: Path, config: str = "", sys_interval: int = 1) -> Iterator[RunningBroker]:
    """``mqttchat broker`` on a free loopback port publishing ``$SYS`` every ``sys_interval`` seconds."""
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "broker.toml"
    conf.write_text(f"sys_interval = {sys_interval}\n{config}\n[[listener]]\nport = {port}\nhost = '{HOST}'\n")
    broker = start_mqttchat_broker(conf, port, directory / "broker.log")
    try:
        yield broker
    finally:
        broker.stop()


# ----------------------------------------------------------------------------------------------------------------
# Security files
# ----------------------------------------------------------------------------------------------------------------

USERS = {"alice": "wonderland", "bob": "builder"}
ACL = """\
# Anonymous clients get nothing (allow_anonymous = false anyway).
user alice
topic readwrite home/#
topic read $SYS/#
topic write vault/#
user bob
topic read home/#
topic write home/bob/#
pattern write chat/%u/#
pattern read chat/#
"""


def write_security_files(directory: Path) -> str:
    """A password file (made with ``mqttchat passwd``) and a mosquitto-style ACL; returns the TOML keys."""
    directory.mkdir(parents=True, exist_ok=True)
    passwd = directory / "passwd"
    exe = shutil.which("mqttchat")
    base = [exe] if exe else [sys.executable, "-m", "mqttchat"]
    for index, (user, password) in enumerate(USERS.items()):
        create = ["-c"] if index == 0 else []
        subprocess.run(
            [*base, "passwd", *create, "-b", "-I", "1000", str(passwd), user, password],
            check=True,
            capture_output=True,
            timeout=30,
        )
    acl = directory / "acl"
    acl.write_text(ACL)
    return f"allow_anonymous = false\npassword_file = '{passwd}'\nacl_file = '{acl}'\n"


# ----------------------------------------------------------------------------------------------------------------
# What the sections share
# ----------------------------------------------------------------------------------------------------------------

VERSIONS = [pytest.param(V311, id="v311"), pytest.param(V5, id="v5")]
ASSIGNED_CLIENT_ID = 0x12
SERVER_KEEP_ALIVE = 0x13
StartBroker = Callable[..., RunningBroker]


def no_crash(broker: RunningBroker) -> None:
    """The broker logged no traceback (an exception escaping its handlers)."""
    log = broker.log_text()
    assert "Traceback" not in log, log[log.index("Traceback") :][:2000]


def prop(message: mqtt.MQTTMessage, name: str, default: Any = None) -> Any:
    """A property of a received message, ``default`` when absent (or for MQTT 3.1.1)."""
    return getattr(message.properties, name, default) if message.properties is not None else default


def persistent(version: int) -> dict[str, Any]:
    """Connection arguments of a persistent session: 3.1.1 clean session 0, 5.0 clean start 0 + expiry 60 s."""
    return {"clean": False, "session_expiry": 60} if version == V5 else {"clean": False}


def next_packet(raw: RawClient) -> Packet:
    """The next packet the broker sends (failing if it closes the connection instead)."""
    p = raw.read_packet()
    assert p is not None, "the broker closed the connection"
    return p


def publish_x(topic: str | bytes, version: int, qos: int = 0, pid: int = 1, properties: bytes = b"\x00") -> bytes:
    """A PUBLISH of payload ``x``."""
    return publish_packet(topic, b"x", qos, pid, version=version, properties=properties)


#: Topics and which of them each filter matches (the specification's examples, and empty levels).
WILDCARD_TOPICS = [
    "sport",
    "sport/",
    "sport/tennis",
    "sport/tennis/player1",
    "sport/tennis/player1/ranking",
    "/sport",
    "sports",
    "sport//player1",
]
WILDCARD_MATCHES = {
    "sport/#": {"sport", "sport/", "sport/tennis", "sport/tennis/player1", "sport/tennis/player1/ranking",
                "sport//player1"},
    "sport/tennis/+": {"sport/tennis/player1"},
    "sport/+": {"sport/", "sport/tennis"},
    "+/+": {"sport/", "sport/tennis", "/sport"},
    "/+": {"/sport"},
    "+": {"sport", "sports"},
    "#": set(WILDCARD_TOPICS),
    "sport/+/player1": {"sport/tennis/player1", "sport//player1"},
}  # fmt: skip
