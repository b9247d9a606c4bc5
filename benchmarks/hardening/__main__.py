"""Run the hardening scenarios: ``python -m benchmarks.hardening [--long] [--only faults load fuzz security]``."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.hardening.common import Report, raise_file_limit

#: Scenario groups, each a module with ``async def run(long: bool, workdir: Path) -> list[Report]``.
GROUPS = ("fuzz", "faults", "load", "security")


async def run_group(name: str, long: bool, workdir: Path) -> list[Report]:
    module = importlib.import_module(f"benchmarks.hardening.{name}")
    return await module.run(long, workdir)  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="mqttchat hardening: faults, load, fuzzing, security")
    parser.add_argument("--long", action="store_true", help="the long form of every scenario (minutes each)")
    parser.add_argument("--only", nargs="*", choices=GROUPS, default=list(GROUPS), help="scenario groups to run")
    args = parser.parse_args(argv)
    # Faults make asyncio warn about writes to dead sockets, once per write: the figures say what happened.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    logging.getLogger("mqttchat").setLevel(logging.ERROR)
    raise_file_limit()
    failed = False
    for name in args.only:
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"hardening-{name}-") as tmp:
            reports = asyncio.run(run_group(name, args.long, Path(tmp)))
        for report in reports:
            print(report.format(), flush=True)
            failed |= bool(report.problems)
        print(f"  ({name}: {time.monotonic() - started:.1f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
