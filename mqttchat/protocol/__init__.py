"""The sans-I/O MQTT 3.1.1 and 5.0 core: packets, codec, properties, reason codes, topics and QoS flows.

Nothing here performs I/O, reads a clock or imports asyncio, sockets, textual or rich: the client and the broker
feed it bytes and send the bytes it returns.
"""

from __future__ import annotations

from mqttchat.protocol.aliases import InboundTopicAliases, OutboundTopicAliases
from mqttchat.protocol.constants import (
    MAX_PACKET_ID,
    MAX_PACKET_SIZE,
    MAX_VARIABLE_INTEGER,
    PacketType,
    ProtocolVersion,
    QoS,
    RetainHandling,
)
from mqttchat.protocol.errors import (
    LocalProtocolError,
    MalformedPacket,
    MQTTError,
    PacketTooLarge,
    ProtocolError,
    RemoteProtocolError,
    UnsupportedProtocolVersion,
)
from mqttchat.protocol.flow import (
    Completed,
    FlowOutput,
    IncomingFlow,
    InFlight,
    OutgoingFlow,
    OutgoingState,
    PacketIdAllocator,
)
from mqttchat.protocol.packets import (
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
    Will,
)
from mqttchat.protocol.properties import (
    EMPTY_PROPERTIES,
    PROPERTY_SPECS,
    Properties,
    PropertyId,
    PropertyType,
)
from mqttchat.protocol.reader import PacketReader, decode_packet
from mqttchat.protocol.reason_codes import ReasonCode, reason_name
from mqttchat.protocol.topics import (
    SharedSubscription,
    matches,
    parse_shared_subscription,
    topic_filter_problem,
    topic_name_problem,
    validate_topic_filter,
    validate_topic_name,
)
from mqttchat.protocol.trie import SubscriptionTrie

__all__ = [
    "EMPTY_PROPERTIES",
    "MAX_PACKET_ID",
    "MAX_PACKET_SIZE",
    "MAX_VARIABLE_INTEGER",
    "PROPERTY_SPECS",
    "Auth",
    "Completed",
    "ConnAck",
    "Connect",
    "Disconnect",
    "FlowOutput",
    "InFlight",
    "InboundTopicAliases",
    "IncomingFlow",
    "LocalProtocolError",
    "MQTTError",
    "MalformedPacket",
    "OutboundTopicAliases",
    "OutgoingFlow",
    "OutgoingState",
    "Packet",
    "PacketIdAllocator",
    "PacketReader",
    "PacketTooLarge",
    "PacketType",
    "PingReq",
    "PingResp",
    "Properties",
    "PropertyId",
    "PropertyType",
    "ProtocolError",
    "ProtocolVersion",
    "PubAck",
    "PubComp",
    "PubRec",
    "PubRel",
    "Publish",
    "QoS",
    "ReasonCode",
    "RemoteProtocolError",
    "RetainHandling",
    "SharedSubscription",
    "SubAck",
    "Subscribe",
    "Subscription",
    "SubscriptionTrie",
    "UnsubAck",
    "Unsubscribe",
    "UnsupportedProtocolVersion",
    "Will",
    "decode_packet",
    "matches",
    "parse_shared_subscription",
    "reason_name",
    "topic_filter_problem",
    "topic_name_problem",
    "validate_topic_filter",
    "validate_topic_name",
]
