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


class AuthenticationFailed(ConnectError):
    """The broker's side of an MQTT 5 enhanced authentication is wrong (a SCRAM server signature that does not
    match: it does not know the password, or something in between changed the exchange)."""


class WebSocketError(ConnectError):
    """The WebSocket upgrade failed (wrong path, no ``mqtt`` subprotocol, HTTP error)."""


#: MQTT 3.1.1 CONNACK return codes (section 3.2.2.3) by the 5.0 reason code they are decoded to.
_V311_RETURN_CODES: dict[ReasonCode, tuple[int, str]] = {
    ReasonCode.UNSUPPORTED_PROTOCOL_VERSION: (1, "unacceptable protocol version"),
    ReasonCode.CLIENT_IDENTIFIER_NOT_VALID: (2, "identifier rejected"),
    ReasonCode.SERVER_UNAVAILABLE: (3, "server unavailable"),
    ReasonCode.BAD_USER_NAME_OR_PASSWORD: (4, "bad user name or password"),
    ReasonCode.NOT_AUTHORIZED: (5, "not authorized"),
}


class ClosedBeforeConnack(ConnectError):
    """The broker closed the connection after CONNECT without answering it (with MQTT 5: it may speak 3.1.1 only)."""


class InvalidConnack(ConnectError):
    """The broker answered CONNECT with something that is not a valid CONNACK of our protocol version."""


class ConnackRefused(ConnectError):
    """The broker refused the connection in its CONNACK.

    Attributes:
        reason_code: the CONNACK reason code (MQTT 3.1.1 return codes are mapped to their 5.0 equivalent).
        reason_string: the broker's explanation, if it sent one (MQTT 5).
        server_reference: where the broker redirects the client (MQTT 5, codes 0x9C / 0x9D).
    """

    def __init__(self, reason_code: ReasonCode, properties: Properties = EMPTY_PROPERTIES, version: int = 5) -> None:
        self.reason_code = reason_code
        self.reason_string = properties.reason_string
        self.server_reference = properties.server_reference
        self.version = version
        v311 = _V311_RETURN_CODES.get(reason_code) if version == 4 else None
        if v311 is not None:
            # A 3.1.1 CONNACK carries a return code (1-5), not a 5.0 reason code: name it as 3.1.1 does.
            message = f"the broker refused the connection: {v311[1]} (MQTT 3.1.1 return code {v311[0]})"
        else:
            message = f"the broker refused the connection: {reason_code.title} (0x{reason_code:02X})"
        if self.reason_string:
            message += f": {self.reason_string}"
        if self.server_reference:
            message += f"; it suggests the server {self.server_reference}"
        if version == 5 and reason_code is ReasonCode.UNSUPPORTED_PROTOCOL_VERSION:
            message += "; it does not take MQTT 5.0: connect with MQTT 3.1.1 (-V 311)"
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


class BrokerProtocolError(ConnectionLost):
    """The broker sent something the protocol forbids; the client closed the connection (5.0: with DISCONNECT)."""


class SubscriptionRefused(ConnectionLost):
    """The broker closed the connection in answer to SUBSCRIBE (RabbitMQ does, for a topic the user may not read).

    Attributes:
        topic_filters: the filters of the SUBSCRIBE packets that were unanswered when the connection closed.
    """

    def __init__(self, message: str, topic_filters: tuple[str, ...]) -> None:
        super().__init__(message)
        self.topic_filters = topic_filters


class RetriesExhausted(ConnectionLost):
    """The same refusal or fault ended several connections in a row: the client stopped reconnecting.

    Attributes:
        cause: the last of those errors; ``connections``: how many connections it ended.
    """

    def __init__(self, cause: BaseException, connections: int) -> None:
        reason = getattr(cause, "reason_code", None)
        super().__init__(
            f"{cause} (the same error ended {connections} connections in a row: not reconnecting)",
            reason if isinstance(reason, ReasonCode) else None,
        )
        self.cause = cause
        self.connections = connections


class NotConnected(ClientError):
    """The operation needs a connection and the client is not connected (and will not reconnect)."""


class QueueFull(ClientError):
    """Too many publishes are waiting for the connection; nothing was queued."""


class PublishError(ClientError):
    """A publish cannot be sent as asked (QoS above the broker's maximum, retain not available, too large)."""
