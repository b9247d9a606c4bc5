"""``mqttchat history``: query the explorer's lasting history of a broker (search, state at a moment, export)."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from mqttchat.explorer.history_store import HistoryQuery, HistoryReader, StoredMessage

PROG = "mqttchat history"
DEFAULT_URL = "mqtt://127.0.0.1:1883"


class _Failure(Exception):
    """One line on stderr and this exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def build_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "history",
        help="search the explorer's history of a broker",
        description="Search what the explorer stored of a broker's messages (in the data directory, one store per "
        "broker), show each topic's last value at a moment, or export messages as JSON lines or CSV.\n\n"
        "Written to a terminal, topics and payloads have their control characters made visible; to a pipe or a "
        "file they are written as stored.",
        add_help=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  mqttchat history -t 'home/#' --since 1h\n  mqttchat history --where 'temp > 30' -F csv\n"
        "  mqttchat history -L mqtt://broker:1883 --at '2026-12-03 14:02' -t 'plant/#'\n  mqttchat history --list\n"
        "  mqttchat history --clear --until 30d     (forget what is older than 30 days)\n\n"
        "Moments: now, 10m or 2h or 3d (ago), 14:02 (today), 2026-12-03 14:02, ISO 8601, seconds since the epoch.\n"
        "Conditions (--where) on JSON fields: temp > 30, state == 'on' and battery.level < 20, name ~ '^kit',\n"
        "  payload > 30 for a bare number; and, or, not, parentheses; a missing field meets no comparison.",
    )
    p.add_argument("--help", action="help", help="show this help and exit")
    where = p.add_argument_group("which store")
    where.add_argument("-L", "--url", help=f"the broker, as the app connected to it (default {DEFAULT_URL})")
    where.add_argument("-h", "--host", help="broker host (default 127.0.0.1)")
    where.add_argument("-p", "--port", type=int, help="broker port (default 1883)")
    where.add_argument("--file", type=Path, help="a store file instead (a .sqlite in the data directory's history/)")
    where.add_argument("--list", action="store_true", help="list the stores, one per broker, and exit")
    where.add_argument("--stats", action="store_true", help="print the store's size and time span, and exit")
    clear = p.add_argument_group("clearing")
    clear.add_argument(
        "--clear",
        action="store_true",
        help="forget the store's messages (with --until: those received at or before then) and exit; quit the app "
        "that keeps this broker's history first",
    )
    clear.add_argument("--all", action="store_true", help="with --clear: every broker's store")
    what = p.add_argument_group("what to find")
    what.add_argument("-t", "--topic", action="append", default=[], help="topic filter (repeat for several)")
    what.add_argument("--since", metavar="MOMENT", help="received at or after this moment")
    what.add_argument("--until", metavar="MOMENT", help="received at or before this moment")
    what.add_argument("--text", metavar="WORDS", help='words the payload holds, all of them ("a phrase" in quotes)')
    what.add_argument("--regex", metavar="RE", help="a regular expression searched in the payload")
    what.add_argument("--where", metavar="CONDITION", help="a condition on the payload's JSON fields")
    what.add_argument("--at", metavar="MOMENT", help="each topic's last message at this moment (the tree as it was)")
    what.add_argument("-C", "--count", type=int, help="at most COUNT messages")
    what.add_argument("--newest-first", action="store_true", help="newest first (default: oldest first)")
    p.add_argument(
        "-F",
        "--format",
        choices=("text", "json", "csv"),
        default="text",
        help="text (time, topic, payload; the default), json (one object a line, the recording format: "
        "replayable in the explorer's Record tab) or csv (a column per JSON field)",
    )
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except _Failure as exc:
        _error(str(exc))
        return exc.status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def _error(text: str) -> None:
    from mqttchat.untrusted import printable

    print(f"{PROG}: {printable(text)}", file=sys.stderr, flush=True)


def _history_dir() -> Path:
    from mqttchat.config import data_dir
    from mqttchat.explorer.history_store import HISTORY_DIR

    return data_dir() / HISTORY_DIR


