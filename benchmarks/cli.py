"""Command-line cold start: ``mqttchat pub``, ``sub -C 1`` and ``--help`` beside mosquitto_pub/mosquitto_sub.

Run: ``python -m benchmarks.cli [--runs 21]`` (needs ``apt-get install -y mosquitto mosquitto-clients``).

Each row starts a new process as a user's shell script would, against one mosquitto on loopback, and prints the
median wall time and CPU time (user + system of the child) over ``--runs`` runs, with the ratio mqttchat /
mosquitto. The two tools alternate run by run, so that a busy machine weighs on both alike.

* pub: ``pub -p PORT -t bench/cli/pub -m hello`` (connect, one QoS 0 message, disconnect).
* sub -C 1: ``sub -p PORT -t bench/cli/retained -C 1``; a retained message waits on that topic, so the command
  connects, subscribes, prints it and disconnects.
* --help: ``mqttchat --help`` beside ``mosquitto_pub --help``.

mqttchat runs as its console script (the ``mqttchat`` next to this Python, else ``python -m mqttchat``), not
through a shim such as pyenv's (which costs about 100 ms of its own). The package is byte-compiled first, as
``pip install`` leaves it: without ``.pyc`` files (``PYTHONDONTWRITEBYTECODE`` and a fresh tree) every start
compiles the sources again, which costs more than everything else together.
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import mqttchat
from benchmarks.peers import mosquitto

#: The issue's target for every mqttchat row (median wall time).
TARGET_MS = 120.0


def mqttchat_command() -> list[str]:
    script = Path(sys.executable).parent / "mqttchat"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "mqttchat"]


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Wall and CPU seconds of one run of ``cmd``, and its exit status."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False, timeout=30)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description="mqttchat pub/sub/--help cold start beside mosquitto's tools")
    parser.add_argument("--runs", type=int, default=21, help="runs per command (default 21); medians are printed")
    args = parser.parse_args()
    package = Path(mqttchat.__file__).parent
    compileall.compile_dir(str(package), quiet=1)
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package.parent), env.get("PYTHONPATH")]))
    ours = mqttchat_command()
    failed = False
    with mosquitto() as port:
        p = str(port)
        subprocess.run(["mosquitto_pub", "-p", p, "-t", "bench/cli/retained", "-m", "kept", "-r"], check=True)
        rows = [
            (
                "pub",
                [*ours, "pub", "-p", p, "-t", "bench/cli/pub", "-m", "hello"],
                ["mosquitto_pub", "-p", p, "-t", "bench/cli/pub", "-m", "hello"],
                0,
            ),
            (
                "sub -C 1",
                [*ours, "sub", "-p", p, "-t", "bench/cli/retained", "-C", "1"],
                ["mosquitto_sub", "-p", p, "-t", "bench/cli/retained", "-C", "1"],
                0,
            ),
            # mosquitto_pub --help exits with status 1 after printing its help.
            ("--help", [*ours, "--help"], ["mosquitto_pub", "--help"], 1),
        ]
        print(f"mosquitto on 127.0.0.1:{port}; {args.runs} runs each, alternating; medians; mqttchat: {' '.join(ours)}")
        floor = statistics.median(timed([sys.executable, "-c", "pass"], env)[0] for _ in range(args.runs)) * 1000
        print(f"the floor: this Python starting and doing nothing (python -c pass) takes {floor:.1f} ms")
        print()
        header = (
            f"{'command':<10}{'mqttchat ms':>12}{'CPU ms':>8}{'mosquitto ms':>14}{'CPU ms':>8}{'ratio':>9}{'target':>9}"
        )
        print(header)
        print("-" * len(header))
        for label, cmd, theirs, their_status in rows:
            walls: list[float] = []
            cpus: list[float] = []
            their_walls: list[float] = []
            their_cpus: list[float] = []
            timed(cmd, env)  # the first run after compiling warms the page cache
            for _ in range(args.runs):
                wall, cpu, status = timed(cmd, env)
                if status != 0:
                    print(f"  {' '.join(cmd)}: exit status {status}", file=sys.stderr)
                    failed = True
                walls.append(wall)
                cpus.append(cpu)
                wall, cpu, status = timed(theirs, env)
                if status != their_status:
                    print(f"  {' '.join(theirs)}: exit status {status}", file=sys.stderr)
                their_walls.append(wall)
                their_cpus.append(cpu)
            ours_ms = statistics.median(walls) * 1000
            theirs_ms = statistics.median(their_walls) * 1000
            verdict = "met" if ours_ms <= TARGET_MS else "MISSED"
            print(
                f"{label:<10}{ours_ms:>12.1f}{statistics.median(cpus) * 1000:>8.1f}{theirs_ms:>14.1f}"
                f"{statistics.median(their_cpus) * 1000:>8.1f}{ours_ms / theirs_ms:>8.1f}x{verdict:>9}",
                flush=True,
            )
    print()
    print(f"ratio: mqttchat's median wall time over mosquitto's (the target is mqttchat <= {TARGET_MS:.0f} ms)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
