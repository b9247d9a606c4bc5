"""Serving the app to web browsers (``mqttchat serve``): textual-serve's server, guarded.

textual-serve runs one app process per browser tab and relays its screen and keys over a WebSocket. Anyone who
reaches that WebSocket drives the app, and the app can publish to the broker, so the server here adds:

- a token: off loopback, every request must carry ``?token=…`` (the URL printed at start) or the cookie that the
  page gets with it; requests without are refused (403) before anything else happens;
- on loopback, the ``Host`` header must name a loopback address (a web page elsewhere cannot reach the server
  through a DNS name that it points at 127.0.0.1);
- an ``Origin`` check: a page of another site cannot open the WebSocket from the user's browser;
- a limit on the app processes running at once (each browser tab starts one).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import secrets
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server

log = logging.getLogger("mqttchat.serve")

#: The cookie that carries the token once the page was opened with it.
COOKIE = "mqttchat_serve_token"
DEFAULT_MAX_SESSIONS = 4

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name to bind to) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


class BrowserServer(Server):
    """textual-serve's :class:`~textual_serve.server.Server` with the guards above.

    Args:
        command: the shell command that runs the app (one process per browser tab).
        token: required in every request (None: none required; only on loopback).
        public_url: the address browsers reach the server at, when it is not the one they asked for (a reverse
            proxy); by default each page is told the address it was loaded from.
        max_sessions: app processes at once; a browser tab beyond that is refused (503).
    """

    def __init__(
        self,
        command: str,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        token: str | None = None,
        public_url: str | None = None,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        title: str = "mqttchat",
    ) -> None:
        super().__init__(command, host=host, port=port, title=title, public_url=public_url)
        if token is None and not is_loopback(host):
            raise ValueError(f"serving on {host} (not loopback) needs a token")
        self.token = token
        self.fixed_public_url = public_url
        self.max_sessions = max_sessions
        #: App processes running (browser tabs connected).
        self.sessions = 0
        #: The port listened on, once :meth:`start` has bound it (the one asked for, or the one given for 0).
        self.bound_port: int | None = None
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------------------------------ guards

    def refusal(self, request: web.Request) -> str | None:
        """Why ``request`` is refused, or None."""
        if is_loopback(self.host) and not _names_loopback(request.host):
            return "this server answers only to a loopback address (127.0.0.1, localhost, [::1])"
        if self.token is not None:
            given = request.query.get("token") or request.cookies.get(COOKIE) or ""
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return "open the address with its token, as mqttchat serve printed it"
        origin = request.headers.get("Origin")
        if origin is not None and origin not in self._origins(request):
            return "a page of another site cannot use this server"
        return None

    def _origins(self, request: web.Request) -> set[str]:
        origins = {f"{request.scheme}://{request.host}"}
        if self.fixed_public_url:
            scheme, _, rest = self.fixed_public_url.partition("://")
            origins.add(f"{scheme}://{rest.split('/', 1)[0]}")
        return origins

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()

        @web.middleware
        async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
            why = self.refusal(request)
            if why is not None:
                log.warning("refused %s %s: %s", request.method, request.path, why)
                return web.Response(status=403, text=f"mqttchat serve: {why}\n")
            response = await handler(request)
            if self.token is not None and request.query.get("token") and not response.prepared:
                # The page's own requests (scripts, the WebSocket) then carry the token without it in their URL.
                response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict", path="/")
            return response

        app.middlewares.append(guard)
        return app

    async def handle_index(self, request: web.Request) -> Any:
        if self.fixed_public_url is None:
            # Tell the page the address it came from (the port may have been 0, the host a name for this machine).
            self.public_url = f"{request.scheme}://{request.host}"
        return await super().handle_index(request)

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """One browser tab: its app process, fed the keys and sizes the page sends, until either side closes."""
        if self.sessions >= self.max_sessions:
            text = f"mqttchat serve: {self.max_sessions} browser tabs are open already (--max-sessions)\n"
            raise web.HTTPServiceUnavailable(text=text)
        self.sessions += 1
        websocket = web.WebSocketResponse(heartbeat=15)

        async def close() -> None:
            await websocket.close()

        width = _cells(request.query.get("width"), 80)
        height = _cells(request.query.get("height"), 24)
        session: AppProcess | None = None
        try:
            await websocket.prepare(request)
            session = AppProcess(
                self.command,
                write_bytes=websocket.send_bytes,
                write_str=websocket.send_str,
                close=close,
                download_manager=self.download_manager,
                debug=self.debug,
            )
            await session.start(width, height)
            await self._process_messages(websocket, session)
        except asyncio.CancelledError:  # the server stops
            await websocket.close()
        except Exception:  # a page that sends garbage ends its own session, never the server
            log.exception("browser session ended")
        finally:
            if session is not None:
                await session.stop()
            self.sessions -= 1
        return websocket

    async def on_startup(self, app: web.Application) -> None:
        """Quiet: :meth:`start`'s caller says where the server listens."""

    # ------------------------------------------------------------------------------------------ running

    async def start(self) -> None:
        """Listen (``port`` 0: on a free port, then in ``bound_port``)."""
        app = await self._make_app()
        self._runner = runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self.bound_port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Close the browser sessions (their app processes are told to quit) and stop listening."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    def url(self) -> str:
        """The address to open, with the token when one is needed."""
        if self.fixed_public_url is not None:
            base = self.fixed_public_url.rstrip("/")
        else:
            host = self.host
            if host in ("", "0.0.0.0", "::"):
                host = socket.gethostname()
            elif ":" in host:
                host = f"[{host}]"
            base = f"http://{host}:{self.bound_port}"
        return f"{base}/?token={self.token}" if self.token is not None else f"{base}/"

    async def run(self, ready: Callable[[str], None]) -> None:
        """Serve until SIGINT or SIGTERM; ``ready`` is told the URL once listening."""
        await self.start()
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopped.set)
        try:
            ready(self.url())
            await stopped.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await self.stop()


class AppProcess(AppService):
    """textual-serve's app process for one tab, waited for when it stops (its exit collected, its pipes closed)."""

    async def stop(self) -> None:
        await super().stop()
        process = self._process
        if process is not None:
            await wait_or_kill(process)


async def wait_or_kill(process: asyncio.subprocess.Process, timeout: float = 10.0) -> None:
    """Wait for ``process`` to exit (asked to already), killing it after ``timeout`` seconds: its exit is collected
    and its pipes closed either way."""
    if process.returncode is not None:
        return
    try:
        async with asyncio.timeout(timeout):
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()


def _cells(given: str | None, default: int) -> int:
    """A terminal size the page asked for, within reason (a page could ask for a million columns)."""
    try:
        value = int(given) if given is not None else default
    except ValueError:
        value = default
    return max(10, min(value, 1000))


def _names_loopback(host_header: str) -> bool:
    """Whether a ``Host`` header (``name:port``, ``[v6]:port``) names this machine's loopback."""
    host = host_header
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    else:
        host = host.rpartition(":")[0] if host.count(":") == 1 else host
    return is_loopback(host)
