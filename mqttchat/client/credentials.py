"""Credentials the client asks for at every connection: fixed, or made fresh by a source (tokens, signed URLs)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from mqttchat.protocol.fastinit import dataclass

#: A clock in seconds since the epoch (``time.time``); tests give their own.
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Credentials:
    """What one connection presents."""

    username: str | None = None
    password: str | None = None
    #: The WebSocket path and query to request instead of the target's (a presigned URL's).
    websocket_path: str | None = None
    #: When the broker stops accepting them (seconds since the epoch, on the source's clock), or None.
    expires_at: float | None = None


class CredentialSource(Protocol):
    """Makes the credentials of each connection (``mqttchat.client.ClientOptions.credentials``)."""

    #: Why these credentials, for messages: ``"Azure IoT Hub SAS token"``.
    description: str

    def now(self) -> float:
        """The source's clock (seconds since the epoch)."""

    def credentials(self) -> Credentials:
        """Credentials for a connection made now."""

    def renew_before(self, credentials: Credentials) -> float:
        """How many seconds before ``credentials.expires_at`` to connect again with new ones."""


def renewal_margin(lifetime: float) -> float:
    """Renew a token this long before it expires: a tenth of its life, between 5 s and 5 minutes."""
    return max(5.0, min(300.0, lifetime / 10))


class StaticCredentials:
    """Credentials that never change (a source for tests and for fixed passwords)."""

    description = "fixed credentials"

    def __init__(self, credentials: Credentials, clock: Clock = time.time) -> None:
        self._credentials = credentials
        self._clock = clock

    def now(self) -> float:
        return self._clock()

    def credentials(self) -> Credentials:
        return self._credentials

    def renew_before(self, credentials: Credentials) -> float:
        return 0.0
