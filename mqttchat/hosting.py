"""Hosting the embedded broker for this machine: started where nothing listens, taken over when its host quits.

The first mqttchat started with the local default target (``mqtt://127.0.0.1:1883``) finds nothing listening and
starts the embedded broker there; the others connect to it. When the hosting instance quits, the others must not
lose the chat, so:

* the embedded broker keeps retained messages and persistent sessions (subscriptions, queued and in-flight
  messages) in a store in the data directory, ``embedded-broker-{port}.sqlite3``, and acknowledges a message only
  once it is on disk;
* a broker holds its store's lock for as long as it runs (``mqttchat.broker.persistence``), so that the next host
  loads the store only after the last one wrote everything and let go of it;
* every remaining instance whose target is the local default watches its connection; while it is down and the
  port is free, it tries to become the host (lock, load, listen). One wins; the others fail to lock or to bind
  and stay clients. Their clients reconnect within a couple of seconds (the reconnect delay to this local broker
  is capped at ``LOCAL_RECONNECT_MAX_DELAY``) and find their sessions as they were.

Instances of one OS user share the data directory and so the store: a take-over loses nothing that was
acknowledged. An instance of another OS user that takes over starts from its own store.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from mqttchat.labels import plural

if TYPE_CHECKING:
    from mqttchat.broker.server import Broker

log = logging.getLogger("mqttchat.hosting")

#: How long a start waits for the previous host to let go of the store (it is closing its connections).
STORE_WAIT = 5.0
#: How often (seconds, plus up to as much again at random) a disconnected instance looks for a broker to host.
WATCH_INTERVAL = 0.5
#: The reconnect delay's cap for clients of the local embedded broker: a take-over is found within this time.
LOCAL_RECONNECT_MAX_DELAY = 2.0
#: The chat's client ids: ``mqttchat-chat-{identity}-{install}``.
CHAT_CLIENT_PREFIX = "mqttchat-chat-"
#: The explorer's client ids when none is configured: ``mqttchat-explorer-{8 hex digits}``.
EXPLORER_CLIENT_PREFIX = "mqttchat-explorer-"


def explorer_client_id() -> str:
    """A client id for the explorer when none is configured: recognisable in a broker's log and in the list of
    who is connected, where a broker-assigned id says nothing (and some 3.1.1 brokers refuse an empty one)."""
    return EXPLORER_CLIENT_PREFIX + secrets.token_hex(4)


def embedded_store_path(data_dir: Path, port: int) -> Path:
    """Where the embedded broker serving ``port`` keeps its state."""
    return data_dir / f"embedded-broker-{port}.sqlite3"


def port_is_free(host: str, port: int) -> bool:
    """Whether nothing listens on ``host:port`` (a cheap test before loading a store to listen there)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


@dataclass(frozen=True, slots=True)
class Peer:
    """A client connected to the broker this instance hosts."""

    client_id: str
    username: str | None

    @property
    def chat_identity(self) -> str | None:
        """The chat member's identity when this is a chat client (``mqttchat-chat-{identity}-{install}``)."""
        if not self.client_id.startswith(CHAT_CLIENT_PREFIX):
            return None
        rest = self.client_id[len(CHAT_CLIENT_PREFIX) :]
        identity, _, install = rest.rpartition("-")
        if identity and len(install) == 12 and all(c in "0123456789abcdef" for c in install):
            return identity
        return rest

    @property
    def is_explorer(self) -> bool:
        """Whether this is an mqttchat explorer (another instance of the app, or its explorer beside its chat)."""
        rest = self.client_id[len(EXPLORER_CLIENT_PREFIX) :]
        return (
            self.client_id.startswith(EXPLORER_CLIENT_PREFIX)
            and len(rest) == 8
            and all(c in "0123456789abcdef" for c in rest)
        )


def describe_peers(peers: list[Peer], shown: int = 8) -> str:
    """Who is connected, for a sentence: chat members by identity, mqttchat explorers and the other clients
    counted (neutralised text)."""
    from mqttchat.untrusted import printable

    members = sorted({printable(identity, limit=40) for peer in peers if (identity := peer.chat_identity)})
    explorers = sum(1 for peer in peers if peer.is_explorer)
    others = sum(1 for peer in peers if peer.chat_identity is None and not peer.is_explorer)
    parts = []
    if members:
        listed = ", ".join(members[:shown])
        if len(members) > shown:
            listed += f" and {len(members) - shown} more"
        parts.append(f"{listed} (chat)")
    if explorers:
        parts.append(plural(explorers, "mqttchat explorer"))
    if others:
        parts.append(plural(others, "other MQTT client"))
    if len(parts) < 2:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


