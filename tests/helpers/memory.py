"""How much memory an action leaves behind (tracemalloc), for tests of bounded caches."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable


def bytes_kept(action: Callable[[], object]) -> int:
    """Bytes still allocated after ``action()`` returned and its garbage was collected (its result is dropped)."""
    gc.collect()
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        action()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        if started:
            tracemalloc.stop()
