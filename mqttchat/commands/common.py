"""Connection options shared by every command, in mosquitto_pub/mosquitto_sub style, and their errors."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mqttchat.client.errors import ClientError
from mqttchat.client.options import DEFAULT_MAX_PACKET_SIZE, ClientOptions, Target, TLSOptions, parse_url
from mqttchat.protocol import MAX_PACKET_SIZE, MQTTError, Properties, Will
from mqttchat.protocol.properties import PROPERTY_SPECS, PropertyType
from mqttchat.untrusted import printable

if TYPE_CHECKING:
    from mqttchat.client import MQTTClient
    from mqttchat.client.blocking import BlockingClient
    from mqttchat.client.proxy import ProxyOptions
    from mqttchat.cloud.presets import CloudSettings, ServiceLimits

#: Exit status when -W ends a command before it finished (as mosquitto_sub does).
EXIT_TIMEOUT = 27

#: The smallest Maximum Packet Size worth announcing: a CONNACK or a PUBLISH with a short topic must fit.
MIN_MAX_PACKET_SIZE = 64


class CommandError(Exception):
    """A problem worth one line on stderr and a non-zero exit status (2, a usage error, unless told)."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("connection")
    g.add_argument("-h", "--host", help="broker host (default 127.0.0.1)")
    g.add_argument("-p", "--port", type=int, help="broker port (default 1883, 8883 with TLS)")
    g.add_argument(
        "-L",
        "--url",
        help="broker URL: mqtt[s]://[user[:password]@]host[:port][/topic] (the topic as with -t, as mosquitto_pub "
        "and mosquitto_sub read it) or ws[s]://[user[:password]@]host[:port]/path",
    )
    g.add_argument(
        "-V",
        "--protocol-version",
        default=None,
        metavar="5|311",
        help="MQTT version: 5 or 311 (3.1.1); default: 5, and 3.1.1 when the broker refuses or drops a 5.0 CONNECT",
    )
    g.add_argument("-i", "--id", dest="client_id", default=None, help="client identifier (default: generated)")
    g.add_argument("-u", "--username", help="user name")
    g.add_argument("-P", "--pw", dest="password", help="password (MQTT sends it in clear text: use TLS)")
    g.add_argument(
        "--auth-method",
        metavar="METHOD",
        help="MQTT 5 enhanced authentication: SCRAM-SHA-1, SCRAM-SHA-256 or SCRAM-SHA-512 with -u and -P (the "
        "password is not sent), or OAUTH2-JWT / CUSTOM-JWT with --auth-token TOKEN or --jwt-key FILE (renewed by "
        "re-authentication before it expires)",
    )
    g.add_argument("--auth-token", metavar="TOKEN", help="the token of --auth-method OAUTH2-JWT or CUSTOM-JWT")
    g.add_argument("-k", "--keepalive", type=int, default=60, help="keepalive in seconds (default 60)")
    g.add_argument(
        "-c",
        "--disable-clean-session",
        action="store_true",
        help="persistent session: the broker keeps subscriptions and queues messages while away",
    )
    g.add_argument(
        "-x",
        "--session-expiry",
        type=int,
        default=None,
        help="MQTT 5 session expiry interval in seconds (with -c: default 3600)",
    )
    g.add_argument(
        "-D",
        "--property",
        dest="properties",
        action="append",
        nargs="+",
        default=[],
        metavar="ARG",
        help="MQTT 5 property: -D COMMAND NAME VALUE, e.g. -D publish content-type text/plain",
    )
    g.add_argument(
        "--max-packet-size",
        type=int,
        metavar="BYTES",
        help=f"the largest packet accepted from the broker, announced to it (MQTT 5) and checked before a packet is "
        f"read (default {DEFAULT_MAX_PACKET_SIZE}, 16 MiB; 0: the protocol's limit, 256 MiB)",
    )
    g.add_argument("-d", "--debug", action="store_true", help="print every packet sent and received on stderr")
    t = parser.add_argument_group("TLS")
    t.add_argument("--cafile", help="CA certificates to verify the broker with (enables TLS)")
    t.add_argument("--cert", help="client certificate (PEM)")
    t.add_argument("--key", help="client private key (PEM)")
    t.add_argument("--keypass", help="password of the private key")
    t.add_argument("--insecure", action="store_true", help="do not verify the broker's certificate or host name")
    t.add_argument("--tls", action="store_true", help="use TLS with the system trust store")
    t.add_argument("--tls-servername", help="name for SNI and certificate checks (default: the host)")
    t.add_argument("--tls-alpn", help="ALPN protocol to offer")
    x = parser.add_argument_group("proxy")
    x.add_argument(
        "--proxy",
        metavar="URL",
        help="reach the broker through a proxy: socks5://[user:pw@]host[:port] (the proxy resolves the broker's "
        "name), socks5h://..., or http://[user:pw@]host[:port] (HTTP CONNECT); 'none' for a direct connection. "
        "Default: ALL_PROXY, and for ws:// and wss:// HTTP_PROXY and HTTPS_PROXY, less the hosts in NO_PROXY",
    )
    c = parser.add_argument_group("cloud services (see README: Cloud brokers)")
    c.add_argument(
        "--cloud",
        metavar="KIND",
        help="connect as the service wants: aws-iot, azure-iot-hub, azure-event-grid, hivemq-cloud, emqx-cloud "
        "(-h is the endpoint; TLS, port, SNI, ALPN, user name and tokens follow from the options below)",
    )
    c.add_argument("--websocket", action="store_true", help="with --cloud: MQTT over secure WebSocket")
    c.add_argument(
        "--aws-auth", metavar="MODE", help="AWS IoT Core: certificate (8883), alpn (443), authorizer or sigv4 (wss)"
    )
    c.add_argument("--aws-region", metavar="REGION", help="AWS IoT Core: the region (default: the endpoint's)")
    c.add_argument("--authorizer", metavar="NAME", help="AWS IoT Core: the custom authorizer's name")
    c.add_argument("--authorizer-token", metavar="KEY=VALUE", help="AWS IoT Core: the authorizer's token")
    c.add_argument("--authorizer-signature", metavar="SIG", help="AWS IoT Core: the token's signature (base64)")
    c.add_argument(
        "--azure-connection-string", metavar="STR", help="Azure IoT Hub: HostName=…;DeviceId=…;SharedAccessKey=…"
    )
    c.add_argument("--azure-module", metavar="ID", help="Azure IoT Hub: the module identity of the device (-i)")
    c.add_argument("--sas-key", metavar="KEY", help="Azure IoT Hub: the device's (or module's) shared access key")
    c.add_argument("--sas-ttl", type=int, default=3600, metavar="S", help="Azure IoT Hub: SAS token lifetime")
    c.add_argument("--jwt-key", metavar="FILE", help="password: a JWT signed with this PEM key (RSA or EC P-256)")
    c.add_argument("--jwt-algorithm", metavar="ALG", help="RS256 or ES256 (default: the key's)")
    c.add_argument("--jwt-audience", metavar="AUD", help="the JWT's aud claim")
    c.add_argument("--jwt-ttl", type=int, default=3600, metavar="S", help="the JWT's lifetime in seconds")
    w = parser.add_argument_group("will")
    w.add_argument("--will-topic", help="topic of the will message")
    w.add_argument("--will-payload", default="", help="payload of the will message")
    w.add_argument("--will-qos", type=int, choices=(0, 1, 2), default=0)
    w.add_argument("--will-retain", action="store_true")


