"""SVG snapshots of the explorer with several brokers open (the deterministic data of tests/helpers/scenes.py)."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from mqttchat.client import ClientOptions, Status, parse_url
from mqttchat.explorer.tree import TopicTree
from mqttchat.runtime import Runtime
from tests.helpers.scenes import NOW, SNAPSHOT_SIZES, make_app, press_frozen


def two_brokers() -> Any:
    """dev (the scenes' house, connected) and prod (a plant, disconnected), dev's explorer shown."""
    app = make_app()
    dev = app.runtime
    dev.profile_name = "dev"
    dev.client._status = Status.CONNECTED
    tree = TopicTree()
    tree.ingest("plant/boiler/temp", b"71.5", 0, False, received_at=NOW - 30)
    tree.ingest("plant/boiler/state", b"on", 1, True, received_at=NOW - 90)
    prod = Runtime(ClientOptions(parse_url("mqtts://prod.example:8883"), client_id="snapshot-prod"), tree=tree,
                   profile_name="prod")  # fmt: skip
    app.runtimes.append(prod)
    return app


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
