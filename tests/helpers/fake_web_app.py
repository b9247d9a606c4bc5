"""A stand-in for the app under textual-serve: it says it is ready as a Textual app does (``__GANGLION__``), then
reads its input until the server tells it to quit (or closes it). Used where the test is about the server."""

from __future__ import annotations

import sys


def main() -> int:
    sys.stdout.write("__GANGLION__\n")
    sys.stdout.flush()
    while chunk := sys.stdin.buffer.read1(65536):
        if b'"quit"' in chunk:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