def take_url_topic(args: argparse.Namespace) -> str | None:
    """The topic of ``-L mqtt://host:port/topic`` (mosquitto_pub/sub's form), removed from ``args.url``.

    Everything after the first ``/`` that follows the host is the topic, ``#``, ``+`` and ``?`` included (it is
    not a web address). A WebSocket URL's path is the HTTP path, not a topic: None.
    """
    url: str | None = args.url
    if not url:
        return None
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() in ("ws", "wss"):
        return None
    authority, slash, topic = rest.partition("/")
    if not slash:
        return None
    args.url = f"{scheme}://{authority}"
    if not topic:
        raise CommandError(f"-L {url}: the topic after the host is empty")
    return topic


def parse_version(text: str | None) -> int:
    if text is None:
        return 5
    value = text.lower().removeprefix("mqttv").replace(".", "")
    if value in ("5", "50"):
        return 5
    if value in ("311", "4"):
        return 4
    raise CommandError(f"unknown protocol version {text!r}: use 5 or 311")


_PROPERTY_COMMANDS = {"connect", "publish", "subscribe", "unsubscribe", "disconnect", "will"}


def parse_properties(specs: Sequence[Sequence[str]]) -> dict[str, Properties]:
    """``-D command name value [value]`` arguments → properties per command."""
    by_command: dict[str, dict[str, Any]] = {}
    names = {spec.name.replace("_", "-"): spec for spec in PROPERTY_SPECS.values()}
    for args in specs:
        if len(args) < 3:
            raise CommandError(f"-D needs COMMAND NAME VALUE, got {' '.join(args)!r}")
        command, name, *values = args
        if command not in _PROPERTY_COMMANDS:
            raise CommandError(f"-D {command}: the command must be one of {', '.join(sorted(_PROPERTY_COMMANDS))}")
        spec = names.get(name)
        if spec is None:
            raise CommandError(f"-D {command} {name}: unknown property; known: {', '.join(sorted(names))}")
        props = by_command.setdefault(command, {})
        if spec.type is PropertyType.UTF8_STRING_PAIR:
            if len(values) != 2:
                raise CommandError(f"-D {command} {name} needs a name and a value")
            props.setdefault(spec.name, []).append((values[0], values[1]))
            continue
        if len(values) != 1:
            raise CommandError(f"-D {command} {name} takes one value")
        value: Any = values[0]
        if spec.type is PropertyType.BINARY_DATA:
            value = value.encode()
        elif spec.type is not PropertyType.UTF8_STRING:
            try:
                value = int(value)
            except ValueError:
                raise CommandError(f"-D {command} {name}: {value!r} is not a number") from None
        if spec.repeatable:
            props.setdefault(spec.name, []).append(value)
        else:
            props[spec.name] = value
    return {command: Properties(**values) for command, values in by_command.items()}


