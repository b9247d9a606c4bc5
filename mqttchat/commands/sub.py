"""``mqttchat sub``: subscribe and print messages (mosquitto_sub habits), or clear retained messages."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from mqttchat.client.blocking import BlockingClient, supports
from mqttchat.commands.common import (
    EXIT_TIMEOUT,
    CommandError,
    add_connection_arguments,
    announce_connection,
    client_options,
    cloud_limits,
    debug_hook,
    error_line,
    guarded,
    quiet_library_log,
    take_url_topic,
    warn_v311,
)
from mqttchat.commands.sub_format import FormatError, Output
from mqttchat.protocol import Properties, ReasonCode, Subscription, matches, topic_filter_problem
from mqttchat.protocol.fastinit import dataclass
from mqttchat.untrusted import printable

if TYPE_CHECKING:
    from mqttchat.client import Message
    from mqttchat.client.options import ClientOptions
    from mqttchat.commands.sub_decode import SubDecoder
    from mqttchat.explorer.decoders import DecodeResult

#: With --retained-only: how long without a message means "all retained messages have arrived".
RETAINED_QUIET = 0.5


def build_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "sub",
        help="subscribe and print messages",
        description="Subscribe and print messages, like mosquitto_sub.\n\n"
        "Written to a terminal, topics, payloads and properties have their control characters made visible\n"
        "(ESC as ␛), so that a message cannot retitle or clear the terminal; to a pipe or a file they are\n"
        "written as received: the payload's bytes are data (pipe through cat to see them raw).",
        add_help=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  mqttchat sub -t 'home/#' -v\n  mqttchat sub -t 'sensors/+/temp' -F json -C 10\n"
        "  mqttchat sub -L mqtt://broker/home/# -F '@H:@M:@S %-30t %p'\n\n"
        "-F TEMPLATE, as mosquitto_sub's (see its manual): %t topic, %p payload, %x/%X payload in hex, %l length, "
        "%q QoS,\n  %r retained, %m message id, %I ISO-8601 time, %U Unix time, %j/%J JSON (payload as a string/as "
        "JSON),\n  MQTT 5: %A topic alias, %C content type, %D correlation data, %E expiry, %F payload format, %P "
        "user\n  properties, %R response topic, %S subscription id; %% a percent sign. Flags, width and precision: "
        "%-10.5t,\n  %05l. @ codes are strftime's (@H:@M:@S, @Y-@m-@d), @N nanoseconds, @@ an @. Escapes: \\\\ \\0 "
        "\\a \\e \\n \\r \\t \\v.",
    )
    p.add_argument("--help", action="help", help="show this help and exit")
    p.add_argument(
        "-t",
        "--topic",
        action="append",
        default=[],
        help="topic filter (repeat for several; a topic in -L mqtt://host/topic is one more)",
    )
    p.add_argument("-T", "--filter-out", action="append", default=[], help="do not print topics matching this filter")
    p.add_argument("-q", "--qos", type=int, choices=(0, 1, 2), default=0, help="maximum QoS to receive (default 0)")
    p.add_argument("-C", "--count", type=int, help="exit after receiving COUNT messages")
    p.add_argument("-W", "--timeout", type=float, help="exit after SECONDS (status 27 if COUNT was not reached)")
    p.add_argument("-v", "--verbose", action="store_true", help="print 'topic payload'")
    p.add_argument(
        "-F",
        "--format",
        help="'json' (one object a line, the explorer's recording format: replayable in its Record tab), "
        "or a mosquitto_sub template (see below)",
    )
    p.add_argument("-N", "--no-newline", action="store_true", help="do not end messages with a newline")
    p.add_argument("-R", "--no-retained", action="store_true", help="do not print stale retained messages")
    p.add_argument(
        "--retained-only",
        action="store_true",
        help="print retained messages only, then exit (at the first live message or when quiet)",
    )
    p.add_argument("--remove-retained", action="store_true", help="clear every retained message received")
    p.add_argument("--no-local", action="store_true", help="MQTT 5: do not receive our own publishes")
    p.add_argument(
        "--decode",
        nargs="?",
        const="settings",
        metavar="CHAIN",
        help="print payloads decoded as the explorer decodes them (the settings' [[decoders]], then automatically: "
        "Sparkplug B, gzip, JSON, text...), or all with CHAIN (cbor, msgpack, sparkplug, gzip+json, auto...): "
        "structure as compact JSON; -F json gains 'decoder' and 'decoded' members",
    )
    add_connection_arguments(p)
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    return guarded("mqttchat sub", lambda: start(args))


def start(args: argparse.Namespace) -> int:
    """Subscribe without an event loop where the blocking client serves the options (TCP or TLS, no --decode): it
    starts in a fraction of the time; WebSocket, proxies and --decode take the asyncio client."""
    job = prepare(args)
    if job.decoder is None and supports(job.options):
        return subscribe_blocking(args, job)
    import asyncio

    quiet_library_log()
    return asyncio.run(subscribe(args, job))


def json_line(message: Message) -> str:
    """The message as one line of the recording format (:mod:`mqttchat.explorer.recording`): what ``-F json``
    prints can be replayed by the explorer's Record tab, and a recording reads like ``-F json`` output."""
    from mqttchat.explorer.recording import format_line  # only -F json needs it: sub starts without

    return format_line(
        message.topic, message.payload, message.qos, message.retain, message.properties, message.received_at
    )


