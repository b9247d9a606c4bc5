"""Connection profiles in ``profiles.toml``: a broker URL, the session's settings, TLS files, a will and the
subscriptions made on connecting, under a name; passwords kept out of the file unless asked for."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import tomli_w

from mqttchat.client.options import DEFAULT_URL, ClientOptions, Target, TLSOptions, parse_url
from mqttchat.config.checks import MAX_UINT16, MAX_UINT32, int_problem, name_problem, string_problem
from mqttchat.config.paths import profiles_path
from mqttchat.config.toml import (
    KeyPath,
    TomlReader,
    as_boolean,
    as_integer,
    as_optional_string,
    as_string,
    as_strings,
    dotted,
    file_name,
    integer_in,
    portable_path,
    read_document,
    show,
    write_atomically,
)
from mqttchat.protocol import ProtocolVersion, Will, topic_filter_problem, topic_name_problem

if TYPE_CHECKING:
    from mqttchat.cloud.presets import CloudSettings

__all__ = [
    "DEFAULT_PROFILE",
    "PROFILE_KEYS",
    "TLS_KEYS",
    "VERSIONS",
    "WILL_KEYS",
    "Profile",
    "ProfileError",
    "ProfileStore",
    "expand_env",
]

#: The values of ``version``: MQTT 5 and MQTT 3.1.1.
VERSIONS: dict[int, ProtocolVersion] = {5: ProtocolVersion.MQTT_5, 311: ProtocolVersion.MQTT_3_1_1}

#: Every key of a ``[profiles.NAME]`` table (``tls`` and ``will`` are sub-tables).
PROFILE_KEYS: tuple[str, ...] = (
    "url",
    "version",
    "client_id",
    "username",
    "password",
    "keepalive",
    "clean_start",
    "session_expiry",
    "subscriptions",
    "proxy",
    "auth_method",
    "auth_token",
    "tls",
    "will",
    "cloud",
)
TLS_KEYS: tuple[str, ...] = ("ca_file", "cert_file", "key_file", "insecure", "server_hostname", "alpn")
#: The keys of ``[profiles.NAME.cloud]``: ``kind`` and the preset's parts (see mqttchat.cloud.presets).
CLOUD_TEXT_KEYS: tuple[str, ...] = (
    "aws_auth", "region", "authorizer", "authorizer_token_name", "authorizer_token", "authorizer_signature",
    "connection_string", "module_id", "shared_access_key", "jwt_key_file", "jwt_algorithm", "jwt_audience",
)  # fmt: skip
CLOUD_NUMBER_KEYS: tuple[str, ...] = ("sas_ttl", "jwt_ttl")
CLOUD_KEYS: tuple[str, ...] = ("kind", *CLOUD_TEXT_KEYS, *CLOUD_NUMBER_KEYS)
#: Cloud keys that hold secrets: like passwords, written only as ${NAME} references unless save_password.
_CLOUD_SECRETS = ("authorizer_token", "connection_string", "shared_access_key")
WILL_KEYS: tuple[str, ...] = ("topic", "payload", "qos", "retain")
SUBSCRIPTION_KEYS: tuple[str, ...] = ("filter", "qos")

#: Where each Profile field lives inside its ``[profiles.NAME]`` table.
_FIELD_KEYS: dict[str, tuple[str, ...]] = {
    "url": ("url",),
    "version": ("version",),
    "client_id": ("client_id",),
    "username": ("username",),
    "password": ("password",),
    "keepalive": ("keepalive",),
    "clean_start": ("clean_start",),
    "session_expiry": ("session_expiry",),
    "subscriptions": ("subscriptions",),
    "proxy": ("proxy",),
    "auth_method": ("auth_method",),
    "auth_token": ("auth_token",),
    "cloud": ("cloud", "kind"),
    "cloud_options": ("cloud",),
    "alpn": ("tls", "alpn"),
    "ca_file": ("tls", "ca_file"),
    "cert_file": ("tls", "cert_file"),
    "key_file": ("tls", "key_file"),
    "insecure": ("tls", "insecure"),
    "server_hostname": ("tls", "server_hostname"),
    "will_topic": ("will", "topic"),
    "will_payload": ("will", "payload"),
    "will_qos": ("will", "qos"),
    "will_retain": ("will", "retain"),
}
_TLS_FIELDS = ("ca_file", "cert_file", "key_file", "server_hostname")


# --------------------------------------------------------------------------------------------------------------
# Environment-variable references


_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
#: ``$${`` (an escaped, literal ``${``), a ``${NAME}`` reference, or a ``${`` that starts neither.
_REFERENCE = re.compile(rf"\$\$\{{|\$\{{({_NAME})\}}|\$\{{")
_ONLY_REFERENCES = re.compile(rf"(?:\$\{{{_NAME}\}})+")


def _reference_problem(value: str) -> str | None:
    for match in _REFERENCE.finditer(value):
        if match.group() == "${":
            return "a '${' must start an environment-variable reference like ${NAME} (write $${ for a literal ${)"
    return None


def _is_reference(value: str | None) -> bool:
    """Whether value is made only of ``${NAME}`` references (so no secret is written by writing it)."""
    return value is not None and _ONLY_REFERENCES.fullmatch(value) is not None


def expand_env(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace each ``${NAME}`` in value by the environment variable NAME; ``$${`` stands for a literal ``${``.

    Any other ``$`` is kept as it is.

    Raises:
        ValueError: a variable is not set (the message names it), or a ``${`` starts no valid reference.
    """
    env = os.environ if environ is None else environ
    problem = _reference_problem(value)
    if problem is not None:
        raise ValueError(problem)

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "${"
        if name not in env:
            raise ValueError(f"environment variable {name} is not set")
        return env[name]

    return _REFERENCE.sub(substitute, value)


