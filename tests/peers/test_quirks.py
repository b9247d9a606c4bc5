"""What RabbitMQ 3.10 and aedes 1 do differently, and how mqttchat copes: the real brokers, not a script.

RabbitMQ: 3.1.1 only (it closes on a 5.0 CONNECT), QoS 2 downgraded to 1 and answered by PUBACK, retained messages
only for exact subscriptions and only from the node that stored them, ``.`` in a topic becomes ``/``, a SUBSCRIBE
the user may not read closes the connection. aedes: 3.1.1 only (it answers a 5.0 CONNECT with return code 1).
"""

from __future__ import annotations

import asyncio

import pytest

from mqttchat.client import MQTTClient
from mqttchat.client.errors import RetriesExhausted, SubscriptionRefused
from tests.helpers.rabbitmq import RabbitNode
from tests.peers.brokers import PEERS, CliSub, PeerBroker, resolve_peer, run_cli


@pytest.fixture(params=PEERS)
def peer(request: pytest.FixtureRequest) -> PeerBroker:
    return resolve_peer(request, request.param)


@pytest.fixture(scope="session")
def limited_user(rabbitmq: RabbitNode) -> tuple[str, str]:
    """A RabbitMQ user who may read and write topics under ``allowed/`` only (topic authorisation)."""
    rabbitmq.ctl("add_user", "limited", "limited-pw")
    rabbitmq.ctl("set_permissions", "-p", "/", "limited", ".*", ".*", ".*")
    rabbitmq.ctl("set_topic_permissions", "-p", "/", "limited", "amq.topic", r"^allowed\..*", r"^allowed\..*")
    return "limited", "limited-pw"


async def test_library_falls_back_to_311(peer: PeerBroker, unique: str) -> None:
    async with MQTTClient(peer.url, client_id=f"fb-{unique}", version_fallback=True) as client:
        assert client.session.version == 4
        assert client.version_fallback is not None and "connected with MQTT 3.1.1" in client.version_fallback
        stream = client.messages()
        await client.subscribe(f"fb/{unique}", qos=1)
        assert (await client.publish(f"fb/{unique}", "x", qos=1)).ok
        async with asyncio.timeout(10):
            assert (await stream.get()).payload == b"x"


async def test_library_qos2_publish_completes_once(peer: PeerBroker, unique: str) -> None:
    topic = f"q2/{unique}"
    async with MQTTClient(peer.url, client_id=f"q2s-{unique}", version=4) as sub:
        stream = sub.messages()
        granted = await sub.subscribe(topic, qos=2)
        async with MQTTClient(peer.url, client_id=f"q2p-{unique}", version=4) as pub:
            results = [await pub.publish(topic, str(i), qos=2) for i in range(5)]
            assert all(r.ok for r in results)
            assert {r.downgraded for r in results} == {peer.name == "rabbitmq"}
            assert pub.stats.connects == 1  # no reconnect, nothing sent twice
        got = []
        async with asyncio.timeout(10):
            while len(got) < 5:
                got.append((await stream.get()).payload)
        assert got == [str(i).encode() for i in range(5)]
        assert granted == [1 if peer.name == "rabbitmq" else 2]


def test_cli_without_v_falls_back_and_qos2_succeeds(peer: PeerBroker, unique: str) -> None:
    sub = CliSub(peer.url, "-t", f"cli/{unique}", "-C", "1", "-q", "2")
    done = run_cli("pub", "-L", peer.url, "-t", f"cli/{unique}", "-m", "hello", "-q", "2")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.decode().splitlines()
    assert "does not take MQTT 5.0" in lines[0] and lines[0].endswith("-V 311 skips the 5.0 attempt")
    downgrade = "the broker answered QoS 2 with PUBACK: the message delivered at QoS 1"
    assert any(downgrade in line for line in lines) == (peer.name == "rabbitmq")
    code, out, err = sub.finish()
    assert code == 0, err
    assert out == b"hello\n"


def test_cli_retained_only_on_a_wildcard(peer: PeerBroker, unique: str) -> None:
    topic = f"ret/{unique}/a"
    done = run_cli("pub", "-L", peer.url, "-V", "311", "-t", topic, "-m", "kept", "-q", "1", "-r")
    assert done.returncode == 0, done.stderr
    wildcard = run_cli("sub", "-L", peer.url, "-V", "311", "-t", f"ret/{unique}/#", "--retained-only")
    assert wildcard.returncode == 0, wildcard.stderr
    if peer.retained_on_wildcards:
        assert wildcard.stdout == b"kept\n" and wildcard.stderr == b""
    else:
        assert wildcard.stdout == b""
        assert "does not send retained messages to wildcard subscriptions" in wildcard.stderr.decode()
    cleared = run_cli("sub", "-L", peer.url, "-V", "311", "-t", topic, "--retained-only", "--remove-retained")
    assert cleared.stdout == b"kept\n" and cleared.returncode == 0


async def test_rabbitmq_subscription_refused_by_closing(
    rabbitmq: RabbitNode, limited_user: tuple[str, str], unique: str
) -> None:
    user, password = limited_user
    url = f"mqtt://{user}:{password}@127.0.0.1:{rabbitmq.mqtt_port}"
    async with MQTTClient(url, client_id=f"lim-{unique}", version=4, reconnect=False) as client:
        assert await client.subscribe(f"allowed/{unique}", qos=1) == [1]
    client = MQTTClient(url, client_id=f"lim2-{unique}", version=4, reconnect_min_delay=0.05, reconnect_max_delay=0.2)
    await client.connect()
    with pytest.raises(RetriesExhausted, match=r"in answer to SUBSCRIBE 'secret/#'") as stopped:
        async with asyncio.timeout(30):
            await client.subscribe("secret/#", qos=1)
    assert isinstance(stopped.value.cause, SubscriptionRefused)
    assert client.closed and client.stats.connects == 3


def test_rabbitmq_cli_sub_names_the_refused_subscription(rabbitmq: RabbitNode, limited_user: tuple[str, str]) -> None:
    user, password = limited_user
    done = run_cli("sub", "-p", str(rabbitmq.mqtt_port), "-u", user, "-P", password, "-V", "311", "-t", "secret/#")
    assert done.returncode == 1
    assert b"closed the connection in answer to SUBSCRIBE 'secret/#'" in done.stderr
