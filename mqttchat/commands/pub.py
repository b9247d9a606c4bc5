"""``mqttchat pub``: publish one message, a file, stdin, or stdin line by line (mosquitto_pub habits)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from mqttchat.client.blocking import BlockingClient, supports
from mqttchat.commands.common import (
    CommandError,
    add_connection_arguments,
    announce_connection,
    client_options,
    cloud_limits,
    debug_hook,
    error_line,
    guarded,
    take_url_topic,
    warn_v311,
)
from mqttchat.protocol import Properties, topic_name_problem
from mqttchat.protocol.fastinit import dataclass

if TYPE_CHECKING:
    from mqttchat.client import MQTTClient
    from mqttchat.client.options import ClientOptions
    from mqttchat.client.outcomes import PublishResult


def build_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "pub",
        help="publish a message",
        description="Publish a message, like mosquitto_pub.",
        add_help=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  mqttchat pub -t home/light -m on -q 1 -r\n  tail -f log | mqttchat pub -t logs -l",
    )
    p.add_argument("--help", action="help", help="show this help and exit")
    p.add_argument("-t", "--topic", help="topic to publish to (or give it in the URL: -L mqtt://host/topic)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("-m", "--message", help="the payload")
    src.add_argument("-f", "--file", help="send this file's contents as one message")
    src.add_argument("-s", "--stdin-file", action="store_true", help="send all of standard input as one message")
    src.add_argument("-l", "--stdin-line", action="store_true", help="send each line of standard input as a message")
    src.add_argument("-n", "--null-message", action="store_true", help="send an empty message")
    p.add_argument("-q", "--qos", type=int, choices=(0, 1, 2), default=0, help="quality of service (default 0)")
    p.add_argument("-r", "--retain", action="store_true", help="retain the message")
    p.add_argument("--repeat", type=int, default=1, metavar="N", help="publish the message N times")
    p.add_argument("--repeat-delay", type=float, default=0.0, metavar="S", help="seconds between repeats")
    add_connection_arguments(p)
    p.set_defaults(handler=main)


@dataclass(frozen=True, slots=True)
class PubJob:
    """What ``mqttchat pub`` was asked to do, checked: the client's options and what to send."""

    options: ClientOptions
    #: The message (sent ``--repeat`` times), or None: each line of standard input (``-l``).
    payload: bytes | None
    properties: Properties


def main(args: argparse.Namespace) -> int:
    return guarded("mqttchat pub", lambda: start(args))


def start(args: argparse.Namespace) -> int:
    """Publish without an event loop where the blocking client serves the options (TCP or TLS, one message or a
    file): it starts in a fraction of the time; lines of standard input and WebSocket or proxied connections take
    the asyncio client."""
    job = prepare(args)
    if job.payload is not None and supports(job.options):
        return publish_blocking(args, job)
    import asyncio

    return asyncio.run(publish(args, job))


def prepare(args: argparse.Namespace) -> PubJob:
    url_topic = take_url_topic(args)
    if url_topic is not None and args.topic is not None:
        raise CommandError("give the topic either with -t or in the URL (-L mqtt://host/topic), not both")
    args.topic = url_topic if url_topic is not None else args.topic
    if args.topic is None:
        raise CommandError("a topic is needed: -t TOPIC, or -L mqtt://host/TOPIC")
    problem = topic_name_problem(args.topic)
    if problem:
        raise CommandError(problem)
    if args.repeat < 1:
        raise CommandError("--repeat must be at least 1")
    options, props = client_options(args, f"mqttchat-pub-{os.urandom(4).hex()}")
    limits = cloud_limits(args)
    if limits is not None:  # what the service would close the connection for, changed and said
        args.qos, args.retain, changes = limits.publish(args.qos, args.retain)
        for change in changes:
            error_line("mqttchat pub", change)
    payload: bytes | None = None
    if args.message is not None:
        # Arguments that are not UTF-8 reach Python as surrogate escapes: send the original bytes.
        payload = args.message.encode("utf-8", "surrogateescape")
    elif args.file is not None:
        with open(args.file, "rb") as f:
            payload = f.read()
    elif args.stdin_file:
        payload = sys.stdin.buffer.read()
    elif args.null_message:
        payload = b""
    warn_v311("mqttchat pub", args, options.version)
    return PubJob(options, payload, props.get("publish", Properties()))


def publish_blocking(args: argparse.Namespace, job: PubJob) -> int:
    """``job`` (one message, ``--repeat`` times) through :class:`~mqttchat.client.blocking.BlockingClient`."""
    import time

    assert job.payload is not None
    client = BlockingClient(job.options)
    if args.debug:
        client.add_trace_hook(debug_hook("mqttchat pub"))
    client.connect()
    announce_connection("mqttchat pub", args, client)
    try:
        for i in range(args.repeat):
            if i and args.repeat_delay:
                time.sleep(args.repeat_delay)
            check_result(client.publish(args.topic, job.payload, args.qos, args.retain, job.properties))
    finally:
        client.disconnect()
        report_downgraded(client.downgraded_publishes)
    return 0


async def publish(args: argparse.Namespace, job: PubJob) -> int:
    """``job`` through the asyncio client: lines of standard input pipelined, or one message ``--repeat`` times."""
    import asyncio

    from mqttchat.client import MQTTClient

    client = MQTTClient(job.options)
    if args.debug:
        client.add_trace_hook(debug_hook("mqttchat pub"))
    await client.connect()
    announce_connection("mqttchat pub", args, client)
    payload, publish_props = job.payload, job.properties
    try:
        if payload is not None:
            for i in range(args.repeat):
                if i and args.repeat_delay:
                    await asyncio.sleep(args.repeat_delay)
                await _send(client, args, payload, publish_props)
        else:
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader()
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
            pending: list[asyncio.Future[object]] = []
            while line := await reader.readline():
                body = line.rstrip(b"\n").rstrip(b"\r")
                if args.qos:
                    # Pipeline: keep going while earlier messages wait for their acknowledgements.
                    pending.append(asyncio.ensure_future(_send(client, args, body, publish_props)))
                    if len(pending) > 1000:
                        await asyncio.gather(*pending)
                        pending.clear()
                else:
                    await _send(client, args, body, publish_props)
            await asyncio.gather(*pending)
    finally:
        await client.disconnect()
        report_downgraded(client.downgraded_publishes)
    return 0


async def _send(client: MQTTClient, args: argparse.Namespace, payload: bytes, props: Properties) -> None:
    check_result(await client.publish(args.topic, payload, args.qos, args.retain, props))


def check_result(result: PublishResult) -> None:
    """A refusal by the broker ends the command with status 1."""
    if not result.ok:
        detail = f": {result.reason_string}" if result.reason_string else ""
        raise CommandError(f"the broker refused the message: {result.reason_code.title}{detail}", status=1)


def report_downgraded(count: int) -> None:
    if count:
        what = "the message" if count == 1 else f"{count} messages"
        error_line(
            "mqttchat pub",
            f"the broker answered QoS 2 with PUBACK: {what} delivered at QoS 1 (at least once, not exactly once)",
        )