class EmbeddedHost:
    """The embedded broker on one local address, started (or taken over) with its store, and who uses it."""

    def __init__(self, host: str, port: int, store: Path | None, *, persistent: bool = True) -> None:
        self.host = host
        self.port = port
        self.store = store
        self.persistent = persistent and store is not None
        self.broker: Broker | None = None
        #: Why the store could not be used (the broker then runs in memory), shown to the user.
        self.store_problem: str | None = None

    @property
    def hosting(self) -> bool:
        return self.broker is not None

    async def start(self, *, wait_for_store: float = STORE_WAIT) -> Broker:
        """Start the broker: wait (bounded) for the store's previous owner to let go, load it, listen.

        Raises:
            OSError: the address is in use, or the store is still in use after ``wait_for_store`` seconds.
        """
        from mqttchat.broker.persistence import StoreInUse

        deadline = time.monotonic() + wait_for_store
        while True:
            try:
                return await self._start_once()
            except StoreInUse:
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.1)

    async def try_take_over(self) -> bool:
        """Become the host if the address is free and the store is not held: True when this instance now hosts."""
        from mqttchat.broker.persistence import StoreInUse

        if self.broker is not None or not port_is_free(self.host, self.port):
            return False
        try:
            await self._start_once()
        except StoreInUse:
            return False  # the previous host is still writing its last changes, or another instance won
        except OSError as exc:
            log.info("could not take over hosting on %s:%d: %s", self.host, self.port, exc)
            return False
        return True

    async def _start_once(self) -> Broker:
        from mqttchat.broker.config import default_config, with_overrides
        from mqttchat.broker.persistence import StoreInUse
        from mqttchat.broker.server import Broker

        config = with_overrides(default_config(), port=self.port, host=self.host)
        config = replace(config, log_connections=False)
        if self.persistent:
            config = replace(config, persistence=True, persistence_file=self.store)
        broker = Broker(config)
        try:
            await broker.start()
        except StoreInUse:
            raise
        except (OSError, ValueError) as exc:
            if not self.persistent or _is_address_problem(exc):
                raise
            # The store cannot be used (an unwritable data directory, a damaged file): host in memory rather
            # than not at all, and say so.
            self.store_problem = f"the broker's store {self.store} cannot be used ({exc}): running in memory"
            log.warning("%s", self.store_problem)
            broker = Broker(replace(config, persistence=False))
            await broker.start()
        self.broker = broker
        return broker

    async def stop(self) -> None:
        broker, self.broker = self.broker, None
        if broker is not None:
            await broker.stop()

    def peers(self, own_client_ids: Iterable[str] = ()) -> list[Peer]:
        """The clients connected to this broker, other than this instance's own."""
        if self.broker is None:
            return []
        own = set(own_client_ids)
        found = []
        for conn in list(self.broker.connections):
            client_id = getattr(conn, "client_id", "")
            if not client_id or client_id in own or getattr(conn, "session", None) is None:
                continue  # still logging in, or ours
            session = conn.session
            found.append(Peer(client_id, getattr(session, "username", None)))
        return sorted(found, key=lambda peer: peer.client_id)


def _is_address_problem(exc: BaseException) -> bool:
    import errno

    return isinstance(exc, OSError) and exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES)


async def watch_for_take_over(
    host: EmbeddedHost, connected: Callable[[], bool], on_take_over: Callable[[], None]
) -> None:
    """While this instance's connection is down and the address free, try to become the host (runs until
    cancelled)."""
    while True:
        await asyncio.sleep(WATCH_INTERVAL * (1 + random.random()))
        if host.hosting or connected():
            continue
        try:
            took_over = await host.try_take_over()
        except Exception:
            log.exception("taking over hosting the embedded broker failed")
            continue
        if took_over:
            log.info("took over hosting the embedded broker on %s:%d", host.host, host.port)
            on_take_over()
