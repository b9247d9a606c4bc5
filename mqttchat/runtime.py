"""The running connection behind the app: client, optional embedded broker, and the models it feeds.

The client's reader calls :meth:`Runtime._on_message` for every message; it only updates the pure models
(topic tree, counters), never the screen, and never awaits. The UI reads the models on its own timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from mqttchat.client import (
    ClientError,
    ClientOptions,
    ConnackRefused,
    ConnectError,
    ConnectionLost,
    ConnectionRefused,
    Message,
    MQTTClient,
    PublishResult,
    StateChange,
    Status,
)
from mqttchat.client.errors import InvalidConnack, TLSError
from mqttchat.config import data_dir, install_id
from mqttchat.discovery import BIG_TOPICS, Mode, TopicDiscovery
from mqttchat.explorer.broker_sys import WATCH_FILTERS, BrokerSys
from mqttchat.explorer.charts import Charts
from mqttchat.explorer.decoded_text import DecodedTexts
from mqttchat.explorer.decoders import DecodeResult, DecoderRule, PayloadDecoders
from mqttchat.explorer.history_store import (
    HistoryError,
    HistoryLocked,
    HistoryReader,
    HistoryWriter,
    StoredMessage,
    store_path,
)
from mqttchat.explorer.progress import PublishProgress
from mqttchat.explorer.recording import RecordedMessage, Recorder, replay_waits
from mqttchat.explorer.retained import RetainedMessage, bulk_pause
from mqttchat.explorer.sparkplug_view import place as sparkplug_place
from mqttchat.explorer.trace import PacketTrace
from mqttchat.explorer.tree import Entry, TopicFilter, TopicNode, TopicTree
from mqttchat.hosting import (
    LOCAL_RECONNECT_MAX_DELAY,
    EmbeddedHost,
    Peer,
    embedded_store_path,
    explorer_client_id,
    watch_for_take_over,
)
from mqttchat.protocol import MQTTError, Packet, ProtocolVersion, ReasonCode, RetainHandling, Subscription, matches
from mqttchat.shared_ingest import SharedIngest
from mqttchat.untrusted import loggable, printable

if TYPE_CHECKING:
    from mqttchat.broker.server import Broker
    from mqttchat.chat.service import ChatService
    from mqttchat.demo import House

log = logging.getLogger("mqttchat.runtime")

#: Told of each message of a bulk publish that the broker refused: its topic and the broker's answer.
OnRefused = Callable[[str, PublishResult], None]

#: Targets for which a refused connection starts the embedded broker there instead.
#: Seconds a pass of the tree's filter may spend decoding payloads to search their decoded text.
FILTER_DECODE_BUDGET = 0.01

#: Messages the explorer's connection hands to the models per turn of the event loop (the client's default is 500):
#: each costs the tree, the history's queue and the decoders some 20 µs, and a turn also runs the screen's refresh
#: and, with the embedded broker, its routing. 500 made turns of up to 30 ms under a 20,000 msg/s flood, and a
#: timer waiting through two of them was late by more than 50 ms.
EXPLORER_PACKETS_PER_TURN = 200

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
DEFAULT_PORT = 1883


#: Seconds without a retained message before the retained delivery after ``#`` is taken as over.
RETAINED_SETTLE = 2.0

#: CONNACK refusals that may pass by themselves (a broker starting, busy, or limiting the rate of connections).
PASSING_REFUSALS = frozenset({
    ReasonCode.SERVER_UNAVAILABLE, ReasonCode.SERVER_BUSY, ReasonCode.QUOTA_EXCEEDED,
    ReasonCode.CONNECTION_RATE_EXCEEDED,
})  # fmt: skip
#: CONNACK refusals of the user's credentials (MQTT 3.1.1 return codes 4 and 5 are mapped to these).
CREDENTIAL_REFUSALS = frozenset({ReasonCode.BAD_USER_NAME_OR_PASSWORD, ReasonCode.NOT_AUTHORIZED})


def may_pass(error: BaseException) -> bool:
    """Whether connecting again later may succeed: the network, a broker not (yet) listening or busy; not
    refused credentials, a certificate, or a broker that does not speak our protocol."""
    if isinstance(error, ConnackRefused):
        return error.reason_code in PASSING_REFUSALS
    if isinstance(error, (TLSError, InvalidConnack)):
        return False
    return isinstance(error, (ConnectError, ConnectionLost, OSError))


def credentials_refused(error: BaseException) -> bool:
    """Whether the broker refused the user name or password (0x86, 0x87; MQTT 3.1.1 codes 4 and 5)."""
    return isinstance(error, ConnackRefused) and error.reason_code in CREDENTIAL_REFUSALS


def retry_delay(options: ClientOptions, attempt: int) -> float:
    """The pause before connection attempt ``attempt + 1``: doubling from the client's reconnect minimum up to
    its maximum, with jitter (as the client backs off between reconnects)."""
    delay = min(options.reconnect_max_delay, options.reconnect_min_delay * 2.0 ** (attempt - 1))
    return float(delay * random.uniform(0.5, 1.0))


@dataclass(frozen=True, slots=True)
class ConnectFailure:
    """Why the last attempt to connect at start-up failed, and when the next one is made."""

    error: BaseException
    #: How many attempts failed so far.
    attempts: int
    #: When the next attempt is made (``time.monotonic()``), or None: no more attempts (see ``may_pass``).
    retry_at: float | None

    @property
    def credentials(self) -> bool:
        return credentials_refused(self.error)


def history_path(url: str, identity: str) -> Path:
    """The chat history file for one broker and one identity, under the platformdirs data dir."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", url).strip("_")
    return data_dir() / "chat" / f"{slug}-{identity}.sqlite"


