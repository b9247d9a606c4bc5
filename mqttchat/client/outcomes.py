"""How the client's operations end, shared by the asyncio client and the blocking one (no asyncio here).

Publish results, the errors of a connection that could not be made or that ended (each with a message a person can
act on), and the MQTT 5 → 3.1.1 fallback: :mod:`mqttchat.client.client` and :mod:`mqttchat.client.blocking` drive
the same :class:`~mqttchat.client.session.ClientSession` and report its outcomes in the same words.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import TYPE_CHECKING

from mqttchat.client.errors import (
    AuthenticationFailed,
    BrokerProtocolError,
    ClientError,
    ClosedBeforeConnack,
    ConnackRefused,
    ConnectError,
    ConnectionLost,
    ConnectionRefused,
    ConnectTimeout,
    HostNotFound,
    InvalidConnack,
    SubscriptionRefused,
    TLSError,
)
from mqttchat.protocol import EMPTY_PROPERTIES, Completed, Disconnect, Properties, ReasonCode, Subscribe
from mqttchat.protocol.constants import ProtocolVersion
from mqttchat.protocol.fastinit import dataclass
from mqttchat.untrusted import printable

if TYPE_CHECKING:
    from mqttchat.client.options import ClientOptions, Target
    from mqttchat.client.session import ClientSession
    from mqttchat.protocol import RemoteProtocolError


@dataclass(frozen=True, slots=True)
class PublishResult:
    """The broker's answer to a publish. QoS 0 has no answer: its result is Success once written."""

    reason_code: ReasonCode = ReasonCode.SUCCESS
    properties: Properties = EMPTY_PROPERTIES
    #: A QoS 2 publish the broker answered with PUBACK (it downgrades QoS 2, as RabbitMQ does): the message was
    #: taken at QoS 1, at least once rather than exactly once.
    downgraded: bool = False

    @property
    def ok(self) -> bool:
        return not self.reason_code.is_error

    @property
    def reason_string(self) -> str | None:
        return self.properties.reason_string


#: Success without properties: the result of every QoS 0 publish and of most QoS 1/2 ones.
SUCCESS_RESULT = PublishResult()


def publish_result(completed: Completed) -> PublishResult:
    """The result of a QoS 1/2 publish from the session's :class:`Completed` event."""
    downgraded = completed.qos == 1 and completed.publish.qos == 2
    if completed.reason_code == 0 and completed.properties is EMPTY_PROPERTIES and not downgraded:
        return SUCCESS_RESULT  # the common answer: one shared object
    return PublishResult(completed.reason_code, completed.properties, downgraded)


def disconnected_by_broker(disconnect: Disconnect) -> ConnectionLost:
    """The error of a connection the broker ended with DISCONNECT."""
    return ConnectionLost(
        f"the broker disconnected: {disconnect.reason_code.title}"
        + (f": {disconnect.properties.reason_string}" if disconnect.properties.reason_string else ""),
        disconnect.reason_code,
        disconnect.properties.server_reference,
    )


def keepalive_timeout(target: str, keepalive: int) -> ConnectionLost:
    """The error of a connection whose PINGREQ went unanswered for a keepalive period."""
    return ConnectionLost(
        f"no PINGRESP from {target} within {keepalive} s: the connection is dead", ReasonCode.KEEP_ALIVE_TIMEOUT
    )


def connack_timeout(target: str, timeout: float) -> ConnectTimeout:
    return ConnectTimeout(f"{target} sent no CONNACK within {timeout:g} s")


def connection_lost(session: ClientSession, options: ClientOptions, exc: BaseException | None) -> ClientError:
    """The error of a connection that closed without a word from the broker (``exc``: the transport's error)."""
    target = options.target.url
    ssl = sys.modules.get("ssl")  # loaded with TLS: a plain TCP connection never raises its errors
    if ssl is not None and isinstance(exc, ssl.SSLError):
        # With TLS 1.3 a server refuses a client certificate (or its absence) after the handshake.
        reason = (exc.reason or str(exc)).replace("_", " ").lower()
        return TLSError(f"the broker at {target} ended the TLS session: {reason}", reason)
    return subscription_refused(session, target) or ConnectionLost(
        f"connection to {target} lost" + (f": {exc}" if exc else "")
    )


def closed_before_connack(options: ClientOptions) -> ClosedBeforeConnack:
    """The error of a connection the broker closed after CONNECT without answering it."""
    hint = ""
    tls = options.tls
    if options.target.tls and not (tls and tls.cert_file):
        hint = " (if it requires a client certificate, give one)"
    elif options.target.tls:
        hint = " (it may have refused the client certificate: expired, or not signed by a CA it trusts)"
    return ClosedBeforeConnack(f"{options.target.url} closed the connection before CONNACK{hint}")


def subscription_refused(session: ClientSession, target: str) -> SubscriptionRefused | None:
    """The connection closed with SUBSCRIBE unanswered: the broker's way of refusing it (RabbitMQ's)."""
    if not session.connected:
        return None
    filters = tuple(
        sub.topic_filter
        for pending in session._pending.values()
        if isinstance(pending.packet, Subscribe)
        for sub in pending.packet.subscriptions
    )
    if not filters:
        return None
    named = ", ".join(repr(printable(f)) for f in filters)
    return SubscriptionRefused(
        f"{target} closed the connection in answer to SUBSCRIBE {named}: "
        "it does not let this client subscribe there (not authorized, or a filter it does not support)",
        filters,
    )


