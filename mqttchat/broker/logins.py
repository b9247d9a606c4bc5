"""Password checks for the broker's logins: few at a time, the well-behaved first, floods refused early.

Theory of operation::

    CONNECT ─▶ empty password (not allowed)? ──────────────▶ REFUSED        at once, nothing computed
          ├──▶ the password a full check last accepted? ───▶ ACCEPTED       at once (an HMAC, no PBKDF2)
          ├──▶ source has a failure token: reserve it ─────▶ normal lane ─┐
          └──▶ source out of tokens ───────────────────────▶ penalty lane ┤ (a full lane: BUSY / RATE_LIMITED)
                                                                          ▼
            ``workers`` threads run PBKDF2, the normal lane first, its sources in turn ──▶ ACCEPTED / REFUSED (later)

A check costs milliseconds of PBKDF2, so a flood of bad logins could otherwise queue without bound in front of
everyone else's (300 unknown-user CONNECTs, 12 KB of traffic, once delayed a correct login by 6.5 s). Here:

* at most ``workers`` checks run at once, in threads of their own (PBKDF2 releases the GIL), so the event loop
  keeps routing messages while they run;
* a source (an IP address) holds a token bucket of failed logins (``per_source`` tokens, refilled at
  ``refill_per_second``). A check takes a token when it is queued, and gives it back when the password was
  right. Checks from a source with tokens queue in the normal lane; the rest in the penalty lane, which is served
  only when the normal lane is empty. The normal lane serves its sources in turn, one check each, so a newcomer
  waits for the checks running and at most one check of each other source, never for a flood's share;
* both lanes are bounded: beyond them a login is refused at once (0x89 Server busy / 0x9F Connection rate
  exceeded) instead of waiting, so waiting never grows past a few checks' time;
* a new connection from a source out of tokens is read only after ``tarpit`` seconds (see :meth:`penalised`):
  a flood of connections then costs the broker a fraction of the CPU it would, and what it has left goes to
  everyone else's logins.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from mqttchat.untrusted import loggable

log = logging.getLogger("mqttchat.broker")
#: Seconds between log lines about logins refused without a check.
LOG_INTERVAL = 5.0


class Verdict(Enum):
    ACCEPTED = "accepted"
    #: Bad user name or password.
    REFUSED = "refused"
    #: Too many checks waiting: refused without a check (0x89 Server busy).
    BUSY = "busy"
    #: The source failed too often and the penalty lane is full: refused without a check (0x9F).
    RATE_LIMITED = "rate limited"


def default_workers() -> int:
    """Threads for password checks: half the cores (the event loop needs one), at least one, at most four."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


class CheckRunner(Protocol):
    """Runs password checks away from the event loop, and reports each back on the loop's thread: the broker's
    asyncio shell gives threads (:class:`mqttchat.broker.server.ThreadRunner`); a test may run them when it likes."""

    def run(self, check: Callable[[], bool], done: Callable[[bool, BaseException | None], None]) -> None:
        """Run ``check()``; then ``done(result, None)``, ``done(False, error)`` if it raised, or nothing once closed."""

    def close(self) -> None:
        """Drop the checks not started (a running check finishes unseen)."""


