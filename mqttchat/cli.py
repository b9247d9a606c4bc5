"""Command-line entry points: ``mqttchat`` and its subcommands.

``-h`` is reserved for the host (as in mosquitto_pub/mosquitto_sub), so help is ``--help`` only.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence
from importlib import import_module

from mqttchat import __version__

#: Each command: the module that builds its options and runs it, and its line in ``mqttchat --help``.
#: The line is repeated here so that listing the commands imports none of them (tests/test_cli.py checks that
#: it matches what the module registers).
COMMANDS: dict[str, tuple[str, str]] = {
    "pub": ("mqttchat.commands.pub", "publish a message"),
    "sub": ("mqttchat.commands.sub", "subscribe and print messages"),
    "broker": ("mqttchat.commands.broker", "run the MQTT broker"),
    "passwd": ("mqttchat.commands.passwd", "manage a password file (mosquitto_passwd format)"),
    "history": ("mqttchat.commands.history", "search the explorer's history of a broker"),
    "serve": ("mqttchat.commands.serve", "serve the app to a web browser"),
}

SUBCOMMANDS = tuple(COMMANDS)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``mqttchat`` parser with every command's options, or (``only``) just that command's.

    The other commands are then listed with their line of help and no options: a command starts without
    importing the others (``mqttchat pub`` loads no broker, ``mqttchat --help`` no client).
    """
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
    for name, (module, line) in COMMANDS.items():
        if only is None or name == only:
            import_module(module).build_parser(commands)
        else:
            commands.add_parser(name, help=line, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0] not in SUBCOMMANDS and args_list[0] not in ("--help", "--version")):
        from mqttchat.commands import app

        return app.main(args_list)
    # No garbage collection while the command's modules load: the objects they make live as long as the process,
    # and the collector's passes over them took a tenth of ``mqttchat pub``'s start. Frozen afterwards, they are
    # never examined again (a long ``mqttchat sub`` collects only what it makes itself).
    gc.disable()
    try:
        parser = build_parser(args_list[0] if args_list[0] in COMMANDS else "")
        args = parser.parse_args(args_list)
    finally:
        gc.freeze()
        gc.enable()
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    result: int = handler(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
