"""Our client session and our broker wired together in memory: no sockets, no event loop, time moved by hand.

As h11 tests its two ends with ``ConnectionPair``, this joins :class:`~mqttchat.client.session.ClientSession`
(sans-I/O) to the broker's connections and core through :class:`MemoryLink` (the broker's
:class:`~mqttchat.broker.connection.Link`), with a clock the test moves: ``pair.advance(90)`` lets a keepalive or
a will delay run out at once, and every timer fires at its deadline, never early and never late.

    broker = MemoryBroker(max_keepalive=60)
    alice = broker.connect("alice", keepalive=1, will=Will("gone/alice", b"bye"))
    watcher = broker.connect("watcher")
    watcher.subscribe("gone/#", qos=1)
    broker.advance(1.6)             # alice said nothing for 1.5 x her keepalive
    assert alice.closed and watcher.payloads() == [b"bye"]

Bytes move between the two ends whenever the test calls a method of either (or :meth:`MemoryBroker.settle`):
each end's output is handed to the other until neither has anything left to say.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mqttchat.broker.clock import Clock
from mqttchat.broker.config import default_config
from mqttchat.broker.connection import BrokerConnection, Connections, State
from mqttchat.broker.core import BrokerCore
from mqttchat.broker.logins import Verdict
from mqttchat.client.options import ClientOptions
from mqttchat.client.session import ClientSession, Connected, ConnectRefused, Event, ServerDisconnected
from mqttchat.protocol import EMPTY_PROPERTIES, Properties, Publish, ReasonCode, RemoteProtocolError, Subscription

#: A start time far from zero, so that "time 0" is never mistaken for "no time".
EPOCH = 1_000.0


#: The wall clock's reading at EPOCH (it moves with the monotonic one).
WALL_EPOCH = 1_800_000_000.0


class ManualClock:
    """Time that moves only when told: a monotonic reading (call it) and a wall clock (:meth:`wall`) together."""

    def __init__(self, start: float = EPOCH) -> None:
        self.time = start

    def __call__(self) -> float:
        return self.time

    def wall(self) -> float:
        return WALL_EPOCH + (self.time - EPOCH)


class MemoryLink:
    """The broker's side of an in-memory connection: what the broker writes waits here for the client."""

    def __init__(self) -> None:
        self.outbox = bytearray()
        self.closed = False
        self.graceful: bool | None = None
        self.reading = True

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.outbox += data

    def close(self, graceful: bool) -> None:
        if not self.closed:
            self.closed = True
            self.graceful = graceful

    def set_reading(self, reading: bool) -> None:
        self.reading = reading

    def write_buffer_size(self) -> int:
        return 0


class InstantLogins:
    """Password checks answered at once (a test that needs them pending uses the real LoginChecks)."""

    tarpit = 0.5

    def check(self, passwords: Any, username: str, password: bytes, source: str, done: Any) -> Verdict:
        return Verdict.ACCEPTED if passwords.verify(username, password) else Verdict.REFUSED

    def penalised(self, source: str) -> bool:
        return False

    def failed(self, source: str) -> None:
        pass

    def close(self) -> None:
        pass


