"""Payload decoders: Sparkplug B, protobuf, CBOR, MessagePack, gzip/zlib/deflate, base64, structs, JSON, text and
external commands, chosen per topic filter (automatically where that is safe), decoded lazily and cached.

The explorer holds one :class:`PayloadDecoders`: it calls ``observe()`` as messages arrive (Sparkplug B state) and
``decode()`` for what it shows, which returns a :class:`DecodeResult` (a tree of :class:`Node`, a text, numeric
fields by path or metric name, or why it failed). No Textual or Rich here; importing this package does not load
the protobuf, CBOR or MessagePack libraries (each decoder does when it first runs).
"""

from __future__ import annotations

from mqttchat.config.decoder_rules import AUTO, DECODERS, RULE_KEYS, DecoderInfo, DecoderRule, parse_chain
from mqttchat.explorer.decoders.base import DEFAULT_LIMITS, DecodeContext, DecodeLimits, Decoder
from mqttchat.explorer.decoders.encoders import ENCODINGS, encode_payload_text
from mqttchat.explorer.decoders.pipeline import Pipeline, content_type_decoder, create_decoder
from mqttchat.explorer.decoders.result import Decoded, DecodeFailure, DecodeResult, Node
from mqttchat.explorer.decoders.rules import DecoderRules
from mqttchat.explorer.decoders.service import DecodeCache, PayloadDecoders

__all__ = [
    "AUTO",
    "DECODERS",
    "DEFAULT_LIMITS",
    "ENCODINGS",
    "RULE_KEYS",
    "DecodeCache",
    "DecodeContext",
    "DecodeFailure",
    "DecodeLimits",
    "DecodeResult",
    "Decoded",
    "Decoder",
    "DecoderInfo",
    "DecoderRule",
    "DecoderRules",
    "Node",
    "PayloadDecoders",
    "Pipeline",
    "content_type_decoder",
    "create_decoder",
    "encode_payload_text",
    "parse_chain",
]