def client_options(
    args: argparse.Namespace, default_id: str, *, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE
) -> tuple[ClientOptions, dict[str, Properties]]:
    """ClientOptions from the parsed connection arguments (``max_packet_size``: unless they give one)."""
    version = parse_version(args.protocol_version)
    props = parse_properties(args.properties)
    method = (getattr(args, "auth_method", None) or "").upper()
    if method:
        return enhanced_auth_options(args, method, default_id, max_packet_size)
    if getattr(args, "cloud", None) or getattr(args, "jwt_key", None):
        return cloud_client_options(args, default_id, version, props, max_packet_size)
    tls_wanted = bool(args.cafile or args.cert or args.insecure or args.tls)
    try:
        if args.url:
            if args.host or args.port:
                raise CommandError("give either -L URL or -h/-p, not both")
            target = parse_url(args.url)
        else:
            scheme = "mqtts" if tls_wanted else "mqtt"
            target = parse_url(f"{scheme}://{args.host or '127.0.0.1'}")
            if args.port:
                if not 0 < args.port < 65_536:
                    raise CommandError(f"port {args.port} is outside 1..65535")
                target = replace(target, port=args.port)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if tls_wanted and not target.tls:
        target = replace(target, tls=True)
    tls = None
    if target.tls:
        alpn = (args.tls_alpn,) if args.tls_alpn else ()
        tls = TLSOptions(args.cafile, args.cert, args.key, args.keypass, args.insecure, args.tls_servername, alpn)
    proxy = proxy_option(getattr(args, "proxy", None), target)
    will = None
    if args.will_topic:
        will = Will(
            args.will_topic,
            args.will_payload.encode(),
            args.will_qos,
            args.will_retain,
            props.get("will", Properties()),
        )
    elif "will" in props:
        raise CommandError("-D will ... needs --will-topic")
    connect_props = props.get("connect", Properties())
    max_packet_size_given = max_packet_size_option(args, connect_props, max_packet_size)
    session_expiry = args.session_expiry
    if session_expiry is None:
        session_expiry = connect_props.session_expiry_interval
    if session_expiry is None and args.disable_clean_session:
        session_expiry = 3600
    options = ClientOptions(
        target=target,
        version=version,
        version_fallback=args.protocol_version is None,
        client_id=args.client_id if args.client_id is not None else default_id,
        clean_start=not args.disable_clean_session,
        session_expiry=session_expiry if version == 5 else None,
        keepalive=args.keepalive,
        username=args.username,
        password=args.password,
        will=will,
        receive_maximum=connect_props.receive_maximum,
        maximum_packet_size=max_packet_size_given,
        topic_alias_maximum=connect_props.topic_alias_maximum or 0,
        request_response_information=bool(connect_props.request_response_information),
        request_problem_information=connect_props.request_problem_information != 0,
        user_properties=connect_props.user_property,
        tls=tls,
        proxy=proxy,
        reconnect=False,
    )
    return options, props