# --------------------------------------------------------------------------------------------------------------
# Profiles


class ProfileError(ValueError):
    """A profile is not valid. ``problems`` maps field names to what is wrong with them."""

    def __init__(self, name: str, problems: Mapping[str, str]) -> None:
        self.name = name
        self.problems = dict(problems)
        detail = "; ".join(f"{key}: {problem}" for key, problem in self.problems.items())
        super().__init__(f"profile {name!r}: {detail}")


def _unset(value: str | None) -> bool:
    return value is None or value == ""


@dataclass(frozen=True, slots=True)
class Profile:
    """A named way to connect: a broker URL, the session's settings, TLS files, a will and initial subscriptions.

    Empty strings in the optional text fields (``username``, ``password``, the TLS files, ``server_hostname``,
    ``will_topic``) mean "not set", as an empty field in a form does. ``username`` and ``password`` may contain
    ``${NAME}`` environment-variable references, expanded by :meth:`to_client_options`.
    """

    name: str
    url: str = DEFAULT_URL
    #: 5 (MQTT 5) or 311 (MQTT 3.1.1).
    version: int = 5
    #: Empty: the broker assigns one (MQTT 5), or one is generated for each connection (MQTT 3.1.1).
    client_id: str = ""
    username: str | None = None
    #: May hold ``${NAME}`` references, which are always saved; a literal password only with ``save_password``.
    password: str | None = None
    #: Write a literal password (in the profile or in the URL) to the profiles file, in clear text.
    save_password: bool = False
    keepalive: int = 60
    clean_start: bool = True
    #: MQTT 5 Session Expiry Interval in seconds; 4294967295 never expires.
    session_expiry: int = 0
    #: Subscribed on connecting: (topic filter, QoS).
    subscriptions: tuple[tuple[str, int], ...] = (("#", 0),)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False
    server_hostname: str | None = None
    #: ALPN protocols offered in the TLS handshake (``x-amzn-mqtt-ca`` for AWS IoT Core on port 443).
    alpn: tuple[str, ...] = ()
    #: ``socks5://…``, ``socks5h://…`` or ``http://…`` (HTTP CONNECT); ``none``: direct; None: the environment's
    #: ALL_PROXY/HTTPS_PROXY/NO_PROXY.
    proxy: str | None = None
    #: MQTT 5 enhanced authentication: SCRAM-SHA-1/256/512 (with username and password) or OAUTH2-JWT/CUSTOM-JWT.
    auth_method: str | None = None
    #: The token of OAUTH2-JWT/CUSTOM-JWT (may hold ``${NAME}``; saved like a password).
    auth_token: str | None = None
    #: A cloud preset (``aws-iot``, ``azure-iot-hub``, ``azure-event-grid``, ``hivemq-cloud``, ``emqx-cloud``).
    cloud: str | None = None
    #: The preset's other parts, as (key, value) pairs of ``[profiles.NAME.cloud]``.
    cloud_options: tuple[tuple[str, str | int], ...] = ()
    will_topic: str | None = None
    will_payload: str = ""
    will_qos: int = 0
    will_retain: bool = False

    @property
    def has_will(self) -> bool:
        return not _unset(self.will_topic)

    def validate(self, *, check_files: bool = False) -> dict[str, str]:
        """What is wrong, as field name → problem (the first problem of each field); empty when all is well.

        With ``check_files`` the TLS files must exist too (relative names are relative to the current directory).
        """
        result: dict[str, str] = {}
        for name, _index, problem in self._problems(check_files=check_files):
            result.setdefault(name, problem)
        return result

    def _problems(self, *, check_files: bool = False) -> list[tuple[str, int | None, str]]:
        """Every problem as (field name, index of the subscription or None, message)."""
        problems: list[tuple[str, int | None, str]] = []

        def add(name: str, problem: str | None, index: int | None = None) -> None:
            if problem is not None:
                problems.append((name, index, problem))

        add("name", name_problem(self.name, "profile"))
        target = None
        try:
            target = parse_url(self.url)
        except ValueError as exc:
            add("url", str(exc))
        if target is not None:
            for value in (target.username, target.password):
                if value:
                    add("url", _reference_problem(value))
        v311 = self.version == 311
        if self.version not in VERSIONS:
            add("version", f"must be 5 (MQTT 5) or 311 (MQTT 3.1.1), not {self.version!r}")
        add("client_id", string_problem(self.client_id))
        if v311 and not self.client_id and not self.clean_start:
            add("client_id", "a persistent MQTT 3.1.1 session (clean_start = false) needs a fixed client id")
        for name in ("username", "password"):
            value = getattr(self, name)
            if not _unset(value):
                add(name, string_problem(value) or _reference_problem(value))
        if v311 and not _unset(self.password) and _unset(self.username) and (target is None or not target.username):
            add("password", "MQTT 3.1.1 sends a password only with a username")
        add("keepalive", int_problem(self.keepalive, 0, MAX_UINT16))
        add("session_expiry", int_problem(self.session_expiry, 0, MAX_UINT32))
        if v311 and self.session_expiry:
            add("session_expiry", "MQTT 3.1.1 has no session expiry (use clean_start = false to keep the session)")
        seen: set[str] = set()
        for index, (topic_filter, qos) in enumerate(self.subscriptions):
            if topic_filter in seen:
                add("subscriptions", f"{topic_filter!r} is subscribed twice", index)
            seen.add(topic_filter)
            add("subscriptions", topic_filter_problem(topic_filter), index)
            if int_problem(qos, 0, 2) is not None:
                add("subscriptions", f"the QoS of {topic_filter!r} must be 0, 1 or 2, not {qos!r}", index)
        has_cert, has_key = not _unset(self.cert_file), not _unset(self.key_file)
        if has_cert and not has_key:
            add("key_file", "a client certificate (cert_file) needs its key_file")
        if has_key and not has_cert:
            add("cert_file", "a key_file needs its client certificate (cert_file)")
        if target is not None and not target.tls:
            for name in _TLS_FIELDS:
                if not _unset(getattr(self, name)):
                    add(name, f"only used with TLS: the URL must be mqtts:// or wss://, not {target.scheme}://")
            if self.insecure:
                add("insecure", f"only used with TLS: the URL must be mqtts:// or wss://, not {target.scheme}://")
        if check_files:
            for name in ("ca_file", "cert_file", "key_file"):
                value = getattr(self, name)
                if not _unset(value) and not Path(value).expanduser().is_file():
                    add(name, f"file not found: {value}")
        if not _unset(self.server_hostname) and self.server_hostname != (self.server_hostname or "").strip():
            add("server_hostname", "must not start or end with blanks")
        for protocol in self.alpn:
            if not protocol or len(protocol.encode()) > 255 or protocol != protocol.strip():
                add("alpn", f"{protocol!r} is not an ALPN protocol name (1 to 255 bytes, no blanks around)")
        if target is not None and not target.tls and self.alpn:
            add("alpn", f"only used with TLS: the URL must be mqtts:// or wss://, not {target.scheme}://")
        if not _unset(self.proxy) and (self.proxy or "").strip().lower() not in ("none", "direct"):
            from mqttchat.client.proxy import parse_proxy_url

            try:
                parse_proxy_url(self.proxy or "")
            except ValueError as exc:
                add("proxy", str(exc))
        if not _unset(self.auth_method):
            from mqttchat.client.auth import SCRAM_METHODS, TOKEN_METHODS

            method = (self.auth_method or "").upper()
            if method not in (*SCRAM_METHODS, *TOKEN_METHODS):
                add("auth_method", f"must be one of {', '.join((*SCRAM_METHODS, *TOKEN_METHODS))}")
            elif self.version != 5:
                add("auth_method", "enhanced authentication needs MQTT 5 (version = 5)")
            elif method in TOKEN_METHODS and _unset(self.auth_token) and "jwt_key_file" not in dict(self.cloud_options):
                add("auth_token", f"{method} needs a token (auth_token) or a JWT key ([cloud] jwt_key_file)")
        if not _unset(self.auth_token):
            add("auth_token", string_problem(self.auth_token or "") or _reference_problem(self.auth_token or ""))
        if self.cloud is not None or self.cloud_options:
            add("cloud", self._cloud_problem(target))
        if self.has_will:
            add("will_topic", topic_name_problem(self.will_topic or ""))
        elif self.will_payload or self.will_qos or self.will_retain:
            add("will_topic", "a will needs a topic")
        if len(self.will_payload.encode(errors="surrogatepass")) > MAX_UINT16:
            add("will_payload", f"is too long (at most {MAX_UINT16} bytes)")
        if int_problem(self.will_qos, 0, 2) is not None:
            add("will_qos", f"must be 0, 1 or 2, not {self.will_qos!r}")
        return problems

    def _cloud_problem(self, target: Target | None) -> str | None:
        from mqttchat.cloud.presets import KINDS

        if self.cloud not in KINDS:
            return f"kind must be one of {', '.join(KINDS)}, not {self.cloud!r}"
        if target is not None and not target.tls:
            return f"a cloud service is reached with TLS: the URL must be mqtts:// or wss://, not {target.scheme}://"
        for key, value in self.cloud_options:
            if key in _CLOUD_SECRETS and isinstance(value, str):
                problem = _reference_problem(value)
                if problem:
                    return f"{key}: {problem}"
        return None

    def cloud_settings(self, environ: Mapping[str, str] | None = None, *, secrets: bool = True) -> CloudSettings:
        """The cloud preset's parts: the URL's host, port (when it names one), WebSocket and path, the profile's
        identity and TLS files, and ``[cloud]``'s keys (``${NAME}`` in secrets expanded).

        Raises:
            ValueError: a referenced environment variable is not set.
        """
        from mqttchat.cloud.presets import CloudSettings

        target = parse_url(self.url)
        text = self.url if "://" in self.url else "mqtt://" + self.url
        explicit_port = urlsplit(text).port
        options: dict[str, Any] = dict(self.cloud_options)
        for key in _CLOUD_SECRETS:
            if isinstance(options.get(key), str):
                options[key] = expand_env(options[key], environ) if secrets else None
        return CloudSettings(
            kind=self.cloud or "",
            host=target.host,
            port=explicit_port,
            websocket=target.websocket,
            path=target.path if target.websocket and urlsplit(text).path else None,
            client_id=self.client_id or None,
            device_id=self.client_id or None,
            username=expand_env(self.username, environ) if self.username and secrets else None,
            password=expand_env(self.password, environ) if self.password and secrets else None,
            ca_file=self.ca_file or None,
            cert_file=self.cert_file or None,
            key_file=self.key_file or None,
            **options,
        )

    def guarded_subscriptions(self) -> tuple[tuple[tuple[str, int], ...], list[str]]:
        """The subscriptions to make, within what the cloud service accepts, and what was changed (in words).
        The default ``#`` counts as the client's own choice: on a service that refuses it, it is replaced."""
        if self.cloud is None:
            return self.subscriptions, []
        from mqttchat.cloud.presets import LIMITS, default_subscriptions

        limits = LIMITS.get(self.cloud)
        if limits is None:
            return self.subscriptions, []
        replacement: tuple[tuple[str, int], ...] = ()
        with contextlib.suppress(ValueError):  # an unset variable: the topics do not depend on it
            replacement = default_subscriptions(self.cloud_settings(secrets=False))
        default = self.subscriptions == Profile("x").subscriptions
        kept, changes = limits.subscriptions(self.subscriptions, default=default, replacement=replacement)
        return tuple(kept), changes

    def to_client_options(self, environ: Mapping[str, str] | None = None) -> ClientOptions:
        """The client options to connect with (the subscriptions are not part of them: see ``subscriptions``).

        ``${NAME}`` references in the username and password, also those given in the URL, are expanded from
        environ (``os.environ`` when None). The URL's credentials are used when ``username``/``password`` are unset.
        TLS options are given for mqtts:// and wss:// URLs. With MQTT 3.1.1 an empty client id is replaced by a
        generated one, ``mqttchat-`` and 8 hex digits.

        Raises:
            ProfileError: the profile is not valid (see :meth:`validate`).
            ValueError: a referenced environment variable is not set (the message names it).
        """
        problems = self.validate()
        if problems:
            raise ProfileError(self.name, problems)
        target = parse_url(self.url)

        def expand(value: str | None, what: str) -> str | None:
            if _unset(value):
                return None
            assert value is not None
            try:
                return expand_env(value, environ)
            except ValueError as exc:
                raise ValueError(f"profile {self.name!r}, {what}: {exc}") from None

        target = replace(
            target,
            username=expand(target.username, "username in the URL"),
            password=expand(target.password, "password in the URL"),
        )
        tls = None
        if target.tls:  # validate() refuses TLS files with a plain URL, which the transport would ignore
            tls = TLSOptions(
                ca_file=self.ca_file or None,
                cert_file=self.cert_file or None,
                key_file=self.key_file or None,
                insecure=self.insecure,
                server_hostname=self.server_hostname or None,
                alpn=self.alpn,
            )
        will = None
        if self.has_will:
            assert self.will_topic is not None
            will = Will(self.will_topic, self.will_payload.encode(), self.will_qos, self.will_retain)
        version = VERSIONS[self.version]
        client_id = self.client_id
        if version == ProtocolVersion.MQTT_3_1_1 and not client_id:
            client_id = f"mqttchat-{secrets.token_hex(4)}"
        options = ClientOptions(
            target=target,
            version=version,
            # A profile that says MQTT 5 still reaches a 3.1.1-only broker; the app then saves 311 in it.
            version_fallback=version == ProtocolVersion.MQTT_5 and _unset(self.auth_method),
            client_id=client_id,
            clean_start=self.clean_start,
            session_expiry=(self.session_expiry or None) if version == ProtocolVersion.MQTT_5 else None,
            keepalive=self.keepalive,
            username=expand(self.username, "username"),
            password=expand(self.password, "password"),
            will=will,
            tls=tls,
        )
        if self.cloud is not None:
            from mqttchat.cloud.presets import apply, build

            options = apply(options, build(self.cloud_settings(environ), environ))
        if not _unset(self.proxy) and (self.proxy or "").strip().lower() in ("none", "direct"):
            proxy = None
        elif not _unset(self.proxy):
            from mqttchat.client.proxy import parse_proxy_url

            proxy = parse_proxy_url(self.proxy or "")
        else:
            from mqttchat.client.proxy import proxy_from_environment

            t = options.target
            proxy = proxy_from_environment(t.host, t.port, tls=t.tls, websocket=t.websocket, environ=environ)
        options = replace(options, proxy=proxy)
        if not _unset(self.auth_method):
            options = self._with_auth(options, expand(self.auth_token, "auth_token"))
        return options

    def _with_auth(self, options: ClientOptions, token: str | None) -> ClientOptions:
        from mqttchat.client.auth import SCRAM_METHODS, ScramAuth, TokenAuth

        method = (self.auth_method or "").upper()
        if method in SCRAM_METHODS:
            user, password = options.effective_username, options.effective_password
            if not user or password is None:
                raise ProfileError(self.name, {"auth_method": f"{method} needs a username and a password"})
            auth: Any = ScramAuth(user, password, method)
            # The password never travels: SCRAM proves it.
            return replace(options, auth=auth, password=None, target=replace(options.target, password=None))
        source = options.credentials
        if token is None and source is not None and hasattr(source, "token"):
            # The cloud table's JWT key: the token goes in AUTH, renewed by re-authentication, not as a password.
            auth = TokenAuth(method, source.token, clock=source.now)
            return replace(options, auth=auth, credentials=None, password=None)
        fixed = token or ""
        return replace(options, auth=TokenAuth(method, lambda: (fixed, None)))


