"""MQTT 5.0 topic aliases (3.3.2.3.4), both directions, per connection.

A topic alias replaces a topic name with a two-byte number on one network connection. The receiver learns the
mapping from a PUBLISH that carries both; later ones may carry the alias and an empty topic. Mappings die with the
connection, so the client and broker create fresh maps on every connect.
"""

from __future__ import annotations

from mqttchat.protocol.errors import LocalProtocolError, RemoteProtocolError
from mqttchat.protocol.packets import Publish, alias_properties, with_topic
from mqttchat.protocol.properties import EMPTY_PROPERTIES, Properties, PropertyId
from mqttchat.protocol.reason_codes import ReasonCode


class InboundTopicAliases:
    """Resolves the aliases a peer sends us, up to the Topic Alias Maximum we announced."""

    __slots__ = ("_topics", "maximum")

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self._topics: dict[int, str] = {}

    def resolve(self, publish: Publish) -> Publish:
        """``publish`` with its topic name filled in and the (connection-specific) alias property removed.

        Raises:
            RemoteProtocolError: 0x94 for an alias of 0 or above our maximum; 0x82 for an empty topic with an
                alias that has no mapping.
        """
        props = publish.properties
        if props is EMPTY_PROPERTIES:
            return publish
        alias = props.topic_alias
        if alias is None:
            return publish
        if not 0 < alias <= self.maximum:
            raise RemoteProtocolError(
                f"topic alias {alias} is outside 1..{self.maximum}", ReasonCode.TOPIC_ALIAS_INVALID
            )
        topic = publish.topic
        if topic:
            self._topics[alias] = topic
        else:
            known = self._topics.get(alias)
            if known is None:
                raise RemoteProtocolError(f"topic alias {alias} has no topic yet", ReasonCode.PROTOCOL_ERROR)
            topic = known
        rest = EMPTY_PROPERTIES if len(props) == 1 else props.without(PropertyId.TOPIC_ALIAS)
        return with_topic(publish, topic, rest)

    def __len__(self) -> int:
        return len(self._topics)


class OutboundTopicAliases:
    """Chooses aliases for the topics we send, up to the peer's Topic Alias Maximum.

    The most recently used topics keep their aliases; when all are taken the least recently used one is
    reassigned. Topics of three bytes or fewer are sent as they are: an alias would not save anything.

    Args:
        maximum: the peer's Topic Alias Maximum (or fewer).
        max_bytes: a bound on the characters of the topic names remembered (0: none); past it the least
            recently used topics give their aliases up, and a topic longer than the bound is sent as it is.
    """

    __slots__ = ("_aliases", "_bytes", "_free", "max_bytes", "maximum")

    def __init__(self, maximum: int, max_bytes: int = 0) -> None:
        self.maximum = maximum
        self.max_bytes = max_bytes
        self._aliases: dict[str, int] = {}  # ordered from least to most recently used
        self._bytes = 0
        self._free: list[int] = []  # aliases given up to stay within max_bytes, to be reused first

    def apply(self, publish: Publish) -> Publish:
        """The packet to send for ``publish``: with an alias set (and its topic emptied once established)."""
        if not self.maximum:
            return publish
        topic = publish.topic
        if len(topic) <= 3:
            return publish
        if publish.properties.topic_alias is not None:
            raise LocalProtocolError("topic aliases are chosen by the connection; do not set one yourself")
        alias = self.choose(topic)
        if alias < 0:
            return with_topic(publish, "", _alias_properties(publish.properties, -alias))
        if alias:
            return with_topic(publish, topic, _alias_properties(publish.properties, alias))
        return publish

    def choose(self, topic: str) -> int:
        """The alias to send ``topic`` with, the mapping updated: negative (``-alias``) when the peer knows it
        already (send an empty topic), positive when it is new (send the topic and the alias), 0 for none (a
        topic of three bytes or fewer, or longer than ``max_bytes``). The caller has checked the topic name."""
        if not self.maximum or len(topic) <= 3:
            return 0
        aliases = self._aliases
        alias = aliases.pop(topic, None)
        if alias is not None:
            aliases[topic] = alias
            return -alias
        limit = self.max_bytes
        if limit:
            if len(topic) > limit:
                return 0
            while aliases and self._bytes + len(topic) > limit:
                oldest = next(iter(aliases))
                self._free.append(aliases.pop(oldest))
                self._bytes -= len(oldest)
            self._bytes += len(topic)
        if self._free:
            alias = self._free.pop()
        elif len(aliases) < self.maximum:
            alias = len(aliases) + 1
        else:
            oldest = next(iter(aliases))
            alias = aliases.pop(oldest)
            self._bytes -= len(oldest) if limit else 0
        aliases[topic] = alias
        return alias

    def __len__(self) -> int:
        return len(self._aliases)


def _alias_properties(props: Properties, alias: int) -> Properties:
    """``props`` plus the topic alias; the common alias-only sets are shared (their encoding is cached)."""
    if props is EMPTY_PROPERTIES:
        return alias_properties(alias)
    return props.replace(topic_alias=alias)
