"""MQTT 5 enhanced authentication methods (section 4.12): SCRAM (RFC 5802, with the ``scramp`` library) and
tokens (``OAUTH2-JWT``, ``CUSTOM-JWT``) renewed by re-authentication before they expire.

A method gives the Authentication Data of CONNECT (or of a re-authentication AUTH 0x19), answers the broker's
challenges (AUTH 0x18), and checks the data of the broker's final answer (CONNACK or AUTH 0x00): SCRAM's server
signature proves the broker knows the password, so a broker (or something in between) that does not is refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mqttchat.client.credentials import Clock, renewal_margin
from mqttchat.protocol import ReasonCode, RemoteProtocolError

SCRAM_METHODS = ("SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512")
TOKEN_METHODS = ("OAUTH2-JWT", "CUSTOM-JWT")


class ServerAuthenticationFailed(RemoteProtocolError):
    """The broker's part of an authentication exchange is wrong (a SCRAM server signature that does not match)."""

    reason_code = ReasonCode.NOT_AUTHORIZED


class ScramAuth:
    """SCRAM-SHA-1, SCRAM-SHA-256 or SCRAM-SHA-512 over CONNECT, AUTH 0x18 and CONNACK (or AUTH 0x00)."""

    def __init__(self, username: str, password: str, mechanism: str = "SCRAM-SHA-256") -> None:
        if mechanism not in SCRAM_METHODS:
            raise ValueError(f"unknown SCRAM mechanism {mechanism!r}: use one of {', '.join(SCRAM_METHODS)}")
        self.name = mechanism
        self.username = username
        self.password = password
        self._client: Any = None
        #: SCRAM's exchange has no expiry.
        self.expires_at: float | None = None

    def initial_data(self) -> bytes | None:
        from scramp import ScramClient

        # A new exchange (new nonce) for each connection and re-authentication.
        self._client = ScramClient([self.name], self.username, self.password)
        return str(self._client.get_client_first()).encode()

    def respond(self, data: bytes | None) -> bytes | None:
        from scramp import ScramException

        if self._client is None:
            raise RemoteProtocolError("AUTH continue before our SCRAM exchange started")
        try:
            self._client.set_server_first((data or b"").decode("utf-8"))
            return str(self._client.get_client_final()).encode()
        except (ScramException, UnicodeDecodeError) as exc:
            raise ServerAuthenticationFailed(f"the broker's SCRAM challenge is invalid: {exc}") from None

    def verify(self, data: bytes | None) -> None:
        from scramp import ScramException

        client, self._client = self._client, None
        if client is None:
            raise ServerAuthenticationFailed("the broker ended a SCRAM exchange that had not started")
        if not data:
            raise ServerAuthenticationFailed(
                "the broker accepted the SCRAM login without its server signature: it did not prove it knows the "
                "password"
            )
        try:
            client.set_server_final(data.decode("utf-8"))
        except (ScramException, UnicodeDecodeError) as exc:
            raise ServerAuthenticationFailed(
                f"the broker's SCRAM server signature is wrong ({exc}): it does not know the password, or something "
                "between us changed the exchange"
            ) from None


class TokenAuth:
    """A bearer token as Authentication Data (``OAUTH2-JWT``, ``CUSTOM-JWT``), asked anew for each CONNECT and
    re-authentication; when it expires, the client re-authenticates (AUTH 0x19) before then."""

    def __init__(
        self,
        name: str,
        token: Callable[[], tuple[str, float | None]],
        *,
        clock: Clock = time.time,
    ) -> None:
        self.name = name
        self._token = token
        self._clock = clock
        self.expires_at: float | None = None
        self._lifetime = 0.0

    def now(self) -> float:
        return self._clock()

    def renew_before(self) -> float:
        return renewal_margin(self._lifetime)

    def initial_data(self) -> bytes | None:
        token, expires_at = self._token()
        self.expires_at = expires_at
        self._lifetime = (expires_at - self._clock()) if expires_at is not None else 0.0
        return token.encode()

    def respond(self, data: bytes | None) -> bytes | None:
        raise RemoteProtocolError(f"the broker asked to continue a {self.name} exchange, which has one step")

    def verify(self, data: bytes | None) -> None:
        return None
