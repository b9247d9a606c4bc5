"""Shared fixtures: real brokers on free loopback ports, certificates, and a fault-injection proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from benchmarks.certs import CertSet, make_certs
from benchmarks.netlab import FaultProxy
from mqttchat.broker.config import BrokerConfig
from mqttchat.broker.server import Broker
from tests.helpers.brokers import (
    AmqttPorts,
    RunningBroker,
    broker_config,
    run_amqtt,
    run_mosquitto,
    run_mqttchat_broker,
)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[RunningBroker]:
    """A fresh mosquitto for one test, anonymous access, no persistence."""
    with run_mosquitto(tmp_path / "mosquitto") as broker:
        yield broker


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., RunningBroker]]:
    """Start mosquitto with extra configuration: ``mosquitto_factory("password_file ...")``."""
    with ExitStack() as stack:
        count = 0

        def start(config: str = "", port: int | None = None) -> RunningBroker:
            nonlocal count
            count += 1
            return stack.enter_context(run_mosquitto(tmp_path / f"mosquitto-{count}", config, port))

        yield start


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def amqtt_broker(tmp_path_factory: pytest.TempPathFactory, certs: CertSet) -> Iterator[AmqttPorts]:
    """amqtt with TCP, WebSocket and secure WebSocket listeners (Debian's mosquitto cannot open a WebSocket
    listener here)."""
    with run_amqtt(tmp_path_factory.mktemp("amqtt"), certs.server_cert, certs.server_key) as ports:
        yield ports


@pytest.fixture
async def proxy_factory() -> AsyncIterator[Callable[[int], object]]:
    proxies: list[FaultProxy] = []

    async def start(upstream_port: int) -> FaultProxy:
        proxy = await FaultProxy(upstream_port).start()
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        await proxy.close()


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    """Our broker, in this test's event loop, on a free port, default settings."""
    async with Broker(broker_config()) as running:
        yield running


@pytest.fixture(params=["embedded", "mosquitto"])
async def url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A broker's URL, once for each broker the app is built against: ours (in this test's event loop) and
    mosquitto."""
    if request.param == "mosquitto":
        mosquitto: RunningBroker = request.getfixturevalue("mosquitto")
        yield mosquitto.url
        return
    async with Broker(broker_config()) as running:
        yield running.url


@pytest.fixture
async def broker_factory() -> AsyncIterator[Callable[..., Any]]:
    """Start in-process brokers with overrides: ``await broker_factory(max_queued_messages=5)``."""
    started: list[Broker] = []

    async def start(config: BrokerConfig | None = None, **overrides: Any) -> Broker:
        running = Broker(config if config is not None else broker_config(**overrides))
        await running.start()
        started.append(running)
        return running

    yield start
    for running in started:
        await running.stop()


@pytest.fixture
def broker_process(tmp_path: Path) -> Iterator[Callable[..., RunningBroker]]:
    """Start ``mqttchat broker`` processes: ``broker_process("max_queued_messages = 5")``."""
    with ExitStack() as stack:
        count = 0

        def start(config: str = "") -> RunningBroker:
            nonlocal count
            count += 1
            return stack.enter_context(run_mqttchat_broker(tmp_path / f"broker-{count}", config))

        yield start
