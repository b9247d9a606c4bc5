"""MQTT.js 5 as a client of mqttchat's broker, over TCP and WebSocket, MQTT 5.0 and 3.1.1.

Two (or more) MQTT.js clients talk to each other through our broker, so what is checked is what a client nobody
here wrote sees: QoS 0/1/2 delivery in order and once, retained messages, wills (with a delay in 5.0), persistent
sessions, and the MQTT 5 properties (user properties, content type, response topic and correlation data, message
expiry, topic aliases both ways, subscription identifiers, no-local).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from mqttchat.broker.config import ListenerConfig
from mqttchat.broker.server import Broker
from tests.helpers.brokers import broker_config
from tests.helpers.node import MQTTJSAgent, b64

Start = Callable[[], Awaitable[MQTTJSAgent]]

TRANSPORTS = ["tcp", "ws"]
VERSIONS = [5, 4]


@pytest.fixture
async def our_broker() -> AsyncIterator[Broker]:
    config = broker_config(
        listeners=(ListenerConfig(port=0), ListenerConfig(port=0, protocol="websockets", path="/mqtt")),
    )
    async with Broker(config) as running:
        yield running


def url_of(broker: Broker, transport: str) -> str:
    return broker.listeners[0 if transport == "tcp" else 1].url


async def client(
    start: Start, broker: Broker, transport: str, version: int, client_id: str, **options: Any
) -> MQTTJSAgent:
    agent = await start()
    await agent.connect(url_of(broker, transport), protocolVersion=version, clientId=client_id, **options)
    return agent


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("qos", [0, 1, 2])
async def test_qos_in_order_and_once(our_broker: Broker, mqttjs: Start, transport: str, version: int, qos: int) -> None:
    sub = await client(mqttjs, our_broker, transport, version, "js-sub")
    granted = await sub.subscribe("q/#", qos=qos)
    assert granted[0]["qos"] == qos
    pub = await client(mqttjs, our_broker, transport, version, "js-pub")
    for i in range(50):
        pub.send("publish", topic=f"q/{qos}", payload=str(i), options={"qos": qos})
    await pub.wait_for(lambda e: e["event"] == "published" and e["id"] == pub._next_id)
    received = await sub.wait_messages(50)
    assert [MQTTJSAgent.payload(m).decode() for m in received] == [str(i) for i in range(50)]
    assert {m["qos"] for m in received} == {qos}
    assert not any(m["dup"] for m in received)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_retained_set_delivered_and_cleared(
    our_broker: Broker, mqttjs: Start, transport: str, version: int
) -> None:
    pub = await client(mqttjs, our_broker, transport, version, "js-pub")
    await pub.publish("ret/a", "kept", qos=1, retain=True)
    sub = await client(mqttjs, our_broker, transport, version, "js-sub")
    await sub.subscribe("ret/#", qos=1)
    (message,) = await sub.wait_messages(1)
    assert (MQTTJSAgent.payload(message), message["retain"]) == (b"kept", True)
    await pub.publish("ret/a", b"", qos=1, retain=True)
    late = await client(mqttjs, our_broker, transport, version, "js-late")
    await late.subscribe("ret/#", qos=1)
    await pub.publish("ret/b", "live", qos=1)
    (only,) = await late.wait_messages(1)
    assert (only["topic"], only["retain"]) == ("ret/b", False)  # the cleared message is gone


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_will_published_when_the_connection_is_lost(
    our_broker: Broker, mqttjs: Start, transport: str, version: int
) -> None:
    sub = await client(mqttjs, our_broker, transport, version, "js-sub")
    await sub.subscribe("will/#", qos=1)
    will: dict[str, Any] = {"topic": "will/dev", "payload": "gone", "qos": 1, "retain": False}
    delay = 0
    session: dict[str, Any] = {}
    if version == 5:
        delay = 1
        will["properties"] = {"willDelayInterval": delay, "contentType": "text/plain"}
        # The will waits for its delay or the end of the session, whichever comes first: keep the session.
        session["properties"] = {"sessionExpiryInterval": 60}
    dying = await client(mqttjs, our_broker, transport, version, "js-dying", will=will, **session)
    lost_at = time.monotonic()
    await dying.close()  # the process exits: no DISCONNECT, the broker sees a lost connection
    (message,) = await sub.wait_messages(1, timeout=15)
    assert MQTTJSAgent.payload(message) == b"gone"
    if version == 5:
        assert message["properties"].get("contentType") == "text/plain"
        assert time.monotonic() - lost_at >= delay * 0.9  # not before the will delay


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_will_not_published_after_a_normal_disconnect(
    our_broker: Broker, mqttjs: Start, transport: str, version: int
) -> None:
    sub = await client(mqttjs, our_broker, transport, version, "js-sub")
    await sub.subscribe(["will/#", "done"], qos=1)
    leaving = await client(
        mqttjs, our_broker, transport, version, "js-leaving", will={"topic": "will/x", "payload": "gone", "qos": 1}
    )
    await leaving.end()
    marker = await client(mqttjs, our_broker, transport, version, "js-marker")
    await marker.publish("done", "after", qos=1)
    (message,) = await sub.wait_messages(1)
    assert message["topic"] == "done"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_persistent_session_keeps_subscription_and_queues(
    our_broker: Broker, mqttjs: Start, transport: str, version: int
) -> None:
    session: dict[str, Any] = {"clean": False}
    if version == 5:
        session["properties"] = {"sessionExpiryInterval": 300}
    first = await client(mqttjs, our_broker, transport, version, "js-persistent", **session)
    await first.subscribe("queue/#", qos=1)
    await first.end()
    pub = await client(mqttjs, our_broker, transport, version, "js-pub")
    for i in range(5):
        await pub.publish(f"queue/{i}", str(i), qos=1)
    again = await mqttjs()
    answer = await again.connect(url_of(our_broker, transport), protocolVersion=version, clientId="js-persistent",
                                 **session)  # fmt: skip
    assert answer["sessionPresent"] is True
    received = await again.wait_messages(5)
    assert [MQTTJSAgent.payload(m) for m in received] == [str(i).encode() for i in range(5)]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_v5_properties_pass_through(our_broker: Broker, mqttjs: Start, transport: str) -> None:
    sub = await client(mqttjs, our_broker, transport, 5, "js-sub")
    await sub.subscribe("props/#", qos=1, properties={"subscriptionIdentifier": 42})
    pub = await client(mqttjs, our_broker, transport, 5, "js-pub")
    properties = {
        "userProperties": {"k": "v", "trace": "abc"},
        "contentType": "application/json",
        "responseTopic": "props/reply",
        "correlationData": b64(b"\x00corr\xff"),
        "messageExpiryInterval": 300,
        "payloadFormatIndicator": True,
    }
    await pub.publish("props/a", '{"x": 1}', qos=1, properties=properties)
    (message,) = await sub.wait_messages(1)
    got = message["properties"]
    assert got["userProperties"] == {"k": "v", "trace": "abc"}
    assert got["contentType"] == "application/json"
    assert got["responseTopic"] == "props/reply"
    assert got["correlationData"] == b64(b"\x00corr\xff")
    assert 0 < got["messageExpiryInterval"] <= 300
    assert got["payloadFormatIndicator"] is True
    assert got["subscriptionIdentifier"] == 42


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_message_expiry_drops_what_waited_too_long(our_broker: Broker, mqttjs: Start, transport: str) -> None:
    session = {"clean": False, "properties": {"sessionExpiryInterval": 300}}
    away = await client(mqttjs, our_broker, transport, 5, "js-away", **session)
    await away.subscribe("exp/#", qos=1)
    await away.end()
    pub = await client(mqttjs, our_broker, transport, 5, "js-pub")
    await pub.publish("exp/short", "short", qos=1, properties={"messageExpiryInterval": 1})
    await pub.publish("exp/long", "long", qos=1, properties={"messageExpiryInterval": 600})
    expired_by = time.monotonic() + 2.1
    while time.monotonic() < expired_by:  # let the first one expire while its receiver is away
        await asyncio.sleep(0.1)
    back = await mqttjs()
    await back.connect(url_of(our_broker, transport), protocolVersion=5, clientId="js-away", **session)
    await pub.publish("exp/marker", "marker", qos=1)
    received = await back.wait_messages(2)
    assert [m["topic"] for m in received] == ["exp/long", "exp/marker"]
    assert received[0]["properties"]["messageExpiryInterval"] < 600


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_topic_aliases_from_the_client(our_broker: Broker, mqttjs: Start, transport: str) -> None:
    sub = await client(mqttjs, our_broker, transport, 5, "js-sub")
    await sub.subscribe("alias/#", qos=1)
    pub = await client(mqttjs, our_broker, transport, 5, "js-pub", autoAssignTopicAlias=True)
    for i in range(3):
        await pub.publish("alias/long/topic/name", str(i), qos=1)
    sent = [e for e in pub.events if e["event"] == "packetsend" and e["cmd"] == "publish"]
    assert [e["properties"].get("topicAlias") for e in sent] == [1, 1, 1]
    assert [e["topic"] for e in sent][1:] == ["", ""]  # MQTT.js sent the alias alone after the first
    received = await sub.wait_messages(3)
    assert [(m["topic"], MQTTJSAgent.payload(m)) for m in received] == [
        ("alias/long/topic/name", str(i).encode()) for i in range(3)
    ]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_no_local(our_broker: Broker, mqttjs: Start, transport: str) -> None:
    me = await client(mqttjs, our_broker, transport, 5, "js-me")
    await me.subscribe("room/#", qos=1, nl=True)
    other = await client(mqttjs, our_broker, transport, 5, "js-other")
    await me.publish("room/mine", "mine", qos=1)
    await other.publish("room/theirs", "theirs", qos=1)
    (message,) = await me.wait_messages(1)
    assert message["topic"] == "room/theirs"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_topic_aliases_from_the_broker(our_broker: Broker, mqttjs: Start, transport: str) -> None:
    """A client that accepts aliases (Topic Alias Maximum in CONNECT) gets them: a topic once, then its alias;
    with more topics than aliases, the least recently used topic gives its alias up."""
    sub = await client(mqttjs, our_broker, transport, 5, "js-sub", properties={"topicAliasMaximum": 3})
    await sub.subscribe("alias/#", qos=1)
    pub = await client(mqttjs, our_broker, transport, 5, "js-pub")
    sent = ["alias/long/topic/name"] * 3 + [f"alias/topic/{i}" for i in range(5)] + ["alias/long/topic/name"]
    for i, topic in enumerate(sent):
        await pub.publish(topic, str(i), qos=1)
    received = await sub.wait_messages(len(sent))
    assert [(m["topic"], MQTTJSAgent.payload(m)) for m in received] == [
        (topic, str(i).encode()) for i, topic in enumerate(sent)
    ]
    wire = [e for e in sub.events if e["event"] == "packetreceive" and e["cmd"] == "publish"]
    aliases = [e["properties"]["topicAlias"] for e in wire]
    assert [e["topic"] for e in wire[:3]] == ["alias/long/topic/name", "", ""]  # the alias alone after the first
    assert aliases[:3] == [1, 1, 1] and set(aliases) == {1, 2, 3}  # never more than the client allowed
    assert wire[-1]["topic"] == "alias/long/topic/name"  # its alias was reassigned meanwhile: sent in full again
