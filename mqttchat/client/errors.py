"""The client's errors: one family under :class:`ClientError`, each with a message a person can act on."""

from __future__ import annotations

from mqttchat.protocol import MQTTError, ReasonCode
from mqttchat.protocol.properties import EMPTY_PROPERTIES, Properties


class ClientError(MQTTError):
    """Base of every error the MQTT client raises."""


class ConnectError(ClientError):
    """The connection could not be established."""


class ConnectionRefused(ConnectError):
    """Nothing accepts connections at the target (TCP connection refused)."""


class HostNotFound(ConnectError):
    """The broker's host name does not resolve."""


class ConnectTimeout(ConnectError):
    """The broker did not complete the connection (TCP, TLS, WebSocket or CONNACK) in time."""


class TLSError(ConnectError):
    """The TLS handshake failed.

    Attributes:
        reason: OpenSSL's verification message (``certificate has expired``, ``Hostname mismatch`` ...).
        subject: the server certificate's subject, when it could be read.
    """

    def __init__(self, message: str, reason: str = "", subject: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.subject = subject


class WebSocketError(ConnectError):
    """The WebSocket upgrade failed (wrong path, no ``mqtt`` subprotocol, HTTP error)."""


class ConnackRefused(ConnectError):
    """The broker refused the connection in its CONNACK.

    Attributes:
        reason_code: the CONNACK reason code (MQTT 3.1.1 return codes are mapped to their 5.0 equivalent).
        reason_string: the broker's explanation, if it sent one (MQTT 5).
        server_reference: where the broker redirects the client (MQTT 5, codes 0x9C / 0x9D).
    """

    def __init__(self, reason_code: ReasonCode, properties: Properties = EMPTY_PROPERTIES) -> None:
        self.reason_code = reason_code
        self.reason_string = properties.reason_string
        self.server_reference = properties.server_reference
        message = f"the broker refused the connection: {reason_code.title} (0x{reason_code:02X})"
        if self.reason_string:
            message += f": {self.reason_string}"
        if self.server_reference:
            message += f"; it suggests the server {self.server_reference}"
        super().__init__(message)


class ConnectionLost(ClientError):
    """The connection ended (network failure, keepalive timeout, or DISCONNECT from the broker).

    Attributes:
        reason_code: the broker's DISCONNECT reason code, when it sent one.
        server_reference: where the broker redirects the client (MQTT 5, codes 0x9C / 0x9D).
    """

    def __init__(
        self, message: str, reason_code: ReasonCode | None = None, server_reference: str | None = None
    ) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.server_reference = server_reference


class NotConnected(ClientError):
    """The operation needs a connection and the client is not connected (and will not reconnect)."""


class QueueFull(ClientError):
    """Too many publishes are waiting for the connection; nothing was queued."""


class PublishError(ClientError):
    """A publish cannot be sent as asked (QoS above the broker's maximum, retain not available, too large)."""
