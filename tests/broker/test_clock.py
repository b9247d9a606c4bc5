"""The broker's Clock (mqttchat.broker.clock): deadlines in order, cancellation, work put off, the driver's hooks."""

from __future__ import annotations

import gc
import weakref

from mqttchat.broker.clock import Clock
from tests.helpers.broker_pair import ManualClock


def test_timers_run_at_their_deadline_in_order_and_once() -> None:
    source = ManualClock(0.0)
    clock = Clock(source)
    ran: list[str] = []
    clock.call_later(2, ran.append, "b")
    clock.call_later(1, ran.append, "a")
    clock.call_later(2, ran.append, "c")  # same deadline: in the order set
    cancelled = clock.call_later(1.5, ran.append, "never")
    cancelled.cancel()
    assert clock.next_deadline() == 1
    source.time = 1.9
    clock.run_due()
    assert ran == ["a"]
    source.time = 2
    clock.run_due()
    clock.run_due()
    assert ran == ["a", "b", "c"] and clock.next_deadline() is None


def test_the_driver_is_woken_once_per_batch_and_rearmed_for_an_earlier_deadline() -> None:
    clock = Clock(ManualClock(0.0))
    wakes: list[int] = []
    deadlines: list[float] = []
    clock.wake = lambda: wakes.append(1)
    clock.rearm = deadlines.append
    done: list[str] = []
    clock.call_soon(lambda: done.append("flush a"))
    clock.call_soon(lambda: done.append("flush b"))
    assert len(wakes) == 1 and done == []

    def again() -> None:
        done.append("commit")
        clock.call_soon(lambda: done.append("later"))  # put off by put-off work: the next batch

    clock.call_soon(again)
    clock.run_soon()
    assert done == ["flush a", "flush b", "commit"] and len(wakes) == 2 and clock.pending
    clock.run_soon()
    assert done[-1] == "later" and not clock.pending
    clock.call_later(10, lambda: None)
    clock.call_later(20, lambda: None)  # later than the earliest: no rearm
    clock.call_later(5, lambda: None)
    assert deadlines == [10, 5]


def test_cancelled_timers_do_not_pile_up() -> None:
    """A CONNECT timeout set and cancelled per connection: a flood of connections leaves no heap behind."""
    clock = Clock(ManualClock(0.0))
    keep = clock.call_later(60, lambda: None)
    for _ in range(10_000):
        clock.call_later(30, lambda: None).cancel()
    assert len(clock) < 200
    assert clock.next_deadline() == 60 and not keep.cancelled


def test_a_cancelled_timer_keeps_nothing_of_its_callback_alive() -> None:
    """A cancelled timer waits in the heap until it is due or swept: what its callback holds (a CONNECT timeout's
    connection with the partial CONNECT it buffered) must be freed when its owner goes."""

    class Owner:
        def __init__(self) -> None:
            self.buffer = bytes(200_000)

        def timeout(self) -> None:
            raise AssertionError("a cancelled timer ran")

    clock = Clock(ManualClock(0.0))
    owners = [Owner() for _ in range(10)]
    refs = [weakref.ref(owner) for owner in owners]
    for owner in owners:
        clock.call_later(5, owner.timeout).cancel()
    clock.call_later(5, lambda: None)  # the heap keeps the cancelled ones (too few to sweep)
    assert len(clock) == 11
    del owner
    owners.clear()
    gc.collect()
    assert [ref() for ref in refs] == [None] * 10