def render_decoded(output: Output, decoder: SubDecoder, message: Message, result: DecodeResult) -> bytes:
    """What ``sub --decode`` writes for a message: ``-F json`` with the decoded value, a template as it is
    (its codes show the payload as received), or the decoded payload (after the topic with ``-v``); a payload
    that could not be decoded is written as received, and why goes to stderr."""
    from mqttchat.commands.sub_decode import decoded_line

    if output.recording:
        assert output.json_line is not None
        line = output.json_line(message)
        return output.text(line[:-1] + decoder.json_members(result) + "}")
    if output.parts is not None:
        return output.render(message)
    if not result.ok:
        decoder.problem(message, result)
        return output.render(message)
    line = decoded_line(result)
    if output.terminal:  # line breaks of a decoded text kept, as a payload's are
        line = printable(line, keep="\n\t")
    text = line.encode("utf-8", "surrogateescape")
    return output.text(message.topic) + b" " + text if output.verbose else text


@dataclass(frozen=True, slots=True)
class SubJob:
    """What ``mqttchat sub`` was asked to do, checked: the output, the client's options and the subscriptions."""

    output: Output
    decoder: SubDecoder | None
    options: ClientOptions
    subscriptions: list[Subscription]
    properties: Properties
    #: ``time.monotonic()`` at which -W ends the run (connecting and subscribing included), or None.
    deadline: float | None

    def subscribe_arguments(self) -> dict[str, Any]:
        """The SUBSCRIBE properties (-D subscribe ...) as both clients' subscribe() take them."""
        props = self.properties
        return {
            "subscription_identifier": props.subscription_identifier[0] if props.subscription_identifier else None,
            "user_properties": props.user_property,
        }


def prepare(args: argparse.Namespace) -> SubJob:
    url_topic = take_url_topic(args)
    if url_topic is not None:
        args.topic = [url_topic, *args.topic]
    if not args.topic:
        raise CommandError("a topic filter is needed: -t FILTER, or -L mqtt://host/FILTER")
    for topic_filter in args.topic + args.filter_out:
        problem = topic_filter_problem(topic_filter)
        if problem:
            raise CommandError(problem)
    if args.count is not None and args.count < 1:
        raise CommandError("-C must be at least 1")
    try:
        output = Output(
            args.format,
            verbose=args.verbose,
            terminal=sys.stdout.isatty(),
            warn=lambda text: error_line("mqttchat sub", text),
            json_line=json_line,
        )
    except FormatError as exc:
        raise CommandError(f"-F: {exc}", status=1) from None
    decoder = None
    if args.decode is not None:
        from mqttchat.commands.sub_decode import SubDecoder

        decoder = SubDecoder(args.decode, warn=lambda text: error_line("mqttchat sub", text))
    options, props = client_options(args, f"mqttchat-sub-{os.urandom(4).hex()}")
    warn_v311("mqttchat sub", args, options.version)
    # -R still asks for retained messages (the broker marks them) and skips them here, like mosquitto_sub.
    wanted = [(f, args.qos) for f in args.topic]
    limits = cloud_limits(args)
    if limits is not None:  # what the service would close the connection for, changed and said
        wanted, changes = limits.subscriptions(wanted)
        for change in changes:
            error_line("mqttchat sub", change)
    subscriptions = [Subscription(f, qos, args.no_local) for f, qos in wanted]
    # -W covers the whole run: a broker that never answers CONNECT or SUBSCRIBE cannot keep us waiting longer.
    deadline = time.monotonic() + args.timeout if args.timeout else None
    return SubJob(output, decoder, options, subscriptions, props.get("subscribe", Properties()), deadline)


