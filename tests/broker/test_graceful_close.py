"""After a DISCONNECT or a refusing CONNACK the broker half-closes and drains what the client still sends, so a
client that is still writing reads the reason code instead of a connection reset."""

from __future__ import annotations

import asyncio

from mqttchat.broker.server import Broker
from mqttchat.protocol import ConnAck, Connect, Disconnect, PingReq, Publish, ReasonCode, Will
from mqttchat.protocol.reader import PacketReader
from tests.helpers.brokers import broker_config

#: What the client keeps sending after the packet that gets it disconnected: far more than one read.
STILL_SENDING = PingReq().encode(5) * 400_000


async def exchange(port: int, data: bytes) -> tuple[list[object], bool]:
    """Send ``data`` at once, then read to the end: the packets read, and whether the connection was reset."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    received = b""
    reset = False
    try:
        async with asyncio.timeout(15):
            while chunk := await reader.read(65536):
                received += chunk
    except (ConnectionResetError, BrokenPipeError):
        reset = True
    writer.close()
    packets = PacketReader(5)
    packets.feed(received)
    return list(packets), reset


async def test_disconnect_reaches_a_client_that_is_still_sending() -> None:
    async with Broker(broker_config(receive_maximum=2)) as broker:
        connect = Connect("eager", protocol_version=5).encode(5)
        publishes = b"".join(Publish("t", b"x", qos=2, packet_id=i).encode(5) for i in (1, 2, 3))
        packets, reset = await exchange(broker.port, connect + publishes + STILL_SENDING)
        assert not reset
        assert isinstance(packets[-1], Disconnect)
        assert packets[-1].reason_code is ReasonCode.RECEIVE_MAXIMUM_EXCEEDED


async def test_a_refusing_connack_reaches_a_client_that_is_still_sending() -> None:
    async with Broker(broker_config(maximum_qos=1)) as broker:
        connect = Connect("eager", protocol_version=5, will=Will("gone", b"x", 2))  # a will above QoS 1: refused
        packets, reset = await exchange(broker.port, connect.encode(5) + STILL_SENDING)
        assert not reset
        assert len(packets) == 1 and isinstance(packets[0], ConnAck)
        assert packets[0].reason_code is ReasonCode.QOS_NOT_SUPPORTED
