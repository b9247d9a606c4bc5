"""Received messages and the bounded streams that hand them to consumers without ever blocking the reader."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from mqttchat.client.options import OverflowPolicy
from mqttchat.protocol import EMPTY_PROPERTIES, Properties, Publish
from mqttchat.protocol.fastinit import builder, dataclass

if TYPE_CHECKING:  # the streams run in an event loop; a Message does not need one (mqttchat pub/sub do without)
    import asyncio


@dataclass(frozen=True, slots=True)
class Message:
    """An application message received from the broker."""

    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    properties: Properties = EMPTY_PROPERTIES
    #: When it was received (``time.time()``).
    received_at: float = 0.0
    #: The packet identifier the broker gave it (QoS 1 and 2), as ``mosquitto_sub -F %m`` shows it.
    packet_id: int | None = None

    @property
    def subscription_identifiers(self) -> tuple[int, ...]:
        """The identifiers of the subscriptions this message matched (MQTT 5)."""
        return self.properties.subscription_identifier

    @classmethod
    def from_publish(cls, publish: Publish, received_at: float) -> Message:
        build = build_message if cls is Message else cls
        return build(
            publish.topic, publish.payload, publish.qos, publish.retain, publish.dup, publish.properties, received_at,
            publish.packet_id,
        )  # fmt: skip


#: A Message from its fields in order (topic, payload, qos, retain, dup, properties, received_at, packet_id),
#: built without ``__init__``: the client's reader makes one per message received.
build_message = builder(Message)


class MessageStream:
    """A bounded queue of received messages, consumed with ``async for``.

    The client's reader puts messages in without ever waiting: when the stream is full the overflow policy drops
    the oldest or the newest message and counts it in :attr:`dropped`. Acknowledgements and keepalive go on
    however slowly the stream is read.
    """

    def __init__(self, maxsize: int, overflow: OverflowPolicy, on_close: Callable[[MessageStream], None]) -> None:
        if maxsize < 1:
            raise ValueError("a message stream holds at least one message")
        self.maxsize = maxsize
        self.overflow = overflow
        self.dropped = 0
        self._queue: deque[Message] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._error: BaseException | None = None
        self._on_close = on_close

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, message: Message) -> None:
        """Add a message (the reader calls this; it never blocks)."""
        queue = self._queue
        if len(queue) >= self.maxsize:
            self.dropped += 1
            if self.overflow == "drop_newest":
                return
            queue.popleft()
        queue.append(message)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def fail(self, error: BaseException) -> None:
        """End the stream with ``error`` once the buffered messages are consumed."""
        self._error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def get(self) -> Message:
        """The next message; waits for one.

        Raises:
            StopAsyncIteration: the stream was closed. The error passed to :meth:`fail`, if any.
        """
        while not self._queue:
            if self._error is not None:
                raise self._error
            if self._closed:
                raise StopAsyncIteration
            from asyncio import get_running_loop

            self._waiter = get_running_loop().create_future()
            await self._waiter
        return self._queue.popleft()

    def get_nowait(self) -> Message | None:
        return self._queue.popleft() if self._queue else None

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        return await self.get()

    def close(self) -> None:
        """Stop receiving; the iteration ends after the buffered messages."""
        if not self._closed:
            self._closed = True
            self._on_close(self)
            self._wake()

    async def __aenter__(self) -> MessageStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