def _store_file(args: argparse.Namespace) -> Path:
    from mqttchat.explorer.history_store import store_path

    if args.file is not None:
        if args.url or args.host or args.port:
            raise _Failure("give either --file or the broker (-L, -h, -p), not both", 2)
        return Path(args.file).expanduser()
    from mqttchat.client.options import parse_url

    try:
        if args.url:
            if args.host or args.port:
                raise _Failure("give either -L URL or -h/-p, not both", 2)
            target = parse_url(args.url)
        else:
            target = parse_url(f"mqtt://{args.host or '127.0.0.1'}:{args.port or 1883}")
    except ValueError as exc:
        raise _Failure(str(exc), 2) from None
    return store_path(_history_dir().parent, target.url)


def _moment(text: str | None, option: str) -> float | None:
    from mqttchat.explorer.history_store import parse_moment

    if text is None:
        return None
    try:
        return parse_moment(text)
    except ValueError as exc:
        raise _Failure(f"{option}: {exc}", 2) from None


def _query(args: argparse.Namespace) -> HistoryQuery:
    from mqttchat.explorer.conditions import ConditionError, parse_condition
    from mqttchat.explorer.history_store import HistoryQuery

    condition = None
    if args.where is not None:
        try:
            condition = parse_condition(args.where)
        except ConditionError as exc:
            raise _Failure(f"--where: {exc}", 2) from None
    if args.count is not None and args.count < 0:
        raise _Failure("-C must not be negative", 2)
    query = HistoryQuery(
        topics=tuple(args.topic),
        since=_moment(args.since, "--since"),
        until=_moment(args.until, "--until"),
        text=args.text,
        regex=args.regex,
        condition=condition,
        newest_first=args.newest_first,
        limit=args.count,
    )
    problems = query.problems()
    if problems:
        raise _Failure("; ".join(problems), 2)
    return query


def _open(path: Path) -> HistoryReader:
    from mqttchat.explorer.history_store import HistoryError, HistoryReader

    try:
        return HistoryReader(path)
    except HistoryError as exc:
        hint = "" if path.exists() else " (the explorer writes one per broker it connects to; --list shows them)"
        raise _Failure(f"{exc}{hint}") from None


def _run(args: argparse.Namespace) -> int:
    out = sys.stdout
    terminal = out.isatty()
    if args.clear or args.all:
        return _clear(args, out)
    if args.list:
        return _list(out)
    path = _store_file(args)
    query = None if args.stats else _query(args)
    moment = _moment(args.at, "--at")
    with _open(path) as reader:
        if args.stats:
            _stats(reader, out)
            return 0
        assert query is not None
        if moment is not None:
            from mqttchat.explorer.history_store import payload_filter

            # The other parts of the query filter the state (a condition on the values, say).
            accepts = payload_filter(query)
            messages: list[StoredMessage] = [m for m in reader.state_at(moment, query.topics) if accepts(m.payload)]
            if query.newest_first:
                messages.sort(key=lambda m: m.id, reverse=True)
            if args.count is not None:
                messages = messages[: args.count]
            return _write(args.format, lambda: iter(messages), out, terminal)
        return _write(args.format, lambda: reader.search(query), out, terminal)


def _write(fmt: str, messages: Callable[[], Iterator[StoredMessage]], out: TextIO, terminal: bool) -> int:
    from mqttchat.untrusted import printable

    sink: io.TextIOBase | TextIO = _Printable(out) if terminal else out
    if fmt == "json":
        from mqttchat.explorer.history_export import write_jsonl

        write_jsonl(messages(), sink)
    elif fmt == "csv":
        from mqttchat.explorer.history_export import CsvExport

        export = CsvExport()
        export.write(messages, sink)
        if export.skipped_fields:
            _error(f"{export.skipped_fields} fields past the first {len(export.columns)} columns were left out")
    else:
        for m in messages():
            when = dt.datetime.fromtimestamp(m.t).isoformat(sep=" ", timespec="milliseconds")
            payload = m.payload.decode(errors="backslashreplace")
            if terminal:
                line = f"{when} {printable(m.topic)} {printable(payload)}"
            else:
                line = f"{when} {m.topic} {payload}"
            if m.truncated:
                line += f" [cut at {len(m.payload)} of {m.size} bytes]"
            out.write(line + "\n")
    out.flush()
    return 0


