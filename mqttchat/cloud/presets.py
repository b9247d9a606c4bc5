"""Cloud presets: how to reach AWS IoT Core, Azure IoT Hub, Azure Event Grid, HiveMQ Cloud and EMQX Cloud, and what
each refuses.

:func:`build` turns a service's parts (:class:`CloudSettings`: an endpoint, an identity, keys) into the target, TLS
settings (SNI, ALPN), user name, password or credential source that service wants; :func:`apply` puts them into
:class:`~mqttchat.client.ClientOptions`. :class:`ServiceLimits` are the service's guards: what a publish or a
subscription must not ask for there (each change is reported in words, for the user to see).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import field, replace
from typing import Any

from mqttchat.client.credentials import Clock, CredentialSource
from mqttchat.client.options import ClientOptions, Target, TLSOptions
from mqttchat.protocol import ProtocolVersion
from mqttchat.protocol.fastinit import dataclass

#: Preset kinds and the service each names.
KINDS: dict[str, str] = {
    "aws-iot": "AWS IoT Core",
    "azure-iot-hub": "Azure IoT Hub",
    "azure-event-grid": "Azure Event Grid",
    "hivemq-cloud": "HiveMQ Cloud",
    "emqx-cloud": "EMQX Cloud",
}

#: How AWS IoT Core authenticates: client certificate on 8883 or on 443 with ALPN, custom authorizer, SigV4 URL.
AWS_AUTH_MODES = ("certificate", "alpn", "authorizer", "sigv4")


class CloudError(ValueError):
    """The parts given do not make a connection to the service, explained."""


@dataclass(frozen=True, slots=True)
class ServiceLimits:
    """What a service refuses by closing the connection, and how the client keeps within it."""

    service: str = ""
    max_qos: int = 2
    retain: bool = True
    #: The most topic filters one SUBSCRIBE may carry.
    max_filters_per_subscribe: int | None = None
    #: Filters the client must not subscribe to on its own (a default subscription).
    no_default_filters: frozenset[str] = frozenset()

    def publish(self, qos: int, retain: bool) -> tuple[int, bool, list[str]]:
        """The QoS and retain flag to publish with here, and what was changed, in words."""
        changes: list[str] = []
        if qos > self.max_qos:
            changes.append(f"{self.service} takes QoS {self.max_qos} at most: publishing with QoS {self.max_qos}")
            qos = self.max_qos
        if retain and not self.retain:
            changes.append(f"{self.service} keeps no retained messages: publishing without the retain flag")
            retain = False
        return qos, retain, changes

    def subscriptions(
        self,
        filters: Sequence[tuple[str, int]],
        *,
        default: bool = False,
        replacement: Sequence[tuple[str, int]] = (),
    ) -> tuple[list[tuple[str, int]], list[str]]:
        """The subscriptions to make here and what was changed, in words. ``default``: the filters are the
        client's own choice (the explorer's ``#``), not the user's, and those the service refuses are replaced
        with ``replacement`` (or dropped)."""
        changes: list[str] = []
        kept: list[tuple[str, int]] = []
        for topic_filter, asked in filters:
            qos = asked
            if default and topic_filter in self.no_default_filters:
                instead = ", ".join(f for f, _ in replacement) or "nothing"
                changes.append(
                    f"{self.service} closes the connection of a client subscribing to {topic_filter!r} "
                    f"unless its policy allows it: subscribing to {instead} instead (name the topics to watch)"
                )
                kept.extend(r for r in replacement if r not in kept)
                continue
            if qos > self.max_qos:
                changes.append(f"{self.service} takes QoS {self.max_qos} at most: subscribing to {topic_filter!r} "
                               f"with QoS {self.max_qos}")  # fmt: skip
                qos = self.max_qos
            kept.append((topic_filter, qos))
        limit = self.max_filters_per_subscribe
        if limit is not None and len(kept) > limit:
            packets = -(-len(kept) // limit)
            changes.append(f"{self.service} takes {limit} topic filters per SUBSCRIBE at most: sending {packets}")
        return kept, changes


NO_LIMITS = ServiceLimits()

LIMITS: dict[str, ServiceLimits] = {
    "aws-iot": ServiceLimits(
        "AWS IoT Core", max_qos=1, max_filters_per_subscribe=8, no_default_filters=frozenset({"#", "$SYS/#"})
    ),
    "azure-iot-hub": ServiceLimits(
        "Azure IoT Hub", max_qos=1, retain=False, no_default_filters=frozenset({"#", "$SYS/#"})
    ),
    "azure-event-grid": ServiceLimits("Azure Event Grid", max_qos=1, retain=False),
    "hivemq-cloud": ServiceLimits("HiveMQ Cloud"),
    "emqx-cloud": ServiceLimits("EMQX Cloud"),
}


@dataclass(frozen=True, slots=True)
class CloudSettings:
    """The parts of a cloud connection, as a profile or the command line gives them."""

    kind: str
    #: The service's endpoint: ``…-ats.iot.REGION.amazonaws.com``, ``HUB.azure-devices.net``,
    #: ``NAMESPACE.REGION-1.ts.eventgrid.azure.net``, ``….hivemq.cloud``, ``….emqxsl.com`` …
    host: str = ""
    port: int | None = None
    websocket: bool = False
    #: The WebSocket path (the service's own when None).
    path: str | None = None
    client_id: str | None = None
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    key_password: str | None = None
    #: AWS IoT Core: one of :data:`AWS_AUTH_MODES` (None: sigv4 over WebSocket, authorizer when one is named,
    #: alpn on port 443, else certificate).
    aws_auth: str | None = None
    region: str | None = None
    authorizer: str | None = None
    authorizer_token_name: str | None = None
    authorizer_token: str | None = None
    authorizer_signature: str | None = None
    #: Azure IoT Hub: ``HostName=…;DeviceId=…;SharedAccessKey=…`` (gives host, device, module and key).
    connection_string: str | None = None
    device_id: str | None = None
    module_id: str | None = None
    shared_access_key: str | None = None
    sas_ttl: int = 3600
    #: A JWT password signed with this PEM key (any kind), RS256 or ES256.
    jwt_key_file: str | None = None
    jwt_algorithm: str | None = None
    jwt_audience: str | None = None
    jwt_ttl: int = 3600


@dataclass(frozen=True, slots=True)
class CloudConnection:
    """What a preset makes: everything :func:`apply` puts into the client's options."""

    kind: str
    target: Target
    tls: TLSOptions
    limits: ServiceLimits
    client_id: str | None = None
    username: str | None = None
    password: str | None = None
    credentials: CredentialSource | None = None
    #: The protocol version the service speaks, when it speaks only one.
    version: int | None = None
    #: The subscription to make instead of a default ``#`` the service refuses.
    default_subscriptions: tuple[tuple[str, int], ...] = ()
    #: What the preset chose, in words (``-d`` and the connection screen show them).
    notes: tuple[str, ...] = field(default=())


