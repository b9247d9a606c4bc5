"""A firehose read over several connections: a shared subscription in a group that only this app uses.

A broker limits each connection (its queue of messages waiting for a slow reader, a rate limit per client: EMQX,
HiveMQ, cloud brokers), and past those limits it drops messages. Subscribed to ``$share/<group>/<filter>`` from N
connections, the broker deals the filter's messages out among them: each carries a share, and the limits apply N
times. The group is the app's own (``mqttchat-`` and a random token), so that no production consumer shares it:
joining someone else's group would take messages away from them (see :func:`foreign_group`). All connections
feed the same explorer (one event loop: the reading is not parallel, the broker's delivery is).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import replace

from mqttchat.client import ClientOptions, Message, MQTTClient
from mqttchat.protocol import matches, parse_shared_subscription

#: The group name of every group this app creates; a group named otherwise may have other members.
OWN_GROUP_PREFIX = "mqttchat-"
MAX_CONNECTIONS = 16


def foreign_group(topic_filter: str) -> str | None:
    """The group of a ``$share/<group>/…`` filter that this app did not create (joining it takes messages from its
    other members), or None."""
    if not topic_filter.startswith("$share/"):
        return None
    try:
        shared = parse_shared_subscription(topic_filter)
    except ValueError:
        return None
    if shared is None or shared.group.startswith(OWN_GROUP_PREFIX):
        return None
    return shared.group


class SharedIngest:
    """N connections of their own, each in the app's shared group for ``topic_filter``, feeding ``on_message``."""

    def __init__(
        self,
        options: ClientOptions,
        topic_filter: str,
        connections: int,
        on_message: Callable[[Message], None],
        qos: int = 0,
    ) -> None:
        if not 1 <= connections <= MAX_CONNECTIONS:
            raise ValueError(f"from 1 to {MAX_CONNECTIONS} connections")
        self.topic_filter = topic_filter
        self.group = OWN_GROUP_PREFIX + secrets.token_hex(4)
        self.shared_filter = f"$share/{self.group}/{topic_filter}"
        self.qos = qos
        base = options.client_id or "mqttchat"
        # Connections of their own: a clean session each (nothing kept on the broker when they go), no will.
        self.clients = [
            MQTTClient(replace(options, client_id=f"{base}-share{i}", clean_start=True, session_expiry=None, will=None))
            for i in range(connections)
        ]
        self.counts = [0] * connections
        #: Messages the main connection also received through a subscription of its own, left out (the group's
        #: copy counts).
        self.duplicates = 0
        for index, client in enumerate(self.clients):
            client.add_message_handler(self._counter(index, on_message))

    def _counter(self, index: int, on_message: Callable[[Message], None]) -> Callable[[Message], None]:
        counts = self.counts

        def handle(message: Message) -> None:
            counts[index] += 1
            on_message(message)

        return handle

    def matches(self, topic: str) -> bool:
        return matches(self.topic_filter, topic)

    async def start(self) -> None:
        """Connect every connection and subscribe it to the group.

        Raises:
            ClientError, MQTTError, OSError: a connection or its subscription failed (the others are closed),
            or ValueError: the broker refused the shared subscription.
        """
        try:
            await asyncio.gather(*(client.connect() for client in self.clients))
            for client in self.clients:
                (code,) = await client.subscribe(self.shared_filter, qos=self.qos)
                if code.is_error:
                    raise ValueError(f"the broker refused {self.shared_filter}: {code.title}")
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        await asyncio.gather(*(client.disconnect() for client in self.clients), return_exceptions=True)

    def summary(self) -> str:
        shares = ", ".join(f"{count:,}" for count in self.counts)
        text = f"{self.topic_filter} over {len(self.clients)} connections (group {self.group}): {shares} messages"
        if self.duplicates:
            text += f"; {self.duplicates:,} copies through the main connection left out"
        return text
