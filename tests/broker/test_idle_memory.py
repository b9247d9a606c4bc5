"""What an idle connection costs the broker: the objects a connection needs only once it carries QoS 1/2
messages or topic aliases are made on first use (the QoS flows' identifier set and deques alone took about 2 KiB
a connection), and nothing of the bytes read stays behind."""

from __future__ import annotations

import pytest

from mqttchat.broker.connection import BrokerConnection
from mqttchat.protocol import Connect
from tests.helpers.broker_pair import MemoryBroker, MemoryLink
from tests.helpers.memory import bytes_kept

VERSIONS = [pytest.param(4, id="v311"), pytest.param(5, id="v5")]

#: The broker's own objects for an idle connection (the connection, its session, its packet reader, their
#: strings, lists and dicts, its share of the broker's tables) come to 1.1-1.25 KiB; the QoS flows made at once
#: would add about 2 KiB.
IDLE_BUDGET = 1_500


@pytest.mark.parametrize("version", VERSIONS)
def test_an_idle_connection_keeps_only_what_it_uses(version: int) -> None:
    broker = MemoryBroker(receive_maximum=2)
    client = broker.connect("idle", version)
    conn = client.conn
    assert conn is not None and conn.session is not None
    assert conn.session.outgoing_flow is None and conn.session.incoming_flow is None
    assert (conn._aliases is None) is (version == 4), "MQTT 3.1.1 has no topic aliases"
    assert conn._reader.buffered == 0 and conn._reader._buf == b""

    # Made on first use, with the limits negotiated at CONNECT: the broker's Receive Maximum (2) towards the
    # client's QoS 2 messages, the client's window for what the broker sends.
    watcher = broker.connect("watcher", version)
    assert watcher.subscribe("t/#", 2)
    client.publish("t/1", b"one", 2)
    assert watcher.payloads() == [b"one"]
    assert conn.session.incoming_flow is not None and conn.session.incoming_flow.receive_maximum == 2
    watcher_session = watcher.conn.session  # type: ignore[union-attr]
    assert watcher_session is not None and watcher_session.outgoing_flow is not None
    assert watcher_session.outgoing_flow.receive_maximum == watcher_session.window


@pytest.mark.parametrize("version", VERSIONS)
def test_an_idle_connection_costs_the_broker_little_memory(version: int) -> None:
    broker = MemoryBroker()
    count = 200
    connections: list[BrokerConnection] = []

    def connect_idle() -> None:
        for i in range(count):
            link = MemoryLink()
            conn = BrokerConnection(broker.connections, link, f"127.0.0.1:{50_000 + i}", "memory")
            conn.data_received(Connect(f"idle-{i:05d}", protocol_version=version).encode(version))
            broker.clock.run_soon()
            assert link.outbox[:1] == b"\x20", "no CONNACK"
            link.outbox = bytearray()  # read by the client
            connections.append(conn)

    kept = bytes_kept(connect_idle) / count
    assert len(broker.connections) == count
    # The test's own list and links are counted too (about 130 bytes a connection).
    assert kept < IDLE_BUDGET, f"{kept:.0f} bytes a connection"