class Receiving:
    """What ``sub`` does with the messages, the same in the blocking and the asyncio loop: when to stop, what to
    skip, what to write, and the exit status."""

    def __init__(self, args: argparse.Namespace, job: SubJob) -> None:
        self.args = args
        self.deadline = job.deadline
        self.output = job.output
        self.out = sys.stdout.buffer
        self.end = b"" if args.no_newline else b"\n"
        self.received = 0
        self.retained = 0
        self.status = 0

    def check(self, codes: list[ReasonCode]) -> None:
        for topic_filter, code in zip(self.args.topic, codes, strict=True):
            if code.is_error:
                raise CommandError(f"the broker refused the subscription to {topic_filter!r}: {code.title}")

    def wait(self) -> float | None:
        """Seconds to wait for the next message (None: for ever); 0 or less: the time is up (status 27)."""
        timeout = None if self.deadline is None else self.deadline - time.monotonic()
        if self.args.retained_only:
            timeout = RETAINED_QUIET if timeout is None else min(timeout, RETAINED_QUIET)
        if timeout is not None and timeout <= 0:
            self.status = EXIT_TIMEOUT
        return timeout

    def nothing_came(self) -> None:
        """No message within :meth:`wait`'s time: the retained messages are all in (--retained-only), or -W ends."""
        if not (self.args.retained_only and (self.deadline is None or time.monotonic() < self.deadline)):
            self.status = EXIT_TIMEOUT

    def arrived(self, message: Message) -> bool:
        """Count ``message``; whether it ends the run before being written (a live one with --retained-only)."""
        if message.retain:
            self.retained += 1
        return self.args.retained_only and not message.retain

    def to_remove(self, message: Message) -> bool:
        """Whether to clear this retained message (--remove-retained)."""
        return bool(self.args.remove_retained and message.retain and message.payload)

    def skipped(self, message: Message) -> bool:
        if self.args.no_retained and message.retain:
            return True
        return any(matches(f, message.topic) for f in self.args.filter_out)

    def write(self, line: bytes) -> bool:
        """Write a message's line; whether -C COUNT is reached."""
        self.out.write(line + self.end)
        self.out.flush()
        self.received += 1
        return self.args.count is not None and self.received >= self.args.count

    def finish(self) -> int:
        """The exit status, after saying why nothing retained came where that may surprise."""
        args = self.args
        if (args.retained_only or args.remove_retained) and not self.retained:
            wildcards = [f for f in args.topic if "+" in f or "#" in f]
            if wildcards:
                named = ", ".join(repr(f) for f in wildcards)
                error_line(
                    "mqttchat sub",
                    f"no retained message arrived for {named}: there may be none, or the broker does not send "
                    "retained messages to wildcard subscriptions (RabbitMQ does not); subscribe to exact topics",
                )
        return self.status


def subscribe_blocking(args: argparse.Namespace, job: SubJob) -> int:
    """``job`` through :class:`~mqttchat.client.blocking.BlockingClient`: no event loop."""
    client = BlockingClient(job.options)
    if args.debug:
        client.add_trace_hook(debug_hook("mqttchat sub"))
    if client.connect(job.deadline) is None:
        return EXIT_TIMEOUT
    announce_connection("mqttchat sub", args, client)
    receiving = Receiving(args, job)
    try:
        codes = client.subscribe(job.subscriptions, **job.subscribe_arguments(), deadline=job.deadline)
        if codes is None:
            return EXIT_TIMEOUT
        receiving.check(codes)
        while True:
            timeout = receiving.wait()
            if timeout is not None and timeout <= 0:
                break
            message = client.next_message(None if timeout is None else time.monotonic() + timeout)
            if message is None:
                receiving.nothing_came()
                break
            if receiving.arrived(message):
                break
            if receiving.to_remove(message):
                client.publish(message.topic, b"", message.qos, retain=True)
            if receiving.skipped(message):
                continue
            if receiving.write(job.output.render(message)):
                break
    finally:
        client.disconnect()
    return receiving.finish()


async def subscribe(args: argparse.Namespace, job: SubJob) -> int:
    """``job`` through the asyncio client (WebSocket, proxies, --decode)."""
    import asyncio

    from mqttchat.client import MQTTClient

    client = MQTTClient(job.options)
    if args.debug:
        client.add_trace_hook(debug_hook("mqttchat sub"))
    stream = client.messages(maxsize=1_000_000)
    loop = asyncio.get_running_loop()
    # The job's deadline on the event loop's clock.
    deadline = None if job.deadline is None else loop.time() + (job.deadline - time.monotonic())
    try:
        async with asyncio.timeout_at(deadline):
            await client.connect()
    except TimeoutError:
        await client.disconnect()
        return EXIT_TIMEOUT
    announce_connection("mqttchat sub", args, client)
    receiving = Receiving(args, job)
    decoder = job.decoder
    try:
        try:
            async with asyncio.timeout_at(deadline):
                codes = await client.subscribe(*job.subscriptions, **job.subscribe_arguments())
        except TimeoutError:
            return EXIT_TIMEOUT
        receiving.check(codes)
        while True:
            timeout = receiving.wait()
            if timeout is not None and timeout <= 0:
                break
            try:
                async with asyncio.timeout(timeout):
                    message = await stream.get()
            except TimeoutError:
                receiving.nothing_came()
                break
            except StopAsyncIteration:
                break
            if receiving.arrived(message):
                break
            if receiving.to_remove(message):
                await client.publish(message.topic, b"", message.qos, retain=True)
            if receiving.skipped(message):
                continue
            if decoder is not None:
                line = render_decoded(job.output, decoder, message, await decoder.decode(message))
            else:
                line = job.output.render(message)
            if receiving.write(line):
                break
    finally:
        await client.disconnect()
    return receiving.finish()
