"""Peers nobody here wrote: RabbitMQ (one node and a two-node cluster), aedes, and MQTT.js as a client.

RabbitMQ takes 15-25 s to boot on two cores, so one two-node cluster serves the whole session: its first node is
also "the RabbitMQ" of the single-broker tests. Tests on it use topics and client ids of their own (``unique``)
so that they never see each other's messages or sessions. A peer that cannot start fails the tests that need it.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from tests.helpers.node import AedesPorts, MQTTJSAgent, MQTTJSHost, run_aedes
from tests.helpers.rabbitmq import RabbitCluster, RabbitNode, run_rabbitmq


@pytest.fixture(scope="session")
def rabbitmq_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitCluster]:
    """Two RabbitMQ 3.10 nodes clustered on loopback, with the MQTT and WebSocket MQTT plugins, anonymous."""
    with run_rabbitmq(tmp_path_factory.mktemp("rabbitmq"), nodes=2) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def rabbitmq(rabbitmq_cluster: RabbitCluster) -> RabbitNode:
    """One RabbitMQ node (the cluster's first)."""
    return rabbitmq_cluster.first


@pytest.fixture(scope="session")
def aedes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AedesPorts]:
    """aedes 1 (MQTT 3.1.1) over TCP and WebSocket."""
    with run_aedes(tmp_path_factory.mktemp("aedes") / "aedes.log") as ports:
        yield ports


@pytest.fixture
def unique() -> str:
    """A short token for this test's topics and client ids on a shared broker."""
    return secrets.token_hex(4)


@pytest.fixture(scope="session")
def mqttjs_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MQTTJSHost]:
    """One Node.js process for every MQTT.js client of the session."""
    with MQTTJSHost.run(tmp_path_factory.mktemp("mqttjs") / "mqttjs.log") as host:
        yield host


@pytest.fixture
async def mqttjs(mqttjs_host: MQTTJSHost) -> AsyncIterator[Callable[[], Awaitable[MQTTJSAgent]]]:
    """Start MQTT.js clients: ``agent = await mqttjs()``; each is dropped after the test."""
    agents: list[MQTTJSAgent] = []

    async def start() -> MQTTJSAgent:
        agent = mqttjs_host.agent()
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        await agent.close()
