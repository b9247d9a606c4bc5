"""``mqttchat pub``/``sub`` with brokers that downgrade QoS 2, speak only MQTT 3.1.1 or skip retained messages."""

from __future__ import annotations

from mqttchat.protocol import Connect, Publish
from tests.helpers.cli import run
from tests.helpers.fake_broker import fake_broker, rabbit_like


def test_pub_qos2_to_a_downgrading_broker_succeeds_and_says_qos1() -> None:
    with fake_broker(rabbit_like) as fake:
        done = run("pub", "-p", str(fake.port), "-V", "311", "-t", "t", "-m", "x", "-q", "2")
        assert done.returncode == 0, done.stderr
        assert done.stderr.decode().splitlines() == [
            "mqttchat pub: the broker answered QoS 2 with PUBACK: the message delivered at QoS 1 "
            "(at least once, not exactly once)"
        ]
        assert len([p for p in fake.received if isinstance(p, Publish)]) == 1


def test_pub_without_v_falls_back_to_311_and_says_so() -> None:
    with fake_broker(rabbit_like) as fake:
        done = run("pub", "-p", str(fake.port), "-t", "t", "-m", "x", "-q", "1")
        assert done.returncode == 0, done.stderr
        assert done.stderr.decode().splitlines() == [
            f"mqttchat pub: mqtt://127.0.0.1:{fake.port} does not take MQTT 5.0 (it closed the connection before "
            "CONNACK): connected with MQTT 3.1.1; -V 311 skips the 5.0 attempt"
        ]
        assert [p.protocol_version for p in fake.received if isinstance(p, Connect)] == [5, 4]


def test_pub_with_v5_forced_does_not_fall_back() -> None:
    with fake_broker(rabbit_like) as fake:
        done = run("pub", "-p", str(fake.port), "-V", "5", "-t", "t", "-m", "x")
        assert done.returncode == 1
        assert b"closed the connection before CONNACK" in done.stderr
        assert fake.connections == 1


def test_v5_only_options_with_311_are_said_to_be_dropped() -> None:
    with fake_broker(rabbit_like) as fake:
        done = run(
            "pub", "-p", str(fake.port), "-V", "311", "-t", "t", "-m", "x",
            "-D", "publish", "user-property", "k", "v", "-D", "publish", "content-type", "text/plain",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stderr.decode().splitlines() == [
            "mqttchat pub: MQTT 3.1.1 has no place for -D publish user-property, -D publish content-type: not sent"
        ]
        sub = run("sub", "-p", str(fake.port), "-V", "311", "-t", "t", "--no-local", "-W", "0.3")
        assert sub.returncode == 27
        assert "mqttchat sub: MQTT 3.1.1 has no place for --no-local: not sent" in sub.stderr.decode()


def test_fallback_also_says_what_it_drops() -> None:
    with fake_broker(rabbit_like) as fake:
        done = run("pub", "-p", str(fake.port), "-t", "t", "-m", "x", "-D", "publish", "user-property", "k", "v")
        assert done.returncode == 0, done.stderr
        assert done.stderr.decode().splitlines()[1] == (
            "mqttchat pub: MQTT 3.1.1 (the broker's version) has no place for -D publish user-property: not sent"
        )


def test_retained_only_on_a_wildcard_says_when_nothing_came() -> None:
    with fake_broker(rabbit_like) as fake:
        done = run("sub", "-p", str(fake.port), "-V", "311", "-t", "home/#", "--retained-only", "--remove-retained")
        assert done.returncode == 0, done.stderr
        assert "no retained message arrived for 'home/#'" in done.stderr.decode()
        assert "does not send retained messages to wildcard subscriptions" in done.stderr.decode()
        exact = run("sub", "-p", str(fake.port), "-V", "311", "-t", "home/hall", "--retained-only")
        assert exact.returncode == 0 and exact.stderr == b""  # an exact topic: nothing to explain
