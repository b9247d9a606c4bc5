"""Raw-packet exchanges from mosquitto's broker test corpus that mqttchat's broker once got wrong (issue 21): a clean
session resumed by a takeover, packets larger than the client's Maximum Packet Size, a first packet that is not a
CONNECT (or is too large to be one) buffered until the CONNECT timeout, wills beyond ``message_size_limit``, empty
passwords, and SIGHUP reloading the password and ACL files."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mqttchat.broker.auth import PasswordFile, hash_password
from tests.helpers.brokers import RunningBroker
from tests.helpers.conformance import (
    CONNACK,
    DISCONNECT,
    MAXIMUM_PACKET_SIZE,
    PUBACK,
    PUBLISH,
    SESSION_EXPIRY,
    SUBACK,
    TIMEOUT,
    TOPIC_ALIAS,
    V5,
    V311,
    Peers,
    connect_packet,
    encode_properties,
    publish_packet,
    subscribe_packet,
)
from tests.helpers.waiting import until_sync

VERSIONS = [pytest.param(V311, id="v311"), pytest.param(V5, id="v5")]
StartBroker = Callable[..., RunningBroker]


@pytest.fixture
def peers() -> Iterator[Peers]:
    created = Peers()
    yield created
    created.close()


def no_crash(broker: RunningBroker) -> None:
    log = broker.log_text()
    assert "Traceback" not in log, log[log.index("Traceback") :][:2000]


@pytest.fixture
def broker(broker_process: StartBroker) -> Iterator[RunningBroker]:
    running = broker_process()
    yield running
    no_crash(running)


def wire_size(packet: object) -> int:
    """The size on the wire of a packet read by RawClient (type byte, remaining length, body)."""
    body = packet.body  # type: ignore[attr-defined]
    return 1 + (1 if len(body) < 128 else 2 if len(body) < 16_384 else 3) + len(body)


# ================================================================================================================
# 1. A clean session is not resumed by a takeover [MQTT-3.1.2-6, MQTT-3.2.2-2]
# ================================================================================================================


@pytest.mark.parametrize("version", VERSIONS)
def test_clean_session_is_not_resumed_by_a_takeover(broker: RunningBroker, peers: Peers, version: int) -> None:
    """A connects clean (3.1.1 CleanSession 1, 5.0 Session Expiry 0) and subscribes; B takes the client id over
    asking to resume: A's session ended with A's connection, so B gets Session Present 0 and none of A's
    subscriptions."""
    a = peers.raw_client(broker)
    a.connect("takeover-4", version, clean=True)
    a.send(subscribe_packet(1, [("takeover/#", 1)], version=version))
    a.expect(SUBACK)
    b = peers.raw_client(broker)
    resume = encode_properties((SESSION_EXPIRY, 60)) if version == V5 else b"\x00"
    connack = b.connect("takeover-4", version, clean=False, properties=resume)
    assert connack.body[0] & 1 == 0, f"Session Present 1 for a session that ended with its connection: {connack}"
    gone = a.read_until_closed()
    if version == V5:
        assert [(p.type, p.reason_code()) for p in gone] == [(DISCONNECT, 0x8E)]
    # B's own subscription is the fence: whatever reaches B through A's old one would come first.
    b.send(subscribe_packet(2, [("fence", 1)], version=version))
    b.expect(SUBACK)
    pub = peers.raw_client(broker)
    pub.connect("takeover-pub", version)
    pub.send(publish_packet("takeover/1", b"for A only", 1, 1, version=version))
    pub.send(publish_packet("fence", b"fence", 1, 2, version=version))
    first = b.expect(PUBLISH)
    assert first.publish_parts(version)[0] == "fence", f"B received {first.publish_parts(version)[:3]}"


# ================================================================================================================
# 2. Nothing larger than the client's Maximum Packet Size [MQTT-3.1.2-24]
# ================================================================================================================


def test_connack_fits_a_maximum_packet_size_of_5(broker: RunningBroker, peers: Peers) -> None:
    """The default CONNACK announces a topic alias maximum (8 bytes); for a client announcing 5 it is sent without
    it, and the client then may use no topic alias."""
    raw = peers.raw_client(broker)
    raw.send(connect_packet("tiny", V5, properties=encode_properties((MAXIMUM_PACKET_SIZE, 5))))
    connack = raw.expect(CONNACK)
    assert wire_size(connack) <= 5, f"a CONNACK of {wire_size(connack)} bytes"
    assert connack.reason_code() == 0
    raw.send(publish_packet("", b"x", 1, 1, properties=encode_properties((TOPIC_ALIAS, 1))))
    packets = raw.read_until_closed()
    assert all(wire_size(p) <= 5 for p in packets), packets
    assert [(p.type, p.reason_code()) for p in packets] == [(DISCONNECT, 0x94)], "no alias was announced"


def test_qos1_acknowledgement_fits_a_maximum_packet_size_of_5(broker: RunningBroker, peers: Peers) -> None:
    raw = peers.raw_client(broker)
    raw.send(connect_packet("tiny-pub", V5, properties=encode_properties((MAXIMUM_PACKET_SIZE, 5))))
    raw.expect(CONNACK)
    raw.send(publish_packet("nobody/listens", b"x", 1, 7))
    ack = raw.expect(PUBACK)
    assert wire_size(ack) <= 5 and ack.body[:2] == b"\x00\x07"


@pytest.mark.parametrize("limit", [4, 2])
def test_nothing_larger_than_a_maximum_packet_size_below_any_connack(
    broker: RunningBroker, peers: Peers, limit: int
) -> None:
    """No MQTT 5 CONNACK is smaller than 5 bytes: a client announcing less gets none (the connection closes, as
    mosquitto's does), and none of the acknowledgements it pipelined (a 5-byte PUBACK 0x10 once)."""
    raw = peers.raw_client(broker)
    raw.send(
        connect_packet("tiny-4", V5, properties=encode_properties((MAXIMUM_PACKET_SIZE, limit)))
        + publish_packet("nobody/listens", b"x", 1, 1)
    )
    packets = raw.read_until_closed()
    assert [wire_size(p) for p in packets if wire_size(p) > limit] == [], packets


def test_connack_that_cannot_fit_closes_the_connection(broker_process: StartBroker, peers: Peers) -> None:
    """With max_packet_size configured the CONNACK must announce it (5 bytes of property): it cannot fit in 5."""
    broker = broker_process("max_packet_size = 1000")
    raw = peers.raw_client(broker)
    raw.send(connect_packet("tiny", V5, properties=encode_properties((MAXIMUM_PACKET_SIZE, 5))))
    assert raw.read_until_closed() == []
    roomy = peers.raw_client(broker)
    roomy.send(connect_packet("roomy", V5, properties=encode_properties((MAXIMUM_PACKET_SIZE, 64))))
    assert roomy.expect(CONNACK).reason_code() == 0
    no_crash(broker)


# ================================================================================================================
# 3. Before CONNECT: anything else, or more than a CONNECT can be, closes at the header
# ================================================================================================================


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(bytes.fromhex("2080808074"), id="CONNACK-declaring-232MB"),
        pytest.param(bytes.fromhex("3000"), id="PUBLISH"),
        pytest.param(bytes.fromhex("c0"), id="PINGREQ-first-byte"),
        pytest.param(bytes.fromhex("10ffffff7f"), id="CONNECT-declaring-268MB"),
        pytest.param(bytes.fromhex("1081808001"), id="CONNECT-declaring-2MB"),
    ],
)
def test_first_packet_closes_at_its_header(broker_process: StartBroker, peers: Peers, header: bytes) -> None:
    """The connection closes as soon as the header shows it cannot be a CONNECT the broker takes, long before the
    CONNECT timeout (60 s here) and without buffering what follows."""
    broker = broker_process("connect_timeout = 60")
    raw = peers.raw_client(broker)
    raw.send(header)
    assert raw.read_until_closed(TIMEOUT) == []
    no_crash(broker)