def _require(value: str | None, what: str, kind: str) -> str:
    if not value:
        raise CloudError(f"{KINDS[kind]} needs {what}")
    return value


def build(
    settings: CloudSettings, environ: Mapping[str, str] | None = None, clock: Clock = time.time
) -> CloudConnection:
    """The connection ``settings`` describe.

    Raises:
        CloudError: something the service needs is missing, or a key or credential cannot be used; explained.
    """
    kind = settings.kind
    if kind not in KINDS:
        raise CloudError(f"unknown cloud preset {kind!r}: use one of {', '.join(KINDS)}")
    env = os.environ if environ is None else environ
    try:
        if kind == "aws-iot":
            made = _aws(settings, env, clock)
        elif kind == "azure-iot-hub":
            made = _azure_iot_hub(settings, clock)
        elif kind == "azure-event-grid":
            made = _event_grid(settings)
        else:
            made = _broker_service(settings)
        if settings.jwt_key_file:
            made = _with_jwt(made, settings, clock)
    except CloudError:
        raise
    except ValueError as exc:
        raise CloudError(f"{KINDS[kind]}: {exc}") from None
    return made


def default_subscriptions(settings: CloudSettings) -> tuple[tuple[str, int], ...]:
    """What to subscribe to instead of a default ``#`` the service refuses (no secret needed to know it)."""
    if settings.kind != "azure-iot-hub":
        return ()
    from mqttchat.cloud.azure import AzureIdentity, parse_connection_string

    if settings.connection_string:
        try:
            identity = parse_connection_string(settings.connection_string)[0]
        except ValueError:
            return ()
    elif settings.device_id or settings.client_id:
        identity = AzureIdentity(settings.host, settings.device_id or settings.client_id or "", settings.module_id)
    else:
        return ()
    return ((identity.cloud_to_device_filter, 1),)


