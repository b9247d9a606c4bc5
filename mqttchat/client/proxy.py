"""Proxies: SOCKS5 and HTTP CONNECT tunnels to the broker, chosen from a URL or from the usual environment variables.

Both handshakes are small and fully specified (RFC 1928 and RFC 1929 for SOCKS5, RFC 9110 section 9.3.6 for
CONNECT), so they are written here over a non-blocking socket; the open tunnel is then handed to the event loop as
the socket of an ordinary connection, and TLS and the WebSocket upgrade run through it unchanged (TLS ends at the
broker: the proxy sees only the host name and port).

SOCKS5 sends the broker's host name to the proxy, which resolves it (remote DNS, for both ``socks5://`` and
``socks5h://``): no DNS query for the broker leaves this machine, and names only the proxy's network knows work.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from mqttchat.client.errors import ConnectError
from mqttchat.protocol.fastinit import dataclass
from mqttchat.untrusted import printable

if TYPE_CHECKING:  # only a tunnel being opened needs the event loop: mqttchat pub/sub read the options without
    import asyncio
    import ipaddress

#: Proxy URL schemes and their default ports.
PROXY_SCHEMES: dict[str, int] = {"socks5": 1080, "socks5h": 1080, "http": 8080}

#: The most an HTTP proxy may answer to CONNECT before the tunnel opens (status line and headers).
MAX_CONNECT_RESPONSE = 16 * 1024

#: What SOCKS5 reply codes mean (RFC 1928 section 6).
SOCKS5_REPLIES = {
    1: "general SOCKS server failure",
    2: "connection not allowed by ruleset",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}


class ProxyError(ConnectError):
    """The proxy could not be reached, refused us, or could not reach the broker."""


@dataclass(frozen=True, slots=True)
class ProxyOptions:
    """A proxy to reach the broker through."""

    scheme: str = "socks5"
    host: str = "127.0.0.1"
    port: int = 1080
    username: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        """The proxy as a URL, without credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def __str__(self) -> str:
        return self.url


