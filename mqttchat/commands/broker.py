"""``mqttchat broker``: run the embedded broker on its own, like mosquitto."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys

from mqttchat.config.toml import ConfigError


def build_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "broker",
        help="run the MQTT broker",
        description="Run mqttchat's MQTT 3.1.1/5.0 broker. With no options: 127.0.0.1:1883, anonymous, in memory.",
        add_help=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  mqttchat broker -c broker.toml -v   (configuration keys follow mosquitto's names)",
    )
    p.add_argument("--help", action="help", help="show this help and exit")
    p.add_argument("-c", "--config", help="TOML configuration file")
    p.add_argument("-p", "--port", type=int, help="listen on this port (replaces the configured listeners)")
    p.add_argument("--host", help="listen on this address (default 127.0.0.1; replaces the configured listeners)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every connection and the effective settings")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from mqttchat.broker.config import default_config as defaults
    from mqttchat.broker.config import describe, load_config, with_overrides

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    try:
        config = load_config(args.config) if args.config else defaults()
        if args.port is not None or args.host is not None:
            config = with_overrides(config, port=args.port, host=args.host)
    except ConfigError as exc:
        print(f"mqttchat broker: {exc}", file=sys.stderr)
        return 2
    if args.verbose:
        for line in describe(config):
            logging.getLogger("mqttchat.broker").info("%s", line)
    from mqttchat.broker.persistence import StoreError

    try:
        asyncio.run(_serve(config))
    except ConfigError as exc:
        print(f"mqttchat broker: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:  # the persistence file or its directory, named in the message
        print(f"mqttchat broker: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"mqttchat broker: cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


async def _serve(config: object) -> None:
    from mqttchat.broker.server import Broker

    broker = Broker(config)
    await broker.start()
    # Everything loaded so far lives as long as the process; young collections then walk only what traffic
    # creates, and do so less often (in-flight messages live for a round trip; most garbage is freed by
    # reference counting). Full collections stay at the default pace relative to these.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 10)
    for listener in broker.listeners:
        print(f"mqttchat broker listening on {listener.url}", file=sys.stderr, flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def reload() -> None:
        conf = broker.config
        files = [name for name, path in (("password", conf.password_file), ("ACL", conf.acl_file)) if path]
        if not files:
            print("mqttchat broker: SIGHUP: no password or ACL file to reload", file=sys.stderr, flush=True)
        elif broker.reload():
            print(f"mqttchat broker: reloaded the {' and '.join(files)} file{'s' if len(files) > 1 else ''}",
                  file=sys.stderr, flush=True)  # fmt: skip
        else:
            print("mqttchat broker: reload failed, the files in force stay (see the log)", file=sys.stderr, flush=True)

    loop.add_signal_handler(signal.SIGHUP, reload)
    await stop.wait()
    print("mqttchat broker: shutting down", file=sys.stderr, flush=True)
    await broker.stop()