def cloud_settings(args: argparse.Namespace) -> CloudSettings:
    """The cloud preset's parts from ``--cloud`` and its options (host, port and WebSocket from -h/-p or -L)."""
    from mqttchat.cloud.presets import CloudSettings

    host, port, websocket, path = args.host or "", args.port, bool(args.websocket), None
    if args.url:
        if args.host or args.port:
            raise CommandError("give either -L URL or -h/-p, not both")
        from urllib.parse import urlsplit

        parts = urlsplit(args.url if "://" in args.url else "mqtts://" + args.url)
        host, websocket = parts.hostname or "", websocket or parts.scheme.lower() in ("ws", "wss")
        try:
            port = parts.port
        except ValueError:
            raise CommandError(f"bad port in {args.url!r}") from None
        path = parts.path + (f"?{parts.query}" if parts.query else "") if websocket and parts.path else None
    token_name = token = None
    if args.authorizer_token:
        token_name, sep, token = args.authorizer_token.partition("=")
        if not sep:
            raise CommandError("--authorizer-token wants KEY=VALUE (the token key name the authorizer reads)")
    return CloudSettings(
        kind=args.cloud or "",
        host=host,
        port=port,
        websocket=websocket,
        path=path,
        client_id=args.client_id,
        username=args.username,
        password=args.password,
        ca_file=args.cafile,
        cert_file=args.cert,
        key_file=args.key,
        key_password=args.keypass,
        aws_auth=args.aws_auth,
        region=args.aws_region,
        authorizer=args.authorizer,
        authorizer_token_name=token_name,
        authorizer_token=token,
        authorizer_signature=args.authorizer_signature,
        connection_string=args.azure_connection_string,
        device_id=args.client_id,
        module_id=args.azure_module,
        shared_access_key=args.sas_key,
        sas_ttl=args.sas_ttl,
        jwt_key_file=args.jwt_key,
        jwt_algorithm=args.jwt_algorithm,
        jwt_audience=args.jwt_audience,
        jwt_ttl=args.jwt_ttl,
    )


def cloud_client_options(
    args: argparse.Namespace, default_id: str, version: int, props: dict[str, Properties], max_packet_size: int
) -> tuple[ClientOptions, dict[str, Properties]]:
    """Options for ``--cloud KIND`` (or a JWT password with an ordinary target); the preset's limits are left in
    ``args.cloud_limits`` for the command to apply."""
    from mqttchat.cloud.presets import CloudError, apply, build

    if not args.cloud:
        # --jwt-key with an ordinary broker: its target, with the JWT as the password.
        plain = argparse.Namespace(**{**vars(args), "jwt_key": None})
        options, props = client_options(plain, default_id, max_packet_size=max_packet_size)
        from mqttchat.cloud.jwt import JwtPasswordSource, load_private_key

        try:
            key = load_private_key(args.jwt_key, args.keypass)
            source = JwtPasswordSource(
                key, algorithm=args.jwt_algorithm, audience=args.jwt_audience, ttl=args.jwt_ttl,
                username=options.effective_username,
            )  # fmt: skip
        except ValueError as exc:
            raise CommandError(f"--jwt-key: {exc}") from None
        return replace(options, credentials=source), props
    try:
        made = build(cloud_settings(args))
    except CloudError as exc:
        raise CommandError(str(exc)) from None
    args.cloud_limits = made.limits
    args.cloud_default_subscriptions = made.default_subscriptions
    connect_props = props.get("connect", Properties())
    options = ClientOptions(
        version=version,
        version_fallback=args.protocol_version is None,
        client_id=args.client_id if args.client_id is not None else default_id,
        clean_start=not args.disable_clean_session,
        keepalive=args.keepalive,
        maximum_packet_size=max_packet_size_option(args, connect_props, max_packet_size),
        reconnect=False,
    )
    options = apply(options, made)
    options = replace(options, proxy=proxy_option(getattr(args, "proxy", None), options.target))
    if args.debug:
        for note in made.notes:
            print(f"{made.limits.service}: {note}", file=sys.stderr)
    return options, props


