"""The packet inspector's model: the packets in and out, newest last, in a bounded ring that can be paused."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from mqttchat.protocol import Packet

__all__ = ["PacketTrace", "TraceRecord"]


@dataclass(slots=True)
class TraceRecord:
    """One packet seen by the packet inspector (described lazily, when shown)."""

    at: float
    #: ``in`` (from the broker) or ``out``.
    direction: str
    packet: Packet
    #: Its size on the wire, in bytes.
    size: int


class PacketTrace:
    """The last ``size`` packets. While :attr:`paused`, packets are counted (:attr:`total`) but not kept."""

    def __init__(self, size: int = 10_000) -> None:
        self.records: deque[TraceRecord] = deque(maxlen=size)
        self.paused = False
        #: Packets seen since the start, kept or not.
        self.total = 0

    def add(self, at: float, direction: str, packet: Packet, size: int) -> None:
        self.total += 1
        if not self.paused:
            self.records.append(TraceRecord(at, direction, packet, size))

    def extend(self, records: Iterable[TraceRecord]) -> None:
        """Records made elsewhere (a sample, a test), kept as if seen now (even while paused)."""
        for record in records:
            self.total += 1
            self.records.append(record)

    def since(self, seen: int) -> list[TraceRecord]:
        """The records of the packets after the first ``seen`` (a :attr:`total` read earlier) that are still kept:
        the ring may have dropped the oldest, and nothing is kept while paused."""
        new = min(self.total - seen, len(self.records))
        if self.paused or new <= 0:
            return []
        records = self.records
        return [records[i] for i in range(len(records) - new, len(records))]

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[TraceRecord]:
        return iter(self.records)