def test_a_large_but_reasonable_connect_is_accepted(broker: RunningBroker, peers: Peers) -> None:
    """A CONNECT near the sizes its fields allow (a 65,000-byte will and password) is still a CONNECT."""
    raw = peers.raw_client(broker)
    big = raw.connect("big", V5, will=("will/big", b"w" * 65_000, 0, False), username="u", password=b"p" * 65_000)
    assert big.reason_code() == 0


# ================================================================================================================
# 4. Wills within message_size_limit; empty passwords; SIGHUP
# ================================================================================================================


@pytest.mark.parametrize(("version", "code"), [pytest.param(V311, 5, id="v311"), pytest.param(V5, 0x95, id="v5")])
def test_will_larger_than_message_size_limit_is_refused(
    broker_process: StartBroker, peers: Peers, version: int, code: int
) -> None:
    """A 2-byte will where a 2-byte PUBLISH would be dropped: refused as mosquitto refuses it (5.0: 0x95 Packet too
    large; 3.1.1: 5 Not authorized), and never published."""
    broker = broker_process("message_size_limit = 1")
    watcher = peers.raw_client(broker)
    watcher.connect("watcher", version)
    watcher.send(subscribe_packet(1, [("will/#", 0)], version=version))
    watcher.expect(SUBACK)
    raw = peers.raw_client(broker)
    raw.send(connect_packet("big-will", version, will=("will/x", b"xx", 0, False)))
    packets = raw.read_until_closed()
    assert [(p.type, p.reason_code()) for p in packets] == [(CONNACK, code)]
    small = peers.raw_client(broker)
    small.connect("small-will", version, will=("will/y", b"y", 0, False))
    small.close()  # an unclean end: the 1-byte will goes out
    assert watcher.expect(PUBLISH).publish_parts(version)[:3] == ("will/y", 0, b"y")