def enhanced_auth_options(
    args: argparse.Namespace, method: str, default_id: str, max_packet_size: int
) -> tuple[ClientOptions, dict[str, Properties]]:
    """Options for ``--auth-method``: SCRAM from -u/-P (the password leaves CONNECT), or a token method."""
    from mqttchat.client.auth import SCRAM_METHODS, TOKEN_METHODS, ScramAuth, TokenAuth

    jwt_key = getattr(args, "jwt_key", None)
    rest = argparse.Namespace(
        **{**vars(args), "auth_method": None, "jwt_key": None if method in TOKEN_METHODS else jwt_key}
    )
    options, props = client_options(rest, default_id, max_packet_size=max_packet_size)
    if options.version != 5:
        raise CommandError(f"--auth-method {method} needs MQTT 5 (-V 5)")
    options = replace(options, version_fallback=False)
    if method in SCRAM_METHODS:
        user, password = options.effective_username, options.effective_password
        if not user or password is None:
            raise CommandError(f"--auth-method {method} needs a user name and password (-u, -P)")
        auth: Any = ScramAuth(user, password, method)
        options = replace(options, password=None, target=replace(options.target, password=None))
    elif method in TOKEN_METHODS:
        if jwt_key:
            from mqttchat.cloud.jwt import JwtPasswordSource, load_private_key

            try:
                key = load_private_key(jwt_key, args.keypass)
                source = JwtPasswordSource(
                    key, algorithm=args.jwt_algorithm, audience=args.jwt_audience, ttl=args.jwt_ttl
                )
            except ValueError as exc:
                raise CommandError(f"--jwt-key: {exc}") from None
            auth = TokenAuth(method, source.token, clock=source.now)
        elif args.auth_token:
            token = args.auth_token
            auth = TokenAuth(method, lambda: (token, None))
        else:
            raise CommandError(f"--auth-method {method} needs --auth-token TOKEN or --jwt-key FILE")
    else:
        known = ", ".join((*SCRAM_METHODS, *TOKEN_METHODS))
        raise CommandError(f"unknown --auth-method {args.auth_method!r}: use one of {known}")
    return replace(options, auth=auth), props


def cloud_limits(args: argparse.Namespace) -> ServiceLimits | None:
    """The limits of the ``--cloud`` service (after client_options()), or None."""
    return getattr(args, "cloud_limits", None)


def proxy_option(given: str | None, target: Target) -> ProxyOptions | None:
    """The proxy from ``--proxy URL`` (``none``: direct), else from the environment, for ``target``."""
    if given is None and not any(name.lower().endswith("_proxy") for name in os.environ):
        return None  # no proxy variable is set (the usual case): the proxy module is not even loaded
    from mqttchat.client.proxy import parse_proxy_url, proxy_from_environment

    try:
        if given is not None:
            return None if given.strip().lower() in ("none", "direct", "") else parse_proxy_url(given)
        return proxy_from_environment(target.host, target.port, tls=target.tls, websocket=target.websocket)
    except ValueError as exc:
        raise CommandError(f"--proxy: {exc}" if given is not None else str(exc)) from None


