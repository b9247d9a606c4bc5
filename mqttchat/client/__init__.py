"""The asyncio MQTT client: TCP, TLS and WebSocket; MQTT 3.1.1 and 5.0; reconnect, keepalive, traces."""

from __future__ import annotations

from mqttchat.client.client import ClientStats, MQTTClient, PublishResult, StateChange, Status
from mqttchat.client.errors import (
    ClientError,
    ConnackRefused,
    ConnectError,
    ConnectionLost,
    ConnectionRefused,
    ConnectTimeout,
    HostNotFound,
    NotConnected,
    PublishError,
    QueueFull,
    TLSError,
    WebSocketError,
)
from mqttchat.client.messages import Message, MessageStream
from mqttchat.client.options import ClientOptions, Target, TLSOptions, parse_url
from mqttchat.client.session import AuthMethod, BrokerCapabilities, ClientSession

__all__ = [
    "AuthMethod",
    "BrokerCapabilities",
    "ClientError",
    "ClientOptions",
    "ClientSession",
    "ClientStats",
    "ConnackRefused",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionLost",
    "ConnectionRefused",
    "HostNotFound",
    "MQTTClient",
    "Message",
    "MessageStream",
    "NotConnected",
    "PublishError",
    "PublishResult",
    "QueueFull",
    "StateChange",
    "Status",
    "TLSError",
    "TLSOptions",
    "Target",
    "WebSocketError",
    "parse_url",
]
