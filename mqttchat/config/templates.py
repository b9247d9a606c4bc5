"""Saved publish forms in ``templates.toml``: topic, payload, QoS, retain and the MQTT 5 properties, under a name."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from mqttchat.config.checks import MAX_UINT32, int_problem, name_problem, string_problem
from mqttchat.config.paths import templates_path
from mqttchat.config.toml import (
    Invalid,
    KeyPath,
    TomlReader,
    as_boolean,
    as_integer,
    as_string,
    dotted,
    read_document,
    show,
    write_atomically,
)
from mqttchat.protocol import topic_name_problem

__all__ = [
    "TEMPLATE_KEYS",
    "PublishTemplate",
    "delete_template",
    "load_templates",
    "save_template",
    "template_name_problem",
]

#: Every key of a ``[templates.NAME]`` table.
TEMPLATE_KEYS: tuple[str, ...] = (
    "topic",
    "payload",
    "qos",
    "retain",
    "content_type",
    "user_properties",
    "message_expiry_interval",
    "response_topic",
    "correlation_data",
)


def template_name_problem(name: object) -> str | None:
    """What is wrong with a template name, or None."""
    return name_problem(name, "template")


@dataclass(frozen=True, slots=True)
class PublishTemplate:
    """A saved publish form: topic, payload, QoS, retain and the MQTT 5 properties, in ``templates.toml``.

    Empty strings mean "not set", as an empty field in the form does. The payload keeps its ``{{uuid}}``,
    ``{{timestamp}}`` and ``{{counter}}`` placeholders: they are replaced when the message is sent.
    """

    name: str
    topic: str = ""
    payload: str = ""
    qos: int = 0
    retain: bool = False
    content_type: str = ""
    #: (name, value) pairs; a name may repeat.
    user_properties: tuple[tuple[str, str], ...] = ()
    #: Seconds; None: the message does not expire.
    message_expiry_interval: int | None = None
    response_topic: str = ""
    #: Sent as its UTF-8 bytes.
    correlation_data: str = ""

    def validate(self) -> dict[str, str]:
        """What is wrong, as key name (``name`` or a key of :data:`TEMPLATE_KEYS`) → problem; empty when all is well.

        The topic may be empty (a template can leave it to be filled in), and may not hold wildcards.
        """
        problems: dict[str, str] = {}

        def add(key: str, problem: str | None) -> None:
            if problem is not None:
                problems.setdefault(key, problem)

        add("name", template_name_problem(self.name))
        if self.topic:
            add("topic", topic_name_problem(self.topic))
        if int_problem(self.qos, 0, 2) is not None:
            add("qos", f"must be 0, 1 or 2, not {self.qos!r}")
        for key in ("content_type", "correlation_data"):
            add(key, string_problem(getattr(self, key)))
        if self.response_topic:
            add("response_topic", topic_name_problem(self.response_topic))
        for name, value in self.user_properties:
            if not name:
                add("user_properties", "a user property needs a name")
            add("user_properties", string_problem(name) or string_problem(value))
        if self.message_expiry_interval is not None:
            add("message_expiry_interval", int_problem(self.message_expiry_interval, 0, MAX_UINT32))
        return problems


def _template_table(template: PublishTemplate) -> dict[str, Any]:
    """The ``[templates.NAME]`` table of a template: the four basic keys always, the properties when set."""
    table: dict[str, Any] = {
        "topic": template.topic,
        "payload": template.payload,
        "qos": template.qos,
        "retain": template.retain,
    }
    if template.content_type:
        table["content_type"] = template.content_type
    if template.user_properties:
        table["user_properties"] = [[name, value] for name, value in template.user_properties]
    if template.message_expiry_interval is not None:
        table["message_expiry_interval"] = template.message_expiry_interval
    if template.response_topic:
        table["response_topic"] = template.response_topic
    if template.correlation_data:
        table["correlation_data"] = template.correlation_data
    return table


def load_templates(path: Path | None = None) -> dict[str, PublishTemplate]:
    """Read ``templates.toml`` (the default file when path is None): name → template, in file order.

    A missing file means no templates.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or has a wrong key or value (with file, line, key).
    """
    file = path if path is not None else templates_path()
    document = read_document(file)
    if document is None:
        return {}
    text, data = document
    reader = _TemplatesReader(file, text)
    templates = reader.templates_document(data)
    reader.raise_first()
    return templates


def _write_templates(templates: Mapping[str, PublishTemplate], file: Path) -> None:
    document: dict[str, Any] = {}
    if templates:
        document["templates"] = {name: _template_table(template) for name, template in templates.items()}
    write_atomically(file, tomli_w.dumps(document, multiline_strings=True), private=False)


def save_template(template: PublishTemplate, path: Path | None = None) -> None:
    """Add the template, or replace the one with its name (keeping its place), and write the file atomically.

    The file is read again first, so templates saved meanwhile (by another window, or by hand) are kept; its
    comments and layout are not.

    Raises:
        ValueError: the template is not valid (see :meth:`PublishTemplate.validate`).
        ConfigError: the file as it is now cannot be read (it is not overwritten then).
        OSError: the file cannot be written.
    """
    problems = template.validate()
    if problems:
        detail = "; ".join(f"{key}: {problem}" for key, problem in problems.items())
        raise ValueError(f"template {template.name!r}: {detail}")
    file = path if path is not None else templates_path()
    templates = load_templates(file)
    templates[template.name] = template
    _write_templates(templates, file)


def delete_template(name: str, path: Path | None = None) -> bool:
    """Remove the named template from the file. False if there was no such template (the file is left alone).

    Raises:
        ConfigError: the file as it is now cannot be read.
        OSError: the file cannot be written.
    """
    file = path if path is not None else templates_path()
    templates = load_templates(file)
    if name not in templates:
        return False
    del templates[name]
    _write_templates(templates, file)
    return True


# --------------------------------------------------------------------------------------------------------------
# Reading the file


def _user_properties(value: object) -> tuple[tuple[str, str], ...]:
    """``[["name", "value"], ...]``: MQTT 5 user properties, in order (a name may repeat)."""
    shape = 'must be an array of [name, value] pairs, like [["source", "bench"]]'
    if not isinstance(value, list):
        raise Invalid(f"{shape}, not {show(value)}")
    pairs: list[tuple[str, str]] = []
    for index, item in enumerate(value):
        if not (isinstance(item, list) and len(item) == 2 and all(isinstance(part, str) for part in item)):
            shown = show(item) if not isinstance(item, list) else show(json.dumps(item, ensure_ascii=False))
            raise Invalid(f"{shape}; item {index} is {shown}")
        pairs.append((item[0], item[1]))
    return tuple(pairs)


class _TemplatesReader(TomlReader):
    """Turns tomllib's dictionary of a templates file into templates, collecting errors with their lines."""

    def templates_document(self, data: Mapping[str, object]) -> dict[str, PublishTemplate]:
        self.unknown_keys(data, (), ("templates",))
        templates: dict[str, PublishTemplate] = {}
        section = self.table(data.get("templates", {}), ("templates",), "of [templates.NAME] tables")
        for name, value in section.items():
            path: KeyPath = ("templates", name)
            if not isinstance(value, dict):
                self.error(path, f"must be a table: write [templates.{dotted((name,))}], not {show(value)}")
                continue
            template = self.template(name, value)
            if template is not None:
                templates[name] = template
        return templates

    def template(self, name: str, table: Mapping[str, object]) -> PublishTemplate | None:
        """The template of a [templates.NAME] table, or None when it has errors (which are recorded)."""
        prefix: KeyPath = ("templates", name)
        errors_before = len(self.errors)
        self.unknown_keys(table, prefix, TEMPLATE_KEYS)
        d = PublishTemplate(name)
        template = PublishTemplate(
            name=name,
            topic=self.get(table, prefix, "topic", as_string, d.topic),
            payload=self.get(table, prefix, "payload", as_string, d.payload),
            qos=self.get(table, prefix, "qos", as_integer, d.qos),
            retain=self.get(table, prefix, "retain", as_boolean, d.retain),
            content_type=self.get(table, prefix, "content_type", as_string, d.content_type),
            user_properties=self.get(table, prefix, "user_properties", _user_properties, d.user_properties),
            message_expiry_interval=self.get(
                table, prefix, "message_expiry_interval", as_integer, d.message_expiry_interval
            ),
            response_topic=self.get(table, prefix, "response_topic", as_string, d.response_topic),
            correlation_data=self.get(table, prefix, "correlation_data", as_string, d.correlation_data),
        )
        if len(self.errors) > errors_before:
            return None
        for key, problem in template.validate().items():
            if key == "name":
                self.error(prefix, f"bad template name: {problem}")
            else:
                self.error((*prefix, key), problem)
        return template if len(self.errors) == errors_before else None