class MemoryClient:
    """A :class:`ClientSession` on one in-memory connection to a :class:`MemoryBroker` (reconnects make new ones)."""

    def __init__(self, broker: MemoryBroker, options: ClientOptions, peer: str) -> None:
        self.broker = broker
        self.session = ClientSession(options)
        self.peer = peer
        self.events: list[Event] = []
        self.error: RemoteProtocolError | None = None
        #: False: the client reads nothing the broker sends (a stalled subscriber); it waits in the link's outbox.
        self.reading = True
        self.link = MemoryLink()
        self.conn: BrokerConnection | None = None
        self.connect()

    # -- the connection ----------------------------------------------------------------------------------------

    def connect(self) -> None:
        """Open a (new) connection and send CONNECT; the CONNACK is read before this returns."""
        self.link = MemoryLink()
        self.conn = BrokerConnection(self.broker.connections, self.link, self.peer, "memory")
        self.broker.clients.append(self)
        self.session.start_connection()
        self.broker.settle()

    @property
    def closed(self) -> bool:
        """Whether the broker closed this connection (or the client did)."""
        return self.link.closed

    @property
    def connected(self) -> bool:
        return self.session.connected and not self.link.closed

    def drop(self) -> None:
        """The network fails under both ends: nothing more is said, the broker sees the connection lost."""
        self.link.closed = True
        self.session.connection_lost()
        assert self.conn is not None
        self.conn.connection_lost()
        self.broker.settle()

    def disconnect(self, reason: ReasonCode = ReasonCode.SUCCESS, properties: Properties = EMPTY_PROPERTIES) -> None:
        """DISCONNECT (0x04 asks for the will), then the client closes the connection."""
        self.session.disconnect(reason, properties)
        self.broker.settle()
        if not self.link.closed:
            self.link.closed = True
            assert self.conn is not None
            self.conn.connection_lost()
            self.broker.settle()

    # -- commands ----------------------------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False, **props: Any) -> None:
        properties = Properties(**props) if props else EMPTY_PROPERTIES
        self.session.publish(Publish(topic, payload, qos, retain, properties=properties))
        self.broker.settle()

    def subscribe(self, topic_filter: str, qos: int = 0) -> list[ReasonCode]:
        """SUBSCRIBE; returns the SUBACK's codes."""
        self.session.subscribe([Subscription(topic_filter, qos)], token=topic_filter)
        self.broker.settle()
        for event in self.events:
            if getattr(event, "token", None) == topic_filter and hasattr(event, "suback"):
                self.events.remove(event)
                return list(event.suback.reason_codes)
        raise AssertionError(f"no SUBACK for {topic_filter!r}")

    def ping(self) -> None:
        self.session.ping()
        self.broker.settle()

    # -- what arrived ------------------------------------------------------------------------------------------

    def messages(self) -> list[Publish]:
        """The application messages received since the last call."""
        got = [event for event in self.events if type(event) is Publish]
        self.events = [event for event in self.events if type(event) is not Publish]
        return got

    def payloads(self) -> list[bytes]:
        return [message.payload for message in self.messages()]

    @property
    def connack(self) -> Connected | ConnectRefused | None:
        for event in self.events:
            if isinstance(event, (Connected, ConnectRefused)):
                return event
        return None

    @property
    def disconnect_reason(self) -> ReasonCode | None:
        """The reason code of the broker's DISCONNECT, if it sent one."""
        for event in self.events:
            if isinstance(event, ServerDisconnected):
                return event.disconnect.reason_code
        return None

    # -- moving bytes ------------------------------------------------------------------------------------------

    def _exchange(self) -> bool:
        """Hand each end's output to the other; whether anything moved."""
        moved = False
        conn = self.conn
        assert conn is not None
        # While the broker does not read this client (a password being checked, overload protection), what the
        # client writes waits in its session, as it would in the socket.
        out = self.session.data_to_send() if self.link.reading else b""
        if out and conn.state is not State.CLOSED and not self.link.closed:
            conn.data_received(out)
            moved = True
        if self.link.outbox and self.reading:
            data = bytes(self.link.outbox)
            self.link.outbox.clear()
            try:
                self.events.extend(self.session.receive_data(data))
            except RemoteProtocolError as exc:
                self.events.extend(self.session.events_before_error)
                self.error = exc
            moved = True
        return moved


class MemoryBroker:
    """The broker's core and connections on a clock the test moves (see the module's docstring).

    Args:
        clock: the time of a broker that ran before (a restart on its store goes on from there).
        config: BrokerConfig fields; with ``persistence_file`` the store is loaded from it (and ``stop()`` closes it).
    """

    def __init__(self, clock: ManualClock | None = None, **config: Any) -> None:
        self.clock_source = clock if clock is not None else ManualClock()
        self.clock = Clock(self.clock_source, self.clock_source.wall)
        self.clock.rearm = lambda when: None  # timers run in advance()
        if "persistence_file" in config:
            config.setdefault("persistence", True)
        self.config = dataclasses.replace(default_config(), **{"sys_interval": 0, **config})
        self.core = BrokerCore(self.config, self.clock)
        self.core.logins = InstantLogins()  # type: ignore[assignment]
        self.connections = Connections(self.core)
        self.connections.watch_keepalives()
        self.clients: list[MemoryClient] = []
        self._peers = 0
        if self.config.persistence:
            from mqttchat.broker.persistence import Store

            self.core.persistence = Store(self.core, self.config.persistence_file)
            self.core.persistence.load()

    def stop(self) -> None:
        """Shut down as the broker does: MQTT 5 clients are told, sessions kept, the store written and closed."""
        self.core.stopping = True
        for conn in list(self.connections):
            conn.shutdown()
        self.settle()
        self.connections.stop_watching()
        if self.core.persistence is not None:
            self.core.persistence.close()
            self.core.persistence = None

    @property
    def now(self) -> float:
        return self.clock_source.time

    def connect(
        self, client_id: str, version: int = 5, *, keepalive: int = 60, clean_start: bool = True, **options: Any
    ) -> MemoryClient:
        """A client connected (or refused: see :attr:`MemoryClient.connack`) with these :class:`ClientOptions`."""
        self._peers += 1
        opts = ClientOptions(client_id=client_id, version=version, keepalive=keepalive, clean_start=clean_start,
                             **options)  # fmt: skip
        return MemoryClient(self, opts, f"127.0.0.1:{40_000 + self._peers}")

    def settle(self) -> None:
        """Run what the broker put off and move bytes both ways until nobody has anything left to say."""
        for _ in range(10_000):
            self.clock.run_soon()
            moved = False
            for client in self.clients:
                moved = client._exchange() or moved
            if not moved and not self.clock.pending:
                return
        raise AssertionError("the two ends keep talking: a loop?")

    def advance(self, seconds: float) -> None:
        """Move time ``seconds`` forward, firing each timer at its own deadline (and settling after each)."""
        end = self.clock_source.time + seconds
        while True:
            self.settle()
            deadline = self.clock.next_deadline()
            if deadline is None or deadline > end:
                break
            self.clock_source.time = max(self.clock_source.time, deadline)
            self.clock.run_due()
        self.clock_source.time = end
        self.settle()