def write_passwords(directory: Path, users: dict[str, str], allow_empty: tuple[str, ...] = ()) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "passwd"
    lines = [f"# mqttchat: allow_empty_password {name}" for name in allow_empty]
    lines += [f"{user}:{hash_password(password, 10)}" for user, password in users.items()]
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


@pytest.mark.parametrize(("version", "code"), [pytest.param(V311, 4, id="v311"), pytest.param(V5, 0x86, id="v5")])
def test_empty_password_is_refused_unless_the_file_allows_it(
    broker_process: StartBroker, peers: Peers, tmp_path: Path, version: int, code: int
) -> None:
    """alice's stored hash is of the empty password: still refused. bob is named by the file's directive."""
    passwd = write_passwords(tmp_path / "files", {"alice": "", "bob": ""}, allow_empty=("bob",))
    broker = broker_process(f"allow_anonymous = false\npassword_file = '{passwd}'")
    alice = peers.raw_client(broker)
    alice.send(connect_packet("alice", version, username="alice", password=b""))
    assert [(p.type, p.reason_code()) for p in alice.read_until_closed()] == [(CONNACK, code)]
    bob = peers.raw_client(broker)
    assert bob.connect("bob", version, username="bob", password=b"").reason_code() == 0


def test_sighup_reloads_the_password_and_acl_files(broker_process: StartBroker, peers: Peers, tmp_path: Path) -> None:
    files = tmp_path / "files"
    passwd = write_passwords(files, {"alice": "a-pw", "bob": "b-pw"})
    acl = files / "acl"
    acl.write_text("user alice\ntopic readwrite a/#\nuser bob\ntopic readwrite b/#\n")
    broker = broker_process(f"allow_anonymous = false\npassword_file = '{passwd}'\nacl_file = '{acl}'")
    alice = peers.raw_client(broker)
    alice.connect("alice", V5, username="alice", password="a-pw")
    bob = peers.raw_client(broker)
    bob.connect("bob", V5, username="bob", password="b-pw")
    alice.send(publish_packet("a/1", b"x", 1, 1))
    assert alice.expect(PUBACK).body[:2] == b"\x00\x01"

    def reload(times: int) -> None:
        broker.proc.send_signal(signal.SIGHUP)
        until_sync(
            lambda: broker.log_text().count("mqttchat broker: reload") >= times, what="a reload in the broker's log"
        )

    # carol joins the password file, alice loses a/#, bob leaves the password file.
    pwfile = PasswordFile.load(passwd)
    pwfile.set_password("carol", "c-pw", 10)
    pwfile.remove("bob")
    pwfile.save()
    acl.write_text("user alice\ntopic readwrite z/#\nuser carol\ntopic readwrite c/#\n")
    reload(1)
    assert broker.proc.poll() is None, "SIGHUP ended the broker"
    gone = bob.read_until_closed()
    assert [(p.type, p.reason_code()) for p in gone] == [(DISCONNECT, 0x98)], "bob's user was removed"
    alice.send(publish_packet("a/2", b"x", 1, 2))
    assert alice.expect(PUBACK).body == b"\x00\x02\x87", "alice's rights changed with the ACL"
    carol = peers.raw_client(broker)
    assert carol.connect("carol", V5, username="carol", password="c-pw").reason_code() == 0
    refused = peers.raw_client(broker)
    refused.send(connect_packet("bob-again", V5, username="bob", password="b-pw"))
    assert [(p.type, p.reason_code()) for p in refused.read_until_closed()] == [(CONNACK, 0x86)]
    # A file that no longer reads: the one in force stays, the broker says why and serves on.
    passwd.write_text("carol\n")
    reload(2)
    assert "reload failed" in broker.log_text() and f"{passwd}:1:" in broker.log_text()
    again = peers.raw_client(broker)
    assert again.connect("carol-2", V5, username="carol", password="c-pw").reason_code() == 0
    no_crash(broker)