DEFAULT_PROFILE = Profile(name="local", url=DEFAULT_URL)


def _url_password(url: str) -> str | None:
    """The password in a URL's user info, or None (also for URLs that do not parse)."""
    try:
        return parse_url(url).password
    except ValueError:
        return None


def _without_url_password(url: str) -> str:
    """The URL with the password removed from its user info (``mqtt://u:pw@h`` → ``mqtt://u@h``)."""
    text = url if "://" in url else "mqtt://" + url
    parts = urlsplit(text)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return parts._replace(netloc=f"{user}@{hostport}" if user else hostport).geturl()


def _stored_form(profile: Profile) -> Profile:
    """The profile as it will be written: literal passwords dropped unless ``save_password``."""
    if profile.save_password:
        return profile
    if not _is_reference(profile.password):
        profile = replace(profile, password=None)
    if not _is_reference(profile.auth_token):
        profile = replace(profile, auth_token=None)
    kept = tuple(
        (key, value)
        for key, value in profile.cloud_options
        if key not in _CLOUD_SECRETS or (isinstance(value, str) and _is_reference(value))
    )
    profile = replace(profile, cloud_options=kept)
    url_password = _url_password(profile.url)
    if url_password is not None and not _is_reference(url_password):
        profile = replace(profile, url=_without_url_password(profile.url))
    return profile


