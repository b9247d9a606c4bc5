"""Which decoder a topic gets: the rules of ``settings.toml``'s ``[[decoders]]`` tables
(:class:`~mqttchat.config.decoder_rules.DecoderRule`) in order. The first rule whose filter matches the topic wins;
a topic no rule matches is decoded automatically. Choosing a decoder by hand ("decode as…") puts a rule for that
filter first."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from mqttchat.config.decoder_rules import DecoderRule
from mqttchat.protocol import matches

__all__ = ["DecoderRules"]

#: Bytes of topics whose rule is remembered (the memo is cleared when it is exceeded).
MEMO_BUDGET = 1024 * 1024


class DecoderRules:
    """An ordered list of rules; the first whose filter matches a topic wins."""

    def __init__(self, rules: Iterable[DecoderRule] = ()) -> None:
        self._rules: list[DecoderRule] = list(rules)
        #: Changes whenever the rules do (caches of decoded payloads key on it).
        self.version = 0
        self._memo: dict[str, DecoderRule | None] = {}
        self._memo_bytes = 0

    def __iter__(self) -> Iterator[DecoderRule]:
        return iter(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def rule_for(self, topic: str) -> DecoderRule | None:
        """The rule that decides how topic is decoded, or None (decode automatically)."""
        try:
            return self._memo[topic]
        except KeyError:
            pass
        found = next((rule for rule in self._rules if matches(rule.filter, topic)), None)
        self._memo_bytes += len(topic) + 100
        if self._memo_bytes > MEMO_BUDGET:
            self._memo.clear()
            self._memo_bytes = len(topic) + 100
        self._memo[topic] = found
        return found

    def choose(self, rule: DecoderRule) -> None:
        """Put rule first, replacing any rule with the same filter (the user chose it by hand)."""
        self._rules = [rule, *(other for other in self._rules if other.filter != rule.filter)]
        self._changed()

    def forget(self, topic_filter: str) -> bool:
        """Remove the rule for exactly this filter. False if there was none."""
        before = len(self._rules)
        self._rules = [rule for rule in self._rules if rule.filter != topic_filter]
        if len(self._rules) == before:
            return False
        self._changed()
        return True

    def replace_all(self, rules: Iterable[DecoderRule]) -> None:
        self._rules = list(rules)
        self._changed()

    def _changed(self) -> None:
        self.version += 1
        self._memo.clear()
        self._memo_bytes = 0
