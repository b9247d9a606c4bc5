"""AWS IoT Core: credentials from the usual variables and files, the presigned WebSocket URL, custom authorizers."""

from __future__ import annotations

import configparser
import os
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

from mqttchat.client.credentials import Clock, Credentials
from mqttchat.cloud.sigv4 import AwsCredentials, iot_websocket_path

#: ALPN of MQTT with a client certificate on port 443.
ALPN_CERTIFICATE = "x-amzn-mqtt-ca"
#: ALPN of MQTT with a custom authorizer on port 443.
ALPN_AUTHORIZER = "mqtt"
#: How long a presigned URL is used before a new one is made (AWS accepts a signature date this recent).
SIGNED_URL_LIFETIME = 300.0


def _home(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("HOME") or Path.home())


def _ini(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as exc:
        raise ValueError(f"{path}: {exc.message}") from None
    return parser


def load_credentials(environ: Mapping[str, str] | None = None) -> AwsCredentials:
    """Credentials from ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, else from the
    shared credentials file (``AWS_SHARED_CREDENTIALS_FILE`` or ``~/.aws/credentials``), profile ``AWS_PROFILE``
    or ``default``.

    Raises:
        ValueError: none found, saying where they were looked for.
    """
    env = os.environ if environ is None else environ
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        return AwsCredentials(key, secret, env.get("AWS_SESSION_TOKEN") or None)
    profile = env.get("AWS_PROFILE") or "default"
    path = Path(env.get("AWS_SHARED_CREDENTIALS_FILE") or _home(env) / ".aws" / "credentials")
    parser = _ini(path)
    if parser.has_section(profile):
        section = parser[profile]
        key, secret = section.get("aws_access_key_id"), section.get("aws_secret_access_key")
        if key and secret:
            return AwsCredentials(key, secret, section.get("aws_session_token") or None)
    raise ValueError(
        f"no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or put profile [{profile}] in {path}"
    )


def region_of(endpoint: str, environ: Mapping[str, str] | None = None) -> str:
    """The region of an IoT endpoint (``…-ats.iot.REGION.amazonaws.com``), else ``AWS_REGION``,
    ``AWS_DEFAULT_REGION`` or the config file's (``AWS_CONFIG_FILE`` or ``~/.aws/config``).

    Raises:
        ValueError: no region found.
    """
    labels = endpoint.lower().split(".")
    if "iot" in labels and labels.index("iot") + 1 < len(labels) - 2:
        return labels[labels.index("iot") + 1]
    env = os.environ if environ is None else environ
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        return region
    profile = env.get("AWS_PROFILE") or "default"
    path = Path(env.get("AWS_CONFIG_FILE") or _home(env) / ".aws" / "config")
    parser = _ini(path)
    section = "default" if profile == "default" else f"profile {profile}"
    if parser.has_section(section) and parser[section].get("region"):
        return parser[section]["region"]
    raise ValueError(f"no AWS region: the endpoint {endpoint!r} names none; set AWS_REGION")


def authorizer_username(
    authorizer: str,
    *,
    username: str | None = None,
    token_key_name: str | None = None,
    token: str | None = None,
    signature: str | None = None,
) -> str:
    """The MQTT user name that carries a custom authorizer's name, token and token signature.

    ``[USER]?x-amz-customauthorizer-name=NAME[&TOKEN_KEY_NAME=TOKEN][&x-amz-customauthorizer-signature=SIG]``,
    each value URL-encoded (AWS's documented form; the signature is the base64 of the token's signature).
    """
    params = [("x-amz-customauthorizer-name", authorizer)]
    if token_key_name and token is not None:
        params.append((token_key_name, token))
    if signature:
        params.append(("x-amz-customauthorizer-signature", signature))
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in params)
    return f"{username or ''}?{query}"


class SignedUrlSource:
    """Connects to AWS IoT Core over WebSocket with a SigV4-presigned URL, made fresh for every connection."""

    description = "AWS SigV4-presigned URL"

    def __init__(
        self,
        endpoint: str,
        region: str,
        credentials: AwsCredentials,
        *,
        username: str | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.endpoint = endpoint
        self.region = region
        self.aws = credentials
        self.username = username
        self._clock = clock

    def now(self) -> float:
        return self._clock()

    def credentials(self) -> Credentials:
        now = self._clock()
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        path = iot_websocket_path(self.aws, self.region, self.endpoint, amz_date)
        # The URL is checked when the connection opens; only a reconnect needs a new one.
        return Credentials(self.username, None, websocket_path=path)

    def renew_before(self, credentials: Credentials) -> float:
        return 0.0
