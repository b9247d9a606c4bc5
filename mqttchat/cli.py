"""Command-line entry points: ``mqttchat`` and its subcommands.

``-h`` is reserved for the host (as in mosquitto_pub/mosquitto_sub), so help is ``--help`` only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mqttchat import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mqttchat",
        description="Terminal MQTT chat and explorer, with its own MQTT client and an embedded broker. "
        "Run `mqttchat [URL]` for the explorer (`mqttchat app --help` lists its options), `mqttchat chat [URL]` "
        "to chat (`mqttchat chat --help`), `mqttchat demo` to try it on a simulated house, or a command below.",
        add_help=False,
    )
    parser.add_argument("--help", action="help", help="show this help and exit")
    parser.add_argument("--version", action="version", version=f"mqttchat {__version__}")
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    from mqttchat.commands import broker, passwd, pub, sub

    pub.build_parser(commands)
    sub.build_parser(commands)
    broker.build_parser(commands)
    passwd.build_parser(commands)
    return parser


SUBCOMMANDS = ("pub", "sub", "broker", "passwd")


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0] not in SUBCOMMANDS and args_list[0] not in ("--help", "--version")):
        from mqttchat.commands import app

        return app.main(args_list)
    parser = build_parser()
    args = parser.parse_args(args_list)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    result: int = handler(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