class _Printable(io.TextIOBase):
    """A text sink for a terminal: each line's control characters made visible (the line end kept)."""

    def __init__(self, out: TextIO) -> None:
        from mqttchat.untrusted import printable

        self._out = out
        self._printable = printable

    def write(self, text: str) -> int:
        self._out.write(self._printable(text, keep="\n"))
        return len(text)

    def flush(self) -> None:
        self._out.flush()


def _list(out: TextIO) -> int:
    from mqttchat.explorer.history_store import HistoryError, HistoryReader
    from mqttchat.labels import plural, size_label

    folder = _history_dir()
    stores = sorted(folder.glob("*.sqlite")) if folder.is_dir() else []
    if not stores:
        out.write(f"no history stores in {folder}\n")
        return 0
    for path in stores:
        try:
            with HistoryReader(path) as reader:
                facts = reader.summary()
        except HistoryError as exc:
            out.write(f"{path}: {exc}\n")
            continue
        span = _span(facts["oldest"], facts["newest"])
        out.write(
            f"{path.name}  {plural(facts['messages'], 'message', grouped=True)}, "
            f"{plural(facts['topics'], 'topic', grouped=True)}, {size_label(facts['bytes'])}{span}\n"
        )
    return 0


#: Options that choose messages by something other than their age: the store forgets from its oldest end only.
_NOT_WITH_CLEAR = (("topic", "-t"), ("since", "--since"), ("text", "--text"), ("regex", "--regex"),
                   ("where", "--where"), ("at", "--at"), ("count", "-C"), ("newest_first", "--newest-first"),
                   ("list", "--list"), ("stats", "--stats"))  # fmt: skip


def _clear(args: argparse.Namespace, out: TextIO) -> int:
    """``--clear``: forget a broker's stored messages (``--all``: every broker's), those up to ``--until`` or all."""
    from mqttchat.explorer.history_store import HistoryError, HistoryLocked, forget_stored
    from mqttchat.labels import plural, size_label

    if not args.clear:
        raise _Failure("--all goes with --clear", 2)
    given = [option for name, option in _NOT_WITH_CLEAR if getattr(args, name)]
    if given:
        raise _Failure(f"--clear forgets by age only (--until), from the oldest end: not with {', '.join(given)}", 2)
    if args.all and (args.file or args.url or args.host or args.port):
        raise _Failure("give either --all or one store (-L, -h, -p, --file), not both", 2)
    until = _moment(args.until, "--until")
    if args.all:
        folder = _history_dir()
        paths = sorted(folder.glob("*.sqlite")) if folder.is_dir() else []
        if not paths:
            out.write(f"no history stores in {folder}\n")
            return 0
    else:
        paths = [_store_file(args)]
    failed = 0
    for path in paths:
        try:
            count = forget_stored(path, until)
        except HistoryLocked:
            _error(f"{path}: an mqttchat keeps this broker's history now: quit it first (it would go on writing)")
            failed += 1
            continue
        except HistoryError as exc:
            hint = "" if path.exists() else " (the explorer writes one per broker it connects to; --list shows them)"
            _error(f"{exc}{hint}")
            failed += 1
            continue
        size = path.stat().st_size
        out.write(f"{path.name}: {plural(count, 'message', grouped=True)} forgotten, {size_label(size)} now\n")
    out.flush()
    return 1 if failed else 0


def _span(oldest: float | None, newest: float | None) -> str:
    if oldest is None or newest is None:
        return ""
    first = dt.datetime.fromtimestamp(oldest).isoformat(sep=" ", timespec="seconds")
    last = dt.datetime.fromtimestamp(newest).isoformat(sep=" ", timespec="seconds")
    return f", {first} to {last}"


def _stats(reader: HistoryReader, out: TextIO) -> None:
    facts = reader.summary()
    out.write(json.dumps(facts, indent=2) + "\n")