def _profile_table(profile: Profile, base_dir: Path) -> dict[str, Any]:
    """The ``[profiles.NAME]`` table of a profile in its stored form."""
    table: dict[str, Any] = {"url": profile.url, "version": profile.version, "client_id": profile.client_id}
    if not _unset(profile.username):
        table["username"] = profile.username
    if not _unset(profile.password):
        table["password"] = profile.password
    table["keepalive"] = profile.keepalive
    table["clean_start"] = profile.clean_start
    table["session_expiry"] = profile.session_expiry
    table["subscriptions"] = [
        topic_filter if qos == 0 else {"filter": topic_filter, "qos": qos}
        for topic_filter, qos in profile.subscriptions
    ]
    tls: dict[str, Any] = {}
    for name in ("ca_file", "cert_file", "key_file"):
        value = getattr(profile, name)
        if not _unset(value):
            tls[name] = portable_path(value, base_dir)
    if not _unset(profile.proxy):
        table["proxy"] = profile.proxy
    if not _unset(profile.auth_method):
        table["auth_method"] = profile.auth_method
    if not _unset(profile.auth_token):
        table["auth_token"] = profile.auth_token
    if profile.insecure:
        tls["insecure"] = True
    if not _unset(profile.server_hostname):
        tls["server_hostname"] = profile.server_hostname
    if profile.alpn:
        tls["alpn"] = list(profile.alpn)
    if tls:
        table["tls"] = tls
    if profile.cloud is not None:
        cloud: dict[str, Any] = {"kind": profile.cloud}
        for key, value in profile.cloud_options:
            cloud[key] = portable_path(value, base_dir) if key == "jwt_key_file" and isinstance(value, str) else value
        table["cloud"] = cloud
    if profile.has_will:
        table["will"] = {
            "topic": profile.will_topic,
            "payload": profile.will_payload,
            "qos": profile.will_qos,
            "retain": profile.will_retain,
        }
    return table


