"""Charts of numeric fields over time: series of (time, value) points, each a topic and a field of its decoded
payloads (a JSON path such as ``a.b.0``, a Sparkplug B metric name, or ``""`` for a payload that is a number).

The reader task hands the messages of charted topics to :meth:`Charts.offer` (one dict lookup for the others); they
are decoded at the UI's flush by :meth:`Charts.update`, never at ingest, and each series keeps a bounded ring of
points. No Textual here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mqttchat.explorer.decoders import PayloadDecoders
    from mqttchat.explorer.decoders.sparkplug.state import SparkplugObservation
    from mqttchat.explorer.tree import Entry

__all__ = ["MAX_SERIES", "WINDOWS", "Charts", "Series", "SeriesStats"]

#: Series charted at once.
MAX_SERIES = 8
#: Points kept per series (the oldest go first).
POINTS_PER_SERIES = 20_000
#: Messages of one topic waiting for the next flush (beyond it the oldest are dropped and counted).
PENDING_PER_TOPIC = 5_000
#: The time windows a chart cycles through, in seconds.
WINDOWS: tuple[float, ...] = (60.0, 300.0, 900.0, 3600.0)

_Pending = tuple[float, bytes, "str | None", "SparkplugObservation | None"]


@dataclass(frozen=True, slots=True)
class SeriesStats:
    """A series within a window: its last, smallest and largest values and how many points."""

    last: float
    low: float
    high: float
    count: int


@dataclass(slots=True, eq=False)
class Series:
    topic: str
    #: A JSON path, a Sparkplug metric name, or "" (the payload is a number).
    field: str
    points: deque[tuple[float, float]] = dataclass_field(default_factory=lambda: deque(maxlen=POINTS_PER_SERIES))

    @property
    def label(self) -> str:
        return f"{self.topic} {self.field}" if self.field else self.topic

    def window(self, start: float, end: float) -> list[tuple[float, float]]:
        """The points from start to end (the ring is in time order: a scan from the newest end)."""
        out: list[tuple[float, float]] = []
        for point in reversed(self.points):
            if point[0] < start:
                break
            if point[0] <= end:
                out.append(point)
        out.reverse()
        return out

    def sampled(self, start: float, end: float, buckets: int) -> list[tuple[float, float]]:
        """The points from start to end, at most about ``2 * buckets`` of them: in each of ``buckets`` equal spans
        of time its lowest and highest point, in time order (a chart is as wide as a terminal: spikes stay)."""
        points = self.window(start, end)
        if len(points) <= 2 * buckets or buckets < 1 or end <= start:
            return points
        width = (end - start) / buckets
        out: list[tuple[float, float]] = []
        current = -1
        low: tuple[float, float] = points[0]
        high: tuple[float, float] = points[0]
        for point in points:
            bucket = min(buckets - 1, int((point[0] - start) / width))
            if bucket != current:
                if current >= 0:
                    out.extend(sorted({low, high}))
                current, low, high = bucket, point, point
            elif point[1] < low[1]:
                low = point
            elif point[1] > high[1]:
                high = point
        out.extend(sorted({low, high}))
        return out

    def stats(self, start: float, end: float) -> SeriesStats | None:
        values = [value for _, value in self.window(start, end)]
        if not values:
            return None
        return SeriesStats(values[-1], min(values), max(values), len(values))


class Charts:
    """The series charted, fed by the reader task and decoded at the flush; a pause freezes the time shown."""

    def __init__(self, max_series: int = MAX_SERIES, pending_per_topic: int = PENDING_PER_TOPIC) -> None:
        self.max_series = max_series
        self.series: list[Series] = []
        #: Series by topic: the reader checks ``topic in charts.topics`` for each message.
        self.topics: dict[str, list[Series]] = {}
        self._pending: dict[str, deque[_Pending]] = {}
        self._pending_limit = pending_per_topic
        #: The chart's time span in seconds (one of :data:`WINDOWS` unless set otherwise).
        self.window = WINDOWS[1]
        #: When paused: the end of the time shown (points still arrive, and show on resume).
        self.paused_at: float | None = None
        #: Bumped whenever points arrive or the series, window or pause change (a chart redraws only then).
        self.version = 0
        #: Messages dropped because too many waited for one flush; values that were not numbers.
        self.dropped = 0
        self.missing = 0

    @property
    def paused(self) -> bool:
        return self.paused_at is not None

    # ------------------------------------------------------------------------------------------ series

    def add(
        self, topic: str, field: str, history: Iterable[Entry] = (), decoders: PayloadDecoders | None = None
    ) -> Series:
        """Chart field of topic, starting with the values in history (oldest first) when decoders are given.

        Raises:
            ValueError: that series is charted already, or :data:`MAX_SERIES` are.
        """
        field = field.strip()
        if any(series.topic == topic and series.field == field for series in self.series):
            raise ValueError("that series is charted already")
        if len(self.series) >= self.max_series:
            raise ValueError(f"at most {self.max_series} series are charted at once: remove one first")
        series = Series(topic, field)
        if decoders is not None:
            for entry in history:
                if not entry.truncated:
                    self._append(series, entry.received_at, entry.payload, entry.properties.content_type,
                                 entry.observation, decoders)  # fmt: skip
        self.series.append(series)
        self.topics.setdefault(topic, []).append(series)
        self._pending.setdefault(topic, deque(maxlen=self._pending_limit))
        self.version += 1
        return series

    def remove(self, index: int) -> Series | None:
        if not 0 <= index < len(self.series):
            return None
        series = self.series.pop(index)
        same = self.topics.get(series.topic, [])
        same.remove(series)
        if not same:
            del self.topics[series.topic]
            self._pending.pop(series.topic, None)
        self.version += 1
        return series

    def clear(self) -> None:
        self.series.clear()
        self.topics.clear()
        self._pending.clear()
        self.version += 1

    def set_window(self, seconds: float) -> None:
        self.window = seconds
        self.version += 1

    def next_window(self) -> float:
        """The next of :data:`WINDOWS` (after the last, the first)."""
        later = [w for w in WINDOWS if w > self.window]
        self.set_window(later[0] if later else WINDOWS[0])
        return self.window

    def pause(self, now: float) -> None:
        if self.paused_at is None:
            self.paused_at = now
            self.version += 1

    def resume(self) -> None:
        if self.paused_at is not None:
            self.paused_at = None
            self.version += 1

    def span(self, now: float) -> tuple[float, float]:
        """(start, end) of the time shown: the window up to now, or up to the pause."""
        end = self.paused_at if self.paused_at is not None else now
        return end - self.window, end

    # ------------------------------------------------------------------------------------------ data

    def offer(
        self,
        topic: str,
        payload: bytes,
        content_type: str | None,
        observation: SparkplugObservation | None,
        received_at: float,
    ) -> None:
        """A message of a charted topic (the reader task; cheap: decoded later by :meth:`update`)."""
        pending = self._pending.get(topic)
        if pending is None:
            return
        if len(pending) == pending.maxlen:
            self.dropped += 1
        pending.append((received_at, payload, content_type, observation))

    def update(self, decoders: PayloadDecoders) -> bool:
        """Decode what arrived for the charted topics and add their points. Whether any point was added."""
        added = False
        for topic, pending in self._pending.items():
            if not pending:
                continue
            series = self.topics.get(topic, ())
            while pending:
                at, payload, content_type, observation = pending.popleft()
                result = decoders.decode(topic, payload, content_type=content_type, observation=observation)
                for one in series:
                    value = result.number(one.field)
                    if value is None:
                        self.missing += 1
                    else:
                        one.points.append((at, value))
                        added = True
        if added:
            self.version += 1
        return added

    def _append(
        self,
        series: Series,
        at: float,
        payload: bytes,
        content_type: str | None,
        observation: SparkplugObservation | None,
        decoders: PayloadDecoders,
    ) -> None:
        result = decoders.decode(series.topic, payload, content_type=content_type, observation=observation)
        value = result.number(series.field)
        if value is not None:
            series.points.append((at, value))
