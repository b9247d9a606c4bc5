"""Topic names and topic filters (MQTT section 4.7): validation, shared subscriptions and matching.

Topic names are what PUBLISH carries (no wildcards); topic filters are what SUBSCRIBE carries (``+`` matches one
whole level, ``#`` matches any number of levels and must be last). Topics are case-sensitive and ``/``-separated;
empty levels are legal. A topic starting with ``$`` is not matched by a filter starting with a wildcard.
"""

from __future__ import annotations

from mqttchat.protocol.constants import MAX_STRING_LENGTH
from mqttchat.protocol.errors import LocalProtocolError
from mqttchat.protocol.fastinit import dataclass
from mqttchat.protocol.wire import check_text

SHARE_PREFIX = "$share/"

#: The deepest topic name or filter a server accepts, in levels: as mosquitto, at most 200 ``/`` separators. Every
#: level is a node in the subscription trie or the retained store (about 250 bytes): one 65 KB topic of 32,000
#: levels would otherwise cost 8-10 MB, and no real topic tree comes near 200 levels.
MAX_TOPIC_LEVELS = 201


def too_deep(topic: str) -> bool:
    """Whether topic name or filter ``topic`` has more than :data:`MAX_TOPIC_LEVELS` levels."""
    return topic.count("/") >= MAX_TOPIC_LEVELS


def topic_name_problem(topic: str, strict: bool = False) -> str | None:
    """Why ``topic`` is not a valid topic name, or None when it is."""
    if not topic:
        return "a topic name must not be empty"
    if "+" in topic or "#" in topic:
        return f"topic name {topic!r} contains a wildcard (+ or #)"
    return _text_problem(topic, strict)


def topic_filter_problem(topic_filter: str, strict: bool = False) -> str | None:
    """Why ``topic_filter`` is not a valid topic filter, or None when it is.

    Shared subscriptions (``$share/{group}/{filter}``) are checked as such.
    """
    if not topic_filter:
        return "a topic filter must not be empty"
    if topic_filter.startswith(SHARE_PREFIX):
        try:
            shared = parse_shared_subscription(topic_filter)
        except ValueError as exc:
            return str(exc)
        assert shared is not None
        topic_filter = shared.topic_filter
    if "+" in topic_filter or "#" in topic_filter:
        levels = topic_filter.split("/")
        last = len(levels) - 1
        for i, level in enumerate(levels):
            if level in ("+", "#"):
                if level == "#" and i != last:
                    return f"topic filter {topic_filter!r}: '#' must be the last level"
            elif "+" in level or "#" in level:
                return f"topic filter {topic_filter!r}: a wildcard must occupy a whole level"
    return _text_problem(topic_filter, strict)


def _text_problem(text: str, strict: bool) -> str | None:
    problem = check_text(text, strict)
    if problem is not None:
        return f"topic {text[:60]!r} {problem}"
    if len(text) > MAX_STRING_LENGTH // 4 and len(text.encode()) > MAX_STRING_LENGTH:
        return f"topic is longer than {MAX_STRING_LENGTH} bytes"
    return None


def validate_topic_name(topic: str) -> str:
    """Return ``topic`` if it is a valid topic name; raise :class:`LocalProtocolError` otherwise."""
    problem = topic_name_problem(topic)
    if problem:
        raise LocalProtocolError(problem)
    return topic


def validate_topic_filter(topic_filter: str) -> str:
    """Return ``topic_filter`` if it is a valid topic filter; raise :class:`LocalProtocolError` otherwise."""
    problem = topic_filter_problem(topic_filter)
    if problem:
        raise LocalProtocolError(problem)
    return topic_filter


def is_wildcard(topic_filter: str) -> bool:
    return "+" in topic_filter or "#" in topic_filter


@dataclass(frozen=True, slots=True)
class SharedSubscription:
    """A parsed ``$share/{group}/{filter}`` (MQTT 5.0, 4.8.2)."""

    group: str
    topic_filter: str

    def __str__(self) -> str:
        return f"{SHARE_PREFIX}{self.group}/{self.topic_filter}"


def parse_shared_subscription(topic_filter: str) -> SharedSubscription | None:
    """Split a shared subscription into its group and filter; None when ``topic_filter`` is not one.

    Raises:
        ValueError: it starts with ``$share/`` but the group is empty or contains a wildcard, or no filter follows.
    """
    if not topic_filter.startswith(SHARE_PREFIX):
        return None
    rest = topic_filter[len(SHARE_PREFIX) :]
    group, sep, inner = rest.partition("/")
    if not group:
        raise ValueError(f"shared subscription {topic_filter!r} has an empty share name")
    if "+" in group or "#" in group:
        raise ValueError(f"shared subscription {topic_filter!r}: the share name must not contain + or #")
    if not sep or not inner:
        raise ValueError(f"shared subscription {topic_filter!r} has no topic filter after the share name")
    return SharedSubscription(group, inner)


def matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` (a topic name) matches ``topic_filter`` (a non-shared topic filter)."""
    if topic_filter == topic:
        return True
    if "+" not in topic_filter and "#" not in topic_filter:
        return False
    if topic.startswith("$") and topic_filter[0] in "+#":
        return False
    f_levels = topic_filter.split("/")
    t_levels = topic.split("/")
    n = len(t_levels)
    for i, f in enumerate(f_levels):
        if f == "#":
            return True
        if i >= n:
            return False
        if f != "+" and f != t_levels[i]:
            return False
    return len(f_levels) == n
