"""Under a stream of small packets the client reads in batches: a read that comes right after another pauses
reading for a millisecond (each read costs system calls and a turn of the event loop, whatever it holds), the
first packet after a quiet spell is read at once, and reads that acknowledgements depend on are never paused."""

from __future__ import annotations

import asyncio

from mqttchat.client import MQTTClient
from mqttchat.client.client import READ_PAUSE
from mqttchat.client.session import SessionState
from mqttchat.client.transport import Link
from tests.helpers.waiting import until

PINGRESP = b"\xd0\x00"


class _Transport:
    """Records what the client asks of its transport."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")

    def write(self, data: bytes) -> None:
        pass


async def test_back_to_back_small_reads_pause_reading_for_a_moment() -> None:
    client = MQTTClient("mqtt://127.0.0.1:1", client_id="batching")
    loop = asyncio.get_running_loop()
    transport = _Transport()
    client._loop = loop
    client._link = Link(transport, "test")  # type: ignore[arg-type]
    client.link_data(PINGRESP)  # the first read after a quiet spell: nothing waits
    assert transport.calls == []
    client.link_data(PINGRESP)  # another at once: the next read waits a moment to take more
    assert transport.calls == ["pause"]
    await until(lambda: transport.calls == ["pause", "resume"], what="reading resumed after the pause")
    client._last_read = loop.time() - 2 * READ_PAUSE  # a quiet spell: the next read is taken at once again
    client.link_data(PINGRESP)
    assert transport.calls == ["pause", "resume"]


async def test_a_pause_ends_with_its_connection() -> None:
    client = MQTTClient("mqtt://127.0.0.1:1", client_id="batching")
    client._loop = asyncio.get_running_loop()
    old, new = _Transport(), _Transport()
    old_link = client._link = Link(old, "old")  # type: ignore[arg-type]
    client.link_data(PINGRESP)
    client.link_data(PINGRESP)
    client._link = Link(new, "new")  # type: ignore[arg-type]  # the connection was lost and made again
    client._read_again(old_link)  # the pause's end, for the old connection
    assert old.calls == ["pause"] and new.calls == []


async def test_reads_that_acknowledgements_depend_on_are_never_paused() -> None:
    """A QoS 1 message is answered with PUBACK: the broker may wait for it to send the next (20 in flight by
    default), so the next read is not paused."""
    client = MQTTClient("mqtt://127.0.0.1:1", client_id="batching")
    client._loop = asyncio.get_running_loop()
    transport = _Transport()
    client._link = Link(transport, "test")  # type: ignore[arg-type]
    client.session.state = SessionState.CONNECTED
    for packet_id in (1, 2, 3):
        client.link_data(b"\x32\x06\x00\x01t" + packet_id.to_bytes(2, "big") + b"\x00")  # PUBLISH QoS 1 to 't'
    assert transport.calls == []
    client.link_data(b"\x30\x04\x00\x01t\x00")  # QoS 0, right after: this stream may wait a moment
    assert transport.calls == ["pause"]
