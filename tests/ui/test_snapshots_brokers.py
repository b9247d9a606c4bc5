"""SVG snapshots of the explorer with several brokers open (the deterministic data of tests/helpers/scenes.py)."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from tests.helpers.scenes import SNAPSHOT_SIZES, press_frozen, two_brokers


@SNAPSHOT_SIZES
def test_two_brokers_in_tabs(snap_compare: Any, size: tuple[int, int]) -> None:
    """Tabs "● dev" (green: connected, active) "● prod" (red: disconnected) "Chat (dev) ^t"; dev's tree and status
    bar, whose history reads "of 64.0 MiB shared" (its share of the one budget)."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await press_frozen(pilot, "end", "right", "down", "down", "right", "down", "down", flushes=2)

    assert snap_compare(two_brokers(), terminal_size=size, run_before=run_before)


@SNAPSHOT_SIZES
def test_the_other_brokers_tab(snap_compare: Any, size: tuple[int, int]) -> None:
    """After ]: prod's tab active, its own tree (plant/boiler) and status bar (disconnected, prod.example:8883)."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await press_frozen(pilot, "right_square_bracket", flushes=2)
        await pilot.press("right", "down")
        pilot.app.flush()  # type: ignore[attr-defined]
        await pilot.pause()

    assert snap_compare(two_brokers(), terminal_size=size, run_before=run_before)