def max_packet_size_option(
    args: argparse.Namespace, connect_props: Properties, default: int = DEFAULT_MAX_PACKET_SIZE
) -> int | None:
    """The Maximum Packet Size from ``--max-packet-size`` or ``-D connect maximum-packet-size``, else ``default``;
    None for the protocol's limit."""
    given = getattr(args, "max_packet_size", None)
    if given is not None and connect_props.maximum_packet_size is not None:
        raise CommandError("give --max-packet-size or -D connect maximum-packet-size, not both")
    if given is None:
        given = connect_props.maximum_packet_size
    if given is None:
        given = default
    if given == 0 or given >= MAX_PACKET_SIZE:
        return None
    if given < MIN_MAX_PACKET_SIZE:
        raise CommandError(f"--max-packet-size {given}: at least {MIN_MAX_PACKET_SIZE} bytes (0: no limit)")
    return int(given)


def v5_only_arguments(args: argparse.Namespace) -> list[str]:
    """The MQTT 5-only options given on the command line, as the user typed them."""
    given = [" ".join(("-D", *spec[:2])) for spec in args.properties]
    if getattr(args, "no_local", False):
        given.append("--no-local")
    if args.session_expiry is not None:
        given.append("-x")
    return given


def warn_v311(prog: str, args: argparse.Namespace, version: int, why: str = "") -> None:
    """Say which MQTT 5-only options are not sent because the connection speaks MQTT 3.1.1."""
    if version == 5:
        return
    dropped = v5_only_arguments(args)
    if dropped:
        error_line(prog, f"MQTT 3.1.1{why} has no place for {', '.join(dropped)}: not sent")


def announce_connection(prog: str, args: argparse.Namespace, client: MQTTClient | BlockingClient) -> None:
    """After connecting: say that the client fell back to MQTT 3.1.1, and what that leaves out."""
    if client.version_fallback:
        error_line(prog, f"{client.version_fallback}; -V 311 skips the 5.0 attempt")
        warn_v311(prog, args, client.session.version, " (the broker's version)")


def debug_hook(prefix: str) -> Callable[[str, object, int], None]:
    from mqttchat.protocol.describe import describe

    def hook(direction: str, packet: object, size: int) -> None:
        arrow = "sending " if direction == "out" else "received"
        line = printable(describe(packet))  # type: ignore[arg-type]
        print(f"{prefix} {arrow} {line} [{size} B]", file=sys.stderr, flush=True)

    return hook


def error_line(prog: str, text: str) -> None:
    """One line on stderr; the text may hold what a broker said (reason strings, topics): neutralised."""
    print(f"{prog}: {printable(text)}", file=sys.stderr, flush=True)


def run(prog: str, main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run a command's coroutine: errors become one line on stderr and a non-zero exit status, never a traceback."""

    def in_event_loop() -> int:
        import asyncio

        quiet_library_log()
        return asyncio.run(main())

    return guarded(prog, in_event_loop)


def quiet_library_log() -> None:
    """Before the asyncio client runs: the error that ends the command is its one line; the library's log lines
    would repeat it (Python prints warnings of unconfigured loggers on stderr). The blocking client logs nothing,
    and ``mqttchat pub``/``sub`` start without loading logging."""
    import logging

    logging.getLogger("mqttchat").addHandler(logging.NullHandler())


def guarded(prog: str, main: Callable[[], int]) -> int:
    """Run a command: errors become one line on stderr and a non-zero exit status, never a traceback."""
    try:
        return main()
    except KeyboardInterrupt:
        return 130
    except CommandError as exc:
        error_line(prog, str(exc))
        return exc.status
    except (ClientError, MQTTError) as exc:
        error_line(prog, str(exc))
        return 1
    except OSError as exc:
        error_line(prog, f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        return 1
    except Exception as exc:  # a bug of ours: still one line, never a traceback (MQTTCHAT_DEBUG=1 shows it)
        if os.environ.get("MQTTCHAT_DEBUG"):
            raise
        error_line(prog, f"internal error: {type(exc).__name__}: {exc} (set MQTTCHAT_DEBUG=1 for details)")
        return 70
