"""Time for the broker's sans-I/O objects: a clock to read, deadlines to keep, and work to do after this input.

The connections, the core and the store never touch an event loop. They read :meth:`Clock.now`, set deadlines
with :meth:`Clock.call_later` (a CONNECT timeout, a will delay, a session expiry, the keepalive check) and put off
work to the end of the current input with :meth:`Clock.call_soon` (writing what a burst of input produced in one
write per connection, committing the store once per batch). Whoever drives them runs that work:

* the asyncio shell (:class:`mqttchat.broker.server.Broker`) sets :attr:`Clock.wake` to schedule
  :meth:`Clock.run_soon` on its loop and :attr:`Clock.rearm` to keep one loop timer at :meth:`Clock.next_deadline`;
* a test gives a clock it moves itself (``tests/helpers/broker_pair.py``) and runs both by hand, so that a
  keepalive of a minute passes in no time at all.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from typing import Any


def _nothing(*args: Any) -> None:
    """What a cancelled timer holds instead of its callback."""


class Timer:
    """A deadline set with :meth:`Clock.call_later`; ``cancel()`` it when it no longer matters."""

    __slots__ = ("args", "callback", "cancelled", "clock", "when")

    def __init__(self, clock: Clock, when: float, callback: Callable[..., object], args: tuple[Any, ...]) -> None:
        self.clock: Clock | None = clock
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            # A cancelled timer may wait in the heap until its deadline: it must not keep what its callback holds
            # alive (a CONNECT timeout's connection with the partial CONNECT it buffered).
            self.callback = _nothing
            self.args = ()
            clock, self.clock = self.clock, None
            if clock is not None:
                clock._cancelled_one()

    def __repr__(self) -> str:
        state = " cancelled" if self.cancelled else ""
        return f"<Timer at {self.when:.3f} {getattr(self.callback, '__qualname__', self.callback)}{state}>"


class Clock:
    """Deadlines and deferred work, read against ``now`` (a monotonic clock in seconds).

    Args:
        now: the time source; ``time.monotonic`` (what asyncio's loop reads) unless a test moves time itself.
        wall: the wall clock, for what outlives the process (the store's expiry times, retained messages' age).
    """

    __slots__ = ("_cancelled", "_heap", "_seq", "_soon", "now", "rearm", "wake", "wall")

    def __init__(self, now: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.now = now
        self.wall = wall
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = 0
        #: Cancelled timers still in the heap (dropped all at once when they are most of it).
        self._cancelled = 0
        self._soon: list[Callable[[], object]] = []
        #: Called when work is put off and none was waiting: the driver runs :meth:`run_soon` after this input.
        self.wake: Callable[[], object] | None = None
        #: Called with the new earliest deadline when a timer moves it earlier: the driver runs :meth:`run_due` then.
        self.rearm: Callable[[float], object] | None = None

    # -- for the sans-I/O objects ------------------------------------------------------------------------------

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` once the input being handled now is done (in the order asked)."""
        soon = self._soon
        soon.append(callback)
        if len(soon) == 1 and self.wake is not None:
            self.wake()

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Timer:
        """Run ``callback(*args)`` ``delay`` seconds from now (at the earliest; the driver decides how late)."""
        return self.call_at(self.now() + delay, callback, *args)

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> Timer:
        timer = Timer(self, when, callback, args)
        heap = self._heap
        self._seq += 1
        heapq.heappush(heap, (when, self._seq, timer))
        if heap[0][2] is timer and self.rearm is not None:
            self.rearm(when)
        return timer

    def _cancelled_one(self) -> None:
        self._cancelled += 1
        heap = self._heap
        if self._cancelled > 64 and 2 * self._cancelled > len(heap):
            # Most timers set are cancelled before they are due (a CONNECT timeout, once the CONNECT came): keep
            # the heap from holding thousands of them until their deadlines pass.
            self._heap = [entry for entry in heap if not entry[2].cancelled]
            heapq.heapify(self._heap)
            self._cancelled = 0

    # -- for the driver ----------------------------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        """Whether work put off with :meth:`call_soon` waits."""
        return bool(self._soon)

    def run_soon(self) -> None:
        """Run the work put off so far; what it puts off in turn waits for the next call."""
        soon = self._soon
        if not soon:
            return
        self._soon = []
        for callback in soon:
            callback()

    def next_deadline(self) -> float | None:
        """The earliest deadline of a timer not cancelled, or None."""
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
            self._cancelled -= 1
        return heap[0][0] if heap else None

    def run_due(self) -> None:
        """Run the timers whose deadline has passed, earliest first."""
        now = self.now()
        while True:
            heap = self._heap  # (a callback that cancels timers may replace it)
            if not heap or heap[0][0] > now:
                return
            timer = heapq.heappop(heap)[2]
            if timer.cancelled:
                self._cancelled -= 1
            else:
                timer.cancelled = True  # it ran: a late cancel() changes nothing
                timer.clock = None
                timer.callback(*timer.args)

    def __len__(self) -> int:
        """Timers waiting (cancelled ones included until their deadline passes)."""
        return len(self._heap)
