"""``mqttchat serve``: the app in a web browser (textual-serve), one app process per browser tab."""

from __future__ import annotations

import argparse
import shlex
import sys


def build_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the app to a web browser",
        description="Serve the app to web browsers: each browser tab runs its own mqttchat, with the options\n"
        "that follow (a broker URL, --profile, chat, demo: as for `mqttchat`). It listens on 127.0.0.1 unless\n"
        "--host says otherwise; off loopback the printed address carries a token and requests without it are\n"
        "refused. Needs textual-serve: pip install 'mqttchat[serve]'.",
        add_help=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  mqttchat serve mqtt://broker:1883\n  mqttchat serve --port 8000 --profile prod\n"
        "  mqttchat serve --host 0.0.0.0 -- chat --nick alice",
    )
    p.add_argument("--help", action="help", help="show this help and exit")
    p.add_argument("--host", default="127.0.0.1", help="listen on this address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="listen on this port (default 8000; 0: any free one)")
    p.add_argument(
        "--public-url",
        help="the address browsers use to reach this server, when it differs (a reverse proxy in front)",
    )
    p.add_argument(
        "--max-sessions",
        type=int,
        default=4,
        help="browser tabs (each an app process) at once; more are refused (default 4)",
    )
    p.add_argument("--profile", action="append", help="open the app on this saved profile (repeatable)")
    p.add_argument(
        "app_args",
        nargs=argparse.REMAINDER,
        metavar="APP OPTIONS",
        help="the app's broker and options, as for `mqttchat` (after -- when they start with a dash)",
    )
    p.set_defaults(handler=main)


def app_command(app_args: list[str]) -> str:
    """The shell command that runs the app for one browser tab (textual-serve runs it through the shell)."""
    return shlex.join([sys.executable, "-m", "mqttchat", *app_args])


def main(args: argparse.Namespace) -> int:
    app_args = list(args.app_args)
    if app_args[:1] == ["--"]:
        app_args = app_args[1:]
    for name in args.profile or ():
        app_args += ["--profile", name]
    if args.max_sessions < 1:
        print("mqttchat serve: --max-sessions must be at least 1", file=sys.stderr)
        return 2
    if not 0 <= args.port <= 65535:
        print("mqttchat serve: --port must be from 0 to 65535", file=sys.stderr)
        return 2
    from mqttchat.commands.app import check_arguments

    problem = check_arguments(app_args)
    if problem is not None:
        print(f"mqttchat serve: {problem}", file=sys.stderr)
        return 2
    try:
        from mqttchat.ui.browser import BrowserServer, is_loopback, new_token
    except ImportError as exc:
        print(f"mqttchat serve needs textual-serve ({exc}): pip install 'mqttchat[serve]'", file=sys.stderr)
        return 2
    import asyncio
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    token = None if is_loopback(args.host) else new_token()
    server = BrowserServer(
        app_command(app_args),
        args.host,
        args.port,
        token=token,
        public_url=args.public_url,
        max_sessions=args.max_sessions,
    )

    def ready(url: str) -> None:
        print(f"mqttchat serve: open {url}", flush=True)
        print("  (Ctrl+C stops the server and the apps of every browser tab)", flush=True)

    try:
        asyncio.run(server.run(ready))
    except OSError as exc:
        print(f"mqttchat serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