class ProfileStore:
    """The connection profiles in ``profiles.toml``.

    Call :meth:`load` to read the file. Every change (:meth:`save_profile`, :meth:`delete_profile`,
    :meth:`set_default`) reads the file again first, so edits made to it meanwhile by hand are kept (not its
    comments or layout, which rewriting loses), and leaves the store holding what is now in the file.
    """

    def __init__(self, path: Path | None = None) -> None:
        """``path``: the profiles file; ``profiles.toml`` in the user's config directory when None."""
        self.path = path if path is not None else profiles_path()
        self._profiles: dict[str, Profile] = {}
        #: The tables as read, written back unchanged for profiles that are not being saved.
        self._tables: dict[str, dict[str, Any]] = {}
        self._default: str | None = None

    @property
    def default_name(self) -> str | None:
        """The ``default`` key: the profile used when none is named, or None."""
        return self._default

    @property
    def base_dir(self) -> Path:
        """What relative file names in the profiles file are relative to: the file's directory."""
        return self.path.absolute().parent

    def load(self) -> None:
        """Read the profiles file. A missing file means no profiles.

        Raises:
            ConfigError: the file cannot be read, is not TOML, or has a wrong key or value (with file, line, key).
        """
        document = read_document(self.path)
        if document is None:
            self._profiles, self._tables, self._default = {}, {}, None
            return
        text, data = document
        reader = _ProfilesReader(self.path, text)
        default, profiles, tables = reader.profiles_document(data, self.base_dir)
        reader.raise_first()
        self._profiles, self._tables, self._default = profiles, tables, default

    def profiles(self) -> list[Profile]:
        """The profiles in file order."""
        return list(self._profiles.values())

    def names(self) -> list[str]:
        return list(self._profiles)

    def get(self, name: str) -> Profile | None:
        return self._profiles.get(name)

    def default_profile(self) -> Profile:
        """The profile named by ``default``; else one named "local"; else :data:`DEFAULT_PROFILE`."""
        if self._default is not None and self._default in self._profiles:
            return self._profiles[self._default]
        return self._profiles.get(DEFAULT_PROFILE.name, DEFAULT_PROFILE)

    def save_profile(self, profile: Profile, make_default: bool = False) -> None:
        """Add the profile, or replace the one with its name, and write the file.

        The password is written only if it is made of ``${NAME}`` references, or if ``profile.save_password`` is
        true: then a literal password (in ``password`` or in the URL) is stored **in clear text**, readable by
        anyone who can read the file (which is then given mode 0600). Without ``save_password`` a literal password
        is left out (of the URL too), and the stored profile has none. The file is replaced atomically.

        Raises:
            ProfileError: the profile is not valid (see :meth:`Profile.validate`).
            ConfigError: the file as it is now cannot be read (it is not overwritten then).
            OSError: the file cannot be written.
        """
        problems = profile.validate()
        if problems:
            raise ProfileError(profile.name, problems)
        self.load()
        tables = dict(self._tables)
        tables[profile.name] = _profile_table(_stored_form(profile), self.base_dir)
        self._write(self._default if not make_default else profile.name, tables)

    def delete_profile(self, name: str) -> bool:
        """Remove a profile (and the ``default`` key if it named it). False if there was no such profile.

        Raises:
            ConfigError: the file as it is now cannot be read.
            OSError: the file cannot be written.
        """
        self.load()
        if name not in self._tables:
            return False
        tables = {key: table for key, table in self._tables.items() if key != name}
        self._write(None if self._default == name else self._default, tables)
        return True

    def set_default(self, name: str | None) -> None:
        """Make the named profile the default (None: no default).

        Raises:
            KeyError: there is no such profile.
            ConfigError: the file as it is now cannot be read.
            OSError: the file cannot be written.
        """
        self.load()
        if name is not None and name not in self._tables:
            raise KeyError(name)
        self._write(name, dict(self._tables))

    def _write(self, default: str | None, tables: dict[str, dict[str, Any]]) -> None:
        document: dict[str, Any] = {}
        if default is not None:
            document["default"] = default
        if tables:
            document["profiles"] = tables
        private = any(
            "password" in table or _url_password(table.get("url", "")) is not None for table in tables.values()
        )
        write_atomically(self.path, tomli_w.dumps(document), private=private)
        self.load()


