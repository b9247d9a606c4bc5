"""UI preferences in ``settings.toml``: theme, history budgets, refresh rate, chat nick, packet size limit, and the
``[[decoders]]`` rules that choose how payloads are decoded."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import tomli_w

from mqttchat.config.checks import int_problem
from mqttchat.config.decoder_rules import DEFAULT_TIMEOUT, RULE_KEYS, DecoderRule
from mqttchat.config.paths import settings_path
from mqttchat.config.toml import (
    Invalid,
    KeyPath,
    TomlReader,
    as_boolean,
    as_integer,
    as_string,
    as_strings,
    file_name,
    portable_path,
    read_document,
    show,
    write_atomically,
)

__all__ = ["SETTINGS_KEYS", "AppSettings", "load_settings", "save_settings"]

SETTINGS_KEYS: tuple[str, ...] = (
    "theme",
    "history_per_topic",
    "history_budget_mb",
    "history_payload_limit_kb",
    "history_store",
    "history_store_mb",
    "history_retention_days",
    "flush_hz",
    "chat_nick",
    "max_packet_size_kb",
    "discovery",
    "discovery_topics",
    "decoders",
)
#: How the explorer subscribes when given no topic: "auto" (``#`` unless the broker is big), "on" (level by level),
#: "off" (always ``#``).
DISCOVERY_CHOICES = ("auto", "on", "off")
MAX_NICK = 64


@dataclass(frozen=True, slots=True)
class AppSettings:
    """UI preferences, in ``settings.toml``."""

    theme: str = "textual-dark"
    #: Messages kept per topic in the explorer's history.
    history_per_topic: int = 100
    #: All history together, in MiB.
    history_budget_mb: int = 64
    #: Longer payloads are truncated in the history, in KiB.
    history_payload_limit_kb: int = 64
    #: The lasting history (every message the explorer sees, one store per broker in the data directory's
    #: history/ folder): on or off, its size in MiB (the oldest messages are evicted beyond it), and how many days a
    #: message is kept (0: as long as the size allows).
    history_store: bool = True
    history_store_mb: int = 256
    history_retention_days: int = 7
    #: How often the UI applies incoming messages, per second.
    flush_hz: int = 15
    #: The chat nickname; None: the client id or user name.
    chat_nick: str | None = None
    #: The largest packet the app accepts from a broker, in KiB (announced as the MQTT 5 Maximum Packet Size and
    #: checked from each packet's header; ``--max-packet-size`` overrides it); 0: the protocol's limit, 256 MiB.
    max_packet_size_kb: int = 16 * 1024
    #: A broker too big for ``#``: discover its topics level by level ("on"), never ("off"), or when it is big
    #: ("auto"): ``discovery_topics`` topics in the first 10 s of ``#``, or as many retained messages or topics in
    #: its $SYS figures.
    discovery: str = "auto"
    discovery_topics: int = 50_000
    #: How payloads are decoded per topic filter (``[[decoders]]`` tables; the first matching rule wins).
    decoders: tuple[DecoderRule, ...] = ()

    def validate(self) -> dict[str, str]:
        """What is wrong, as field name → problem; empty when all is well."""
        problems: dict[str, str] = {}
        if not isinstance(self.theme, str) or not self.theme.strip():
            problems["theme"] = "must be a theme name"
        limits = {
            "history_per_topic": (1, 1_000_000),
            "history_budget_mb": (1, 1_048_576),
            "history_payload_limit_kb": (1, 1_048_576),
            "history_store_mb": (1, 1_048_576),
            "history_retention_days": (0, 36_500),
            "flush_hz": (1, 120),
            "max_packet_size_kb": (0, 256 * 1024),
            "discovery_topics": (100, 100_000_000),
        }
        for name, (low, high) in limits.items():
            problem = int_problem(getattr(self, name), low, high)
            if problem is not None:
                problems[name] = problem
        if (
            "history_payload_limit_kb" not in problems
            and "history_budget_mb" not in problems
            and self.history_payload_limit_kb > self.history_budget_mb * 1024
        ):
            problems["history_payload_limit_kb"] = "must not exceed history_budget_mb (in KiB)"
        if self.discovery not in DISCOVERY_CHOICES:
            problems["discovery"] = f"must be one of {', '.join(repr(c) for c in DISCOVERY_CHOICES)}"
        if self.chat_nick is not None:
            problem = _nick_problem(self.chat_nick)
            if problem is not None:
                problems["chat_nick"] = problem
        for index, rule in enumerate(self.decoders):
            for key, problem in rule.problems():
                problems.setdefault("decoders", f"[{index}].{key}: {problem}")
        return problems


def _nick_problem(nick: str) -> str | None:
    if not nick.strip():
        return "must not be empty (leave it out to use the default)"
    if nick != nick.strip():
        return "must not start or end with blanks"
    if len(nick) > MAX_NICK:
        return f"is too long (at most {MAX_NICK} characters)"
    if any(char in "/+#" or ord(char) < 32 or ord(char) == 127 for char in nick):
        return "must not contain '/', '+', '#' or control characters"
    return None


def load_settings(path: Path | None = None) -> AppSettings:
    """Read ``settings.toml`` (the default file when path is None); a missing file gives the defaults.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or has a wrong key or value (with file, line, key).
    """
    file = path if path is not None else settings_path()
    document = read_document(file)
    if document is None:
        return AppSettings()
    text, data = document
    reader = _SettingsReader(file, text)
    settings = reader.settings(data)
    reader.raise_first()
    return settings


def save_settings(settings: AppSettings, path: Path | None = None) -> None:
    """Write ``settings.toml`` (the default file when path is None) atomically.

    Raises:
        ValueError: the settings are not valid (see :meth:`AppSettings.validate`).
        OSError: the file cannot be written.
    """
    problems = settings.validate()
    if problems:
        raise ValueError("; ".join(f"{key}: {problem}" for key, problem in problems.items()))
    file = path if path is not None else settings_path()
    document = {
        f.name: getattr(settings, f.name)
        for f in fields(settings)
        if getattr(settings, f.name) is not None and f.name != "decoders"
    }
    if settings.decoders:
        document["decoders"] = [_decoder_table(rule, file.absolute().parent) for rule in settings.decoders]
    write_atomically(file, tomli_w.dumps(document), private=False)


def _decoder_table(rule: DecoderRule, base_dir: Path) -> dict[str, Any]:
    """A ``[[decoders]]`` table; a descriptor set beside the settings file is written relative to it."""
    table = rule.to_table()
    if "descriptor_set" in table:
        table["descriptor_set"] = portable_path(table["descriptor_set"], base_dir)
    return table


# --------------------------------------------------------------------------------------------------------------
# Reading the file


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(f"must be a number of seconds, not {show(value)}")
    return float(value)


class _SettingsReader(TomlReader):
    """Turns tomllib's dictionary of a settings file into settings, collecting errors with their lines."""

    def settings(self, data: Mapping[str, object]) -> AppSettings:
        self.unknown_keys(data, (), SETTINGS_KEYS)
        d = AppSettings()
        settings = AppSettings(
            theme=self.get(data, (), "theme", as_string, d.theme),
            history_per_topic=self.get(data, (), "history_per_topic", as_integer, d.history_per_topic),
            history_budget_mb=self.get(data, (), "history_budget_mb", as_integer, d.history_budget_mb),
            history_payload_limit_kb=self.get(
                data, (), "history_payload_limit_kb", as_integer, d.history_payload_limit_kb
            ),
            history_store=self.get(data, (), "history_store", as_boolean, d.history_store),
            history_store_mb=self.get(data, (), "history_store_mb", as_integer, d.history_store_mb),
            history_retention_days=self.get(data, (), "history_retention_days", as_integer, d.history_retention_days),
            flush_hz=self.get(data, (), "flush_hz", as_integer, d.flush_hz),
            chat_nick=self.get(data, (), "chat_nick", as_string, d.chat_nick),
            max_packet_size_kb=self.get(data, (), "max_packet_size_kb", as_integer, d.max_packet_size_kb),
            discovery=self.get(data, (), "discovery", as_string, d.discovery),
            discovery_topics=self.get(data, (), "discovery_topics", as_integer, d.discovery_topics),
            decoders=self.decoder_rules(data),
        )
        if not self.errors:
            for key, problem in settings.validate().items():
                self.error((key,), problem)
        return settings

    def decoder_rules(self, data: Mapping[str, object]) -> tuple[DecoderRule, ...]:
        """The ``[[decoders]]`` tables: a topic filter, a decoder (chain) and its options each."""
        if "decoders" not in data:
            return ()
        value = data["decoders"]
        if not isinstance(value, list):
            self.error(
                ("decoders",), f'must be [[decoders]] tables (filter = "a/#", decoder = "json"), not {show(value)}'
            )
            return ()
        file_name_in = file_name(Path(self.file).absolute().parent)
        rules: list[DecoderRule] = []
        for index, item in enumerate(value):
            path: KeyPath = ("decoders", index)
            if not isinstance(item, dict):
                self.error(path, f'must be a table (filter = "a/#", decoder = "json"), not {show(item)}')
                continue
            errors_before = len(self.errors)
            self.unknown_keys(item, path, RULE_KEYS)
            for key in ("filter", "decoder"):
                if key not in item:
                    self.error(path, f'needs a {key}: [[decoders]] filter = "a/#", decoder = "json"')
            rule = DecoderRule(
                filter=self.get(item, path, "filter", as_string, ""),
                decoder=self.get(item, path, "decoder", as_string, ""),
                struct=self.get(item, path, "struct", as_string, None),
                fields=self.get(item, path, "fields", as_strings, ()),
                descriptor_set=self.get(item, path, "descriptor_set", file_name_in, None),
                message=self.get(item, path, "message", as_string, None),
                command=self.get(item, path, "command", as_strings, ()),
                timeout=self.get(item, path, "timeout", _seconds, DEFAULT_TIMEOUT),
            )
            if len(self.errors) > errors_before:
                continue
            for key, problem in rule.problems():
                self.error((*path, key), problem)
            if len(self.errors) == errors_before:
                rules.append(rule)
        return tuple(rules)
