"""Words for numbers, shared by the screens, the models and the command line: counts, sizes and ages."""

from __future__ import annotations

__all__ = ["age_label", "plural", "size_label"]


def plural(n: int, word: str, words: str | None = None, *, grouped: bool = False) -> str:
    """``n`` and the word for that many: ``1 topic``, ``2 topics``; ``words`` when the plural is not word + s
    (``plural(n, "entry", "entries")``). ``grouped``: thousands separated (``12,000 messages``)."""
    count = f"{n:,}" if grouped else str(n)
    return f"{count} {word}" if n == 1 else f"{count} {words or word + 's'}"


def size_label(n: int) -> str:
    """A byte count in the unit that suits it: ``512 B``, ``14.2 KiB``, ``3.0 MiB``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def age_label(seconds: float) -> str:
    """How long ago, in the largest whole unit: ``now``, ``42s``, ``5m``, ``3h``, ``2d``."""
    if seconds < 1:
        return "now"
    if seconds < 60:
        return f"{int(seconds)}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 86_400:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86_400)}d"
