"""RabbitMQ (Debian's rabbitmq-server with its MQTT plugins) as a test peer: one node or a cluster on loopback.

Everything a node uses is under a temporary folder: its configuration, Mnesia data, logs, the Erlang cookie (in
a ``HOME`` of its own) and an ``epmd`` started here on a port of its own (``ERL_EPMD_PORT``), so that a test
broker never meets a system RabbitMQ or another test run. RabbitMQ cannot listen on port 0, so its ports (AMQP,
MQTT, WebSocket MQTT, Erlang distribution, and the CLI tools' distribution port) are taken free a moment before.
Nodes are stopped by PID (SIGTERM to the Erlang VM, whose PID the node writes to its PID file), then epmd.

A cluster boots all its nodes at once, then joins the others to the first one (``rabbitmqctl stop_app``,
``join_cluster``, ``start_app``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")

#: Seconds for a node to boot (about 15 s on two busy cores) and for a cluster join.
BOOT_TIMEOUT = 120.0


class RabbitMQUnavailable(RuntimeError):
    """RabbitMQ is not installed, or a node did not start: the tests that need it must fail, loudly."""


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free a moment ago on 127.0.0.1 (all held open until all are chosen)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


def rabbitmq_server_exe() -> Path:
    exe = RABBITMQ_BIN / "rabbitmq-server"
    if not exe.exists() or shutil.which("epmd") is None:
        raise RabbitMQUnavailable(
            "Debian's rabbitmq-server is required by the peer tests: apt-get install -y rabbitmq-server"
        )
    return exe


@dataclass
class RabbitNode:
    """One RabbitMQ node: its name, ports, folder and process."""

    name: str
    directory: Path
    env: dict[str, str]
    amqp_port: int
    mqtt_port: int
    ws_port: int
    dist_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/ws"

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return self.mqtt_port

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``rabbitmqctl -n NODE ARGS`` and return its output; raise with the output when it fails."""
        done = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.name, *args],
            env=self.env,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        out = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
        if done.returncode != 0:
            raise RabbitMQUnavailable(f"rabbitmqctl {' '.join(args)} on {self.name} failed ({done.returncode}): {out}")
        return out

    def start(self) -> None:
        out = open(self.directory / "stdout.log", "ab")  # noqa: SIM115 - the child keeps it; closed below
        try:
            self.proc = subprocess.Popen(
                [str(rabbitmq_server_exe())],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            out.close()

    def wait_mqtt(self, timeout: float = BOOT_TIMEOUT) -> None:
        self._wait(lambda: _port_open(self.mqtt_port) and _port_open(self.ws_port), "its MQTT listeners", timeout)

    def _wait(self, ready: object, what: str, timeout: float, interval: float = 0.05) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RabbitMQUnavailable(
                    f"RabbitMQ node {self.name} exited with code {self.proc.returncode} before {what} was up: "
                    + self.log_tail()
                )
            if ready():  # type: ignore[operator]
                return
            time.sleep(interval)
        raise RabbitMQUnavailable(f"RabbitMQ node {self.name}: {what} not up after {timeout:g} s: " + self.log_tail())

    def beam_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int((self.directory / "node.pid").read_text().strip())
        return None

    def stop(self) -> None:
        """SIGTERM to the Erlang VM (a clean shutdown), then to the launcher; SIGKILL after a grace period."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        pid = self.beam_pid()
        targets = [p for p in (pid, proc.pid) if p is not None]
        for p in targets:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            for p in targets:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
            proc.wait(10)
        if pid is not None:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
                time.sleep(0.05)

    def log_tail(self, lines: int = 30) -> str:
        text = ""
        for path in [self.directory / "stdout.log", *sorted((self.directory / "log").glob("*.log"))]:
            if path.exists():
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text


@dataclass
class RabbitCluster:
    """RabbitMQ nodes on loopback sharing one epmd and one Erlang cookie."""

    directory: Path
    epmd_port: int
    epmd: subprocess.Popen[bytes]
    nodes: list[RabbitNode] = field(default_factory=list)
    #: Seconds from the first process started to every node ready (and joined).
    startup_seconds: float = 0.0

    @property
    def first(self) -> RabbitNode:
        return self.nodes[0]

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        if self.epmd.poll() is None:
            self.epmd.terminate()
            try:
                self.epmd.wait(5)
            except subprocess.TimeoutExpired:
                self.epmd.kill()
                self.epmd.wait(5)


def _node(directory: Path, name: str, base_env: dict[str, str], ctl_port: int) -> RabbitNode:
    directory.mkdir(parents=True)
    node = RabbitNode(name, directory, dict(base_env), 0, 0, 0, 0)
    _configure(node, ctl_port)
    return node


def _configure(node: RabbitNode, ctl_port: int) -> None:
    """Fresh ports, configuration and data for ``node`` (again after a port was taken before the node bound it)."""
    directory = node.directory
    shutil.rmtree(directory / "mnesia", ignore_errors=True)
    amqp, mqtt, ws, dist = free_ports(4)
    node.amqp_port, node.mqtt_port, node.ws_port, node.dist_port = amqp, mqtt, ws, dist
    (directory / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = 127.0.0.1:{amqp}\n"
        f"mqtt.listeners.tcp.default = 127.0.0.1:{mqtt}\n"
        f"web_mqtt.tcp.ip = 127.0.0.1\nweb_mqtt.tcp.port = {ws}\n"
        "mqtt.allow_anonymous = true\n"
        "loopback_users = none\n"
        "log.console = false\nlog.file.level = info\n"
    )
    (directory / "enabled_plugins").write_text("[rabbitmq_mqtt,rabbitmq_web_mqtt].\n")
    (directory / "env.conf").write_text("")
    node.env.update(
        {
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(amqp),
            "RABBITMQ_DIST_PORT": str(dist),
            "RABBITMQ_CTL_DIST_PORT_MIN": str(ctl_port),
            "RABBITMQ_CTL_DIST_PORT_MAX": str(ctl_port),
            "RABBITMQ_CONF_ENV_FILE": str(directory / "env.conf"),
            "RABBITMQ_CONFIG_FILE": str(directory / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(directory / "log"),
            "RABBITMQ_PID_FILE": str(directory / "node.pid"),
        }
    )


#: Boots of one node before giving up: a port chosen free may be taken by another program before the node binds it.
BOOT_ATTEMPTS = 3


def _boot(nodes: list[RabbitNode], ctl_port: int) -> None:
    """Start ``nodes`` together and wait for their MQTT listeners; a node that fails to bind a port gets new ones."""
    for node in nodes:
        node.start()
    for node in nodes:
        for attempt in range(1, BOOT_ATTEMPTS + 1):
            try:
                node.wait_mqtt()
                break
            except RabbitMQUnavailable as exc:
                if attempt == BOOT_ATTEMPTS or "eaddrinuse" not in str(exc):
                    raise
                node.stop()
                _configure(node, ctl_port)
                node.start()


@contextlib.contextmanager
def run_rabbitmq(directory: Path, nodes: int = 1) -> Iterator[RabbitCluster]:
    """RabbitMQ with the MQTT and WebSocket MQTT plugins, anonymous access, as one node or a cluster of ``nodes``.

    Raises:
        RabbitMQUnavailable: not installed, or a node did not start or join (with the end of its log).
    """
    rabbitmq_server_exe()
    directory.mkdir(parents=True, exist_ok=True)
    home = directory / "home"
    home.mkdir()
    cookie = home / ".erlang.cookie"
    cookie.write_text(secrets.token_hex(16).upper())
    cookie.chmod(0o400)
    epmd_port, ctl_port = free_ports(2)
    base_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "ERL_EPMD_PORT": str(epmd_port),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
    }
    started = time.monotonic()
    epmd = subprocess.Popen(
        ["epmd", "-port", str(epmd_port), "-address", "127.0.0.1"],
        env=base_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    cluster = RabbitCluster(directory, epmd_port, epmd)
    tag = secrets.token_hex(3)
    try:
        deadline = time.monotonic() + 10
        while not _port_open(epmd_port):
            if epmd.poll() is not None or time.monotonic() > deadline:
                raise RabbitMQUnavailable(f"epmd did not start on 127.0.0.1:{epmd_port}")
            time.sleep(0.02)
        for i in range(nodes):
            cluster.nodes.append(
                _node(directory / f"node{i + 1}", f"mqttchat{tag}n{i + 1}@localhost", base_env, ctl_port)
            )
        first, others = cluster.nodes[0], cluster.nodes[1:]
        _boot(cluster.nodes, ctl_port)
        for node in others:
            node.ctl("stop_app")
            node.ctl("reset")
            node.ctl("join_cluster", first.name)
            node.ctl("start_app")
            node.wait_mqtt()
        cluster.startup_seconds = time.monotonic() - started
        yield cluster
    finally:
        cluster.stop()
