"""``mqttchat pub`` and ``sub`` through the blocking client (TCP and TLS): the same output, errors and exit
statuses as through the asyncio client, which the options that need it (WebSocket, proxies, ``pub -l``,
``sub --decode``) still take."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.certs import CertSet
from mqttchat.protocol import Disconnect, Packet, Publish, ReasonCode, SubAck, Subscribe
from tests.client.test_tls_ws import tls_broker
from tests.helpers.brokers import RunningBroker
from tests.helpers.cli import finish, pub, run, start_sub
from tests.helpers.fake_broker import Close, connack_then, fake_broker, rabbit_like


@pytest.mark.parametrize("version", ["5", "311"])
def test_count_stops_at_count_among_retained_and_live(mosquitto: RunningBroker, version: str) -> None:
    for i in range(4):
        pub(mosquitto, "-t", f"count/{i}", "-m", f"r{i}", "-r", "-q", "1", "-V", version)
    result = run("sub", "-p", str(mosquitto.port), "-t", "count/#", "-C", "3", "-v", "-q", "2", "-V", version)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 3
    assert all(line.startswith(b"count/") for line in result.stdout.splitlines())
    sub = start_sub(mosquitto, "-t", "live", "-C", "2", "-q", "2", "-V", version)
    pub(mosquitto, "-t", "live", "-m", "a", "-q", "2", "--repeat", "3", "-V", version)
    code, out, err = finish(sub)
    assert (code, out, err) == (0, b"a\na\n", b"")


def test_refused_credentials_with_mqtt_3_1_1(mosquitto_factory: Callable[..., RunningBroker], tmp_path: Path) -> None:
    passwd = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "bob", "pw"], check=True)
    broker = mosquitto_factory(f"allow_anonymous false\npassword_file {passwd}\n")
    for command in (["pub", "-m", "x"], ["sub", "-C", "1"]):
        result = run(*command, "-p", str(broker.port), "-t", "t", "-u", "bob", "-P", "bad", "-V", "311")
        assert result.returncode == 1
        assert result.stderr.decode().splitlines() == [
            f"mqttchat {command[0]}: the broker refused the connection: not authorized (MQTT 3.1.1 return code 5)"
        ]


def test_a_broker_that_disconnects_ends_sub_with_its_reason() -> None:
    def answer(packet: Packet, version: int) -> bytes:
        if isinstance(packet, Subscribe):
            suback = SubAck(packet.packet_id, (ReasonCode.SUCCESS,)).encode(version)
            return Close(suback + Disconnect(ReasonCode.SERVER_SHUTTING_DOWN).encode(version))
        return b""

    with fake_broker(connack_then(answer)) as fake:
        result = run("sub", "-p", str(fake.port), "-t", "a", "-V", "5", timeout=20)
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == ["mqttchat sub: the broker disconnected: Server shutting down"]


def test_a_broker_that_drops_the_connection_before_puback_fails_pub() -> None:
    def answer(packet: Packet, version: int) -> bytes:
        return Close(b"") if isinstance(packet, Publish) else b""

    with fake_broker(connack_then(answer)) as fake:
        result = run("pub", "-p", str(fake.port), "-t", "a", "-m", "x", "-q", "1", timeout=20)
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == [f"mqttchat pub: connection to mqtt://127.0.0.1:{fake.port} lost"]


def test_a_3_1_1_broker_that_downgrades_qos_2_is_said() -> None:
    """A 5.0 CONNECT closed: 3.1.1 then, said once; QoS 2 answered with PUBACK: said too; exit 0."""
    with fake_broker(rabbit_like) as fake:
        result = run("pub", "-p", str(fake.port), "-t", "a", "-m", "x", "-q", "2", timeout=20)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.decode().splitlines()
    assert lines == [
        f"mqttchat pub: mqtt://127.0.0.1:{fake.port} does not take MQTT 5.0 (it closed the connection before "
        "CONNACK): connected with MQTT 3.1.1; -V 311 skips the 5.0 attempt",
        "mqttchat pub: the broker answered QoS 2 with PUBACK: the message delivered at QoS 1 (at least once, not "
        "exactly once)",
    ]


def test_tls_pub_and_sub(mosquitto_factory: Callable[..., RunningBroker], certs: CertSet) -> None:
    broker = tls_broker(mosquitto_factory, certs)
    port = str(broker.port)
    ok = run("pub", "-p", port, "--cafile", str(certs.ca), "-t", "tls/t", "-m", "sealed", "-r", "-q", "1")
    assert ok.returncode == 0, ok.stderr
    got = run("sub", "-p", port, "--cafile", str(certs.ca), "-t", "tls/t", "-C", "1", "-v")
    assert (got.returncode, got.stdout, got.stderr) == (0, b"tls/t sealed\n", b"")
    refused = run("pub", "-p", port, "--tls", "-t", "tls/t", "-m", "x")  # the system's CAs do not know ours
    assert refused.returncode == 1
    assert b"mqttchat pub: TLS verification of mqtts://127.0.0.1:" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1


#: What ``mqttchat pub`` and ``sub`` (TCP, no -F json, no --decode) must not load: the event loop and what only the
#: asyncio client, the app or a format needs.
NOT_LOADED = (
    "asyncio", "ssl", "logging", "json", "datetime", "secrets", "concurrent",
    "mqttchat.client.client", "mqttchat.client.transport", "mqttchat.client.proxy", "mqttchat.client.auth",
    "mqttchat.broker", "mqttchat.explorer", "mqttchat.ui", "mqttchat.chat", "mqttchat.cloud", "textual", "rich",
)  # fmt: skip


def test_pub_and_sub_load_no_event_loop(mosquitto: RunningBroker) -> None:
    port = str(mosquitto.port)
    code = (
        "import sys\n"
        "from mqttchat.cli import main\n"
        f"assert main(['pub', '-p', '{port}', '-t', 'lean/t', '-m', 'kept', '-r', '-q', '2']) == 0\n"
        f"assert main(['sub', '-p', '{port}', '-t', 'lean/t', '-C', '1', '-q', '1']) == 0\n"
        f"names = {NOT_LOADED!r}\n"
        "print('loaded:' + ','.join(sorted(m for m in sys.modules if m.startswith(names) and"
        " (m in names or m.startswith(tuple(n + '.' for n in names))))))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}  # no *_PROXY
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["kept", "loaded:"]
