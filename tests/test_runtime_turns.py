"""The explorer's runtime shares the event loop with the screen (and, by default, with the embedded broker): what a
big read brings reaches the models a bounded number of messages a turn of the loop."""

from __future__ import annotations

import asyncio

from mqttchat.broker.server import Broker
from mqttchat.client import ClientOptions, MQTTClient, parse_url
from mqttchat.runtime import EXPLORER_PACKETS_PER_TURN, Runtime
from tests.helpers.reading import start_reading, stop_reading
from tests.helpers.waiting import until


async def test_a_big_read_reaches_the_models_in_small_turns(broker: Broker) -> None:
    """1,500 messages waiting in the explorer's socket are ingested at most EXPLORER_PACKETS_PER_TURN a turn (the
    client's default, 500, made turns of 30 ms under a flood with the screen's refresh beside them), all of them,
    in order."""
    runtime = Runtime(ClientOptions(parse_url(broker.url), client_id="turns"), (("#", 0),), embed_broker=False)
    await runtime.start()
    publisher = MQTTClient(ClientOptions(parse_url(broker.url), client_id="turns-publisher"))
    count = 1_500
    try:
        await until(lambda: runtime.granted)
        stop_reading(runtime.client)
        await publisher.connect()
        for i in range(count):
            publisher.publish_nowait("turns/t", b"%d" % i)
        await publisher.ping()  # the broker has routed them all, towards the explorer's socket
        await until(lambda: broker.core.stats.messages_sent >= count)
        loop = asyncio.get_running_loop()
        tree = runtime.tree
        per_turn: list[int] = []
        seen = [tree.stats.messages]

        def turn() -> None:  # runs once a turn of the loop: what the models took since the last one
            per_turn.append(tree.stats.messages - seen[0])
            seen[0] = tree.stats.messages
            if seen[0] < count:
                loop.call_soon(turn)

        loop.call_soon(turn)
        start_reading(runtime.client)
        await until(lambda: tree.stats.messages == count)
        assert max(per_turn) == EXPLORER_PACKETS_PER_TURN, per_turn  # the read was big, and handled in turns
        node = tree.get("turns/t")
        assert node is not None and node.last is not None and node.last.payload == b"%d" % (count - 1)
    finally:
        await publisher.disconnect()
        await runtime.stop()