def protocol_failure(exc: RemoteProtocolError, target: str, version: int) -> tuple[BrokerProtocolError, ConnectError]:
    """The broker broke the protocol: the connection's error, and the error of a connect() waiting for CONNACK."""
    from mqttchat.client.auth import ServerAuthenticationFailed

    error = BrokerProtocolError(f"the broker broke the protocol: {exc.message}", exc.reason_code)
    if isinstance(exc, ServerAuthenticationFailed):
        return error, AuthenticationFailed(f"{target}: {exc.message}")
    named = "5.0" if version == 5 else "3.1.1"
    return error, InvalidConnack(
        f"{target} answered CONNECT with an invalid packet ({exc.message}): "
        f"does it speak MQTT {named}? Try the other protocol version."
    )


def connect_failure(
    exc: BaseException, target: Target, where: str, timeout: float, subject: str | None = None
) -> ConnectError | None:
    """What opening a connection to ``target`` (``where``: its description) failed with, said plainly; None for
    an exception that is not a connection failure (a bug: let it through). ``subject``: the certificate subject a
    server presented that failed verification, when it could be read."""
    if isinstance(exc, ConnectError):
        return exc
    if isinstance(exc, TimeoutError):
        if target.websocket:
            return ConnectTimeout(
                f"{where} did not complete the WebSocket upgrade within {timeout:g} s: is it a WebSocket listener?"
            )
        return ConnectTimeout(f"{where} did not answer within {timeout:g} s")
    socket = sys.modules.get("socket")
    if socket is not None and isinstance(exc, socket.gaierror):
        return HostNotFound(f"cannot resolve host {target.host!r}: {exc.strerror}")
    if isinstance(exc, ConnectionRefusedError):
        return ConnectionRefused(f"connection refused by {target.host}:{target.port}: is a broker running there?")
    ssl = sys.modules.get("ssl")
    if ssl is not None and isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or str(exc.reason)
        about = f" (certificate subject: {subject})" if subject else ""
        return TLSError(f"TLS verification of {where} failed: {reason}{about}", reason, subject)
    if ssl is not None and isinstance(exc, ssl.SSLError):
        return TLSError(f"TLS handshake with {where} failed: {exc.reason or exc}", str(exc.reason))
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc) or _OS_ERROR_WORDS.get(type(exc), type(exc).__name__)
        if target.tls and isinstance(exc, ConnectionResetError | BrokenPipeError):
            reason += " during the TLS handshake: is it a TLS listener?"
        return ConnectError(f"cannot connect to {where}: {reason}")
    return None


def is_certificate_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a failed verification of the server's certificate (worth reading its subject)."""
    ssl = sys.modules.get("ssl")
    return ssl is not None and isinstance(exc, ssl.SSLCertVerificationError)


#: What to say for OS errors that carry no message (asyncio raises some bare).
_OS_ERROR_WORDS: dict[type[OSError], str] = {
    ConnectionResetError: "the connection was reset",
    BrokenPipeError: "the connection was closed while sending",
    ConnectionAbortedError: "the connection was aborted",
}


# ------------------------------------------------------------------------------------- MQTT 5 → 3.1.1 fallback


def may_fall_back(options: ClientOptions, session: ClientSession, error: ConnectError) -> bool:
    """Whether the first connection's failure says the broker speaks MQTT 3.1.1 only (and we may try it)."""
    if not (options.version_fallback and session.version == 5 and session.connections == 0):
        return False
    if isinstance(error, ConnackRefused):
        return error.reason_code is ReasonCode.UNSUPPORTED_PROTOCOL_VERSION
    return isinstance(error, ClosedBeforeConnack | InvalidConnack)


class VersionFallback:
    """The MQTT 3.1.1 attempt after the broker refused or dropped our MQTT 5 CONNECT (see :func:`may_fall_back`):
    its options, then what the client says (:attr:`note`) and raises.

    The client connects with :attr:`options`; then it calls :meth:`connected` or raises what :meth:`failed`
    returns, going back to :attr:`original` when :attr:`keep` is False.
    """

    def __init__(self, options: ClientOptions, error: ConnectError) -> None:
        self.original = options
        self.error = error
        # 3.1.1 has no broker-assigned identifiers for persistent sessions: give ourselves one if we had none.
        from secrets import token_hex

        client_id = options.client_id or f"mqttchat-{token_hex(4)}"
        self.options = replace(options, version=ProtocolVersion.MQTT_3_1_1, client_id=client_id)
        if isinstance(error, ConnackRefused):
            self.reason = f"its CONNACK said {error.reason_code.title}"
        elif isinstance(error, ClosedBeforeConnack):
            self.reason = "it closed the connection before CONNACK"
        else:
            self.reason = "its answer was not an MQTT 5.0 CONNACK"
        #: Why the client speaks MQTT 3.1.1 (its ``version_fallback``), once known.
        self.note: str | None = None
        #: Whether the client keeps the 3.1.1 options.
        self.keep = True

    def connected(self, target: str) -> None:
        self.note = f"{target} does not take MQTT 5.0 ({self.reason}): connected with MQTT 3.1.1"

    def failed(self, target: str, second: ConnectError) -> ConnectError:
        """The error to raise when the 3.1.1 attempt failed with ``second``."""
        if isinstance(second, ConnackRefused):
            # It answered 3.1.1: that is its version, and this refusal (credentials, ...) is the one to show.
            self.note = f"{target} does not take MQTT 5.0 ({self.reason}): it speaks MQTT 3.1.1"
            return second
        self.keep = False
        return type(self.error)(f"{self.error}; with MQTT 3.1.1 as well: {second}")