# --------------------------------------------------------------------------------------------------------------
# Reading the file


class _ProfilesReader(TomlReader):
    """Turns tomllib's dictionary of a profiles file into profiles, collecting errors with their lines."""

    def profiles_document(
        self, data: Mapping[str, object], base_dir: Path
    ) -> tuple[str | None, dict[str, Profile], dict[str, dict[str, Any]]]:
        self.unknown_keys(data, (), ("default", "profiles"))
        default = self.get(data, (), "default", as_string, None)
        profiles: dict[str, Profile] = {}
        tables: dict[str, dict[str, Any]] = {}
        section = self.table(data.get("profiles", {}), ("profiles",), "of [profiles.NAME] tables")
        for name, value in section.items():
            path: KeyPath = ("profiles", name)
            if not isinstance(value, dict):
                self.error(path, f"must be a table: write [profiles.{dotted((name,))}], not {show(value)}")
                continue
            profile = self.profile(name, value, base_dir)
            if profile is not None:
                profiles[name] = profile
                tables[name] = value
        if default is not None and not self.errors and default not in profiles:
            known = ", ".join(repr(name) for name in profiles) or "none"
            self.error(("default",), f"there is no profile {default!r} (the profiles: {known})")
        return default, profiles, tables

    def profile(self, name: str, table: Mapping[str, object], base_dir: Path) -> Profile | None:
        """The profile of a [profiles.NAME] table, or None when it has errors (which are recorded)."""
        prefix: KeyPath = ("profiles", name)
        errors_before = len(self.errors)
        self.unknown_keys(table, prefix, PROFILE_KEYS)
        d = Profile(name)
        tls = self.table(table.get("tls", {}), (*prefix, "tls"), "[profiles.NAME.tls]")
        will = self.table(table.get("will", {}), (*prefix, "will"), "[profiles.NAME.will]")
        cloud = self.table(table.get("cloud", {}), (*prefix, "cloud"), "[profiles.NAME.cloud]")
        self.unknown_keys(tls, (*prefix, "tls"), TLS_KEYS)
        self.unknown_keys(will, (*prefix, "will"), WILL_KEYS)
        self.unknown_keys(cloud, (*prefix, "cloud"), CLOUD_KEYS)
        cloud_prefix: KeyPath = (*prefix, "cloud")
        cloud_options: list[tuple[str, str | int]] = []
        for key in CLOUD_TEXT_KEYS:
            if key in cloud:
                convert = file_name(base_dir) if key == "jwt_key_file" else as_string
                value = self.get(cloud, cloud_prefix, key, convert, None)
                if value is not None:
                    cloud_options.append((key, value))
        cloud_options.extend(
            (key, self.get(cloud, cloud_prefix, key, integer_in(1, MAX_UINT32), 3600))
            for key in CLOUD_NUMBER_KEYS
            if key in cloud
        )
        if cloud and "kind" not in cloud:
            self.error(cloud_prefix, "a [cloud] table needs a kind")
        tls_prefix: KeyPath = (*prefix, "tls")
        will_prefix: KeyPath = (*prefix, "will")
        file_name_in = file_name(base_dir)
        password = self.get(table, prefix, "password", as_optional_string, d.password)
        url = self.get(table, prefix, "url", as_string, d.url)
        will_topic = self.get(will, will_prefix, "topic", as_string, None)
        if will and "topic" not in will:
            self.error(will_prefix, "a will needs a topic")
        url_password = _url_password(url)
        profile = Profile(
            name=name,
            url=url,
            version=self.get(table, prefix, "version", as_integer, d.version),
            client_id=self.get(table, prefix, "client_id", as_string, d.client_id),
            username=self.get(table, prefix, "username", as_optional_string, d.username),
            password=password,
            # A literal password in the file was saved on purpose: saving the profile again keeps it.
            save_password=any(value is not None and not _is_reference(value) for value in (password, url_password)),
            keepalive=self.get(table, prefix, "keepalive", as_integer, d.keepalive),
            clean_start=self.get(table, prefix, "clean_start", as_boolean, d.clean_start),
            session_expiry=self.get(table, prefix, "session_expiry", as_integer, d.session_expiry),
            subscriptions=self.subscriptions(table, prefix, d.subscriptions),
            ca_file=self.get(tls, tls_prefix, "ca_file", file_name_in, d.ca_file),
            cert_file=self.get(tls, tls_prefix, "cert_file", file_name_in, d.cert_file),
            key_file=self.get(tls, tls_prefix, "key_file", file_name_in, d.key_file),
            insecure=self.get(tls, tls_prefix, "insecure", as_boolean, d.insecure),
            server_hostname=self.get(tls, tls_prefix, "server_hostname", as_optional_string, d.server_hostname),
            alpn=self.get(tls, tls_prefix, "alpn", as_strings, d.alpn),
            proxy=self.get(table, prefix, "proxy", as_optional_string, d.proxy),
            auth_method=self.get(table, prefix, "auth_method", as_optional_string, d.auth_method),
            auth_token=self.get(table, prefix, "auth_token", as_optional_string, d.auth_token),
            cloud=self.get(cloud, cloud_prefix, "kind", as_string, None) if cloud else None,
            cloud_options=tuple(cloud_options),
            will_topic=will_topic,
            will_payload=self.get(will, will_prefix, "payload", as_string, d.will_payload),
            will_qos=self.get(will, will_prefix, "qos", as_integer, d.will_qos),
            will_retain=self.get(will, will_prefix, "retain", as_boolean, d.will_retain),
        )
        if len(self.errors) > errors_before:
            return None
        if will_topic == "":
            self.error((*will_prefix, "topic"), "must not be empty (leave out [will] for no will)")
        for field_name, index, problem in profile._problems():
            if field_name == "name":
                self.error(prefix, f"bad profile name: {problem}")
                continue
            path: KeyPath = (*prefix, *_FIELD_KEYS[field_name])
            if index is not None:
                path = (*path, index)
            self.error(path, problem)
        return profile if len(self.errors) == errors_before else None

    def subscriptions(
        self, table: Mapping[str, object], prefix: KeyPath, default: tuple[tuple[str, int], ...]
    ) -> tuple[tuple[str, int], ...]:
        path: KeyPath = (*prefix, "subscriptions")
        if "subscriptions" not in table:
            return default
        value = table["subscriptions"]
        if not isinstance(value, list):
            self.error(path, f"must be an array of topic filters, not {show(value)}")
            return default
        result: list[tuple[str, int]] = []
        for index, item in enumerate(value):
            item_path: KeyPath = (*path, index)
            if isinstance(item, str):
                result.append((item, 0))
            elif isinstance(item, dict):
                self.unknown_keys(item, item_path, SUBSCRIPTION_KEYS)
                if "filter" not in item:
                    self.error(item_path, 'needs a filter: { filter = "a/#", qos = 1 }')
                    continue
                topic_filter = self.get(item, item_path, "filter", as_string, "")
                result.append((topic_filter, self.get(item, item_path, "qos", as_integer, 0)))
            else:
                self.error(item_path, f'must be a topic filter or {{ filter = "a/#", qos = 1 }}, not {show(item)}')
        return tuple(result)
