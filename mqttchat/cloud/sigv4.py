"""AWS Signature Version 4 (hashlib and hmac only), and the presigned WebSocket URL of AWS IoT Core.

The signing steps follow AWS's published description: a canonical request (method, URI, sorted query, sorted
lower-case headers, the signed header names, the payload's SHA-256), the string to sign (algorithm, time, scope,
the canonical request's SHA-256) and a key derived from the secret by HMAC over date, region, service and
``aws4_request``. The tests check them against AWS's published examples.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import quote

from mqttchat.protocol.fastinit import dataclass

ALGORITHM = "AWS4-HMAC-SHA256"
#: SHA-256 of nothing: the payload hash of a request without a body.
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: The service name AWS IoT Core's MQTT over WebSocket is signed for.
IOT_SERVICE = "iotdevicegateway"


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    access_key: str
    secret_key: str
    session_token: str | None = None


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """The key of one day, region and service: HMAC chained over them, from ``"AWS4" + secret``."""
    key = _hmac(("AWS4" + secret_key).encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def uri_encode(text: str, *, slash: bool = True) -> str:
    """AWS's URI encoding: every byte but unreserved characters (``A-Za-z0-9-_.~``) as ``%XX``; ``/`` kept in
    paths (``slash``)."""
    return quote(text, safe="/~" if slash else "~")


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    """Parameters encoded, then sorted by name and value."""
    encoded = sorted((uri_encode(k, slash=False), uri_encode(v, slash=False)) for k, v in params)
    return "&".join(f"{k}={v}" for k, v in encoded)


def canonical_request(
    method: str,
    path: str,
    params: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    payload_hash: str,
) -> tuple[str, str]:
    """The canonical request and the signed header names (``host;x-amz-date``)."""
    lowered: dict[str, list[str]] = {}
    for name, value in headers.items():
        lowered.setdefault(name.lower().strip(), []).append(" ".join(value.split()))
    names = sorted(lowered)
    header_block = "".join(f"{n}:{','.join(lowered[n])}\n" for n in names)
    signed = ";".join(names)
    request = "\n".join(
        [method.upper(), uri_encode(path or "/"), canonical_query(params), header_block, signed, payload_hash]
    )
    return request, signed


def string_to_sign(amz_date: str, scope: str, request: str) -> str:
    return "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(request.encode()).hexdigest()])


def sign(secret_key: str, amz_date: str, region: str, service: str, request: str) -> str:
    """The hex signature of a canonical ``request`` made at ``amz_date`` (``YYYYMMDDTHHMMSSZ``)."""
    date = amz_date[:8]
    scope = f"{date}/{region}/{service}/aws4_request"
    key = signing_key(secret_key, date, region, service)
    return hmac.new(key, string_to_sign(amz_date, scope, request).encode(), hashlib.sha256).hexdigest()


def authorization_header(
    credentials: AwsCredentials,
    amz_date: str,
    region: str,
    service: str,
    method: str,
    path: str,
    params: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    payload_hash: str = EMPTY_SHA256,
) -> str:
    """The ``Authorization`` header of a request signed in its headers (``headers`` include ``X-Amz-Date``)."""
    request, signed = canonical_request(method, path, params, headers, payload_hash)
    signature = sign(credentials.secret_key, amz_date, region, service, request)
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    return f"{ALGORITHM} Credential={credentials.access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"


def presign(
    credentials: AwsCredentials,
    amz_date: str,
    region: str,
    service: str,
    host: str,
    path: str,
    *,
    method: str = "GET",
    expires: int | None = None,
    params: Iterable[tuple[str, str]] = (),
    payload_hash: str = EMPTY_SHA256,
    token_signed: bool = True,
) -> str:
    """A request signed in its query string: the path with ``?X-Amz-…&X-Amz-Signature=…``.

    ``token_signed`` False adds the session token after the signature, unsigned: AWS IoT Core's WebSocket
    endpoint wants it that way.
    """
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    query = [
        *params,
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", f"{credentials.access_key}/{scope}"),
        ("X-Amz-Date", amz_date),
        ("X-Amz-SignedHeaders", "host"),
    ]
    if expires is not None:
        query.append(("X-Amz-Expires", str(expires)))
    if credentials.session_token and token_signed:
        query.append(("X-Amz-Security-Token", credentials.session_token))
    request, _ = canonical_request(method, path, query, {"host": host}, payload_hash)
    signature = sign(credentials.secret_key, amz_date, region, service, request)
    url = f"{uri_encode(path or '/')}?{canonical_query(query)}&X-Amz-Signature={signature}"
    if credentials.session_token and not token_signed:
        url += "&X-Amz-Security-Token=" + uri_encode(credentials.session_token, slash=False)
    return url


def iot_websocket_path(credentials: AwsCredentials, region: str, endpoint: str, amz_date: str) -> str:
    """The path and query of AWS IoT Core's SigV4-presigned ``wss://ENDPOINT/mqtt`` URL at ``amz_date``."""
    return presign(credentials, amz_date, region, IOT_SERVICE, endpoint, "/mqtt", token_signed=False)
