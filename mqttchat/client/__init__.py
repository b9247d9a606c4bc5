"""The asyncio MQTT client: TCP, TLS and WebSocket; MQTT 3.1.1 and 5.0; reconnect, keepalive, traces.

The names below load with their module when first used (PEP 562): ``mqttchat pub`` takes the sans-I/O session and
the blocking driver (:mod:`mqttchat.client.blocking`) from this package without loading asyncio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mqttchat.client.client import ClientStats, MQTTClient, StateChange, Status
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
    from mqttchat.client.outcomes import PublishResult
    from mqttchat.client.session import AuthMethod, BrokerCapabilities, ClientSession

#: Where each public name lives.
_MODULES = {
    "AuthMethod": "mqttchat.client.session",
    "BrokerCapabilities": "mqttchat.client.session",
    "ClientError": "mqttchat.client.errors",
    "ClientOptions": "mqttchat.client.options",
    "ClientSession": "mqttchat.client.session",
    "ClientStats": "mqttchat.client.client",
    "ConnackRefused": "mqttchat.client.errors",
    "ConnectError": "mqttchat.client.errors",
    "ConnectTimeout": "mqttchat.client.errors",
    "ConnectionLost": "mqttchat.client.errors",
    "ConnectionRefused": "mqttchat.client.errors",
    "HostNotFound": "mqttchat.client.errors",
    "MQTTClient": "mqttchat.client.client",
    "Message": "mqttchat.client.messages",
    "MessageStream": "mqttchat.client.messages",
    "NotConnected": "mqttchat.client.errors",
    "PublishError": "mqttchat.client.errors",
    "PublishResult": "mqttchat.client.outcomes",
    "QueueFull": "mqttchat.client.errors",
    "StateChange": "mqttchat.client.client",
    "Status": "mqttchat.client.client",
    "TLSError": "mqttchat.client.errors",
    "TLSOptions": "mqttchat.client.options",
    "Target": "mqttchat.client.options",
    "WebSocketError": "mqttchat.client.errors",
    "parse_url": "mqttchat.client.options",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


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
