"""Brokers and peers of the conformance tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.brokers import RunningBroker, run_mqttchat_broker
from tests.helpers.conformance import Peers, StartBroker, no_crash, write_security_files


@pytest.fixture
def peers() -> Iterator[Peers]:
    created = Peers()
    yield created
    created.close()


@pytest.fixture
def broker(broker_process: StartBroker) -> Iterator[RunningBroker]:
    """A fresh broker with the default configuration, for tests that leave retained messages or sessions."""
    running = broker_process()
    yield running
    no_crash(running)


@pytest.fixture(scope="session")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    """One default broker for the tests that leave nothing behind (clean sessions, no retained messages), shared
    by the sections."""
    with run_mqttchat_broker(tmp_path_factory.mktemp("shared-broker")) as running:
        yield running
        no_crash(running)


@pytest.fixture(scope="session")
def security(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The TOML keys of a password file (alice, bob) and an ACL, created once."""
    return write_security_files(tmp_path_factory.mktemp("security"))
