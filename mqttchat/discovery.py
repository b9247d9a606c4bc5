"""Discovery of a broker too big for ``#``: topics level by level, a subtree followed while it is expanded.

Theory of operation. The explorer is in one of two modes:

- **all**: subscribed to ``#`` (what it always did). In ``auto`` the first :data:`AUTO_WINDOW` seconds are watched:
  when :data:`BIG_TOPICS` topics or more arrive in them, or the broker's own ``$SYS`` figures say it holds that many
  retained messages or topics, the explorer switches to discovery by itself and says why.
- **discover**: the view is partial. The root level is followed with ``+`` and each expanded node ``P`` with
  ``P/+`` (its children's own values, live). Names below a level are learnt with a *probe*: ``P/#`` (``#`` at the
  root) subscribed when ``P`` is expanded and dropped after :data:`PROBE_SECONDS` or :data:`PROBE_MESSAGES`
  messages, whichever comes first; what a probe brings after its end is discarded and counted. A collapsed node
  is unsubscribed (``P/+`` and any probe); so is every expanded node below it, which is no longer shown.
  Messages outside what is followed (late deliveries of a dropped subscription) are discarded and counted, so
  that memory follows what the user looks at, not what the broker has.

MQTT 5 Retain Handling keeps retained messages from being sent twice, or makes sure they are sent: ``P/+``
subscribed beside a probe, or while ``#`` is still in place (switching from all to discover), asks for none (2:
the probe or ``#`` brought them, and the new subscription is in place before the old one goes); ``P/+`` of a node
expanded again asks for them only for a new subscription (1: values that changed while it was collapsed arrive,
and a subscription the broker still had sends nothing again); ``#`` when switching back to all asks for them
all (0: the unfollowed subtrees' values are stale). MQTT 3.1.1 has no Retain Handling: there the broker sends
retained messages on every subscribe.

``#`` stays one key away (:meth:`TopicDiscovery.follow_everything` and back).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from mqttchat.client import ClientError
from mqttchat.protocol import MQTTError, ProtocolVersion, ReasonCode, RetainHandling, Subscription

if TYPE_CHECKING:
    from mqttchat.client import MQTTClient
    from mqttchat.explorer.broker_sys import BrokerSys
    from mqttchat.explorer.tree import TopicTree

log = logging.getLogger("mqttchat.discovery")

#: A broker is big when this many topics arrive in the first AUTO_WINDOW seconds of ``#``, or when its $SYS says it
#: holds this many retained messages or topics (``discovery_topics`` in settings.toml).
BIG_TOPICS = 50_000
AUTO_WINDOW = 10.0
#: Seconds to wait for the broker's retained $SYS figures before subscribing to ``#`` at most, and after the $SYS
#: watch's SUBACK (mosquitto's figures come right behind it; EMQX's and VerneMQ's only every so often).
SYS_WAIT = 1.5
SYS_AFTER_SUBACK = 0.2
#: How long a probe (``P/#``) lasts, and the messages it may bring at most.
PROBE_SECONDS = 1.0
PROBE_MESSAGES = 5_000
#: A subtree probed (or seen through ``#``) this recently is not probed again when expanded again.
PROBE_AGAIN_AFTER = 60.0
#: Expanded subtrees followed at most (the shallowest first); ``#`` follows everything.
MAX_FOLLOWED = 200

OnGranted = Callable[[list[Subscription], list[ReasonCode]], None]


class Mode(Enum):
    ALL = "all"
    DISCOVER = "discover"


def level_filter(topic: str) -> str:
    """The filter of a node's children: ``+`` at the root."""
    return f"{topic}/+" if topic else "+"


def probe_filter(topic: str) -> str:
    """The filter of a node's whole subtree: ``#`` at the root."""
    return f"{topic}/#" if topic else "#"


@dataclass
class Probe:
    topic: str
    #: ``time.monotonic()`` when it ends at the latest.
    deadline: float
    messages: int = 0
    ended: bool = False


