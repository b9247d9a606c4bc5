"""The suite's one way to wait: poll a condition until it holds, and fail saying what did not happen.

- :func:`until` in an event loop (the loop runs meanwhile: brokers, clients, a Textual app under Pilot, whose
  timers and refreshes run as they do in a terminal). Given the ``pilot``, it stops waiting when the app crashed
  (``run_test`` raises the app's error on the way out, which says more than a timeout).
- :func:`until_sync` in plain code (paho's threads, a subprocess, a log file).

Both raise ``AssertionError`` naming ``what`` (or the condition) when ``timeout`` seconds pass; a test never waits
a fixed time for something to happen.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

__all__ = ["until", "until_sync"]


async def until(
    condition: Callable[[], object],
    timeout: float = 10.0,
    what: str = "",
    *,
    pilot: Any = None,
    interval: float = 0.01,
) -> None:
    """Wait until ``condition()`` is true, letting the event loop run; fail after ``timeout`` seconds saying
    ``what``. With a Textual ``pilot``, a crashed app ends the wait."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                if pilot is not None and pilot.app._exception is not None:
                    return
                await asyncio.sleep(interval)
    except TimeoutError:
        raise AssertionError(f"not true after {timeout} s: {what or _describe(condition)}") from None


def until_sync(condition: Callable[[], object], timeout: float = 10.0, what: str = "", interval: float = 0.02) -> None:
    """Block until ``condition()`` is true; fail after ``timeout`` seconds saying ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"not true after {timeout} s: {what or _describe(condition)}")
        time.sleep(interval)


def _describe(condition: Callable[[], object]) -> str:
    code = getattr(condition, "__code__", None)
    if code is None:
        return repr(condition)
    name = getattr(condition, "__qualname__", "condition")
    return f"{name} ({code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno})"
