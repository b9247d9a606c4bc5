"""Sparkplug B: the payload schema, payloads as trees and from metrics, topics, and the host's state model."""

from __future__ import annotations

from mqttchat.explorer.decoders.base import DecodeContext, Decoder
from mqttchat.explorer.decoders.result import Decoded
from mqttchat.explorer.decoders.sparkplug.codec import (
    BDSEQ,
    REBIRTH,
    SparkplugDataSet,
    SparkplugMetric,
    SparkplugTemplate,
    command,
    decode_payload,
    encode_payload,
    format_timestamp,
    parse_metric_value,
    rebirth_request,
    write_metric,
)
from mqttchat.explorer.decoders.sparkplug.schema import DataType
from mqttchat.explorer.decoders.sparkplug.state import (
    AliasTable,
    DeviceState,
    EdgeNodeState,
    HostState,
    MessageAliases,
    SparkplugLimits,
    SparkplugObservation,
    SparkplugState,
)
from mqttchat.explorer.decoders.sparkplug.topic import NAMESPACE, MessageType, SparkplugTopic, parse_topic

__all__ = [
    "BDSEQ",
    "NAMESPACE",
    "REBIRTH",
    "AliasTable",
    "DataType",
    "DeviceState",
    "EdgeNodeState",
    "HostState",
    "MessageAliases",
    "MessageType",
    "SparkplugDataSet",
    "SparkplugDecoder",
    "SparkplugLimits",
    "SparkplugMetric",
    "SparkplugObservation",
    "SparkplugState",
    "SparkplugTemplate",
    "SparkplugTopic",
    "command",
    "decode_payload",
    "encode_payload",
    "format_timestamp",
    "parse_metric_value",
    "parse_topic",
    "rebirth_request",
    "write_metric",
]


class SparkplugDecoder(Decoder):
    """Sparkplug B payloads; DATA metrics named through the aliases in the context."""

    name = "sparkplug"

    def decode(self, data: bytes, ctx: DecodeContext) -> Decoded:
        return decode_payload(data, ctx)
