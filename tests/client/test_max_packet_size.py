"""The client announces and enforces a Maximum Packet Size: an oversized packet is refused from its header."""

from __future__ import annotations

import asyncio

import pytest

from mqttchat.client import ClientError, MQTTClient
from mqttchat.client.options import DEFAULT_MAX_PACKET_SIZE
from mqttchat.protocol import Connect, Disconnect, Packet, ReasonCode, SubAck, Subscribe
from mqttchat.protocol.wire import encode_varint
from tests.helpers.cli import run
from tests.helpers.fake_broker import connack_then, fake_broker

#: The start of a 200 MB PUBLISH: its fixed header and a little of its body, all a broker needs to send to make a
#: client that reads the header too late buffer it.
HUGE = 200 * 1024 * 1024
HUGE_START = b"\x30" + encode_varint(HUGE) + b"\x00\x01t" + b"x" * 1024


def _suback_then_huge(packet: Packet, version: int) -> bytes:
    if isinstance(packet, Subscribe):
        return SubAck(packet.packet_id, (ReasonCode.SUCCESS,)).encode(version) + HUGE_START
    return b""


@pytest.mark.parametrize("version", [5, 4])
async def test_a_packet_larger_than_announced_is_refused_from_its_header(version: int) -> None:
    with fake_broker(connack_then(_suback_then_huge)) as fake:
        client = MQTTClient(
            f"mqtt://127.0.0.1:{fake.port}", version=version, maximum_packet_size=65_536, reconnect=False
        )
        stream = client.messages()
        await client.connect()
        try:
            await client.subscribe("#")
            async with asyncio.timeout(5):  # the rest of the 200 MB never comes: the header is enough
                with pytest.raises(ClientError, match="exceeds the maximum packet size 65536"):
                    await stream.get()
            assert client.session._reader.buffered == 0
            connect = fake.received[0]
            assert isinstance(connect, Connect)
            if version == 5:
                assert connect.properties.maximum_packet_size == 65_536  # announced
                while not any(isinstance(p, Disconnect) for p in fake.received):
                    await asyncio.sleep(0.01)  # the fake reads in its own thread
                (disconnect,) = [p for p in fake.received if isinstance(p, Disconnect)]
                assert disconnect.reason_code is ReasonCode.PACKET_TOO_LARGE
        finally:
            await client.disconnect()


def test_the_command_line_announces_and_enforces_a_limit_by_default() -> None:
    with fake_broker(connack_then(_suback_then_huge)) as fake:
        result = run("sub", "-p", str(fake.port), "-t", "#", "-W", "10", timeout=30)
    assert result.returncode == 1, result.stderr
    assert result.stderr.decode().splitlines() == [
        f"mqttchat sub: the broker broke the protocol: packet of {HUGE + 5} bytes exceeds the maximum packet size "
        f"{DEFAULT_MAX_PACKET_SIZE}"
    ]
    connect = fake.received[0]
    assert isinstance(connect, Connect) and connect.properties.maximum_packet_size == DEFAULT_MAX_PACKET_SIZE


@pytest.mark.parametrize(
    ("args", "announced"),
    [
        (["--max-packet-size", "100000"], 100_000),
        (["-D", "connect", "maximum-packet-size", "2000"], 2000),
        (["--max-packet-size", "0"], None),
    ],
)
def test_the_limit_is_settable(args: list[str], announced: int | None) -> None:
    with fake_broker(connack_then()) as fake:
        run("pub", "-p", str(fake.port), "-t", "t", "-m", "x", *args, timeout=30)
    connect = fake.received[0]
    assert isinstance(connect, Connect) and connect.properties.maximum_packet_size == announced


def test_the_apps_limit_comes_from_the_settings_and_the_option(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mqttchat.commands import app
    from mqttchat.ui.app import MQTTChatApp

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    seen = []
    monkeypatch.setattr(MQTTChatApp, "run", lambda self: seen.append(self.runtime.options.maximum_packet_size))
    assert app.main(["mqtt://127.0.0.1:1884"]) == 0
    (tmp_path / "mqttchat").mkdir()
    (tmp_path / "mqttchat" / "settings.toml").write_text("max_packet_size_kb = 1024\n")
    assert app.main(["mqtt://127.0.0.1:1884"]) == 0
    assert app.main(["mqtt://127.0.0.1:1884", "--max-packet-size", "5000"]) == 0
    assert seen == [DEFAULT_MAX_PACKET_SIZE, 1024 * 1024, 5000]