def parse_proxy_url(url: str) -> ProxyOptions:
    """Parse ``socks5://[user:password@]host[:port]``, ``socks5h://...`` or ``http://...``.

    Raises:
        ValueError: an unknown scheme, no host or a bad port, explained.
    """
    text = url.strip()
    if "://" not in text:
        text = "http://" + text  # what curl and the environment variables assume
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in PROXY_SCHEMES:
        known = ", ".join(f"{s}://" for s in PROXY_SCHEMES)
        raise ValueError(f"unknown proxy scheme {parts.scheme!r} in {url!r}: use one of {known}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"bad port in proxy {url!r}: it must be a number from 1 to 65535") from None
    if not parts.hostname:
        raise ValueError(f"no host in proxy {url!r}")
    return ProxyOptions(
        scheme=scheme,
        host=parts.hostname,
        port=port or PROXY_SCHEMES[scheme],
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def _env(environ: Mapping[str, str], name: str) -> str:
    """``name`` in lower case first, then upper case (curl's order)."""
    return environ.get(name.lower()) or environ.get(name.upper()) or ""


def bypasses_proxy(host: str, port: int, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` (comma-separated: ``*``, host names and domain suffixes, IP addresses, CIDR
    networks, each with an optional ``:port``) exempts ``host:port``."""
    from ipaddress import ip_address, ip_network

    host = host.lower().strip("[]").rstrip(".")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry_port: int | None = None
        if entry.startswith("["):  # [v6]:port
            inside, _, rest = entry[1:].partition("]")
            entry = inside
            if rest.startswith(":") and rest[1:].isdigit():
                entry_port = int(rest[1:])
        elif entry.count(":") == 1:
            name, _, port_text = entry.partition(":")
            if port_text.isdigit():
                entry, entry_port = name, int(port_text)
        if entry_port is not None and entry_port != port:
            continue
        if address is not None:
            try:
                if address in ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        entry = entry.lstrip("*").lstrip(".").rstrip(".")
        if entry and (host == entry or host.endswith("." + entry)):
            return True
    return False


def proxy_from_environment(
    host: str, port: int, *, tls: bool, websocket: bool, environ: Mapping[str, str] | None = None
) -> ProxyOptions | None:
    """The proxy the environment names for a broker, or None.

    ``wss://`` uses ``HTTPS_PROXY``, ``ws://`` ``HTTP_PROXY``, then every scheme ``ALL_PROXY``; ``NO_PROXY``
    exempts hosts. Plain MQTT and MQTT over TLS use ``ALL_PROXY`` only: an HTTP proxy set for web traffic often
    refuses CONNECT to other ports than 443.

    Raises:
        ValueError: the variable's URL is not a proxy URL (naming the variable).
    """
    environ = os.environ if environ is None else environ
    names = (["https_proxy"] if tls else ["http_proxy"]) if websocket else []
    names.append("all_proxy")
    for name in names:
        value = _env(environ, name).strip()
        if not value:
            continue
        if bypasses_proxy(host, port, _env(environ, "no_proxy")):
            return None
        try:
            return parse_proxy_url(value)
        except ValueError as exc:
            raise ValueError(f"{name.upper()}: {exc}") from None
    return None


# --------------------------------------------------------------------------------------------- handshakes


class _Tunnel:
    """Reads and writes on the proxy's socket during the handshake."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, proxy: ProxyOptions) -> None:
        self.loop = loop
        self.sock = sock
        self.proxy = proxy
        self.buffer = bytearray()

    async def send(self, data: bytes) -> None:
        await self.loop.sock_sendall(self.sock, data)

    async def _more(self) -> None:
        chunk = await self.loop.sock_recv(self.sock, 4096)
        if not chunk:
            raise ProxyError(f"the proxy {self.proxy} closed the connection during its handshake")
        self.buffer += chunk

    async def read_exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            await self._more()
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    async def read_http_head(self) -> bytes:
        while b"\r\n\r\n" not in self.buffer:
            if len(self.buffer) > MAX_CONNECT_RESPONSE:
                raise ProxyError(f"the proxy {self.proxy} sent more than {MAX_CONNECT_RESPONSE} bytes of headers")
            await self._more()
        head, _, rest = bytes(self.buffer).partition(b"\r\n\r\n")
        self.buffer[:] = rest
        return head


def _socks5_address(host: str) -> bytes:
    """The SOCKS5 address of ``host``: an IP address as such, a name as a name for the proxy to resolve."""
    try:
        from ipaddress import ip_address

        address = ip_address(host.strip("[]"))
    except ValueError:
        name = host.encode("idna")
        if not 0 < len(name) < 256:
            raise ProxyError(f"host name {host!r} is too long for SOCKS5") from None
        return b"\x03" + bytes([len(name)]) + name
    if address.version == 4:
        return b"\x01" + address.packed
    return b"\x04" + address.packed


async def _socks5(tunnel: _Tunnel, host: str, port: int) -> None:
    proxy = tunnel.proxy
    methods = b"\x00\x02" if proxy.username is not None else b"\x00"
    await tunnel.send(b"\x05" + bytes([len(methods)]) + methods)
    version, method = await tunnel.read_exactly(2)
    if version != 5:
        raise ProxyError(f"{proxy} does not speak SOCKS5 (it answered version {version})")
    if method == 0x02:
        user = (proxy.username or "").encode()
        password = (proxy.password or "").encode()
        if len(user) > 255 or len(password) > 255:
            raise ProxyError("SOCKS5 user names and passwords are at most 255 bytes")
        await tunnel.send(b"\x01" + bytes([len(user)]) + user + bytes([len(password)]) + password)
        _, status = await tunnel.read_exactly(2)
        if status != 0:
            raise ProxyError(f"the proxy {proxy} refused the user name or password")
    elif method == 0xFF:
        needs = "" if proxy.username is not None else ": it may need a user name and password"
        raise ProxyError(f"the proxy {proxy} accepts none of our authentication methods{needs}")
    elif method != 0x00:
        raise ProxyError(f"the proxy {proxy} chose an authentication method we did not offer ({method})")
    await tunnel.send(b"\x05\x01\x00" + _socks5_address(host) + port.to_bytes(2, "big"))
    version, reply, _, kind = await tunnel.read_exactly(4)
    if version != 5:
        raise ProxyError(f"{proxy} sent an invalid SOCKS5 reply")
    if reply != 0:
        why = SOCKS5_REPLIES.get(reply, f"error {reply}")
        raise ProxyError(f"the proxy {proxy} could not connect to {host}:{port}: {why}")
    if kind == 0x01:
        await tunnel.read_exactly(4 + 2)
    elif kind == 0x04:
        await tunnel.read_exactly(16 + 2)
    elif kind == 0x03:
        (length,) = await tunnel.read_exactly(1)
        await tunnel.read_exactly(length + 2)
    else:
        raise ProxyError(f"{proxy} sent an invalid SOCKS5 reply (address type {kind})")


async def _http_connect(tunnel: _Tunnel, host: str, port: int) -> None:
    proxy = tunnel.proxy
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if proxy.username is not None:
        from base64 import b64encode

        token = b64encode(f"{proxy.username}:{proxy.password or ''}".encode()).decode()
        lines.append(f"Proxy-Authorization: Basic {token}")
    await tunnel.send(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = await tunnel.read_http_head()
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProxyError(f"{proxy} is not an HTTP proxy (it answered {status_line[:80]!r})")
    status = int(parts[1])
    if not 200 <= status < 300:
        reason = printable(parts[2] if len(parts) > 2 else "")[:80]
        hint = ": give a user name and password in the proxy URL" if status == 407 else ""
        raise ProxyError(f"the proxy {proxy} refused CONNECT {authority}: {status} {reason}{hint}")
    if tunnel.buffer:
        raise ProxyError(f"the proxy {proxy} sent data before the tunnel opened")


async def open_tunnel(proxy: ProxyOptions, host: str, port: int) -> socket.socket:
    """Connect to ``proxy`` and have it connect to ``host:port``; return the connected socket (non-blocking).

    Raises:
        ProxyError: the proxy could not be reached or refused, explained. Cancellation closes the socket.
    """
    import asyncio

    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(proxy.host, proxy.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ProxyError(f"cannot resolve the proxy's host {proxy.host!r}: {exc.strerror}") from None
    last: OSError | None = None
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        except BaseException:
            sock.close()
            raise
        tunnel = _Tunnel(loop, sock, proxy)
        try:
            if proxy.scheme == "http":
                await _http_connect(tunnel, host, port)
            else:
                await _socks5(tunnel, host, port)
        except OSError as exc:
            sock.close()
            raise ProxyError(f"the proxy {proxy} failed during its handshake: {exc.strerror or exc}") from None
        except BaseException:
            sock.close()
            raise
        return sock
    reason = (last.strerror or str(last)) if last is not None else "no address"
    raise ProxyError(f"cannot connect to the proxy {proxy}: {reason}")