def _tls(settings: CloudSettings, alpn: tuple[str, ...] = ()) -> TLSOptions:
    # SNI is the endpoint's name (the target host); these services route and pick certificates by it.
    return TLSOptions(
        ca_file=settings.ca_file,
        cert_file=settings.cert_file,
        key_file=settings.key_file,
        key_password=settings.key_password,
        alpn=alpn,
    )


def _target(settings: CloudSettings, port: int, ws_port: int, ws_path: str) -> Target:
    host = _require(settings.host, "the endpoint's host name", settings.kind)
    if settings.websocket:
        return Target(host, settings.port or ws_port, tls=True, websocket=True, path=settings.path or ws_path)
    return Target(host, settings.port or port, tls=True)


def _aws(settings: CloudSettings, env: Mapping[str, str], clock: Clock) -> CloudConnection:
    from mqttchat.cloud import aws

    mode = settings.aws_auth
    if mode is None:
        if settings.websocket:
            mode = "sigv4"
        elif settings.authorizer:
            mode = "authorizer"
        elif settings.port == 443:
            mode = "alpn"
        else:
            mode = "certificate"
    if mode not in AWS_AUTH_MODES:
        raise CloudError(f"AWS IoT Core: unknown authentication {mode!r}: use one of {', '.join(AWS_AUTH_MODES)}")
    limits = LIMITS["aws-iot"]
    host = _require(settings.host, "the endpoint's host name (…-ats.iot.REGION.amazonaws.com)", "aws-iot")
    common = {"kind": "aws-iot", "limits": limits, "client_id": settings.client_id}
    if mode == "sigv4":
        region = settings.region or aws.region_of(host, env)
        source = aws.SignedUrlSource(host, region, aws.load_credentials(env), username=settings.username, clock=clock)
        target = Target(host, settings.port or 443, tls=True, websocket=True, path="/mqtt")
        notes = (
            f"WebSocket URL signed with AWS SigV4 for {region} (service iotdevicegateway), new at each connection",
        )
        return CloudConnection(target=target, tls=_tls(settings), credentials=source, notes=notes, **common)  # type: ignore[arg-type]
    if mode == "authorizer":
        authorizer = _require(settings.authorizer, "the custom authorizer's name", "aws-iot")
        username = aws.authorizer_username(
            authorizer,
            username=settings.username,
            token_key_name=settings.authorizer_token_name,
            token=settings.authorizer_token,
            signature=settings.authorizer_signature,
        )
        target = Target(host, settings.port or 443, tls=True)
        notes = (f"custom authorizer {authorizer!r} named in the user name; ALPN {aws.ALPN_AUTHORIZER!r}",)
        return CloudConnection(
            target=target,
            tls=_tls(settings, (aws.ALPN_AUTHORIZER,)),
            username=username,
            password=settings.password,
            notes=notes,
            **common,  # type: ignore[arg-type]
        )
    if not (settings.cert_file and settings.key_file):
        raise CloudError("AWS IoT Core with a client certificate needs the certificate and its key (--cert, --key)")
    if mode == "alpn":
        target = Target(host, settings.port or 443, tls=True)
        notes = (f"client certificate on port {target.port} with ALPN {aws.ALPN_CERTIFICATE!r}",)
        return CloudConnection(target=target, tls=_tls(settings, (aws.ALPN_CERTIFICATE,)), notes=notes, **common)  # type: ignore[arg-type]
    target = Target(host, settings.port or 8883, tls=True)
    notes = (f"client certificate on port {target.port}",)
    return CloudConnection(target=target, tls=_tls(settings), notes=notes, **common)  # type: ignore[arg-type]


