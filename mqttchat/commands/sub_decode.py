"""``mqttchat sub --decode``: payloads decoded as the explorer decodes them (the settings' ``[[decoders]]`` rules,
then automatically; or one chain for every topic), printed as one line each, and a ``decoded`` member in
``-F json``. Loaded only with ``--decode``: ``sub`` starts without the decoders.

What is printed for a decoded payload: text as it is, anything with structure (JSON, CBOR, MessagePack, Sparkplug
B, protobuf, structs) as compact JSON, bytes in hex. A payload that cannot be decoded is printed as it came, and
the reason goes to stderr (as ``%J`` does for a payload that is not JSON).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from mqttchat.client import Message
from mqttchat.commands.common import CommandError
from mqttchat.explorer.decoders import AUTO, DecodeResult, DecoderRule, PayloadDecoders

__all__ = ["SubDecoder", "decoded_line"]

#: ``--decode`` without a chain: the settings' rules, then automatic decoding.
BY_SETTINGS = "settings"


def decoded_line(result: DecodeResult) -> str:
    """How ``sub --decode`` prints a decoded payload (see the module docstring)."""
    if result.format == "text":
        return result.text
    value = result.to_json()
    if isinstance(value, str) and result.format in ("binary", "empty"):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class SubDecoder:
    """Decodes what ``sub`` receives: Sparkplug B state kept from message to message (aliases from the births),
    external commands run without blocking the reader.

    Raises:
        CommandError: the settings cannot be read, or the chain given is not valid.
    """

    def __init__(self, chain: str = BY_SETTINGS, warn: Callable[[str], None] | None = None) -> None:
        from mqttchat.config import ConfigError, load_settings

        try:
            rules = list(load_settings().decoders)
        except ConfigError as exc:
            raise CommandError(f"--decode: {exc}", status=1) from None
        if chain not in (BY_SETTINGS, AUTO):
            rule = DecoderRule("#", chain)
            problems = rule.problems()
            if problems:
                key, problem = problems[0]
                hint = " (give its options in a [[decoders]] table of the settings)" if key != "decoder" else ""
                raise CommandError(f"--decode {chain}: {problem}{hint}", status=1)
            rules = [rule]
        elif chain == AUTO:
            rules = []
        self.decoders = PayloadDecoders(rules)
        self.warn = warn

    async def decode(self, message: Message) -> DecodeResult:
        topic = message.topic
        observation = self.decoders.observe(topic, message.payload, message.received_at)
        return await self.decoders.decode_async(
            topic, message.payload, content_type=message.properties.content_type, observation=observation
        )

    def json_members(self, result: DecodeResult) -> str:
        """The members ``-F json`` gains: ``"decoder"`` and ``"decoded"`` (or ``"decode_error"``), each with
        its leading comma."""
        out = f',"decoder":{json.dumps(result.decoder)}'
        if result.ok:
            out += f',"decoded":{json.dumps(result.to_json(), ensure_ascii=False, separators=(",", ":"))}'
        else:
            out += f',"decode_error":{json.dumps(result.error or "cannot decode", ensure_ascii=False)}'
        return out

    def problem(self, message: Message, result: DecodeResult) -> None:
        if self.warn is not None and not result.ok:
            self.warn(f"{message.topic}: cannot decode ({result.decoder}): {result.error}")
