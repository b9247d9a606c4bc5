"""``mqttchat [URL] [options]``: the terminal app, connecting like ``mqttchat sub`` does."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mqttchat.commands.common import (
    CommandError,
    add_connection_arguments,
    client_options,
    cloud_limits,
    max_packet_size_option,
    take_url_topic,
)
from mqttchat.protocol import Properties

if TYPE_CHECKING:
    from mqttchat.client import ClientOptions
    from mqttchat.config import AppSettings, Profile


def build_parser(view: str = "explorer") -> argparse.ArgumentParser:
    """The options of ``mqttchat`` (``view`` "explorer"), ``mqttchat chat`` ("chat") or ``mqttchat demo`` ("demo")."""
    if view == "demo":
        parser = argparse.ArgumentParser(
            prog="mqttchat demo",
            description="The explorer on a simulated house: mqttchat starts its embedded broker (on "
            "127.0.0.1:1883, or any free port when that is taken) and a house that publishes to it (rooms, "
            "sensors, lights, retained states, MQTT 5 properties), so the tree lives within a second.",
            add_help=False,
        )
        parser.add_argument("--help", action="help", help="show this help and exit")
        parser.add_argument("-t", "--topic", action="append", help="subscribe to this filter (repeatable; default #)")
        parser.add_argument("-q", "--qos", type=int, choices=(0, 1, 2), default=0, help="QoS of the subscriptions")
        parser.add_argument(
            "-V", "--protocol-version", default="5", metavar="5|311", help="MQTT version: 5 (default) or 311 (3.1.1)"
        )
        return parser
    if view == "chat":
        parser = argparse.ArgumentParser(
            prog="mqttchat chat",
            description="Chat over MQTT: rooms, presence, direct messages, history. With no broker configured "
            "and nothing listening on 127.0.0.1:1883, it starts its embedded broker there, so two people on one "
            "machine can chat with `mqttchat chat --nick alice` and `mqttchat chat --nick bob`.",
            add_help=False,
        )
        parser.add_argument(
            "--room",
            action="append",
            help="join this room and show it (repeatable); the rooms open when the chat last ran open again "
            "(the first time, with none given: lobby)",
        )
        parser.add_argument("--nick", help="your name in the chat (default: the settings' chat_nick or your OS user)")
        from mqttchat.chat.protocol import PREFIX

        topic_help = f"what the explorer (Ctrl+T) subscribes to (repeatable; default: the chat's topics, {PREFIX}/#)"
    else:
        parser = argparse.ArgumentParser(
            prog="mqttchat",
            description="Terminal MQTT explorer and chat. With no broker configured and nothing listening on "
            "127.0.0.1:1883, it starts its embedded broker there.",
            add_help=False,
        )
        topic_help = "subscribe to this filter (repeatable; default #, or the topic of an mqtt://host/topic URL)"
    parser.add_argument("--help", action="help", help="show this help and exit")
    parser.add_argument(
        "target",
        nargs="*",
        help="broker URL (mqtt://broker:1883, wss://host/mqtt) or saved profile name; several open side by side, "
        "each in a tab of its own (mqttchat dev prod); the chat sits on the first",
    )
    parser.add_argument("-t", "--topic", action="append", help=topic_help)
    parser.add_argument("-q", "--qos", type=int, choices=(0, 1, 2), default=0, help="QoS of the subscriptions")
    parser.add_argument("--no-embedded-broker", action="store_true", help="never start the embedded broker")
    parser.add_argument(
        "--profile", action="append", help="use a saved connection profile (repeatable: each opens a tab of its own)"
    )
    parser.add_argument(
        "--no-history",
        action="store_true",
        help="keep no lasting history of this run's messages (the settings' history_store = false for every run)",
    )
    if view == "explorer":
        found = parser.add_mutually_exclusive_group()
        found.add_argument(
            "--discover",
            action="store_const",
            const="on",
            dest="discovery",
            help="discover the topics level by level (a subtree is subscribed while it is expanded) instead of "
            'subscribing to # (the settings\' discovery = "auto" does it when the broker is big)',
        )
        found.add_argument(
            "--all-topics", action="store_const", const="off", dest="discovery", help="always subscribe to #"
        )
    add_connection_arguments(parser)
    if view == "chat":
        # The chat's own connection always keeps a persistent session, of a week unless -x says otherwise.
        helps = {
            "session_expiry": "how long the broker keeps the chat's session (your subscriptions and the messages "
            "sent to you) while you are away, in seconds (MQTT 5; default 604800: a week)",
            "disable_clean_session": "(the chat always uses a persistent session)",
        }
        for action in parser._actions:
            if action.dest in helps:
                action.help = helps[action.dest]
    return parser


class UsageError(Exception):
    """A problem with the command line, the profiles or the settings: one line on stderr, exit status 2."""

    def __init__(self, message: str, prog: str = "mqttchat") -> None:
        super().__init__(message)
        self.prog = prog


@dataclass
class Launch:
    """What ``mqttchat [options]`` was asked for, checked, before anything connects."""

    view: str
    demo: bool
    #: The keyword arguments of each broker's Runtime, in the order of their tabs (the chat sits on the first).
    brokers: list[dict[str, Any]]


def plan(argv: Sequence[str]) -> Launch:
    """Parse and check the app's command line, reading the profiles and settings it names.

    Raises:
        UsageError: the problem, in one line.
        SystemExit: argparse's own exit (a usage error, already printed; ``--help``).
    """
    argv = list(argv)
    demo = bool(argv) and argv[0] == "demo"
    chat = bool(argv) and argv[0] == "chat"
    if demo or chat:
        argv = argv[1:]
    view = "demo" if demo else "chat" if chat else "explorer"
    args = build_parser(view).parse_args(argv)
    if demo:  # the demo's few options over the explorer's defaults
        args = build_parser().parse_args([], namespace=args)
    targets: list[str] = list(args.target or [])
    if targets and targets[0].startswith("app"):
        targets = targets[1:]
    if targets and args.url:
        raise UsageError("give the broker either as URL or with -L, not both")
    if args.url:
        targets = [args.url]
    from mqttchat.config import ConfigError, ProfileStore, load_settings

    store = ProfileStore()
    if args.profile or not (targets or args.host or args.port) or any("://" not in t for t in targets):
        try:
            store.load()
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
    # Each broker: a saved profile, or a URL (None: the -h/-p options, or their defaults).
    chosen: list[Profile | str | None] = []
    for name in args.profile or ():
        found = store.get(name)
        if found is None:
            known = ", ".join(store.names()) or "none saved yet"
            raise UsageError(f"no profile {name!r} in {store.path} (profiles: {known})")
        chosen.append(found)
    for target in targets:
        named = store.get(target) if "://" not in target else None
        chosen.append(named if named is not None else target)
    if not chosen:
        default = store.get(store.default_name) if store.default_name and not (args.host or args.port) else None
        chosen.append(default)
    if demo and len(chosen) > 1:
        raise UsageError("the demo opens one broker, its own")
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    brokers = [_broker(args, each, settings, chat) for each in chosen]
    hosting = False  # one embedded broker at most: for the first broker that is this machine's default port
    for broker in brokers:
        local = _is_local_default(broker["options"])
        broker["embed_broker"] = not args.no_embedded_broker and not (local and hosting)
        hosting = hosting or (local and broker["embed_broker"])
    if chat:
        from mqttchat.chat import protocol as chat_protocol

        nick = args.nick or settings.chat_nick
        rooms = tuple(args.room or ())  # none: the rooms open when the chat last ran (the first time: lobby)
        for name, what in [(nick, "nick"), *((room, "room name") for room in rooms)]:
            problem = chat_protocol.name_problem(name, what) if name is not None else None
            if problem:
                raise UsageError(problem, "mqttchat chat")
        first = brokers[0]
        first.update(chat_nick=nick, chat_rooms=rooms)
        if args.session_expiry is not None:  # -x / --session-expiry: how long the broker keeps our messages
            first["chat_session_expiry"] = args.session_expiry
    for broker in brokers:
        broker["history_budget"] = (
            settings.history_store_mb * 1024 * 1024 if settings.history_store and not args.no_history and not demo
            else None
        )  # fmt: skip
        if demo:  # the simulated house on the app's own broker: # as always, no $SYS watch
            broker.update(discover="off", watch_sys=False)
    return Launch("chat" if chat else "explorer", demo, brokers)


def _is_local_default(options: ClientOptions) -> bool:
    from mqttchat.runtime import DEFAULT_PORT, LOCAL_HOSTS

    target = options.target
    return not target.tls and not target.websocket and target.host in LOCAL_HOSTS and target.port == DEFAULT_PORT


def _broker(
    args: argparse.Namespace, chosen: Profile | str | None, settings: AppSettings, chat: bool
) -> dict[str, Any]:
    """The Runtime's keyword arguments for one broker: a saved profile, or a URL with the command line's options
    (None: the -h/-p options)."""
    from copy import copy
    from dataclasses import replace

    from mqttchat.config import Profile
    from mqttchat.explorer.tree import TopicTree

    limit = settings.max_packet_size_kb * 1024  # --max-packet-size (or -D connect maximum-packet-size) wins
    notices: list[str] = []  # what a cloud service's guards changed, said once connected
    topics_asked = args.topic
    try:
        if isinstance(chosen, Profile):
            options = chosen.to_client_options()
            options = replace(options, maximum_packet_size=max_packet_size_option(args, Properties(), limit))
            if topics_asked:
                topics = tuple((t, args.qos) for t in topics_asked)
            else:  # within what a cloud service accepts, saying what was changed
                topics, changes = chosen.guarded_subscriptions()
                notices.extend(changes)
        else:
            args = copy(args)
            args.url = chosen
            url_topic = take_url_topic(args)  # mqtt://host/topic: subscribe to that topic, as mosquitto_sub does
            if url_topic is not None:
                topics_asked = [url_topic, *(topics_asked or [])]
            options, _ = client_options(args, "", max_packet_size=limit)
            topics = tuple((t, args.qos) for t in (topics_asked or ["#"]))
            limits = cloud_limits(args)
            if limits is not None:  # a cloud service: keep within what it accepts, and say what changed
                replacement = getattr(args, "cloud_default_subscriptions", ())
                kept, changes = limits.subscriptions(topics, default=not topics_asked, replacement=replacement)
                topics = tuple(kept)
                notices.extend(changes)
    except (CommandError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    options = replace(options, reconnect=True)
    if chat:
        from mqttchat.chat import protocol as chat_protocol

        if options.session_expiry is not None:
            options = replace(options, session_expiry=None)  # the chat's connection has its own
        if not topics_asked and not isinstance(chosen, Profile):
            topics = ((f"{chat_protocol.PREFIX}/#", 0),)  # the explorer shows the chat's topics
    # A cloud service closes the connection on a subscription it refuses ($SYS): no $SYS watch there, nor discovery.
    cloud = cloud_limits(args) is not None or (isinstance(chosen, Profile) and bool(chosen.cloud))
    discovery = getattr(args, "discovery", None) or settings.discovery
    return {
        "options": options,
        "subscriptions": topics,
        "notices": tuple(notices),
        "profile_name": chosen.name if isinstance(chosen, Profile) else None,
        "decoder_rules": settings.decoders,
        "history_retention": settings.history_retention_days * 86_400.0 or None,
        # The explorer's history budget: one figure, shared by the brokers open (the app splits it).
        "tree": TopicTree(history_budget=settings.history_budget_mb * 1024 * 1024),
        "discover": "off" if chat or cloud else discovery,
        "big_topics": settings.discovery_topics,
        "watch_sys": not (chat or cloud),
    }


def check_arguments(argv: Sequence[str]) -> str | None:
    """Why the app would not start with ``argv`` (what it would print), or None (``mqttchat serve`` checks the
    options it passes on before serving them)."""
    import contextlib
    import io

    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said), contextlib.redirect_stdout(said):
            plan(argv)
    except UsageError as exc:
        return str(exc)
    except SystemExit as exc:
        lines = said.getvalue().strip().splitlines()
        if exc.code == 0:
            return "the app's options end in --help: nothing to serve"
        if not lines:
            return f"the app's options are not valid: {' '.join(argv)}"
        return lines[-1].split("error: ", 1)[-1]  # argparse's "mqttchat: error: ..."
    return None


def main(argv: Sequence[str]) -> int:
    try:
        launch = plan(argv)
    except UsageError as exc:
        print(f"{exc.prog}: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, handlers=[logging.NullHandler()])
    from mqttchat.runtime import Runtime
    from mqttchat.ui.app import MQTTChatApp

    first, *others = (Runtime(**broker) for broker in launch.brokers)
    MQTTChatApp(first, demo=launch.demo, view=launch.view, others=others).run()
    return 0