def _azure_iot_hub(settings: CloudSettings, clock: Clock) -> CloudConnection:
    from mqttchat.cloud.azure import AzureIdentity, SasTokenSource, parse_connection_string

    key = settings.shared_access_key
    if settings.connection_string:
        identity, from_string = parse_connection_string(settings.connection_string)
        key = key or from_string
    else:
        host = _require(
            settings.host, "the hub's host name (HUB.azure-devices.net) or a connection string", "azure-iot-hub"
        )
        device = _require(settings.device_id or settings.client_id, "a device id (-i DEVICE)", "azure-iot-hub")
        identity = AzureIdentity(host, device, settings.module_id)
    settings = replace(settings, host=identity.hub_host)
    target = _target(settings, 8883, 443, "/$iothub/websocket")
    limits = LIMITS["azure-iot-hub"]
    default = default_subscriptions(replace(settings, connection_string=None, device_id=identity.device_id))
    common = {
        "kind": "azure-iot-hub",
        "target": target,
        "tls": _tls(settings),
        "limits": limits,
        "client_id": identity.client_id,
        "version": ProtocolVersion.MQTT_3_1_1,
        "default_subscriptions": default,
    }
    if key:
        source = SasTokenSource(identity, key, settings.sas_ttl, clock=clock)
        notes = (f"SAS token from the {'module' if identity.module_id else 'device'} key, valid {settings.sas_ttl} s, "
                 "renewed before it expires and at each connection",)  # fmt: skip
        return CloudConnection(credentials=source, notes=notes, **common)  # type: ignore[arg-type]
    if not (settings.cert_file and settings.key_file):
        raise CloudError("Azure IoT Hub needs the device's shared access key or its X.509 certificate and key")
    return CloudConnection(username=identity.username(), notes=("X.509 client certificate",), **common)  # type: ignore[arg-type]


def _event_grid(settings: CloudSettings) -> CloudConnection:
    username = _require(settings.username, "the client's authentication name (-u NAME)", "azure-event-grid")
    if not settings.jwt_key_file and not (settings.cert_file and settings.key_file):
        raise CloudError("Azure Event Grid needs the client's certificate and key (--cert, --key)")
    return CloudConnection(
        kind="azure-event-grid",
        target=_target(settings, 8883, 443, "/mqtt"),
        tls=_tls(settings),
        limits=LIMITS["azure-event-grid"],
        client_id=settings.client_id or username,
        username=username,
        password=settings.password,
        notes=(f"authentication name {username!r} as the user name, client certificate",),
    )


#: Port of MQTT over TLS and of secure WebSocket, and the WebSocket path, of the brokers run as a service.
_SERVICE_PORTS = {"hivemq-cloud": (8883, 8884, "/mqtt"), "emqx-cloud": (8883, 8084, "/mqtt")}


def _broker_service(settings: CloudSettings) -> CloudConnection:
    kind = settings.kind
    port, ws_port, path = _SERVICE_PORTS[kind]
    target = _target(settings, port, ws_port, path)
    if not settings.username and not settings.jwt_key_file and not settings.cert_file:
        raise CloudError(f"{KINDS[kind]} needs a user name and password (-u, -P)")
    return CloudConnection(
        kind=kind,
        target=target,
        tls=_tls(settings),
        limits=LIMITS[kind],
        client_id=settings.client_id,
        username=settings.username,
        password=settings.password,
        notes=(f"TLS to {target.url} with SNI {target.host}",),
    )


def _with_jwt(made: CloudConnection, settings: CloudSettings, clock: Clock) -> CloudConnection:
    from mqttchat.cloud.jwt import JwtPasswordSource, load_private_key

    assert settings.jwt_key_file is not None
    if made.credentials is not None:
        raise CloudError(f"{KINDS[made.kind]}: a JWT password and a {made.credentials.description} exclude each other")
    key = load_private_key(settings.jwt_key_file, settings.key_password)
    source = JwtPasswordSource(
        key,
        username=made.username,
        algorithm=settings.jwt_algorithm,
        audience=settings.jwt_audience,
        ttl=settings.jwt_ttl,
        clock=clock,
    )
    note = f"password: a {source.algorithm} JWT valid {settings.jwt_ttl} s, renewed before it expires"
    return replace(made, credentials=source, password=None, notes=(*made.notes, note))


def apply(options: ClientOptions, made: CloudConnection) -> ClientOptions:
    """``options`` with the preset's target, TLS, identity, credentials and limits."""
    changes: dict[str, Any] = {
        "target": made.target,
        "tls": made.tls,
        "credentials": made.credentials,
        "max_filters_per_subscribe": made.limits.max_filters_per_subscribe,
    }
    if made.client_id:
        changes["client_id"] = made.client_id
    if made.username is not None:
        changes["username"] = made.username
    if made.password is not None:
        changes["password"] = made.password
    if made.version is not None:
        changes["version"] = made.version
        changes["version_fallback"] = False
    return replace(options, **changes)
