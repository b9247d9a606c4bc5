"""Incremental decoding: bytes in arbitrary chunks → whole packets.

:class:`PacketReader` buffers what it is fed and hands out packets one at a time. A packet is decoded only when
all of it has arrived; a partial packet waits for more (``next_packet()`` returns None). The remaining-length
field is checked against the announced Maximum Packet Size as soon as it is read, so an oversized packet is
refused before any of its body is buffered. On the server side, before CONNECT, the first byte must announce a
CONNECT and its length must be within ``max_connect_size``: anything else fails at the header, before the body
is buffered. After an error the reader stays failed: the connection must close.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NoReturn

from mqttchat.protocol.constants import MAX_PACKET_SIZE, PacketType, ProtocolVersion
from mqttchat.protocol.errors import MalformedPacket, PacketTooLarge, RemoteProtocolError
from mqttchat.protocol.packets import PACKET_CLASSES, REQUIRED_FLAGS, Connect, Packet, Publish

_CONNECT = int(PacketType.CONNECT)
_PUBLISH = int(PacketType.PUBLISH)
_decode_publish = Publish.decode
_DECODERS = [None if cls is None else cls.decode for cls in PACKET_CLASSES]


def _type_name(ptype: int) -> str:
    return PacketType(ptype).name if ptype else "reserved packet type 0"


class PacketReader:
    """Turns a byte stream into packets.

    Args:
        version: the protocol version of the connection, or None on the server side before CONNECT: then the
            first packet must be a CONNECT, and its protocol level becomes the reader's version.
        max_packet_size: the largest packet accepted (fixed header included), as announced to the peer.
        strict: also refuse UTF-8 strings with control characters or Unicode non-characters (which the
            specification says SHOULD NOT be sent and MAY be refused).
        server: the reader reads what a client sends (the default when ``version`` is None): topic names with a
            control character are then malformed, as topic filters and will topics always are. A client reads
            such topic names from brokers that route them, and leaves them to the screen to neutralise.
        max_connect_size: with ``version`` None, the largest first packet (the CONNECT) accepted; None: as
            ``max_packet_size``.
    """

    __slots__ = (
        "_buf",
        "_chunked",
        "_chunks",
        "_error",
        "_need",
        "_pos",
        "last_size",
        "max_connect_size",
        "max_packet_size",
        "server",
        "strict",
        "version",
    )

    def __init__(
        self,
        version: int | None = None,
        max_packet_size: int = MAX_PACKET_SIZE,
        strict: bool = False,
        server: bool | None = None,
        max_connect_size: int | None = None,
    ) -> None:
        self.version = version
        self.max_packet_size = max_packet_size
        self.max_connect_size = max_packet_size if max_connect_size is None else min(max_connect_size, max_packet_size)
        self.strict = strict
        self.server = version is None if server is None else server
        self._buf = b""
        self._pos = 0
        self._chunks = bytearray()
        self._chunked = 0
        self._need = 0  # total bytes the packet at _pos needs, once its header is known
        self._error: RemoteProtocolError | None = None
        #: Size in bytes of the last packet returned (for packet traces).
        self.last_size = 0

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as packets."""
        return len(self._buf) - self._pos + self._chunked

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add received bytes (ignored once the reader has failed: the connection is closing)."""
        if not data or self._error is not None:
            return
        if self._pos >= len(self._buf) and not self._chunks:
            self._buf = data if type(data) is bytes else bytes(data)
            self._pos = 0
        else:
            self._chunks += data
            self._chunked += len(data)

    def discard(self) -> None:
        """Drop what is buffered and not returned yet (its connection is closing: nothing more is read)."""
        self._buf = b""
        self._pos = 0
        self._chunks = bytearray()
        self._chunked = 0
        self._need = 0

    def _consolidate(self) -> None:
        self._buf = self._buf[self._pos :] + bytes(self._chunks)
        self._pos = 0
        self._chunks.clear()
        self._chunked = 0

    def take_plain_pubacks(self, limit: int = 1 << 30) -> list[int]:
        """Consume the plain PUBACKs (4 bytes: Success, no properties) at the head of the buffer; their ids.

        A fast path for a server receiving acknowledgements in bulk: no packet objects. Stops at the first
        other packet (or an incomplete one), which :meth:`next_packet` then returns as usual. A PUBACK with
        packet identifier 0 is left for :meth:`next_packet` to refuse.
        """
        ids: list[int] = []
        if self._need or self._error is not None or self.version is None:
            return ids
        buf = self._buf
        pos = self._pos
        end = len(buf) - 3
        while pos < end and buf[pos] == 0x40 and buf[pos + 1] == 2 and len(ids) < limit:
            pid = (buf[pos + 2] << 8) | buf[pos + 3]
            if not pid:
                break
            ids.append(pid)
            pos += 4
        if ids:
            self._pos = pos
            self.last_size = 4
        return ids

    def take_plain_acks(self, limit: int = 1 << 30) -> list[int]:
        """Consume the plain PUBACKs, PUBRECs and PUBCOMPs (4 bytes: Success, no properties) at the head of the
        buffer: each as ``first_byte << 16 | packet_id`` (0x40, 0x50 or 0x70 in the first byte).

        A sender's fast path for acknowledgements in bulk, as :meth:`take_plain_pubacks`: no packet objects, the
        first other packet (or an incomplete one, or an identifier of 0) left for :meth:`next_packet`.
        """
        acks: list[int] = []
        if self._need or self._error is not None or self.version is None:
            return acks
        buf = self._buf
        pos = self._pos
        end = len(buf) - 3
        while pos < end and len(acks) < limit:
            first = buf[pos]
            if first not in {0x40, 0x50, 0x70} or buf[pos + 1] != 2:
                break
            pid = (buf[pos + 2] << 8) | buf[pos + 3]
            if not pid:
                break
            acks.append(first << 16 | pid)
            pos += 4
        if acks:
            self._pos = pos
            self.last_size = 4
        return acks

    def next_packet(self) -> Packet | None:
        """The next whole packet, or None until more bytes arrive.

        Raises:
            RemoteProtocolError: the bytes violate the specification (the error carries the reason code).
        """
        buf = self._buf
        pos = self._pos
        n = len(buf)
        # Fast path: a whole packet with a one-byte remaining length is buffered (most packets on a busy link).
        if pos + 2 <= n and not self._need and self._error is None:
            length = buf[pos + 1]
            if length < 0x80:
                end = pos + 2 + length
                version = self.version
                if end <= n and length + 2 <= self.max_packet_size and version is not None:
                    self._pos = end
                    self.last_size = length + 2
                    first = buf[pos]
                    if first >> 4 == _PUBLISH:
                        try:
                            return _decode_publish(first & 0x0F, buf, pos + 2, end, version, self.strict,
                                                   self.server)  # fmt: skip
                        except RemoteProtocolError as exc:
                            self._fail(exc)
                    return self._decode(first, buf, pos + 2, end, version)
        return self._next_packet_slow()

    def _next_packet_slow(self) -> Packet | None:
        if self._error is not None:
            raise self._error
        buf = self._buf
        pos = self._pos
        avail = len(buf) - pos
        if self._need:
            # Waiting for the rest of a packet whose size is known: join the chunks only once it is all here.
            if avail + self._chunked < self._need:
                return None
            if avail < self._need:
                self._consolidate()
                buf = self._buf
                pos = 0
                avail = len(buf)
            self._need = 0
        # Fixed header: type/flags byte, then a remaining length of 1 to 4 bytes.
        if avail < 2 or (buf[pos + 1] & 0x80 and avail < 5):
            if self._chunks:
                self._consolidate()
                return self._next_packet_slow()
            if avail < 2:
                if avail and self.version is None:
                    self._check_first_type(buf[pos])
                elif not avail and buf:
                    # All of it read: let go of the chunk received, or an idle connection keeps it for good (the
                    # socket's read buffer, of which a shrunk mmap keeps a whole page for a few bytes)
                    self._buf = b""
                    self._pos = 0
                return None
        first = buf[pos]
        if self.version is None:
            self._check_first_type(first)
        i, length = self._remaining_length(buf, pos)
        if i < 0:
            return None  # the remaining length itself is incomplete
        total = i - pos + length
        self._check_size(total)
        end = pos + total
        if end > len(buf):
            if self._chunked and avail + self._chunked >= total:
                self._consolidate()
                return self._next_packet_slow()
            self._need = total
            return None
        self._pos = end
        self.last_size = total
        version = self.version
        if version is None:
            packet = self._decode(first, buf, i, end, ProtocolVersion.MQTT_5)
            assert isinstance(packet, Connect)
            self.version = packet.protocol_version
            return packet
        return self._decode(first, buf, i, end, version)

    def _check_first_type(self, first: int) -> None:
        if first >> 4 != _CONNECT:
            self._fail(RemoteProtocolError(f"the first packet must be CONNECT, not {_type_name(first >> 4)}"))

    def _remaining_length(self, buf: bytes, pos: int) -> tuple[int, int]:
        """(index after the remaining length, its value) of the packet at ``pos``; (-1, 0) while incomplete."""
        length = 0
        shift = 0
        i = pos + 1
        while True:
            if i >= len(buf):
                return -1, 0
            byte = buf[i]
            length |= (byte & 0x7F) << shift
            i += 1
            if byte < 0x80:
                if byte == 0 and i - pos > 2:
                    self._fail(MalformedPacket("remaining length is not minimally encoded"))
                return i, length
            shift += 7
            if shift == 28:
                self._fail(MalformedPacket("remaining length is longer than four bytes"))

    def _check_size(self, total: int) -> None:
        if self.version is None and total > self.max_connect_size:
            self._fail(PacketTooLarge(f"a CONNECT of {total} bytes is larger than {self.max_connect_size} bytes"))
        if total > self.max_packet_size:
            self._fail(
                PacketTooLarge(f"packet of {total} bytes exceeds the maximum packet size {self.max_packet_size}")
            )

    def check_next_header(self) -> None:
        """Check the fixed header of the next packet without waiting for its body: raises as :meth:`next_packet`
        would for a wrong first packet, a bad remaining length or a packet larger than the maximum.

        For input that waits while the connection is busy elsewhere (a password being checked): the limits hold
        from the header on, as they do for input that is read.
        """
        if self._error is not None:
            raise self._error
        if self._need:
            return  # the header of the packet being waited for was checked when it was read
        buf = self._buf
        pos = self._pos
        if pos >= len(buf):
            if not self._chunks:
                return
            self._consolidate()
            buf = self._buf
            pos = 0
        if self.version is None:
            self._check_first_type(buf[pos])
        if len(buf) - pos < 5 and self._chunks:
            self._consolidate()
            buf = self._buf
            pos = 0
        i, length = self._remaining_length(buf, pos)
        if i >= 0:
            self._check_size(i - pos + length)

    def _decode(self, first: int, buf: bytes, pos: int, end: int, version: int) -> Packet:
        ptype = first >> 4
        flags = first & 0x0F
        try:
            decoder = _DECODERS[ptype]
            if decoder is None:
                raise MalformedPacket("packet type 0 is reserved")
            required = REQUIRED_FLAGS[ptype]
            if required is not None and flags != required:
                raise MalformedPacket(f"{_type_name(ptype)} has invalid fixed header flags 0x{flags:X}")
            if ptype == _CONNECT and self.version is not None:
                raise RemoteProtocolError("a second CONNECT on the same connection")
            if ptype == _PUBLISH:
                return _decode_publish(flags, buf, pos, end, version, self.strict, self.server)
            return decoder(flags, buf, pos, end, version, self.strict)
        except RemoteProtocolError as exc:
            self._fail(exc)
        except (IndexError, ValueError) as exc:  # defence in depth: a decoder bug must not escape as a crash
            self._fail(MalformedPacket(f"undecodable packet: {exc}"))

    def _fail(self, error: RemoteProtocolError) -> NoReturn:
        self._error = error
        self._buf = b""
        self._pos = 0
        self._chunks.clear()
        self._chunked = 0
        raise error

    def __iter__(self) -> Iterator[Packet]:
        """The whole packets buffered now."""
        while True:
            packet = self.next_packet()
            if packet is None:
                return
            yield packet

    def read(self, data: bytes | bytearray | memoryview) -> list[Packet]:
        """Feed ``data`` and return every packet completed by it."""
        self.feed(data)
        return list(self)


def decode_packet(data: bytes, version: int = ProtocolVersion.MQTT_5, max_packet_size: int = MAX_PACKET_SIZE) -> Packet:
    """Decode exactly one whole packet.

    Raises:
        MalformedPacket: ``data`` holds less or more than one packet.
        RemoteProtocolError: the packet violates the specification.
    """
    is_connect = bool(data) and data[0] >> 4 == _CONNECT
    reader = PacketReader(None if is_connect else version, max_packet_size)
    reader.feed(data)
    packet = reader.next_packet()
    if packet is None:
        raise MalformedPacket(f"incomplete packet ({len(data)} bytes)")
    if reader.buffered:
        raise MalformedPacket(f"{reader.buffered} bytes after the packet")
    return packet
