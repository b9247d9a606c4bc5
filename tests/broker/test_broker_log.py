"""The broker's log: peer-supplied strings escaped on one line, and every dropped message accounted for."""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from mqttchat.client import MQTTClient
from mqttchat.untrusted import loggable
from tests.helpers.brokers import RunningBroker
from tests.helpers.conformance import (
    CONNACK,
    DISCONNECT_PACKET,
    PUBACK,
    RawClient,
    connect_packet,
    publish_packet,
)

EVIL_ID = "evil\n2026-01-01 00:00:00 INFO FORGED admin connected\x1b[2J\x1b]0;TITLE\x07\\"
EVIL_USER = "mallory\r\nFORGED"
EVIL_TOPIC = "$SYS/\u202egnp.exe"


def test_peer_supplied_strings_reach_the_log_escaped(broker_process: Callable[..., RunningBroker]) -> None:
    """Issue 13, item 12: a client id holding a newline forged a log line ('connected'/'disconnected' formatted it
    with %s) and its escape sequences reached the terminal. Client ids, user names, topics and reasons now go
    through mqttchat.untrusted.loggable()."""
    broker = broker_process()
    client = RawClient(broker.port)
    try:
        client.send(connect_packet(EVIL_ID, username=EVIL_USER))
        assert client.expect(CONNACK).reason_code() == 0
        client.send(publish_packet(EVIL_TOPIC, b"x", 1))  # refused: $SYS is the broker's; logged with its topic
        assert client.expect(PUBACK).reason_code() == 0x87
        client.send(DISCONNECT_PACKET)
        client.read_until_closed()
    finally:
        client.close()
    log = broker.log_text()
    assert "\x1b" not in log and "\x07" not in log and "\r" not in log and "\u202e" not in log
    assert not [line for line in log.splitlines() if "FORGED" in line and not line.startswith("20")]
    assert f"{loggable(EVIL_ID)} connected from" in log
    assert f"user '{loggable(EVIL_USER)}'" in log
    assert f"to '{loggable(EVIL_TOPIC)}' refused" in log
    assert f"{loggable(EVIL_ID)} disconnected" in log


def _drops_logged(records: list[logging.LogRecord]) -> Counter[str]:
    """Messages the drop warnings account for, per client id."""
    counts: Counter[str] = Counter()
    for record in records:
        message = record.getMessage()
        if message.startswith("dropped "):
            for count, client_id in re.findall(r"(\d+) for '([^']*)' \(", message):
                counts[client_id] += int(count)
    return counts


async def test_every_dropped_message_is_logged_under_its_own_client(
    broker_factory: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 20, item 5 and issue 13, item 14: with a queue of 3 the log said "dropped 1 message(s)" while 5 were
    lost (drops in the 5 s after a warning were never logged), naming only the latest client. Each warning now
    names every client with its count, and the warnings add up to every drop."""
    caplog.set_level(logging.WARNING, logger="mqttchat.broker")
    broker = await broker_factory(max_queued_messages=3)
    broker.core.drop_log_interval = 0.2
    for name in ("alice", "bob"):
        away = MQTTClient(broker.url, client_id=name, clean_start=False, session_expiry=600)
        await away.connect()
        await away.subscribe("q/#", qos=1)
        await away.disconnect()
    async with MQTTClient(broker.url, client_id="pub") as pub:
        for i in range(8):
            assert (await pub.publish("q/x", str(i), qos=1)).ok
    sessions = broker.core.sessions
    assert (sessions["alice"].dropped, sessions["bob"].dropped) == (5, 5)
    assert broker.core.sys_topics()["$SYS/broker/messages/dropped"] == "10"
    async with asyncio.timeout(5):
        while _drops_logged(caplog.records) != {"alice": 5, "bob": 5}:
            await asyncio.sleep(0.05)
    assert all("its queue is full" in r.getMessage() for r in caplog.records if r.getMessage().startswith("dropped"))
