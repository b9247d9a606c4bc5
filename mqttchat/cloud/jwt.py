"""JSON Web Tokens signed with RS256 or ES256 (RFC 7515, 7518, 7519), as passwords refreshed before they expire.

Signing uses ``cryptography`` (RSA PKCS#1 v1.5 and ECDSA P-256 with SHA-256); the token itself is a few lines of
base64url and JSON, so no JWT library is needed.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mqttchat.client.credentials import Clock, Credentials, renewal_margin

ALGORITHMS = ("RS256", "ES256")
#: How long a token lives unless told (seconds).
DEFAULT_JWT_TTL = 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_private_key(path: str | Path, password: str | None = None) -> Any:
    """A PEM private key (RSA or EC) from ``path``.

    Raises:
        ValueError: unreadable, not a key, or the wrong password, with the file's name.
    """
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the key {path}: {exc.strerror}") from None
    try:
        return load_pem_private_key(data, password.encode() if password else None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path} is not a usable PEM private key: {exc}") from None


def algorithm_of(key: Any) -> str:
    """RS256 for an RSA key, ES256 for a P-256 key.

    Raises:
        ValueError: another kind of key.
    """
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
        return "ES256"
    raise ValueError("JWT keys must be RSA (RS256) or EC P-256 (ES256)")


def encode(claims: Mapping[str, Any], key: Any, algorithm: str | None = None) -> str:
    """The compact JWT of ``claims`` signed with ``key``.

    Raises:
        ValueError: the algorithm does not fit the key.
    """
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    natural = algorithm_of(key)
    algorithm = algorithm or natural
    if algorithm != natural:
        kind = "an RSA" if natural == "RS256" else "an EC P-256"
        raise ValueError(f"{kind} key signs {natural}, not {algorithm}")
    header = {"alg": algorithm, "typ": "JWT"}
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(dict(claims), separators=(",", ":")).encode())
    ).encode()
    if algorithm == "RS256":
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    else:
        # JWS wants the raw 64-byte r||s, not the DER that cryptography returns (RFC 7518 section 3.4).
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return signing_input.decode() + "." + b64url(signature)


class JwtPasswordSource:
    """A password that is a JWT (``iat``, ``exp``, optional ``aud`` and other claims), signed fresh for every
    connection and renewed before it expires."""

    description = "JWT password"

    def __init__(
        self,
        key: Any,
        *,
        username: str | None = None,
        algorithm: str | None = None,
        audience: str | None = None,
        ttl: int = DEFAULT_JWT_TTL,
        claims: Mapping[str, Any] | None = None,
        clock: Clock = time.time,
    ) -> None:
        if ttl <= 0:
            raise ValueError("the JWT's lifetime must be positive")
        self.algorithm = algorithm or algorithm_of(key)
        encode({}, key, self.algorithm)  # refuse a key that does not fit now, not at the first connection
        self.key = key
        self.username = username
        self.audience = audience
        self.ttl = ttl
        self.claims = dict(claims or {})
        self._clock = clock

    def now(self) -> float:
        return self._clock()

    def token(self) -> tuple[str, int]:
        """A new token and when it expires."""
        now = int(self._clock())
        claims: dict[str, Any] = {**self.claims, "iat": now, "exp": now + self.ttl}
        if self.audience:
            claims["aud"] = self.audience
        return encode(claims, self.key, self.algorithm), now + self.ttl

    def credentials(self) -> Credentials:
        token, expiry = self.token()
        return Credentials(self.username, token, expires_at=float(expiry))

    def renew_before(self, credentials: Credentials) -> float:
        return renewal_margin(self.ttl)