class LoginCheck:
    """A check waiting or running; ``cancel()`` when its connection closes first (its answer is then dropped)."""

    __slots__ = ("_gate", "done", "passwords", "reserved", "secret", "source", "username")

    def __init__(
        self,
        gate: LoginChecks,
        passwords: Any,
        username: str,
        secret: bytes,
        source: str,
        done: Callable[[Verdict], None],
    ) -> None:
        self._gate = gate
        self.passwords = passwords
        self.username = username
        self.secret = secret
        self.source = source
        self.done: Callable[[Verdict], None] | None = done
        #: Whether it took a token of its source's bucket (given back if the password was right).
        self.reserved = False

    def cancel(self) -> None:
        if self.done is not None:
            self.done = None
            self._gate._withdraw(self)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class LoginChecks:
    """Runs password checks for a broker (see the module's theory of operation)."""

    def __init__(
        self,
        workers: int | None = None,
        *,
        per_source: int = 5,
        refill_per_second: float = 0.5,
        queue: int = 32,
        penalty_queue: int = 16,
        max_sources: int = 4096,
        tarpit: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        runner: CheckRunner | None = None,
    ) -> None:
        self.workers = workers or default_workers()
        #: Where the checks run (at most :attr:`workers` at once); the broker's shell sets it before any login.
        self.runner = runner
        self._closed = False
        self.per_source = per_source
        self.refill_per_second = refill_per_second
        self.queue_limit = queue
        self.penalty_limit = penalty_queue
        self.max_sources = max_sources
        self.tarpit = tarpit
        self._clock = clock
        #: The normal lane: a queue per source, served in turn (round robin).
        self._normal: OrderedDict[str, deque[LoginCheck]] = OrderedDict()
        self._normal_count = 0
        self._penalty: deque[LoginCheck] = deque()
        self._sources: OrderedDict[str, _Bucket] = OrderedDict()
        #: Checks running in the worker threads now.
        self.running = 0
        #: Logins refused without a check because a lane was full.
        self.refused_busy = 0
        self.refused_rate = 0
        #: Refusals without a check not logged yet, per source (a flood is logged every LOG_INTERVAL s, not per try).
        self._unlogged: Counter[str] = Counter()
        self._logged_at = -LOG_INTERVAL

    def __repr__(self) -> str:
        return f"<LoginChecks running {self.running}/{self.workers}, waiting {self._normal_count}+{len(self._penalty)}>"

    @property
    def waiting(self) -> int:
        return self._normal_count + len(self._penalty)

    def check(
        self, passwords: Any, username: str, password: bytes, source: str, done: Callable[[Verdict], None]
    ) -> Verdict | LoginCheck:
        """Check ``password`` for ``username``: a verdict now, or a :class:`LoginCheck` whose ``done`` is called
        (in the event loop) with ACCEPTED or REFUSED once the check ran."""
        if passwords.refuses_at_once(username, password):
            return Verdict.REFUSED
        if passwords.verify_cached(username, password):
            return Verdict.ACCEPTED
        bucket = self._bucket(source)
        ticket = LoginCheck(self, passwords, username, bytes(password), source, done)
        if bucket.tokens >= 1:
            if self._normal_count >= self.queue_limit:
                self.refused_busy += 1
                self._note_refusal(source)
                return Verdict.BUSY
            bucket.tokens -= 1
            ticket.reserved = True
            lane = self._normal.get(source)
            if lane is None:
                lane = self._normal[source] = deque()
            lane.append(ticket)
            self._normal_count += 1
        else:
            if len(self._penalty) >= self.penalty_limit:
                self.refused_rate += 1
                self._note_refusal(source)
                return Verdict.RATE_LIMITED
            self._penalty.append(ticket)
        self._start()
        return ticket

    def penalised(self, source: str) -> bool:
        """Whether ``source`` has spent its failed-login tokens: its new connections wait ``tarpit`` seconds before
        they are read (a legitimate client there logs in a moment later; a flood slows down to a trickle)."""
        bucket = self._sources.get(source)
        if bucket is None:
            return False
        return bucket.tokens + (self._clock() - bucket.updated) * self.refill_per_second < 1

    def failed(self, source: str) -> None:
        """A login checked elsewhere (a SCRAM proof) failed: it spends one of ``source``'s tokens."""
        bucket = self._bucket(source)
        bucket.tokens = max(-float(self.per_source), bucket.tokens - 1)

    def close(self) -> None:
        """Drop what waits and stop the runner (a running check finishes unseen)."""
        for lane in (*self._normal.values(), self._penalty):
            for ticket in lane:
                ticket.done = None
        self._normal.clear()
        self._normal_count = 0
        self._penalty.clear()
        self._closed = True
        if self.runner is not None:
            self.runner.close()

    # -- internals ---------------------------------------------------------------------------------------------

    def _note_refusal(self, source: str) -> None:
        self._unlogged[source] += 1
        now = self._clock()
        if now - self._logged_at < LOG_INTERVAL:
            return
        self._logged_at = now
        worst = ", ".join(f"{count} from {loggable(where)}" for where, count in self._unlogged.most_common(3))
        log.warning(
            "logins refused without a check: %d (too many waiting or failing; %s%s)",
            sum(self._unlogged.values()), worst, ", ..." if len(self._unlogged) > 3 else "",
        )  # fmt: skip
        self._unlogged.clear()

    def _bucket(self, source: str) -> _Bucket:
        now = self._clock()
        sources = self._sources
        bucket = sources.get(source)
        if bucket is None:
            bucket = sources[source] = _Bucket(float(self.per_source), now)
            if len(sources) > self.max_sources:
                sources.popitem(last=False)
        else:
            sources.move_to_end(source)
            bucket.tokens = min(float(self.per_source), bucket.tokens + (now - bucket.updated) * self.refill_per_second)
            bucket.updated = now
        return bucket

    def _withdraw(self, ticket: LoginCheck) -> None:
        lane = self._normal.get(ticket.source)
        if lane is not None and ticket in lane:
            lane.remove(ticket)
            self._normal_count -= 1
            if not lane:
                del self._normal[ticket.source]
        elif ticket in self._penalty:
            self._penalty.remove(ticket)

    def _next(self) -> LoginCheck:
        """The next check to run: the normal lane's next source in turn, else the penalty lane's oldest."""
        if self._normal:
            source, lane = next(iter(self._normal.items()))
            ticket = lane.popleft()
            self._normal_count -= 1
            if lane:
                self._normal.move_to_end(source)
            else:
                del self._normal[source]
            return ticket
        return self._penalty.popleft()

    def _start(self) -> None:
        runner = self.runner
        if runner is None:
            raise RuntimeError("LoginChecks has no runner: the broker's shell sets one before any login")
        while self.running < self.workers and (self._normal or self._penalty) and not self._closed:
            ticket = self._next()
            self.running += 1
            runner.run(
                lambda t=ticket: bool(t.passwords.verify(t.username, t.secret)),  # type: ignore[misc]
                lambda ok, error, t=ticket: self._finished(t, ok, error),  # type: ignore[misc]
            )

    def _finished(self, ticket: LoginCheck, ok: bool, error: BaseException | None) -> None:
        self.running -= 1
        if error is not None:
            log.error("password check of user %s failed: %r", loggable(ticket.username), error)
        bucket = self._sources.get(ticket.source)
        if bucket is not None:
            if ok and ticket.reserved:
                bucket.tokens = min(float(self.per_source), bucket.tokens + 1)
            elif not ok and not ticket.reserved:
                # A failure from the penalty lane deepens the debt (to a floor), so that a flood's source stays
                # behind the others for a while after it stops.
                bucket.tokens = max(-float(self.per_source), bucket.tokens - 1)
        done = ticket.done
        ticket.done = None
        if done is not None:
            done(Verdict.ACCEPTED if ok else Verdict.REFUSED)
        self._start()