class TopicDiscovery:
    """Which filters the explorer holds on a big broker, and the subscribes and unsubscribes that get there."""

    def __init__(
        self,
        client: MQTTClient,
        tree: TopicTree,
        broker_sys: BrokerSys,
        *,
        setting: str = "off",
        big_topics: int = BIG_TOPICS,
        qos: int = 0,
        on_granted: OnGranted | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        #: "off" (always ``#``), "auto" (``#`` unless the broker is big) or "on" (always discover).
        self.setting = setting
        #: Whether the subscriptions are ``#`` alone, which discovery may replace.
        self.possible = True
        self.client = client
        self.tree = tree
        self.broker_sys = broker_sys
        self.big_topics = big_topics
        self.qos = qos
        self.on_granted = on_granted
        self.clock = clock
        self.mode = Mode.ALL
        #: Why the view is partial, in words (None in mode all).
        self.reason: str | None = None
        #: Nodes whose children are followed (``P/+``); "" is the root (``+``).
        self.followed: set[str] = set()
        #: Probes running, by node.
        self.probes: dict[str, Probe] = {}
        #: When each node's subtree was last seen whole (a probe's end), and when ``#`` was last dropped.
        self.probed_at: dict[str, float] = {}
        self.all_until: float | None = None
        #: Filters subscribed by the discovery and what the broker answered.
        self.granted: dict[str, ReasonCode] = {}
        #: Messages discarded (outside what is followed: late deliveries) and probes made.
        self.discarded = 0
        self.probes_made = 0
        #: Expanded subtrees left unfollowed (beyond MAX_FOLLOWED).
        self.unfollowed = 0
        #: The last subscribe or unsubscribe that failed, in words.
        self.problem: str | None = None
        #: Bumped whenever the mode or the followed set changes (the UI redraws then).
        self.version = 0
        self._wanted: set[str] = {""}
        self._auto_until: float | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._jobs: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------------------------------ queries

    @property
    def active(self) -> bool:
        """Whether the view is partial (discovering level by level)."""
        return self.mode is Mode.DISCOVER

    @property
    def v5(self) -> bool:
        return self.client.options.version == ProtocolVersion.MQTT_5

    def wants(self, topic: str) -> bool:
        """Whether a message on ``topic`` belongs to what is followed (called for every message while
        discovering; O(1) plus one check per probe running). A probe's messages are counted against its budget."""
        if topic.rpartition("/")[0] in self.followed:
            return True
        for probe in self.probes.values():
            prefix = probe.topic
            if probe.ended:
                continue  # what it brings after its end is late
            if not prefix or topic == prefix or topic.startswith(prefix + "/"):
                probe.messages += 1
                if probe.messages >= PROBE_MESSAGES:
                    probe.ended = True
                    self._schedule(self._drop_probes)
                return True
        return False

    def status(self) -> str:
        """One line for the screen: the partial view, what is followed, what was discarded."""
        if not self.active:
            return ""
        subtrees = len(self.followed - {""})
        text = "◐ partial view, level by level (# for all topics): following the top level"
        if subtrees:
            text += f" and {subtrees} subtree{'s' if subtrees != 1 else ''}"
        probing = [topic or "the top level" for topic, probe in self.probes.items() if not probe.ended]
        if probing:
            text += f"; probing {', '.join(sorted(probing)[:3])}"
        if self.unfollowed:
            text += f"; {self.unfollowed} more expanded, not followed (at most {MAX_FOLLOWED})"
        if self.discarded:
            text += f"; {self.discarded:,} late messages discarded"
        if self.problem:
            text += f"; {self.problem}"
        return f"{text}; why: {self.reason}"

    # ------------------------------------------------------------------------------------------ start and mode

    async def start(self, qos: int) -> None:
        """Subscribe as the setting says: discovery when asked ("on") or when the broker's $SYS says it is big
        ("auto"), else ``#`` (in "auto" watched for its first seconds: see :meth:`tick`)."""
        self.qos = qos
        if self.setting == "on":
            await self.discover("asked for", initial=True)
            return
        if self.setting == "auto":
            figure = await self._sys_figure(SYS_WAIT)
            if figure is not None:
                await self.discover(figure, initial=True)
                return
            self._auto_until = self.clock() + AUTO_WINDOW
        await self._subscribe([Subscription("#", qos, False, self.v5, RetainHandling.SEND_ON_SUBSCRIBE)])

    async def _sys_figure(self, wait: float) -> str | None:
        """What the broker's $SYS says that makes it big, waiting up to ``wait`` seconds for a first figure."""
        sys = self.broker_sys
        if sys.watching_since is None:
            return None
        deadline = self.clock() + wait
        while sys.retained_count is None and sys.topic_count is None and sys.refused is None:
            now = self.clock()
            if now >= deadline or (sys.subscribed_at is not None and now - sys.subscribed_at >= SYS_AFTER_SUBACK):
                break
            await asyncio.sleep(0.02)
        return self._big_by_sys()

    def _big_by_sys(self) -> str | None:
        sys = self.broker_sys
        for count, what in ((sys.topic_count, "topics"), (sys.retained_count, "retained messages")):
            if count is not None and count >= self.big_topics:
                return f"$SYS counts {count:,} {what}"
        return None

    def tick(self, topics_before: int = 0) -> None:
        """In ``auto``, during the first seconds of ``#``: switch to discovery when the broker shows itself big
        (called about once a second)."""
        until = self._auto_until
        if until is None or self.mode is not Mode.ALL:
            return
        now = self.clock()
        topics = self.tree.stats.topics - topics_before
        if topics >= self.big_topics:
            reason: str | None = f"{topics:,} topics in {max(1.0, AUTO_WINDOW - (until - now)):.0f} s of #"
        else:
            reason = self._big_by_sys()
        if reason is not None:
            why = reason
            self._auto_until = None
            self._schedule(lambda: self.discover(why))
        elif now >= until:
            self._auto_until = None

    async def discover(self, reason: str, *, initial: bool = False, expanded: Iterable[str] = ()) -> None:
        """Go to discovery: follow the top level and the ``expanded`` nodes. ``initial``: nothing is subscribed
        yet, so the top level is probed; else ``#`` is dropped once the narrower filters are in place."""
        async with self._lock:
            if self.mode is Mode.DISCOVER:
                return
            self.mode = Mode.DISCOVER
            self.reason = reason
            self._auto_until = None
            self.version += 1
            wanted = self._limit({"", *expanded})
            if initial:
                self.followed = {""}
                await self._subscribe([self._probe(""), self._level("", RetainHandling.DO_NOT_SEND)])
            else:
                # ``#`` is in place: the tree is current, so the narrower filters ask for no retained messages,
                # and they are subscribed before ``#`` goes, leaving no gap.
                self.followed = set(wanted)
                await self._subscribe([self._level(topic, RetainHandling.DO_NOT_SEND) for topic in sorted(wanted)])
                await self._unsubscribe(["#"])
                self.all_until = self.clock()
            self._wanted = wanted
        log.info("discovering level by level: %s", reason)

    async def follow_everything(self) -> None:
        """Back to ``#`` (retained messages sent again: the unfollowed subtrees' values are stale)."""
        async with self._lock:
            if self.mode is Mode.ALL:
                return
            # everything is taken from now on: the retained messages come right behind the SUBACK
            self.mode = Mode.ALL
            self.reason = None
            self.version += 1
            await self._subscribe([Subscription("#", self.qos, False, self.v5, RetainHandling.SEND_ON_SUBSCRIBE)])
            drop = [level_filter(topic) for topic in sorted(self.followed)]
            drop += [probe_filter(topic) for topic in sorted(self.probes)]
            self.followed = set()
            self.probes.clear()
            self.unfollowed = 0
            if drop:
                await self._unsubscribe(drop)

    # ------------------------------------------------------------------------------------------ following

    def follow(self, expanded: set[str]) -> None:
        """The nodes expanded and shown now: follow them (and the root), stop following the others. Returns at
        once; the subscribes and unsubscribes run in order in a task of their own."""
        if not self.active:
            return
        wanted = self._limit({"", *expanded})
        if wanted == self._wanted:
            return
        self._wanted = wanted
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._converge(), name="discovery")

    def _limit(self, wanted: set[str]) -> set[str]:
        if len(wanted) <= MAX_FOLLOWED:
            self.unfollowed = 0
            return wanted
        kept = sorted(wanted, key=lambda topic: (topic.count("/") if topic else -1, topic))[:MAX_FOLLOWED]
        self.unfollowed = len(wanted) - len(kept)
        return set(kept)

    async def _converge(self) -> None:
        while True:
            async with self._lock:
                if not self.active or self._wanted == self.followed:
                    return
                await self._apply(set(self._wanted))

    async def _apply(self, wanted: set[str]) -> None:
        now = self.clock()
        gone = sorted(self.followed - wanted)
        new = sorted(wanted - self.followed)
        subs: list[Subscription] = []
        for topic in new:
            if self._seen_lately(topic, now):
                # seen whole lately: its children's values only, retained ones only if the subscription is new
                subs.append(self._level(topic, RetainHandling.SEND_IF_NEW_SUBSCRIPTION))
            else:
                subs += [self._probe(topic), self._level(topic, RetainHandling.DO_NOT_SEND)]
        self.followed = (self.followed - set(gone)) | set(new)
        self.version += 1
        if subs:
            await self._subscribe(subs)
        drop = [level_filter(topic) for topic in gone]
        drop += [probe_filter(topic) for topic in gone if self.probes.pop(topic, None) is not None]
        if drop:
            await self._unsubscribe(drop)

    def _seen_lately(self, topic: str, now: float) -> bool:
        if self.all_until is not None and now - self.all_until < PROBE_AGAIN_AFTER:
            return True
        node: str | None = topic
        while node is not None:
            at = self.probed_at.get(node)
            if at is not None and now - at < PROBE_AGAIN_AFTER:
                return True
            node = node.rpartition("/")[0] if node else None
        return False

    def _level(self, topic: str, handling: RetainHandling) -> Subscription:
        return Subscription(level_filter(topic), self.qos, False, self.v5, handling)

    def _probe(self, topic: str) -> Subscription:
        self.probes[topic] = Probe(topic, self.clock() + PROBE_SECONDS)
        self.probes_made += 1
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(PROBE_SECONDS, self._schedule, self._drop_probes))
        return Subscription(probe_filter(topic), self.qos, False, self.v5, RetainHandling.SEND_ON_SUBSCRIBE)

    async def _drop_probes(self) -> None:
        """Unsubscribe the probes that ended (their budget of messages or time is spent)."""
        async with self._lock:
            now = self.clock()
            done = [topic for topic, probe in self.probes.items() if probe.ended or now >= probe.deadline]
            for topic in done:
                probe = self.probes.pop(topic)
                if not probe.ended:  # its time ran out, not its budget: the subtree was seen whole
                    self.probed_at[topic] = now
                probe.ended = True
            self._timers = [timer for timer in self._timers if not timer.cancelled()]
            if done:
                self.version += 1
                await self._unsubscribe([probe_filter(topic) for topic in done])

    # ------------------------------------------------------------------------------------------ the client

    def _schedule(self, job: Callable[[], object]) -> None:
        """Run a coroutine function soon, from the reader or a timer (which must not wait)."""

        async def run() -> None:
            result = job()
            if asyncio.iscoroutine(result):
                await result

        with contextlib.suppress(RuntimeError):  # no loop: shutting down
            task = asyncio.get_running_loop().create_task(run(), name="discovery")
            self._jobs.add(task)  # the loop keeps only a weak reference to a task
            task.add_done_callback(self._jobs.discard)

    async def _subscribe(self, subs: list[Subscription]) -> None:
        try:
            codes = await self.client.subscribe(*subs)
        except (ClientError, MQTTError, OSError) as exc:
            self.problem = f"subscribe failed: {exc}"
            log.warning("discovery: %s", self.problem)
            return
        for sub, code in zip(subs, codes, strict=False):
            if code.is_error:
                self.granted.pop(sub.topic_filter, None)
                self.problem = f"{sub.topic_filter} refused: {code.title}"
            else:
                self.granted[sub.topic_filter] = code
        if self.on_granted is not None:
            self.on_granted(subs, codes)

    async def _unsubscribe(self, filters: list[str]) -> None:
        for topic_filter in filters:
            self.granted.pop(topic_filter, None)
        try:
            await self.client.unsubscribe(*filters)
        except (ClientError, MQTTError, OSError) as exc:
            self.problem = f"unsubscribe failed: {exc}"
            log.warning("discovery: %s", self.problem)

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._task is not None:
            self._task.cancel()
        for job in list(self._jobs):
            job.cancel()