@dataclass(frozen=True, slots=True)
class SubscriptionRow:
    """One active subscription as the subscriptions panel shows it."""

    subscription: Subscription
    #: The SUBACK's answer for it (granted QoS or a failure), None while the SUBSCRIBE is unanswered.
    granted: ReasonCode | None
    subscription_identifier: int | None


@dataclass
class Rates:
    """Messages per second in and out, over the last whole second (updated by :meth:`Runtime.tick`)."""

    in_per_s: float = 0.0
    out_per_s: float = 0.0
    _last_in: int = 0
    _last_out: int = 0
    _last_at: float = 0.0


@dataclass
class Runtime:
    options: ClientOptions
    subscriptions: tuple[tuple[str, int], ...] = (("#", 0),)
    tree: TopicTree = field(default_factory=TopicTree)
    #: Start the embedded broker when the target is this machine's default port and nothing listens there.
    embed_broker: bool = True
    trace_size: int = 10_000
    #: The chat: its nick (None: the settings' or the OS user's), rooms to join besides those open when it last
    #: ran (on the first run, with none given: lobby) and session expiry (seconds).
    chat_nick: str | None = None
    chat_rooms: tuple[str, ...] = ()
    chat_session_expiry: int = 7 * 24 * 3600
    #: The saved profile these options came from: a fallback to MQTT 3.1.1 is remembered there, and the
    #: connection screen starts from it.
    profile_name: str | None = None
    #: How payloads are decoded per topic filter (the settings' ``[[decoders]]``).
    decoder_rules: tuple[DecoderRule, ...] = ()
    #: The lasting history of this broker (every message seen, in the data directory): its size in bytes (None:
    #: not kept) and how long a message is kept, seconds (None: as long as the size allows).
    history_budget: int | None = None
    history_retention: float | None = None
    #: What to tell the user once connected (what a cloud service's guards changed).
    notices: tuple[str, ...] = ()
    #: Topic discovery when the only subscription is ``#``: "off" (``#``), "auto" (``#`` unless the broker is
    #: big: ``big_topics``) or "on" (level by level); see mqttchat.discovery.
    discover: str = "off"
    big_topics: int = BIG_TOPICS
    #: Watch the broker's $SYS figures (mosquitto's, EMQX's, VerneMQ's; see explorer.broker_sys) for the Broker
    #: tab, over a connection of its own (the tree shows $SYS only if a subscription of the user's asks for it).
    watch_sys: bool = False

    def __post_init__(self) -> None:
        #: The embedded broker this instance hosts (or may take over hosting), for the local default target.
        self.host: EmbeddedHost | None = None
        if self.embed_broker and self.is_local_default:
            # A take-over by another local instance is found within seconds, not after a 30 s back-off.
            delay = min(self.options.reconnect_max_delay, LOCAL_RECONNECT_MAX_DELAY)
            self.options = replace(self.options, reconnect_max_delay=delay)
        #: Payload decoders (decoding is lazy: at ingest only Sparkplug B state is kept) and the charts.
        self.decoders = PayloadDecoders(self.decoder_rules)
        #: The decoded text of topics' latest payloads, that the tree's filter searches too.
        self.decoded_texts = DecodedTexts(self.decoders)
        self.charts = Charts()
        if not self.options.client_id and self.options.clean_start and not self.options.session_expiry:
            # Named, not left for the broker to assign: the broker's log and the host's list of who is
            # connected then say that this is an mqttchat explorer.
            self.options = replace(self.options, client_id=explorer_client_id())
        self.client = MQTTClient(self.options)
        self.client.packets_per_turn = EXPLORER_PACKETS_PER_TURN
        #: The lasting history's writer, once opened (see :meth:`open_history`), why it could not be, and how many
        #: topics the tree shows from it at start-up.
        self.history: HistoryWriter | None = None
        self.history_problem: str | None = None
        #: Another mqttchat on this machine writes this broker's history: it is read at start-up, not written.
        self.history_elsewhere = False
        self.history_restored = 0
        self.client.add_message_handler(self._on_message)
        self.client.add_trace_hook(self._on_packet)
        self.client.add_state_listener(self._on_state)
        self.broker: Broker | None = None
        #: The packets in and out, for the packet inspector.
        self.trace = PacketTrace(self.trace_size)
        self.rates = Rates()
        self.state: StateChange | None = None
        self.events: deque[str] = deque(maxlen=200)
        #: What the broker says about itself under $SYS, in its dialect.
        self.broker_sys = BrokerSys()
        #: A filter read over several connections of a shared group of this app's own (a firehose).
        self.shared: SharedIngest | None = None
        self._from_shared = False
        #: The connection that watches $SYS (watch_sys), and the task that starts it.
        self.sys_client: MQTTClient | None = None
        self._sys_task: asyncio.Task[None] | None = None
        default = len(self.subscriptions) == 1 and self.subscriptions[0][0] == "#"
        #: Level-by-level discovery on a broker too big for ``#`` (it holds ``#`` itself unless "off").
        self.discovery = TopicDiscovery(
            self.client, self.tree, self.broker_sys, setting=self.discover if default else "off",
            big_topics=self.big_topics, on_granted=self._discovery_granted,
        )  # fmt: skip
        self.discovery.possible = default
        #: A simulated house publishing to the broker (``mqttchat demo``).
        self.demo: House | None = None
        #: The chat (a second connection with a persistent session), once the chat view asked for it.
        self.chat: ChatService | None = None
        #: Why the chat could not start, or why its connection is down.
        self.chat_error: str | None = None
        self.chat_state_error: str | None = None
        self._chat_lock = asyncio.Lock()
        #: What the broker answered for each filter this app subscribed to (SUBACK reason codes).
        self.granted: dict[str, ReasonCode] = {}
        #: Bumped whenever the set of subscriptions changes, so the panel redraws only then.
        self.subscriptions_version = 0
        #: Writes the messages matching a filter to a JSONL file, while the user records.
        self.recorder: Recorder | None = None
        #: Called with a sentence for the user when something happens on its own (this instance took over hosting).
        self.notice: Callable[[str], None] | None = None
        #: Said once after connecting: the broker refused MQTT 5.0, the client speaks 3.1.1 (and where that is kept).
        self.version_notice: str | None = None
        #: Retained messages received (some brokers send none to wildcard subscriptions: see retained_note()).
        self.retained_seen = 0
        #: When the last retained message came (``time.monotonic()``): the retained burst after ``#`` is over
        #: RETAINED_SETTLE seconds later.
        self.retained_at = 0.0
        self._watch_task: asyncio.Task[None] | None = None
        #: When ``state`` last changed (``time.monotonic()``): a reconnect's countdown starts there.
        self.state_at = 0.0
        #: Why connecting at start-up failed last, and when it is tried again (None once connected).
        self.failure: ConnectFailure | None = None
        #: With several brokers open: the one history budget the tree has a share of, and how many share it.
        self.history_share: tuple[int, int] | None = None

    # ------------------------------------------------------------------------------------------ reader side

    def _on_message(self, message: Message) -> None:
        topic = message.topic
        if topic.startswith("$SYS/"):
            self.broker_sys.offer(topic, message.payload, time.monotonic(), message.retain)
        elif self.discovery.mode is Mode.DISCOVER and not self.discovery.wants(topic) and not self._user_wants(topic):
            self.discovery.discarded += 1  # outside what is followed: a dropped subscription's late delivery
            return
        shared = self.shared
        if shared is not None and not self._from_shared and shared.matches(topic):
            shared.duplicates += 1  # the shared group's connections bring it: the main connection's copy goes
            return
        history = self.history
        if history is not None:
            history.offer(message)  # never waits: what does not fit is counted
        if message.retain:
            self.retained_seen += 1
            self.retained_at = time.monotonic()
        observation = (
            self.decoders.observe(topic, message.payload, message.received_at) if topic.startswith("spBv1.0/") else None
        )
        recorder = self.recorder
        if recorder is not None:
            recorder.offer(message, observation)  # decoded with the aliases of its birth
        if topic in self.charts.topics:
            self.charts.offer(topic, message.payload, message.properties.content_type, observation, message.received_at)
        self.tree.ingest(
            topic, message.payload, message.qos, message.retain, message.dup, message.properties,
            message.received_at, observation,
        )  # fmt: skip

    def decode(self, topic: str, entry: Entry) -> DecodeResult:
        """A message of the tree decoded (cached), with the Sparkplug aliases of its time."""
        return self.decoders.decode(
            topic, entry.payload, content_type=entry.properties.content_type, observation=entry.observation
        )

    def visible_topics(self, topic_filter: TopicFilter) -> set[TopicNode] | None:
        """The tree's nodes the filter shows (None: all), matching topics, raw payloads and the decoded text of
        payloads a decoder transforms (decoding for at most :data:`FILTER_DECODE_BUDGET` seconds).

        Raises:
            ValueError: the filter is invalid.
        """
        self.decoded_texts.begin(FILTER_DECODE_BUDGET)
        return self.tree.visible(topic_filter, self.decoded_texts.text)

    def value_line(self, node: TopicNode, width: int) -> str:
        """The tree's value column: the latest payload decoded, in one line of at most width characters; on a
        Sparkplug B topic, the state of its edge node or device first."""
        entry = node.last
        if entry is None or width <= 0:
            return ""
        prefix = ""
        if node.topic.startswith("spBv1.0/"):
            where = sparkplug_place(self.decoders.sparkplug, node.topic)
            word = where.word() if where is not None else ""
            prefix = f"{word} · " if word else ""
        if len(prefix) >= width:
            prefix = ""
        return prefix + self.decode(node.topic, entry).summary(width - len(prefix))

    def choose_decoder(self, rule: DecoderRule | None, topic_filter: str) -> str:
        """Decode what matches topic_filter with rule from now on (None: automatically again), and remember it in
        the settings. What happened, in words.

        Raises:
            ValueError: the rule is not valid, or the settings cannot be read or written (the message says why;
                the choice holds for this run all the same).
        """
        from mqttchat.config import ConfigError, load_settings, save_settings, settings_path

        if rule is None:
            forgot = self.decoders.forget(topic_filter)
            said = f"{topic_filter}: decoded automatically" + ("" if forgot else " (it was)")
        else:
            self.decoders.choose(rule)
            said = f"{topic_filter}: decoded as {rule.decoder}"
        try:
            settings = load_settings()
            save_settings(replace(settings, decoders=tuple(self.decoders.rules)))
        except (ConfigError, OSError, ValueError) as exc:
            raise ValueError(f"{said} for now; not remembered in {settings_path()}: {exc}") from None
        return f"{said} (remembered in {settings_path()})"

    def _on_packet(self, direction: str, packet: Packet, size: int) -> None:
        self.trace.add(time.time(), direction, packet, size)

    def _on_state(self, change: StateChange) -> None:
        self.state = change
        self.state_at = time.monotonic()
        if change.status is Status.CONNECTED:
            self.failure = (
                None  # connected: the last failed attempt no longer says anything (start may still subscribe)
            )
        text = change.status.value
        if change.status is Status.RECONNECTING:
            text = f"reconnecting (attempt {change.attempt}, in {change.delay:.1f} s)"
        if change.error is not None and change.status is not Status.CONNECTED:
            text += f": {change.error}"
        self.events.append(f"{time.strftime('%H:%M:%S')} {text}")

    # ------------------------------------------------------------------------------------------ lifecycle

    @property
    def is_local_default(self) -> bool:
        target = self.options.target
        return not target.tls and not target.websocket and target.host in LOCAL_HOSTS and target.port == DEFAULT_PORT

    async def start(self) -> None:
        """Connect; when the default local broker is absent, start the embedded one there first. The lasting
        history is opened first, so that the tree shows the last known state before live messages come."""
        if self.history_budget is not None and self.history is None and self.history_problem is None:
            await self.open_history()
        local = self.embed_broker and self.is_local_default
        try:
            await self.client.connect()
        except ConnectionRefused:
            if not local:
                raise
            await self.start_embedded_broker()
            await self.client.connect()
        self._version_learned()
        if local and self._watch_task is None:
            host = self._embedded_host()
            self._watch_task = asyncio.create_task(
                watch_for_take_over(host, lambda: self.client.connected, self._took_over), name="hosting watch"
            )
        await self.subscribe_initial()

    @property
    def history_path(self) -> Path:
        """This broker's lasting history store."""
        return store_path(data_dir(), self.options.target.url)

    async def open_history(self) -> None:
        """Open this broker's lasting history (every message seen from now on is written to it) and show the last
        known value of each topic in the tree, stale until a live message arrives. A store that cannot be opened
        is said in ``history_problem`` and the app goes on without it."""
        if self.history_budget is None or self.history is not None:
            return
        path = self.history_path
        budget, retention = self.history_budget, self.history_retention
        limit = self.tree.history_payload_limit

        def open_and_read() -> tuple[HistoryWriter | None, str | None, list[StoredMessage]]:
            writer, problem = None, None
            try:
                writer = HistoryWriter(path, budget=budget, retention=retention, payload_limit=limit)
            except HistoryLocked as exc:
                problem = str(exc)
                self.history_elsewhere = True  # the last known state is still read: the other instance writes it
            except HistoryError as exc:
                problem = str(exc)
            try:
                with HistoryReader(path) as reader:
                    state = reader.state_at(time.time())
            except HistoryError:
                state = []
            return writer, problem, state

        self.history, problem, state = await asyncio.to_thread(open_and_read)
        if problem is not None:
            self.history_problem = problem
            self.events.append(f"{time.strftime('%H:%M:%S')} no lasting history: {problem}")
            log.warning("%s", loggable(problem))
        tree = self.tree
        for index, m in enumerate(state):
            if tree.restore(m.topic, m.payload, m.qos, m.retain, m.properties, m.t):
                self.history_restored += 1
            if index % 2000 == 1999:
                await asyncio.sleep(0)  # a big broker's state: let the screen breathe
        if state:
            self.events.append(
                f"{time.strftime('%H:%M:%S')} the tree shows the last known value of {len(state)} topics from "
                f"{path} (stale until live messages arrive)"
            )

    def retained_note(self) -> str | None:
        """When the subscriptions are all wildcards and no retained message came: say what that may mean."""
        granted = {**self.discovery.granted, **self.granted}
        if self.retained_seen or not self.client.connected or not granted:
            return None
        wildcards = [f for f in granted if "+" in f or "#" in f]
        if not wildcards or len(wildcards) < len(granted):
            return None
        named = ", ".join(repr(f) for f in wildcards)
        return (
            f"no retained message arrived through {named}: there may be none, or the broker does not send retained "
            "messages to wildcard subscriptions (RabbitMQ does not); subscribe to an exact topic to read one"
        )

    def retained_comparison(self, now: float) -> tuple[str, bool] | None:
        """What arrived through ``#`` beside the number of retained messages the broker says it holds (where it
        publishes one in $SYS): a sentence, and whether the delivery was cut short. None: nothing to compare (no
        count, no ``#``, a partial view, or retained messages still coming). ``now`` is ``time.monotonic()``."""
        sys = self.broker_sys
        count = sys.retained_count
        if sys.subscribed_at is None or count is None or self.discovery.active:
            return None  # the $SYS watch is what counts the broker's own retained $SYS topics
        if "#" not in self.granted and "#" not in self.discovery.granted:
            return None
        if now - max(self.retained_at, sys.watching_since or 0.0) < RETAINED_SETTLE:
            return None
        on_sys = len(sys.retained_sys)
        expected = max(0, count - on_sys)
        below = self.tree.get("$SYS")
        in_tree_sys = sum(1 for node in below.walk() if node.retained) if below is not None else 0
        arrived = self.tree.stats.retained_topics - in_tree_sys
        held = f"the broker holds {count:,} ({sys.retained_source}" + (
            f", {on_sys} of them on $SYS)" if on_sys else ")"
        )
        if arrived + expected // 100 < expected:  # within 1%: retained messages come and go meanwhile
            return (
                f"retained messages cut short: {arrived:,} arrived through '#' where {held}: the broker stopped "
                "sending them (a limit on what it queues for a new subscriber: mosquitto's max_queued_messages, "
                "EMQX's rate limits), or the others are beyond what the ACL lets this client read",
                True,
            )
        return f"all retained messages arrived: {arrived:,} through '#', and {held}", False

    def _version_learned(self) -> None:
        """The client fell back to MQTT 3.1.1: use it from now on (the chat too), say so, remember it."""
        fallback = self.client.version_fallback
        if not fallback or self.options.version == self.client.options.version:
            return
        self.options = replace(self.options, version=self.client.options.version, version_fallback=False)
        text = fallback
        if self.profile_name:
            from mqttchat.config import ConfigError, ProfileError, ProfileStore

            store = ProfileStore()
            try:
                store.load()
                profile = store.get(self.profile_name)
                if profile is not None and profile.version != 311:
                    store.save_profile(replace(profile, version=311))
                    text += f"; profile {self.profile_name!r} now says MQTT 3.1.1"
            except (ConfigError, ProfileError, OSError) as exc:
                text += f"; profile {self.profile_name!r} not updated: {exc}"
        self.version_notice = text
        self.events.append(f"{time.strftime('%H:%M:%S')} {text}")
        log.info("%s", loggable(text))

    async def start_retrying(self, on_failure: Callable[[ConnectFailure], None] | None = None) -> None:
        """:meth:`start`, trying again with backoff while the failure may pass (:func:`may_pass`): a broker that
        is not up yet is connected to when it comes. ``failure`` says why the last attempt failed and when the
        next one is made; ``on_failure`` is called with it after each failed attempt.

        Raises:
            ClientError: an error that trying again would only repeat (refused credentials, a certificate), or
                any error when the options ask for no reconnects. ``failure`` holds it.
        """
        attempts = 0
        while True:
            try:
                await self.start()
            except (ClientError, MQTTError, OSError) as exc:
                attempts += 1
                delay = retry_delay(self.options, attempts) if self.options.reconnect and may_pass(exc) else None
                retry_at = None if delay is None else time.monotonic() + delay
                self.failure = ConnectFailure(exc, attempts, retry_at)
                then = f"trying again in {delay:.1f} s" if delay is not None else "not trying again"
                why = printable(str(exc))
                self.events.append(f"{time.strftime('%H:%M:%S')} attempt {attempts} failed: {why}; {then}")
                if on_failure is not None:
                    on_failure(self.failure)
                if delay is None:
                    raise
                await asyncio.sleep(delay)
            else:
                self.failure = None
                return

    def _embedded_host(self, port: int | None = None, persistent: bool = True) -> EmbeddedHost:
        if self.host is None:
            target_port = self.options.target.port if port is None else port
            store = embedded_store_path(data_dir(), target_port) if persistent and target_port else None
            self.host = EmbeddedHost("127.0.0.1", target_port, store, persistent=persistent)
        return self.host

    async def start_embedded_broker(self, port: int | None = None, *, persistent: bool = True) -> None:
        """Host the embedded broker on this machine's default address (or ``port``), with its store in the data
        directory unless ``persistent`` is false, waiting briefly for a previous host to let go of the store."""
        host = self._embedded_host(port, persistent)
        self.broker = await host.start()
        self._hosting_started("started the embedded broker on " + self.broker.url)

    def _hosting_started(self, text: str) -> None:
        assert self.host is not None and self.host.broker is not None
        self.broker = self.host.broker
        if self.host.store_problem:
            text += f" ({self.host.store_problem})"
        elif self.host.persistent:
            text += f", sessions and retained messages kept in {self.host.store}"
        self.events.append(f"{time.strftime('%H:%M:%S')} {text}")
        log.info("%s", text)

    def _took_over(self) -> None:
        assert self.host is not None and self.host.broker is not None
        self._hosting_started("the instance that hosted the broker quit: took over hosting on " + self.host.broker.url)
        if self.notice is not None:
            self.notice(f"The broker's host quit: this mqttchat hosts it now on {self.host.broker.url}")

    def hosted_peers(self) -> list[Peer]:
        """Who uses the broker this instance hosts, other than this instance (empty when it hosts none)."""
        if self.host is None or not self.host.hosting:
            return []
        own = [self.client.client_id]
        if self.sys_client is not None:
            own.append(self.sys_client.client_id)
        if self.shared is not None:
            own.extend(client.client_id for client in self.shared.clients)
        if self.chat is not None:
            own.append(self.chat.client.client_id)
        peers = self.host.peers(own)
        if self.demo is not None:  # the simulated house is this instance's too
            peers = [peer for peer in peers if not peer.client_id.startswith("demo-")]
        return peers

    async def subscribe_initial(self) -> None:
        if self.watch_sys and self._sys_task is None:
            self.broker_sys.watching_since = time.monotonic()
            self._sys_task = asyncio.create_task(self._watch_sys(), name="$SYS watch")
        if self.discovery.setting != "off":
            await self.discovery.start(self.subscriptions[0][1])
            return
        v5 = self.options.version == ProtocolVersion.MQTT_5
        subs = [
            Subscription(topic_filter, qos, False, v5, RetainHandling.SEND_ON_SUBSCRIBE)
            for topic_filter, qos in self.subscriptions
        ]
        if subs:
            codes = await self.client.subscribe(*subs)
            self._granted(subs, codes)

    async def _watch_sys(self) -> None:
        """Watch the broker's $SYS figures in every dialect known (explorer.broker_sys.WATCH_FILTERS) over a
        connection of its own: a broker that refuses them, even by closing the connection (some do on an ACL
        denial), leaves the explorer's connection alone, and they never mix with the user's subscriptions."""
        sys = self.broker_sys
        base = self.client.client_id or self.options.client_id or "mqttchat"
        options = replace(self.options, client_id=f"{base}-sys", clean_start=True, session_expiry=None, will=None,
                          reconnect=False)  # fmt: skip
        client = MQTTClient(options)
        client.add_message_handler(self._on_sys_message)
        try:
            await client.connect()
            # retain as published: a $SYS topic that first comes later still says whether the broker retains it
            v5 = options.version == ProtocolVersion.MQTT_5
            codes = await asyncio.wait_for(client.subscribe(*WATCH_FILTERS, qos=0, retain_as_published=v5), 10.0)
        except (ClientError, MQTTError, OSError, TimeoutError) as exc:
            sys.refused = printable(str(exc), limit=200)
            await client.disconnect()
            return
        if all(code.is_error for code in codes):
            sys.refused = codes[0].title
            await client.disconnect()
            return
        sys.subscribed_at = time.monotonic()
        self.sys_client = client

    def _on_sys_message(self, message: Message) -> None:
        self.broker_sys.offer(message.topic, message.payload, time.monotonic(), message.retain)

    def _user_wants(self, topic: str) -> bool:
        """Whether a subscription of the user's (not the discovery's, not the $SYS watch) matches ``topic``; a
        shared one (``$share/group/F``, and the parallel ingest's) on its filter F."""
        filters = list(self.granted)
        if self.shared is not None:
            filters.append(self.shared.topic_filter)
        return any(matches(f.split("/", 2)[-1] if f.startswith("$share/") else f, topic) for f in filters)

    async def start_shared(self, topic_filter: str, connections: int) -> SharedIngest:
        """Read ``topic_filter`` over ``connections`` more connections in a shared group of this app's own (a
        firehose beyond one connection's limits at the broker), replacing any running; every message feeds the
        explorer as the main connection's do.

        Raises:
            ValueError: a bad filter or count, or the broker refused the shared subscription. ClientError,
                MQTTError, OSError: a connection failed.
        """
        from mqttchat.protocol import topic_filter_problem

        problem = topic_filter_problem(topic_filter)
        if problem is not None or topic_filter.startswith("$share/"):
            raise ValueError(problem or "give the filter alone: the app makes the shared group")
        await self.stop_shared()
        qos = self.subscriptions[0][1] if self.subscriptions else 0
        shared = SharedIngest(self.options, topic_filter, connections, self._on_shared_message, qos)
        for client in shared.clients:  # they feed the explorer as its own connection does
            client.packets_per_turn = EXPLORER_PACKETS_PER_TURN
        await shared.start()
        self.shared = shared
        self.events.append(f"{time.strftime('%H:%M:%S')} reading {topic_filter} over {connections} connections "
                           f"in the shared group {shared.group}")  # fmt: skip
        return shared

    def _on_shared_message(self, message: Message) -> None:
        self._from_shared = True
        try:
            self._on_message(message)
        finally:
            self._from_shared = False

    async def stop_shared(self) -> SharedIngest | None:
        shared, self.shared = self.shared, None
        if shared is not None:
            await shared.stop()
        return shared

    async def start_discovering(self, expanded: set[str]) -> None:
        """Discover level by level from now on (the ``#`` key), following ``expanded``; ``#`` is the discovery's
        from now on.

        Raises:
            ValueError: the subscriptions are not ``#`` alone (the user's own filters are not replaced).
        """
        if not self.discovery.possible:
            raise ValueError("discovery replaces # alone: the subscriptions are the ones asked for")
        self.granted.pop("#", None)
        await self.discovery.discover("asked for", expanded=expanded)

    def _discovery_granted(self, subs: list[Subscription], codes: list[ReasonCode]) -> None:
        self.subscriptions_version += 1

    # ------------------------------------------------------------------------------------------ recording

    def start_recording(self, topic_filter: TopicFilter, path: str | Path) -> Recorder:
        """Record what arrives and matches ``topic_filter`` to ``path`` (replacing any recording running), with
        the decoded form of payloads a decoder applies to.

        Raises:
            OSError: the file cannot be created. ValueError: the filter is invalid.
        """
        self.stop_recording()
        self.recorder = Recorder(Path(path).expanduser(), topic_filter, decoders=self.decoders)
        return self.recorder

    def stop_recording(self) -> Recorder | None:
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            recorder.close()
        return recorder

    # ------------------------------------------------------------------------------------------ subscriptions

    def _granted(self, subs: list[Subscription], codes: list[ReasonCode]) -> None:
        for sub, code in zip(subs, codes, strict=False):
            if code.is_error:
                self.granted.pop(sub.topic_filter, None)
            else:
                self.granted[sub.topic_filter] = code
        self.subscriptions_version += 1

    async def subscribe(self, subscription: Subscription, subscription_identifier: int | None = None) -> ReasonCode:
        """Subscribe while connected; the SUBACK's reason code (granted QoS or failure) is returned and kept."""
        codes = await self.client.subscribe(subscription, subscription_identifier=subscription_identifier)
        self._granted([subscription], codes)
        return codes[0]

    async def unsubscribe(self, topic_filter: str) -> ReasonCode:
        codes = await self.client.unsubscribe(topic_filter)
        if not codes[0].is_error:
            self.granted.pop(topic_filter, None)
        self.subscriptions_version += 1
        return codes[0]

    def subscription_rows(self) -> list[SubscriptionRow]:
        """The client session's subscriptions (what a reconnect restores), with the broker's answers."""
        rows = []
        for topic_filter, (sub, props) in self.client.session.subscriptions.items():
            granted = self.granted.get(topic_filter)
            if granted is None:
                granted = self.discovery.granted.get(topic_filter)
            ids = props.subscription_identifier
            rows.append(SubscriptionRow(sub, granted, ids[0] if ids else None))
        return rows

    # ------------------------------------------------------------------------------------------ bulk publishing

    async def replay(
        self,
        records: Sequence[RecordedMessage],
        speed: float,
        progress: PublishProgress,
        refused: OnRefused | None = None,
    ) -> None:
        """Publish a recording again with its recorded timing divided by ``speed`` (0: as fast as allowed).

        Messages keep their topic, payload, QoS, retain flag and properties. QoS 1/2 messages are awaited one by
        one (the broker's acknowledgement paces the replay) and nothing goes out faster than REPLAY_RATE a second
        (see :func:`~mqttchat.explorer.recording.replay_waits`). ``progress`` counts what was published;
        ``refused`` hears of each message the broker refused.

        Raises:
            ClientError, MQTTError: publishing failed (not connected, the connection lost): ``progress`` says how
                far the replay got. ValueError: ``speed`` is negative.
        """
        try:
            for record, wait in zip(records, replay_waits(records, speed), strict=True):
                await asyncio.sleep(wait)
                result = await self.client.publish(record.topic, record.payload, record.qos, record.retain,
                                                   record.publish_properties)  # fmt: skip
                self._published(progress, record.topic, result, refused)
        finally:
            progress.ended = True

    async def publish_retained(
        self,
        messages: Sequence[RetainedMessage],
        progress: PublishProgress,
        refused: OnRefused | None = None,
    ) -> None:
        """Publish ``messages`` as retained messages (an empty payload clears one), at most BULK_RATE a second.

        Raises:
            ClientError, MQTTError: publishing failed (not connected, the connection lost): ``progress`` says how
                far it got.
        """
        try:
            for message in messages:
                result = await self.client.publish(message.topic, message.payload, message.qos, retain=True)
                self._published(progress, message.topic, result, refused)
                pause = bulk_pause(progress.done)
                if pause:
                    await asyncio.sleep(pause)
        finally:
            progress.ended = True

    @staticmethod
    def _published(progress: PublishProgress, topic: str, result: PublishResult, refused: OnRefused | None) -> None:
        progress.done += 1
        if result.ok:
            progress.accepted += 1
        elif refused is not None:
            refused(topic, result)

    async def start_demo(self) -> None:
        """``mqttchat demo``: the embedded broker (on the default port if free, else any) and a simulated house."""
        from mqttchat.client import parse_url
        from mqttchat.demo import House

        try:
            await self.start_embedded_broker(persistent=False)
        except OSError:
            self.host = None
            await self.start_embedded_broker(port=0, persistent=False)
        assert self.broker is not None
        target = parse_url(self.broker.url)
        self.options = replace(self.options, target=target)
        self.client.options = self.options
        self.client.session.options = self.options
        self.demo = House(self.broker.url)
        await self.demo.start()
        await self.client.connect()
        await self.subscribe_initial()

    async def start_chat(self) -> ChatService:
        """Connect the chat: its own client (persistent session, presence will), service and local history."""
        async with self._chat_lock:  # the chat view and the start-up may both ask for it
            if self.chat is not None:
                return self.chat
            return await self._start_chat()

    async def _start_chat(self) -> ChatService:
        from mqttchat.chat.history import History
        from mqttchat.chat.service import ChatService, chat_client_options, chat_identity, default_nick

        nick = self.chat_nick or default_nick()
        rooms = list(self.chat_rooms)
        # The explorer's client id is its own: the chat's is derived from who chats and from this installation,
        # so that the broker keeps one persistent session per person and machine, which no one else can guess.
        base = replace(self.options, client_id="")
        options = chat_client_options(base, nick, rooms, self.chat_session_expiry, install_id())
        client = MQTTClient(options)
        history = History(history_path(options.target.url, chat_identity(options, nick)))
        service = ChatService(client, nick, rooms, history)
        client.add_state_listener(self._on_chat_state)
        try:
            await client.connect()
            await service.start()
        except BaseException:
            history.close()
            await client.disconnect()
            raise
        self.chat = service
        self.chat_error = None
        self.events.append(f"{time.strftime('%H:%M:%S')} chat connected as {nick} ({options.client_id})")
        return service

    def _on_chat_state(self, change: StateChange) -> None:
        if change.status is Status.CONNECTED:
            self.chat_state_error = None
        elif change.error is not None:
            error = str(change.error)
            if "taken over" in error.lower():
                error = "another mqttchat on this machine chats with this identity (session taken over): use --nick"
            self.chat_state_error = error

    async def stop_chat(self) -> None:
        """Leave the chat: its service stopped, its connection closed (the explorer stays connected)."""
        chat, self.chat = self.chat, None
        if chat is not None:
            await chat.stop()
            await chat.client.disconnect()

    async def stop(self) -> None:
        self.discovery.close()
        await self.stop_shared()
        sys_task, self._sys_task = self._sys_task, None
        if sys_task is not None:
            sys_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sys_task
        sys_client, self.sys_client = self.sys_client, None
        if sys_client is not None:
            await sys_client.disconnect()
        watch, self._watch_task = self._watch_task, None
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        self.stop_recording()
        await self.stop_chat()
        if self.demo is not None:
            await self.demo.stop()
            self.demo = None
        await self.client.disconnect()
        history, self.history = self.history, None
        if history is not None:
            await asyncio.to_thread(history.close)  # writes what is queued
        if self.host is not None:
            await self.host.stop()
        elif self.broker is not None:
            await self.broker.stop()
        self.broker = None

    def tick(self, now: float) -> None:
        """Update the in/out rates and write the chat history (called by the UI timer about once a second)."""
        if self.chat is not None and self.chat.history is not None:
            self.chat.history.flush()
        if self.recorder is not None:
            self.recorder.flush()
        stats = self.client.sync_stats()
        r = self.rates
        if r._last_at:
            dt = max(now - r._last_at, 1e-6)
            r.in_per_s = (stats.messages_in - r._last_in) / dt
            r.out_per_s = (stats.messages_out - r._last_out) / dt
        r._last_in, r._last_out, r._last_at = stats.messages_in, stats.messages_out, now
        self.discovery.tick(self.history_restored)
