"""The one error family of the protocol core, split into the peer's faults and ours.

Every error carries the MQTT 5.0 reason code the receiver should answer with (in CONNACK before a session
exists, in DISCONNECT after), so the client and the broker never have to guess which code fits.
"""

from __future__ import annotations

from mqttchat.protocol.reason_codes import ReasonCode


class MQTTError(Exception):
    """Base of every error mqttchat raises about MQTT."""


class ProtocolError(MQTTError):
    """Something violates the MQTT specification.

    Attributes:
        reason_code: the reason code to send back (or to report) for this violation.
    """

    reason_code: ReasonCode = ReasonCode.PROTOCOL_ERROR

    def __init__(self, message: str, reason_code: ReasonCode | None = None) -> None:
        super().__init__(message)
        if reason_code is not None:
            self.reason_code = reason_code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, {self.reason_code!s})"


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that break the specification: close that connection with :attr:`reason_code`.

    Attributes:
        protocol_level: for a faulty CONNECT whose protocol level could be read, that level (a broker answers
            an MQTT 5 client with CONNACK and the reason code, and simply closes on a 3.1.1 one).
    """

    protocol_level: int | None = None


class MalformedPacket(RemoteProtocolError):
    """The bytes cannot be parsed as a packet (0x81)."""

    reason_code = ReasonCode.MALFORMED_PACKET


class PacketTooLarge(RemoteProtocolError):
    """The packet exceeds the Maximum Packet Size the receiver announced (0x95)."""

    reason_code = ReasonCode.PACKET_TOO_LARGE


class UnsupportedProtocolVersion(RemoteProtocolError):
    """A CONNECT asked for a protocol name or level the receiver does not speak (0x84).

    Attributes:
        protocol_level: the level byte that was asked for, so a broker can answer an MQTT 3.x client with a
            3.1.1-format CONNACK (return code 0x01) and an MQTT 5 one with reason code 0x84.
    """

    reason_code = ReasonCode.UNSUPPORTED_PROTOCOL_VERSION

    def __init__(self, message: str, protocol_level: int) -> None:
        super().__init__(message)
        self.protocol_level: int | None = protocol_level


class LocalProtocolError(ProtocolError):
    """We were asked to send something the specification forbids; nothing was sent."""
