"""Azure IoT Hub: device and module identities, the MQTT user name, and SAS tokens made from the device key."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from urllib.parse import quote_plus, urlencode

from mqttchat.client.credentials import Clock, Credentials, renewal_margin
from mqttchat.protocol.fastinit import dataclass

#: The IoT Hub MQTT API version the user name names (Microsoft's documented example uses this one).
API_VERSION = "2021-04-12"
#: How long a SAS token lives unless told (seconds).
DEFAULT_SAS_TTL = 3600


@dataclass(frozen=True, slots=True)
class AzureIdentity:
    """A device (or a module of a device) of an IoT hub."""

    hub_host: str
    device_id: str
    module_id: str | None = None

    @property
    def client_id(self) -> str:
        return f"{self.device_id}/{self.module_id}" if self.module_id else self.device_id

    def username(self, api_version: str = API_VERSION) -> str:
        return f"{self.hub_host}/{self.client_id}/?api-version={api_version}"

    @property
    def resource_uri(self) -> str:
        uri = f"{self.hub_host}/devices/{self.device_id}"
        return f"{uri}/modules/{self.module_id}" if self.module_id else uri

    @property
    def cloud_to_device_filter(self) -> str:
        """Where IoT Hub sends the device its messages (the subscription a device may make)."""
        return f"devices/{self.device_id}/messages/devicebound/#"


def parse_connection_string(text: str) -> tuple[AzureIdentity, str | None]:
    """``HostName=…;DeviceId=…[;ModuleId=…];SharedAccessKey=…`` → the identity and the key (None: none given).

    Raises:
        ValueError: a part is missing or unknown, explained.
    """
    parts: dict[str, str] = {}
    for item in text.strip().split(";"):
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"connection string: {name!r} is not NAME=VALUE")
        parts[name.strip()] = value.strip()
    for needed in ("HostName", "DeviceId"):
        if not parts.get(needed):
            raise ValueError(f"connection string: {needed}= is missing")
    known = {"HostName", "DeviceId", "ModuleId", "SharedAccessKey", "GatewayHostName", "x509"}
    unknown = sorted(set(parts) - known)
    if unknown:
        raise ValueError(f"connection string: unknown part {unknown[0]!r}")
    identity = AzureIdentity(parts["HostName"], parts["DeviceId"], parts.get("ModuleId") or None)
    return identity, parts.get("SharedAccessKey") or None


def sas_token(resource_uri: str, key: str, expiry: int, policy: str | None = None) -> str:
    """A Shared Access Signature for ``resource_uri`` valid until ``expiry`` (seconds since the epoch).

    The signature is HMAC-SHA256, keyed with the base64-decoded ``key``, of the URL-encoded resource URI and the
    expiry on two lines (Microsoft's documented construction).

    Raises:
        ValueError: ``key`` is not base64.
    """
    try:
        secret = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the shared access key is not base64") from None
    to_sign = f"{quote_plus(resource_uri)}\n{expiry}"
    signature = base64.b64encode(hmac.new(secret, to_sign.encode(), hashlib.sha256).digest()).decode()
    fields = {"sr": resource_uri, "sig": signature, "se": str(expiry)}
    if policy:
        fields["skn"] = policy
    return "SharedAccessSignature " + urlencode(fields)


class SasTokenSource:
    """An IoT Hub device's credentials: its user name and a SAS token made fresh for every connection."""

    description = "Azure IoT Hub SAS token"

    def __init__(
        self,
        identity: AzureIdentity,
        key: str,
        ttl: int = DEFAULT_SAS_TTL,
        *,
        api_version: str = API_VERSION,
        clock: Clock = time.time,
    ) -> None:
        if ttl <= 0:
            raise ValueError("the SAS token's lifetime must be positive")
        sas_token(identity.resource_uri, key, 0)  # the key is checked now, not at the first connection
        self.identity = identity
        self.key = key
        self.ttl = ttl
        self.api_version = api_version
        self._clock = clock

    def now(self) -> float:
        return self._clock()

    def credentials(self) -> Credentials:
        expiry = int(self._clock()) + self.ttl
        token = sas_token(self.identity.resource_uri, self.key, expiry)
        return Credentials(self.identity.username(self.api_version), token, expires_at=float(expiry))

    def renew_before(self, credentials: Credentials) -> float:
        return renewal_margin(self.ttl)
