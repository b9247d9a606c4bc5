"""The words the screens, the models and the command line use for counts, sizes and ages."""

from __future__ import annotations

import pytest

from mqttchat.labels import age_label, plural, size_label


def test_plural() -> None:
    assert plural(0, "topic") == "0 topics"
    assert plural(1, "topic") == "1 topic"
    assert plural(2, "retained message") == "2 retained messages"
    assert plural(3, "entry", "entries") == "3 entries"
    assert plural(1, "entry", "entries") == "1 entry"
    assert plural(12_000, "message", grouped=True) == "12,000 messages"
    assert plural(1, "message", grouped=True) == "1 message"


@pytest.mark.parametrize(
    ("size", "label"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (5 * 1024**2, "5.0 MiB"),
     (3 * 1024**3, "3.0 GiB"), (2048 * 1024**3, "2048.0 GiB")],
)  # fmt: skip
def test_size_label(size: int, label: str) -> None:
    assert size_label(size) == label


@pytest.mark.parametrize(
    ("seconds", "label"),
    [(0.2, "now"), (1, "1s"), (59.9, "59s"), (60, "1m"), (3599, "59m"), (3600, "1h"), (86_399, "23h"),
     (86_400, "1d"), (10 * 86_400, "10d")],
)  # fmt: skip
def test_age_label(seconds: float, label: str) -> None:
    assert age_label(seconds) == label
