"""Security hardening: refused logins and their cost, ACL bypass attempts, forged chat identities, session
takeover across users, TLS verification both ways, passwords kept out of logs and files, and attacks before login
(memory floods, login floods, user enumeration by timing).

Every scenario runs against one ``mqttchat broker`` process (``-v``) with ``allow_anonymous = false``, a password
file written by ``mqttchat passwd`` (alice, bob, admin), an ACL giving alice and bob their own ``users/%u/#`` plus
the chat ACL shipped in ``mqttchat/chat/chat.acl`` and admin everything, and TLS listeners with good and bad
certificates (``benchmarks/certs.py``). The scenarios before login start brokers of their own where they need
other limits or users (``door_broker``), and log in from 127.0.0.2 too, as a source that is not flooding.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mqttchat.chat
from benchmarks.certs import CertSet, make_certs
from benchmarks.hardening.common import BrokerProcess, Deadline, MemoryWatch, Report
from benchmarks.peers import free_port, wait_for_port
from mqttchat.broker.auth import DEFAULT_ITERATIONS, MOSQUITTO_ITERATIONS, PasswordFile
from mqttchat.client import (
    ClientError,
    ConnackRefused,
    ConnectError,
    Message,
    MQTTClient,
    PublishResult,
    TLSError,
    TLSOptions,
)
from mqttchat.protocol import Connect, Properties, ReasonCode, Will, matches

USERS = ("alice", "bob", "admin")
#: What alice may read under the ACL below, written out independently of the broker's ACL code.
ALICE_READS = ("users/alice/#", "mqttchat/v1/rooms/#", "mqttchat/v1/presence/+", "mqttchat/v1/direct/alice/+")
#: Filters alice tries, and whether they can match only topics she may not read ("forbidden") or some she may
#: ("partly": mosquitto grants those and filters each message; a broker may also refuse them whole).
ALICE_PROBES: tuple[tuple[str, str], ...] = (
    ("#", "partly"),
    ("+/+/#", "partly"),
    ("users/+/secret", "partly"),
    ("users/bob/#", "forbidden"),
    ("$SYS/#", "forbidden"),
    ("$share/g/users/bob/#", "forbidden"),
    ("$share/g/#", "partly"),
    ("users/#", "partly"),
    ("+/bob/#", "forbidden"),
    ("users/bob/+", "forbidden"),
    ("users/bob/secret", "forbidden"),
    ("mqttchat/v1/direct/bob/+", "forbidden"),
    ("mqttchat/v1/direct/+/+", "partly"),
    ("mqttchat/#", "partly"),
    ("$SYS/broker/+", "forbidden"),
    ("$share/g/$SYS/#", "forbidden"),
)
#: Chat topics on which alice tries to speak as someone else (docs/chat-protocol.md), and at which QoS.
FORGED_TOPICS: tuple[tuple[str, int, bool], ...] = (
    ("mqttchat/v1/rooms/lobby/messages/bob", 1, False),
    ("mqttchat/v1/rooms/lobby/messages/bob", 2, False),
    ("mqttchat/v1/rooms/lobby/messages/bob", 0, False),
    ("mqttchat/v1/rooms/lobby/typing/bob", 1, False),
    ("mqttchat/v1/presence/bob", 1, True),
    ("mqttchat/v1/direct/admin/bob", 1, False),
    ("mqttchat/v1/direct/alice/bob", 1, False),
    ("mqttchat/v1/direct/bob/bob", 1, False),
    ("mqttchat/v1/rooms/lobby/messages/admin", 1, False),
    ("mqttchat/v1/rooms/lobby/messages/alice/bob", 1, False),  # an identity level with a level after it
)
V5 = 5
V311 = 4
#: CONNACK codes on the wire.
BAD_CREDENTIALS = {V5: 0x86, V311: 4}
NOT_AUTHORIZED = {V5: 0x87, V311: 5}


# ----------------------------------------------------------------------------------------------------------------
# The lab: certificates, users, ACL, a broker with a plain and five TLS listeners
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class Lab:
    workdir: Path
    certs: CertSet
    broker: BrokerProcess
    passwords: dict[str, str]
    #: Random text in every password tried (right or wrong), so that a log scan can look for it first.
    token: str
    tls_ports: dict[str, int]
    #: Every password sent to the broker, right or wrong.
    tried: set[str] = field(default_factory=set)
    #: The text of every error mqttchat.client raised (scanned for passwords too).
    client_errors: list[str] = field(default_factory=list)
    _wrong: int = 0

    def wrong_password(self) -> str:
        self._wrong += 1
        password = f"wrong-{self.token}-{self._wrong:06d}"
        self.tried.add(password)
        return password

    def url(self, user: str | None, password: str | None = None, port: int | None = None, scheme: str = "mqtt") -> str:
        if user is not None and password is None:
            password = self.passwords[user]
        if password is not None:
            self.tried.add(password)
        credentials = f"{user or ''}:{password}@" if password is not None else (f"{user}@" if user else "")
        return f"{scheme}://{credentials}127.0.0.1:{port or self.broker.port}"

    def client(
        self, user: str | None, *, version: int = V5, client_id: str = "", password: str | None = None, **options: Any
    ) -> MQTTClient:
        """An mqttchat client for ``user`` (None: anonymous), credentials in the URL, no reconnecting."""
        url = self.url(user, password)
        return MQTTClient(url, version=version, client_id=client_id, reconnect=False, connect_timeout=10.0, **options)


def mqttchat_command() -> list[str]:
    exe = shutil.which("mqttchat")
    return [exe] if exe else [sys.executable, "-m", "mqttchat"]


def acl_text() -> str:
    chat_acl = (Path(mqttchat.chat.__file__).parent / "chat.acl").read_text()
    return (
        "# benchmarks.hardening.security: alice and bob own users/<name>/#, admin reads and writes everything\n"
        "user admin\ntopic readwrite #\ntopic readwrite $SYS/#\n\n"
        "pattern readwrite users/%u/#\n\n" + chat_acl
    )


def tls_listener(port: int, cert: Path, key: Path, ca: Path | None = None, require: bool = False) -> str:
    text = f"\n[[listener]]\nport = {port}\nhost = '127.0.0.1'\ncertfile = '{cert}'\nkeyfile = '{key}'\n"
    if ca is not None:
        text += f"cafile = '{ca}'\n"
    if require:
        text += "require_certificate = true\n"
    return text


def setup(workdir: Path) -> Lab:
    directory = workdir / "security"
    directory.mkdir(parents=True, exist_ok=True)
    certs = make_certs(workdir / "certs")
    token = secrets.token_hex(8)
    passwords = {user: f"{user}-{token}-{secrets.token_hex(6)}" for user in USERS}
    pwfile = directory / "passwd"
    for index, user in enumerate(USERS):
        create = ["-c"] if index == 0 else []
        subprocess.run(
            [*mqttchat_command(), "passwd", *create, "-b", str(pwfile), user, passwords[user]],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    (directory / "acl").write_text(acl_text())
    ports = {name: free_port() for name in ("good", "mutual", "expired", "wrong_host", "self_signed")}
    config = (
        "allow_anonymous = false\npassword_file = 'passwd'\nacl_file = 'acl'\nsys_interval = 1\n"
        + tls_listener(ports["good"], certs.server_cert, certs.server_key)
        + tls_listener(ports["mutual"], certs.server_cert, certs.server_key, certs.ca, require=True)
        + tls_listener(ports["expired"], certs.expired_cert, certs.expired_key)
        + tls_listener(ports["wrong_host"], certs.wrong_host_cert, certs.wrong_host_key)
        + tls_listener(ports["self_signed"], certs.self_signed_cert, certs.self_signed_key)
    )
    broker = BrokerProcess(directory, config).start()
    for port in ports.values():
        wait_for_port(port, timeout=15)
    lab = Lab(workdir, certs, broker, passwords, token, ports)
    lab.tried.update(passwords.values())
    return lab


# ----------------------------------------------------------------------------------------------------------------
# Small tools
# ----------------------------------------------------------------------------------------------------------------


async def raw_connack(port: int, connect: Connect, timeout: float = 10.0) -> tuple[int, bool]:
    """Send one CONNECT on a new TCP connection: the CONNACK's code on the wire (-1: none) and whether the broker
    then closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(timeout):
            writer.write(connect.encode())
            first = (await reader.readexactly(1))[0]
            length = shift = 0
            for _ in range(4):
                byte = (await reader.readexactly(1))[0]
                length |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            body = await reader.readexactly(length)
        if first != 0x20 or len(body) < 2:
            return -1, False
        code = body[1]
        closed = False
        if code:
            with contextlib.suppress(TimeoutError, ConnectionError):
                async with asyncio.timeout(3):
                    closed = await reader.read(1) == b""
        return code, closed
    except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
        return -1, False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= end:
            return False
        await asyncio.sleep(0.01)
    return True


def inbox(client: MQTTClient) -> list[Message]:
    messages: list[Message] = []
    client.add_message_handler(messages.append)
    return messages


def has_payload(messages: list[Message], payload: str) -> Callable[[], bool]:
    """A predicate: has a message with exactly ``payload`` arrived in ``messages``?"""
    data = payload.encode()
    return lambda: any(m.payload == data for m in messages)


def alice_may_read(topic: str) -> bool:
    return any(matches(f, topic) for f in ALICE_READS)


def chat_payload(nick: str, text: str, seq: int = 1) -> str:
    return json.dumps({"v": 1, "id": secrets.token_hex(16), "seq": seq, "session": "hardening", "ts": time.time(),
                       "nick": nick, "text": text, "kind": "message"})  # fmt: skip


def code_name(code: int) -> str:
    try:
        return f"0x{code:02X} {ReasonCode(code).title}"
    except ValueError:
        return f"0x{code:02X}"


# ----------------------------------------------------------------------------------------------------------------
# Logins: wrong passwords, unknown users, empty passwords, anonymous; their cost and the broker's responsiveness
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    kind: str
    version: int
    username: str | None
    password: str | None
    expected: int


def bad_logins(lab: Lab) -> list[Attempt]:
    """One of each way to present wrong credentials, for both protocol versions."""
    pw = lab.passwords
    attempts: list[Attempt] = []
    for version in (V5, V311):
        bad, anon = BAD_CREDENTIALS[version], NOT_AUTHORIZED[version]
        attempts += [Attempt(f"wrong password for {user}", version, user, lab.wrong_password(), bad) for user in USERS]
        attempts += [
            Attempt("unknown user", version, "mallory", lab.wrong_password(), bad),
            Attempt("another user's password", version, "alice", pw["bob"], bad),
            Attempt("empty password", version, "alice", "", bad),
            Attempt("user name without password", version, "alice", None, bad),
            Attempt("empty user name", version, "", pw["alice"], bad),
            Attempt("user name in another case", version, "Alice", pw["alice"], bad),
            Attempt("user name with a trailing blank", version, "alice ", pw["alice"], bad),
            Attempt("password with a character more", version, "alice", pw["alice"] + "x", bad),
            Attempt("password with a character less", version, "alice", pw["alice"][:-1], bad),
            Attempt("anonymous", version, None, None, anon),
        ]
        if version == V5:  # 3.1.1 cannot send a password without a user name
            attempts.append(Attempt("password without user name", version, None, pw["alice"], bad))
    lab.tried.update(a.password for a in attempts if a.password)
    return attempts


def connect_packet(attempt: Attempt, client_id: str) -> Connect:
    password = attempt.password.encode() if attempt.password is not None else None
    return Connect(client_id=client_id, username=attempt.username, password=password,
                   protocol_version=attempt.version)  # fmt: skip


async def logins(report: Report, lab: Lab, long: bool, deadline: Deadline) -> None:
    port = lab.broker.port
    total = 2000 if long else len(bad_logins(lab))
    concurrency = 16 if long else 4
    samples = 100 if long else 10
    figures = report.figures

    # The client library's view of a refusal: ConnackRefused with the reason, for both versions.
    for version, user, password, code in (
        (V5, "alice", lab.wrong_password(), 0x86), (V311, "alice", lab.wrong_password(), 0x86),
        (V5, None, None, 0x87), (V311, None, None, 0x87),
    ):  # fmt: skip
        client = lab.client(user, version=version, password=password)
        try:
            await client.connect()
            report.problems.append(f"mqttchat.client connected with bad credentials (MQTT {version})")
        except ConnackRefused as exc:
            lab.client_errors.append(str(exc))
            # (3.1.1 refusals are worded as 3.1.1 names them: "bad user name or password (... return code 4)")
            said = str(exc).lower()
            report.check(exc.reason_code == code and ReasonCode(code).title.lower() in said,
                         f"mqttchat.client (MQTT {version}) said {str(exc)!r}, expected {code_name(code)}")  # fmt: skip
        finally:
            await client.disconnect()

    # Right passwords work (the refusals below are not a broker refusing everyone).
    for version in (V5, V311):
        for user in USERS:
            attempt = Attempt("right password", version, user, lab.passwords[user], 0)
            code, _ = await raw_connack(port, connect_packet(attempt, f"ok-{user}-{version}"))
            report.check(code == 0, f"{user} with the right password (MQTT {version}) got {code_name(code)}")

    # Timing: an unknown user must cost about as much as a known one (no user enumeration by the clock). Each
    # attempt comes from an address of its own (127.0.2.x), so that the limits on failed logins per address (a
    # late read once they are spent) do not weigh on one side.
    known: list[float] = []
    unknown: list[float] = []
    for i in range(samples):
        if deadline.left < 5:
            break
        for side, (username, times) in enumerate((("alice", known), (f"nobody{i}", unknown))):
            attempt = Attempt("timing", V5, username, lab.wrong_password(), 0x86)
            code, took = await timed_connack(port, attempt, f"timing-{i}", f"127.0.2.{2 * i + side + 1}")
            times.append(took)
            report.check(code == 0x86, f"timing attempt for {username} got {code_name(code)}")

    # The attack: every kind of bad login, many at once, while admin pings and bob logs in now and then.
    attempts = refused = accepted = no_answer = left_open = 0
    wrong_code: dict[str, str] = {}
    plan: list[Attempt] = []
    pings: list[float] = []
    legit: list[float] = []
    legit_failed = 0
    stop = asyncio.Event()

    async def attacker() -> None:
        nonlocal attempts, refused, accepted, no_answer, left_open
        while plan and not deadline.expired and not stop.is_set():
            attempt = plan.pop()
            attempts += 1
            code, closed = await raw_connack(port, connect_packet(attempt, f"attack-{attempts}"))
            if code == -1:
                no_answer += 1
            elif code == 0:
                accepted += 1
                wrong_code[attempt.kind] = "accepted"
            else:
                refused += 1
                left_open += not closed
                if code != attempt.expected:
                    wrong_code[f"{attempt.kind} (MQTT {attempt.version})"] = code_name(code)

    async def pinger(admin: MQTTClient) -> None:
        while not stop.is_set():
            try:
                async with asyncio.timeout(10):
                    pings.append(await admin.ping())
            except TimeoutError:
                pings.append(10.0)
            await asyncio.sleep(0.2)

    async def legit_logins() -> None:
        nonlocal legit_failed
        attempt = Attempt("legit", V5, "bob", lab.passwords["bob"], 0)
        number = 0
        while not stop.is_set():
            number += 1
            started = time.perf_counter()
            code, _ = await raw_connack(port, connect_packet(attempt, f"legit-{number}"), timeout=30)
            legit.append(time.perf_counter() - started)
            legit_failed += code != 0
            await asyncio.sleep(0.5)

    while len(plan) < total:
        plan.extend(bad_logins(lab))
    del plan[total:]
    async with lab.client("admin", client_id="admin-pinger") as admin:
        with MemoryWatch(lab.broker.pid) as memory:
            started = time.perf_counter()
            helpers = [asyncio.create_task(pinger(admin)), asyncio.create_task(legit_logins())]
            await asyncio.gather(*(attacker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
            stop.set()
            await asyncio.gather(*helpers)
    iterations = int((lab.broker.directory / "passwd").read_text().split("$")[2])
    started = time.perf_counter()
    hashlib.pbkdf2_hmac("sha512", b"x", b"0123456789ab", iterations)
    local_ms = (time.perf_counter() - started) * 1000

    figures["attempts"] = attempts
    figures["refused"] = refused
    figures["accepted"] = accepted
    figures["attempts/s"] = attempts / elapsed if elapsed else 0.0
    figures["concurrency"] = concurrency
    figures["PBKDF2 iterations"] = iterations
    figures["one PBKDF2 here ms"] = local_ms
    figures["wrong password ms (median)"] = statistics.median(known) * 1000 if known else 0.0
    figures["unknown user ms (median)"] = statistics.median(unknown) * 1000 if unknown else 0.0
    figures["ping max ms"] = max(pings, default=0.0) * 1000
    figures["legit login max ms"] = max(legit, default=0.0) * 1000
    figures["legit logins"] = len(legit)
    figures["broker peak RSS MiB"] = memory.peak_kib / 1024
    report.check(accepted == 0, f"{accepted} bad logins were accepted: {sorted(wrong_code)}")
    report.check(no_answer == 0, f"{no_answer} attempts got no CONNACK")
    report.check(attempts == total, f"only {attempts} of {total} attempts ran before the deadline")
    report.check(refused == attempts, f"{attempts - refused} of {attempts} attempts were not refused")
    report.check(not wrong_code, f"unexpected CONNACK codes: {wrong_code}")
    report.check(left_open == 0, f"{left_open} refused connections were left open by the broker")
    report.check(legit_failed == 0, f"{legit_failed} of {len(legit)} legitimate logins failed during the attack")
    report.check(max(pings, default=0.0) < 1.0, f"the broker answered a ping in {max(pings, default=0.0):.2f} s")
    report.check(max(legit, default=0.0) < 5.0, f"a legitimate login took {max(legit, default=0.0):.2f} s")
    if known and unknown:
        ratio = statistics.median(unknown) / statistics.median(known)
        report.check(0.5 < ratio < 2.0, f"an unknown user is refused {ratio:.2f}x as fast as a wrong password")


# ----------------------------------------------------------------------------------------------------------------
# ACL bypass: alice subscribes beyond her rights; bob and admin publish; nothing of theirs may reach her
# ----------------------------------------------------------------------------------------------------------------


async def acl_bypass(report: Report, lab: Lab, long: bool, deadline: Deadline) -> None:
    rounds = 10 if long else 1
    copies = 20 if long else 2
    bait_by_bob = ("users/bob/secret", "users/bob/a/b/c", "users/bob", "mqttchat/v1/direct/admin/bob")
    bait_by_admin = ("users/bob/from-admin", "mqttchat/v1/direct/bob/admin", "users/admin/private")
    tried = refused = partly_granted = partly_refused = published = controls = controls_missing = 0
    wrong: list[str] = []
    bait_refused: set[str] = set()
    async with (
        lab.client("alice", client_id="alice-v5") as alice5,
        lab.client("alice", client_id="alice-v311", version=V311) as alice4,
        lab.client("bob", client_id="bob-acl") as bob,
        lab.client("admin", client_id="admin-acl") as admin,
    ):
        alices = {V5: alice5, V311: alice4}
        inboxes = {V5: inbox(alice5), V311: inbox(alice4)}
        admin_inbox = inbox(admin)
        await bob.subscribe("users/bob/#", qos=1)
        await admin.subscribe("$SYS/#", qos=0)
        # Retained bait, there before alice subscribes.
        for topic in bait_by_bob[:3]:
            await bob.publish(topic, f"retained from bob {topic}", qos=1, retain=True)
        for version, alice in alices.items():
            codes = await alice.subscribe("users/alice/#", qos=1)
            report.check(codes[0] < 0x80, f"alice (MQTT {version}) may not subscribe to users/alice/#: {codes}")

        def sys_seen() -> int:
            return sum(m.topic.startswith("$SYS/") for m in admin_inbox)

        def sys_seen_since(count: int) -> Callable[[], bool]:
            return lambda: sys_seen() > count

        for round_number in range(rounds):
            for topic_filter, scope in ALICE_PROBES:
                if deadline.left < 10:
                    break
                for version, alice in alices.items():
                    tried += 1
                    code = (await alice.subscribe(topic_filter, qos=1))[0]
                    if code >= 0x80:
                        refused += 1
                        if scope == "partly":
                            partly_refused += 1
                        if version == V5 and code != ReasonCode.NOT_AUTHORIZED:
                            wrong.append(f"{topic_filter}: {code_name(code)}")
                    elif scope == "forbidden":
                        wrong.append(f"{topic_filter} (MQTT {version}) granted QoS {int(code)}")
                    else:
                        partly_granted += 1
                # Bait: published only after the SUBACKs, so that a granted subscription would see it.
                results: list[PublishResult] = []
                for i in range(copies):
                    results += await asyncio.gather(*(bob.publish(t, f"from bob {i}", qos=1) for t in bait_by_bob))
                    results += await asyncio.gather(
                        *(admin.publish(t, f"from admin {i}", qos=1) for t in bait_by_admin)
                    )
                published += len(results)
                bait_refused.update(code_name(r.reason_code) for r in results if not r.ok)
                if "$SYS" in topic_filter and round_number == 0:
                    report.check(await wait_until(sys_seen_since(sys_seen()), 5.0),
                                 "admin saw no $SYS publication within 5 s: the $SYS check proves nothing")  # fmt: skip
                # The control: published after the bait, so once alice has it she has everything sent before.
                controls += 1
                marker = f"control {controls}"
                await admin.publish("users/alice/inbox", marker, qos=1)
                for version in alices:
                    controls_missing += not await wait_until(has_payload(inboxes[version], marker), 5.0)
                for alice in alices.values():
                    await alice.unsubscribe(topic_filter)
        sys_forged = await admin.publish("$SYS/broker/forged", "forged by admin", qos=1)
        await asyncio.sleep(0.2)
    leaked = [m.topic for messages in inboxes.values() for m in messages if not alice_may_read(m.topic)]
    forbidden_filters = sum(scope == "forbidden" for _, scope in ALICE_PROBES)
    figures = report.figures
    figures["subscriptions tried"] = tried
    figures["refused"] = refused
    figures["forbidden filters"] = forbidden_filters * 2
    figures["partly-allowed filters granted"] = partly_granted
    figures["partly-allowed filters refused"] = partly_refused
    figures["partly-allowed policy"] = (
        "refused whole (0x87)" if not partly_granted else "granted, filtered per message" if not partly_refused
        else "mixed"
    )  # fmt: skip
    figures["bait published"] = published
    figures["messages leaked"] = len(leaked)
    figures["controls delivered"] = controls
    figures["$SYS seen by admin"] = sys_seen()
    figures["$SYS publish by admin"] = code_name(sys_forged.reason_code)
    report.check(not leaked, f"{len(leaked)} messages leaked to alice: {sorted(set(leaked))[:8]}")
    report.check(not bait_refused, f"bob's or admin's bait was refused: {sorted(bait_refused)}")
    report.check(controls_missing == 0, f"alice missed {controls_missing} control messages: no proof of absence")
    report.check(not wrong, f"SUBACK for forbidden filters: {wrong[:8]}")
    report.check(sys_forged.reason_code == ReasonCode.NOT_AUTHORIZED,
                 f"admin's publish to $SYS got {code_name(sys_forged.reason_code)}")  # fmt: skip
    report.check(not any(m.topic == "$SYS/broker/forged" for m in admin_inbox), "a client forged a $SYS message")


# ----------------------------------------------------------------------------------------------------------------
# Chat identity: alice publishes as bob (and admin); nothing may reach bob's or anyone's subscriptions
# ----------------------------------------------------------------------------------------------------------------


def forged_will_connect(client_id: str, version: int, lab: Lab, marker: str) -> Connect:
    will = Will("mqttchat/v1/presence/bob", json.dumps({"v": 1, "status": "offline", "nick": marker}).encode(), 1, True)
    return Connect(client_id=client_id, username="alice", password=lab.passwords["alice"].encode(), will=will,
                   protocol_version=version)  # fmt: skip


async def forged_identity(report: Report, lab: Lab, long: bool, deadline: Deadline) -> None:
    rounds = 100 if long else 2
    marker = f"FORGED-{secrets.token_hex(4)}"
    bob_presence = json.dumps({"v": 1, "status": "online", "nick": "bob", "rooms": ["lobby"]})
    sent = refused_v5 = own_refused = controls_missing = 0
    other_codes: dict[str, str] = {}
    async with (
        lab.client("bob", client_id="bob-chat") as bob,
        lab.client("admin", client_id="admin-chat") as admin,
        lab.client("alice", client_id="alice-forger") as alice5,
        lab.client("alice", client_id="alice-forger-311", version=V311) as alice4,
    ):
        bob_inbox, admin_inbox = inbox(bob), inbox(admin)
        await bob.subscribe("mqttchat/v1/rooms/lobby/#", "mqttchat/v1/presence/+", "mqttchat/v1/direct/bob/+", qos=1)
        await admin.subscribe("mqttchat/#", qos=2)
        result = await bob.publish("mqttchat/v1/presence/bob", bob_presence, qos=1, retain=True)
        report.check(result.ok, f"bob's own presence was refused: {code_name(result.reason_code)}")
        for round_number in range(rounds):
            if deadline.left < 10:
                break
            for version, alice in ((V5, alice5), (V311, alice4)):
                results = await asyncio.gather(*(
                    alice.publish(topic, chat_payload("bob", f"{marker} {round_number}"), qos=qos, retain=retain)
                    for topic, qos, retain in FORGED_TOPICS
                ))  # fmt: skip
                sent += len(results)
                for (topic, qos, _), result in zip(FORGED_TOPICS, results, strict=True):
                    if version == V5 and qos:
                        if result.reason_code == ReasonCode.NOT_AUTHORIZED:
                            refused_v5 += 1
                        else:
                            other_codes[f"{topic} QoS {qos}"] = code_name(result.reason_code)
                # The control, on the same connection after the forgeries: once it arrives, they would have too.
                control = chat_payload("alice", f"control {version} {round_number}")
                own = await alice.publish("mqttchat/v1/rooms/lobby/messages/alice", control, qos=1)
                own_refused += not own.ok
                for messages in (bob_inbox, admin_inbox):
                    controls_missing += not await wait_until(has_payload(messages, control), 5.0)
        # Wills: alice connects with a will on bob's presence and vanishes without DISCONNECT.
        wills = 0
        for version in (V5, V311):
            code, _ = await raw_connack(
                lab.broker.port, forged_will_connect(f"alice-will-{version}", version, lab, marker)
            )
            report.check(code == 0, f"alice's connection with a will got {code_name(code)}")
            wills += code == 0
        await asyncio.sleep(0.5)
        forged_wills_refused = lab.broker.log_text().count(
            "on 'mqttchat/v1/presence/bob' not published: not authorized"
        )
        # A late subscriber must find bob's own retained presence, not a forgery.
        async with lab.client("admin", client_id="admin-late") as late:
            late_inbox = inbox(late)
            await late.subscribe("mqttchat/v1/presence/bob", qos=1)
            got = await wait_until(lambda: bool(late_inbox), 5.0)
            retained = late_inbox[0].payload.decode(errors="replace") if late_inbox else ""
        report.check(got, "bob's retained presence is gone")
    delivered = [m.topic for m in (*bob_inbox, *admin_inbox, *late_inbox) if marker.encode() in m.payload]
    figures = report.figures
    figures["forged publishes"] = sent
    figures["PUBACK/PUBREC 0x87 (MQTT 5)"] = refused_v5
    figures["forged messages delivered"] = len(delivered)
    figures["forged wills"] = wills
    figures["forged wills refused"] = forged_wills_refused
    report.check(not delivered, f"{len(delivered)} forged messages delivered: {sorted(set(delivered))}")
    report.check(not other_codes, f"forged publishes not refused with 0x87: {other_codes}")
    report.check(own_refused == 0, f"{own_refused} of alice's messages as herself were refused")
    report.check(controls_missing == 0, f"{controls_missing} of alice's own messages did not arrive: no proof")
    report.check(forged_wills_refused >= wills, f"only {forged_wills_refused} of {wills} forged wills were refused")
    report.check(marker not in retained, "a forged retained presence replaced bob's")


# ----------------------------------------------------------------------------------------------------------------
# Session takeover: alice connects with bob's client id (mqttchat's chat makes its ids unguessable with a random
# per-installation part; this scenario gives alice the id anyway, to test what the broker does with it)
#
# MQTT ties a session to the client id, not to the user. mosquitto 2.0 lets alice close bob's connection and take
# his session over (then, checking the ACL again, drops what was queued for him). With passwords, mqttchat's
# broker refuses a client id whose session belongs to another user: bob keeps his connection and his messages.
# ----------------------------------------------------------------------------------------------------------------


async def session_takeover(report: Report, lab: Lab, long: bool, deadline: Deadline) -> None:
    queued = 20 if long else 3
    bob_id = "mqttchat-chat-bob"
    persistent: dict[str, Any] = {"clean_start": False, "session_expiry": 600}
    marker = f"for-bob-{secrets.token_hex(4)}"
    outcomes: dict[str, str] = {}
    leaked = {"queued": 0, "live": 0}

    async def alice_tries(label: str, **options: Any) -> None:
        """alice logs in with her own password and bob's client id; what she gets of bob's is counted."""
        alice = lab.client("alice", client_id=bob_id, **options)
        alice_inbox = inbox(alice)
        try:
            caps = await alice.connect()
        except ConnackRefused as exc:
            outcomes[label] = f"refused ({code_name(exc.reason_code)})"
            return
        outcomes[label] = "resumed bob's session" if caps.session_present else "accepted, fresh session"
        await alice.subscribe("users/alice/#", qos=1)
        await admin.publish("users/alice/inbox", f"control {label}", qos=1)
        await wait_until(has_payload(alice_inbox, f"control {label}"), 5.0)
        leaked["queued"] += sum(marker.encode() in m.payload for m in alice_inbox)
        before = sum(marker.encode() in m.payload for m in alice_inbox)
        await admin.publish("mqttchat/v1/direct/bob/admin", chat_payload("admin", f"{marker} live"), qos=1)
        await admin.publish("users/alice/inbox", f"control 2 {label}", qos=1)
        await wait_until(has_payload(alice_inbox, f"control 2 {label}"), 5.0)
        leaked["live"] += sum(marker.encode() in m.payload for m in alice_inbox) - before
        await alice.disconnect()

    async with lab.client("admin", client_id="admin-takeover") as admin:
        bob = lab.client("bob", client_id=bob_id, **persistent)
        await bob.connect()
        await bob.subscribe("mqttchat/v1/direct/bob/+", qos=1)
        await bob.disconnect()
        for i in range(queued):
            await admin.publish("mqttchat/v1/direct/bob/admin", chat_payload("admin", f"{marker} queued {i}"), qos=1)
        await alice_tries("while bob is away, resuming", **persistent)
        await alice_tries("while bob is away, clean start")
        # bob comes back: is everything still there for him?
        bob = lab.client("bob", client_id=bob_id, **persistent)
        bob_inbox = inbox(bob)
        await bob.connect()
        await bob.subscribe("mqttchat/v1/direct/bob/+", qos=1)
        await admin.publish("mqttchat/v1/direct/bob/admin", "control 3", qos=1)
        await wait_until(has_payload(bob_inbox, "control 3"), 5.0)
        bob_got = len({m.payload for m in bob_inbox if f"{marker} queued".encode() in m.payload})
        # While bob is connected, alice tries his client id again.
        await alice_tries("while bob is connected, clean start")
        kicked = await wait_until(lambda: not bob.connected, 1.0)
        reason = bob.last_disconnect.disconnect.reason_code if bob.last_disconnect is not None else None
        await bob.disconnect()
    figures = report.figures
    figures.update({f"alice with bob's client id {label}": outcome for label, outcome in outcomes.items()})
    figures["queued for bob"] = queued
    figures["queued messages leaked"] = leaked["queued"]
    figures["live messages leaked"] = leaked["live"]
    figures["queued messages bob lost"] = queued - bob_got
    figures["bob's live connection closed by alice"] = (
        f"yes ({code_name(reason)})" if kicked and reason is not None else "yes" if kicked else "no"
    )
    report.check(leaked["queued"] == 0,
                 f"{leaked['queued']} messages queued for bob were delivered to alice, who used his client id with "
                 f"her own credentials")  # fmt: skip
    report.check(leaked["live"] == 0, f"{leaked['live']} live messages for bob were delivered to alice")
    report.check(bob_got == queued, f"bob lost {queued - bob_got} queued messages to alice's use of his client id")
    report.check(not kicked, "alice closed bob's connection by using his client id")


# ----------------------------------------------------------------------------------------------------------------
# TLS: the client refuses bad servers; a require_certificate listener refuses bad clients
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Handshake:
    name: str
    listener: str  # a key of Lab.tls_ports, or "plain"
    tls: TLSOptions | None
    #: None: the connection must succeed; else the error class and a pattern its message must match.
    error: type[ClientError] | None = None
    reason: str = ""
    host: str = "127.0.0.1"
    password: str | None = None


def handshakes(lab: Lab) -> list[Handshake]:
    certs = lab.certs
    ca = str(certs.ca)

    def with_cert(stem: str) -> TLSOptions:
        return TLSOptions(ca_file=ca, cert_file=str(getattr(certs, f"{stem}_cert")),
                          key_file=str(getattr(certs, f"{stem}_key")))  # fmt: skip

    return [
        Handshake("server certificate expired", "expired", TLSOptions(ca_file=ca), TLSError, "certificate has expired"),
        Handshake("server certificate for another host (IP)", "wrong_host", TLSOptions(ca_file=ca), TLSError,
                  r"mismatch.*127\.0\.0\.1"),
        Handshake("server certificate for another host (name)", "wrong_host", TLSOptions(ca_file=ca), TLSError,
                  r"[Hh]ostname mismatch.*localhost", host="localhost"),
        Handshake("self-signed server certificate", "self_signed", TLSOptions(ca_file=ca), TLSError,
                  r"self[- ]signed certificate"),
        Handshake("server certificate from another CA", "good", TLSOptions(ca_file=str(certs.other_ca)), TLSError,
                  "unable to get local issuer certificate"),
        Handshake("server certificate, system trust store", "good", TLSOptions(), TLSError,
                  "unable to get local issuer certificate"),
        Handshake("plain MQTT to a TLS listener", "good", None, ConnectError, "closed the connection|did not answer"),
        Handshake("TLS to a plain listener", "plain", TLSOptions(ca_file=ca), ConnectError, "TLS|SSL|closed"),
        Handshake("no client certificate", "mutual", TLSOptions(ca_file=ca), ConnectError, "certificate"),
        Handshake("self-signed client certificate", "mutual", with_cert("self_signed_client"), ConnectError,
                  "unknown ca|certificate"),
        Handshake("expired client certificate", "mutual", with_cert("expired_client"), ConnectError,
                  "expired|certificate"),
        Handshake("CA-signed client certificate, wrong password", "mutual", with_cert("client"), ConnackRefused,
                  "Bad User Name or Password", password=lab.wrong_password()),
        Handshake("verified server", "good", TLSOptions(ca_file=ca)),
        Handshake("CA-signed client certificate", "mutual", with_cert("client")),
    ]  # fmt: skip


async def try_handshake(lab: Lab, case: Handshake) -> tuple[str, str]:
    """``("expected", "")``; ``("unclear", error)`` when refused as it should be but without naming the reason
    (another error class, or a message not matching ``case.reason``); ``("unexpected", what)`` otherwise."""
    port = lab.broker.port if case.listener == "plain" else lab.tls_ports[case.listener]
    scheme = "mqtt" if case.tls is None else "mqtts"
    password = case.password or lab.passwords["alice"]
    lab.tried.add(password)
    url = f"{scheme}://alice:{password}@{case.host}:{port}"
    client = MQTTClient(url, tls=case.tls, reconnect=False, connect_timeout=5.0, client_id="")
    try:
        await client.connect()
        result = await client.publish("users/alice/tls", "over TLS", qos=1)
    except ClientError as exc:
        lab.client_errors.append(str(exc))
        said = f"{type(exc).__name__}: {exc}"
        if case.error is None:
            return "unexpected", f"refused: {said}"
        if not isinstance(exc, case.error) or not re.search(case.reason, str(exc)):
            return "unclear", said
        return "expected", ""
    except Exception as exc:
        return "unexpected", f"an error outside mqttchat.client's family: {type(exc).__name__}: {exc}"
    finally:
        with contextlib.suppress(ClientError):
            await client.disconnect()
    if case.error is not None:
        return "unexpected", "accepted"
    return ("expected", "") if result.ok else ("unexpected", f"publish refused: {code_name(result.reason_code)}")


async def tls_handshakes(report: Report, lab: Lab, long: bool, deadline: Deadline) -> None:
    repeats = 10 if long else 1
    refused_ok = accepted_ok = unclear_count = 0
    unexpected: dict[str, str] = {}
    unclear: dict[str, str] = {}
    log_before = len(lab.broker.log_text().splitlines())
    for _ in range(repeats):
        for case in handshakes(lab):
            if deadline.left < 10:
                break
            verdict, detail = await try_handshake(lab, case)
            if verdict == "unexpected":
                unexpected[case.name] = detail
            elif case.error is None:
                accepted_ok += 1
            else:
                refused_ok += 1
                if verdict == "unclear":
                    unclear_count += 1
                    unclear[case.name] = detail
    # The broker took all of it and still serves.
    async with lab.client("alice", client_id="alice-afterwards") as alice:
        report.check((await alice.publish("users/alice/after", "x", qos=1)).ok, "the broker refuses alice after TLS")
    new_lines = lab.broker.log_text().splitlines()[log_before:]
    figures = report.figures
    figures["handshakes"] = refused_ok + accepted_ok + len(unexpected)
    figures["refused as expected"] = refused_ok
    figures["accepted as expected"] = accepted_ok
    figures["unexpected outcomes"] = len(unexpected)
    figures["refused without naming the reason"] = unclear_count
    figures["broker log lines on TLS refusals"] = sum(
        bool(re.search(r"(?i)\b(tls|ssl|certificate|handshake)\b", line)) for line in new_lines
    )
    for name, outcome in unexpected.items():
        report.problems.append(f"{name}: {outcome}")
    for name, said in unclear.items():
        report.problems.append(f"{name}: refused, but the client's error does not say why ({said})")


# ----------------------------------------------------------------------------------------------------------------
# Before login: a broker of its own per scenario, whose password file mixes mosquitto_passwd's 101 iterations with
# mqttchat's 25,000 and has fresh users (never logged in: their logins cost a full check)
# ----------------------------------------------------------------------------------------------------------------


def fast_users(count: int) -> list[str]:
    """Users at mosquitto_passwd's iteration count (101)."""
    return [f"mosq-{i}" for i in range(count)]


def fresh_users(count: int) -> list[str]:
    """Users at mqttchat's iteration count (25,000) who never logged in: each login costs a full check."""
    return [f"fresh-{i}" for i in range(count)]


#: The door broker's limits: packets of 64 KiB, CONNECT within 5 s.
DOOR_CONFIG = "allow_anonymous = false\npassword_file = 'passwd'\nmax_packet_size = 65536\nconnect_timeout = 5\n"
#: Another loopback address: logins from a source that is not flooding.
OTHER_SOURCE = "127.0.0.2"


def door_broker(lab: Lab, name: str, fast: int = 0, fresh: int = 0) -> BrokerProcess:
    """A broker of its own: alice, bob and admin, ``fast`` users at 101 iterations and ``fresh`` users at 25,000
    (all with alice's password)."""
    directory = lab.workdir / name
    directory.mkdir(parents=True, exist_ok=True)
    pwfile = PasswordFile(directory / "passwd")
    for user in USERS:
        pwfile.set_password(user, lab.passwords[user])
    for user in fast_users(fast):
        pwfile.set_password(user, lab.passwords["alice"], MOSQUITTO_ITERATIONS)
    for user in fresh_users(fresh):
        pwfile.set_password(user, lab.passwords["alice"], DEFAULT_ITERATIONS)
    pwfile.save()
    return BrokerProcess(directory, DOOR_CONFIG).start()


async def timed_connack(
    port: int, attempt: Attempt, client_id: str, source: str = "127.0.0.1", timeout: float = 10.0
) -> tuple[int, float]:
    """(CONNACK code or -1, seconds from the TCP connection to the CONNACK) for one login from ``source``."""
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    except OSError:
        return -1, time.perf_counter() - started
    try:
        async with asyncio.timeout(timeout):
            writer.write(connect_packet(attempt, client_id).encode())
            head = await reader.readexactly(2)
            body = await reader.readexactly(head[1])
        return (body[1] if head[0] == 0x20 and len(body) >= 2 else -1), time.perf_counter() - started
    except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
        return -1, time.perf_counter() - started
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def stream_until_stopped(writer: asyncio.StreamWriter, mib: int, deadline: Deadline) -> int:
    """Write up to ``mib`` MiB of zeros; the bytes written before the broker stopped reading (a write that does not
    drain within 1 s) or closed the connection."""
    chunk = bytes(1 << 20)
    sent = 0
    for _ in range(mib):
        if deadline.expired:
            break
        try:
            writer.write(chunk)
            async with asyncio.timeout(1.0):
                await writer.drain()
        except (OSError, TimeoutError):
            break
        sent += len(chunk)
    return sent


async def closed_after(reader: asyncio.StreamReader, timeout: float) -> float | None:
    """Seconds until the broker closes the connection (what it sends is read and dropped), None if it does not."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65_536):
                pass
    except TimeoutError:
        return None
    except ConnectionError:
        pass
    return time.perf_counter() - started


async def prelogin_flood(report: Report, lab: Lab, long: bool, deadline: Deadline) -> None:
    """The attacks on memory before login, each watched in its broker's RSS.

    With ``max_packet_size = 65536`` (a broker of its own): password checks queued by many wrong logins, then one
    more CONNECT followed by megabytes (the broker must stop reading it while its password is checked). With the
    default limits (the lab's broker): first packets declaring hundreds of megabytes (closed at the header), and
    many partial CONNECTs (held within the pre-login budget of 32 MiB for all of them).
    """
    queued = 300 if long else 40
    flood_mib = 1024 if long else 128
    partial = 400 if long else 40
    figures = report.figures
    broker = door_broker(lab, "prelogin-flood")
    port = broker.port
    opened: list[asyncio.StreamWriter] = []
    try:
        with MemoryWatch(broker.pid) as memory:
            baseline = memory.peak_kib
            # 1. Checks queued: wrong passwords, all at once.
            for i in range(queued):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                queue = Attempt("queue", V5, "alice", lab.wrong_password(), 0x86)
                writer.write(connect_packet(queue, f"q-{i}").encode())
                opened.append(writer)
            # 2. One more CONNECT, from another source (so that it is queued, not refused), then megabytes.
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(OTHER_SOURCE, 0))
            opened.append(writer)
            writer.write(connect_packet(Attempt("flood", V5, "alice", lab.wrong_password(), 0x86), "flood").encode())
            started = time.perf_counter()
            sent = await stream_until_stopped(writer, flood_mib, deadline)
            closed = await closed_after(reader, 30.0)
            figures["checks queued by wrong logins"] = queued
            figures["MiB sent behind a CONNECT being checked"] = round(sent / (1 << 20), 1)
            figures["that connection closed after s"] = (
                round(time.perf_counter() - started, 2) if closed is not None else "never"
            )
            report.check(closed is not None, "the connection streaming behind its CONNECT was never closed")
        growth = (memory.peak_kib - baseline) / 1024
        figures["max_packet_size 64 KiB: RSS before MiB"] = round(baseline / 1024, 1)
        figures["max_packet_size 64 KiB: RSS growth MiB"] = round(growth, 1)
        report.check(growth < 32, f"the broker's RSS grew by {growth:.0f} MiB while a password was checked")
    finally:
        for writer in opened:
            writer.close()
        broker.stop()
    opened.clear()
    port = lab.broker.port
    try:
        with MemoryWatch(lab.broker.pid) as memory:
            baseline = memory.peak_kib
            # 3. First packets that cannot be a CONNECT the broker takes: closed at the header.
            for label, header in (
                ("CONNACK declaring 232 MB", bytes.fromhex("2080808074")),
                ("CONNECT declaring 268 MB", bytes.fromhex("10ffffff7f")),
            ):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                opened.append(writer)
                started = time.perf_counter()
                writer.write(header)
                after_sent = await stream_until_stopped(writer, 64, deadline)
                after = await closed_after(reader, 10.0)
                elapsed = time.perf_counter() - started
                figures[f"{label}: closed after ms"] = round(elapsed * 1000, 1) if after is not None else "never"
                figures[f"{label}: MiB sent"] = round(after_sent / (1 << 20), 1)
                report.check(after is not None and elapsed < 2.0, f"{label}: not closed at its header")
            # 4. Partial CONNECTs (200 KB of 250), held until the CONNECT timeout or the pre-login budget.
            big = bytes.fromhex("1090a10f") + bytes(250_000)  # a CONNECT header declaring 250,000 bytes
            readers = []
            for _ in range(partial):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                opened.append(writer)
                writer.write(big[:200_000])
                readers.append(reader)
            # Closed before the CONNECT timeout (5 s): by the pre-login budget (32 MiB for all of them).
            early = await asyncio.gather(*(closed_after(reader, 3.0) for reader in readers))
            figures["partial CONNECTs of 200 KB"] = partial
            figures["partial CONNECTs closed by the pre-login budget"] = sum(after is not None for after in early)
        growth = (memory.peak_kib - baseline) / 1024
        figures["default limits: RSS before MiB"] = round(baseline / 1024, 1)
        figures["default limits: RSS growth MiB"] = round(growth, 1)
        report.check(growth < 48, f"the broker's RSS grew by {growth:.0f} MiB before any login (budget: 32 MiB)")
    finally:
        for writer in opened:
            writer.close()


async def login_flood(report: Report, lab: Lab, long: bool, deadline: Deadline) -> None:
    """Bad logins from 127.0.0.1 as fast as the broker answers them, while others log in: bob with a confirmed
    password and fresh users (a full check each) from other addresses (127.0.0.3, 127.0.0.2) and from the flooding
    one, and an admin pings. Nobody but the flooding address may wait more than a few hundred ms; there, the
    broker cannot tell a user from the attacker before the password is checked (figures only)."""
    attackers = 100 if long else 20
    seconds = 40.0 if long else 6.0
    figures = report.figures
    broker = door_broker(lab, "login-flood", fresh=int(seconds * 3) + 10)
    port = broker.port
    fresh = iter(fresh_users(int(seconds * 3) + 10))
    codes: Counter[int] = Counter()
    kinds = {  # kind: (source, user, seconds between logins)
        "cached, other source": ("127.0.0.3", "bob", 0.25),
        "full check, other source": (OTHER_SOURCE, "", 0.5),
        "cached, same source": ("127.0.0.1", "bob", 1.0),
        "full check, same source": ("127.0.0.1", "", 1.0),
    }
    delays: dict[str, list[float]] = {kind: [] for kind in kinds}
    same_source_refused = 0
    failed: list[str] = []
    pings: list[float] = []
    stop = asyncio.Event()
    try:
        # Before the flood: bob's password is confirmed once; one fresh login alone shows what a check costs.
        code, _ = await timed_connack(port, Attempt("warm", V5, "bob", lab.passwords["bob"], 0), "bob-warm")
        report.check(code == 0, f"bob's first login got {code_name(code)}")
        code, alone = await timed_connack(port, Attempt("alone", V5, next(fresh), lab.passwords["alice"], 0), "alone")
        report.check(code == 0, f"a fresh user's login without a flood got {code_name(code)}")
        figures["login with a full check, no flood, ms"] = round(alone * 1000, 1)

        async def attacker(index: int) -> None:
            number = 0
            while not stop.is_set():
                number += 1
                user = "alice" if number % 2 else f"nobody-{index}-{number}"
                code, _ = await timed_connack(port, Attempt("flood", V5, user, lab.wrong_password(), 0x86),
                                              f"flood-{index}-{number}")  # fmt: skip
                codes[code] += 1

        async def logins(kind: str) -> None:
            nonlocal same_source_refused
            source, user, interval = kinds[kind]
            number = 0
            while not stop.is_set():
                number += 1
                if user:
                    attempt = Attempt(kind, V5, user, lab.passwords[user], 0)
                else:
                    fresh_user = next(fresh, None)
                    if fresh_user is None:
                        return
                    attempt = Attempt(kind, V5, fresh_user, lab.passwords["alice"], 0)
                client_id = f"{kind}-{number}".replace(" ", "-").replace(",", "")
                code, took = await timed_connack(port, attempt, client_id, source)
                if code == 0:
                    delays[kind].append(took)
                elif source == "127.0.0.1" and code == 0x9F:
                    same_source_refused += 1
                else:
                    failed.append(f"{kind} login {number}: {code_name(code)}")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await stop.wait()

        async def pinger(admin: MQTTClient) -> None:
            while not stop.is_set():
                try:
                    async with asyncio.timeout(10):
                        pings.append(await admin.ping())
                except TimeoutError:
                    pings.append(10.0)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.2):
                        await stop.wait()

        admin_url = f"mqtt://admin:{lab.passwords['admin']}@127.0.0.1:{port}"
        async with MQTTClient(admin_url, client_id="admin-ping", reconnect=False) as admin:
            tasks = [asyncio.create_task(attacker(i)) for i in range(attackers)]
            helpers = [asyncio.create_task(pinger(admin)), *(asyncio.create_task(logins(kind)) for kind in kinds)]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(seconds, deadline.left)):
                    await stop.wait()
            stop.set()
            await asyncio.gather(*tasks, *helpers)
    finally:
        broker.stop()
    attempts = sum(codes.values())
    figures["attackers"] = attackers
    figures["bad logins"] = attempts
    figures["bad logins/s"] = round(attempts / seconds, 1)
    for code, count in sorted(codes.items()):
        figures[f"bad logins answered {code_name(code) if code >= 0 else 'nothing'}"] = count
    for kind, times in delays.items():
        if times:
            figures[f"{kind} login ms (median)"] = round(statistics.median(times) * 1000, 1)
            figures[f"{kind} login ms (max)"] = round(max(times) * 1000, 1)
        figures[f"{kind} logins"] = len(times)
    figures["same source logins refused 0x9F"] = same_source_refused
    figures["ping max ms"] = round(max(pings, default=0.0) * 1000, 1)
    report.check(codes.get(0, 0) == 0, f"{codes.get(0, 0)} bad logins were accepted")
    report.check(codes.get(-1, 0) == 0, f"{codes.get(-1, 0)} bad logins got no CONNACK")
    report.check(not failed, f"logins that should have worked failed: {failed[:3]}")
    bound = 0.5
    for kind in ("cached, other source", "full check, other source"):
        worst = max(delays[kind], default=0.0)
        report.check(bool(delays[kind]), f"no {kind} login completed during the flood")
        report.check(worst < bound, f"a {kind} login took {worst * 1000:.0f} ms during the flood (at most {bound:g} s)")
    report.check(max(pings, default=0.0) < bound, f"a ping took {max(pings, default=0.0) * 1000:.0f} ms")


async def timing_enumeration(report: Report, lab: Lab, long: bool, deadline: Deadline) -> None:
    """A password file mixing 101 iterations (mosquitto_passwd) with 25,000: wrong passwords for known users of
    both kinds and for unknown names, one at a time. Unknown names must be answered fast as often as known users
    are, or the answer time tells which names exist."""
    names = 100 if long else 24
    figures = report.figures
    fast_names, slow_names = fast_users(8), fresh_users(8)
    broker = door_broker(lab, "timing", fast=len(fast_names), fresh=len(slow_names))
    port = broker.port

    addresses = (f"127.0.{n // 250 + 1}.{n % 250 + 1}" for n in range(10_000))

    async def wrong(user: str, number: int) -> float:
        # Each attempt from an address of its own, as a distributed attacker's: the per-address limits on failed
        # logins are not what this measures.
        attempt = Attempt("timing", V5, user, lab.wrong_password(), 0x86)
        code, took = await timed_connack(port, attempt, f"t-{number}", next(addresses))
        report.check(code == 0x86, f"a wrong password for {user} got {code_name(code)}")
        return took

    try:
        fast = [await wrong(user, i) for i, user in enumerate(fast_names)]
        slow = [await wrong(user, 100 + i) for i, user in enumerate(slow_names)]
        unknown = []
        for i in range(names):
            if deadline.left < 2:
                break
            unknown.append(await wrong(f"nobody-{secrets.token_hex(4)}", 1000 + i))
    finally:
        broker.stop()
    fast_ms, slow_ms = statistics.median(fast) * 1000, statistics.median(slow) * 1000
    threshold = (fast_ms + slow_ms) / 2
    users = len(USERS) + len(fast_names) + len(slow_names)
    quick = sum(t * 1000 < threshold for t in unknown)
    figures["users at 101 iterations"] = f"{len(fast_names)} of {users}"
    figures["wrong password, 101 iterations, ms (median)"] = round(fast_ms, 2)
    figures["wrong password, 25,000 iterations, ms (median)"] = round(slow_ms, 2)
    figures["unknown names"] = len(unknown)
    figures["unknown names answered as fast as a 101-iteration user"] = quick
    report.check(
        0 < quick < len(unknown),
        f"{quick} of {len(unknown)} unknown names were answered fast, where {len(fast_names)} of {users} users are: "
        "the answer time tells unknown names apart",
    )


# ----------------------------------------------------------------------------------------------------------------
# Secrets: no password tried (right or wrong) in the broker's log, its files, or the client's errors
# ----------------------------------------------------------------------------------------------------------------


def secret_forms(secret: str) -> list[str]:
    data = secret.encode()
    return [secret, data.hex(), data.hex().upper(), base64.b64encode(data).decode().rstrip("=")]


def token_forms(token: str) -> list[str]:
    """The run token as it would appear inside any form of a password: plain, hex, and base64 at each alignment."""
    data = token.encode()
    forms = [token, data.hex(), data.hex().upper()]
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + data).decode()
        forms.append(encoded[4:-4])  # the characters that depend on the token only
    return forms


def find_leaks(text: str, token: str, tried: Iterable[str]) -> list[str]:
    if not any(form in text for form in token_forms(token)):
        return []
    return sorted(s for s in tried if len(s) >= 4 and any(form in text for form in secret_forms(s)))


def secrets_report(lab: Lab) -> Report:
    report = Report("security: passwords kept secret")
    directory = lab.broker.directory
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    leaks: dict[str, list[str]] = {}
    for path in files:
        found = find_leaks(path.read_text(errors="replace"), lab.token, lab.tried)
        if found:
            leaks[path.name] = found
    errors = find_leaks("\n".join(lab.client_errors), lab.token, lab.tried)
    if errors:
        leaks["client errors"] = errors
    pwfile = (directory / "passwd").read_text().splitlines()
    hashed = [line for line in pwfile if re.fullmatch(r"[^:]+:\$7\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+", line)]
    mode = (directory / "passwd").stat().st_mode & 0o777
    figures = report.figures
    figures["passwords tried"] = len(lab.tried)
    figures["files scanned"] = len(files)
    figures["log KiB"] = lab.broker.log.stat().st_size / 1024 if lab.broker.log.exists() else 0.0
    figures["client errors scanned"] = len(lab.client_errors)
    figures["leaks found"] = sum(len(found) for found in leaks.values())
    figures["password file"] = f"{len(hashed)} of {len(pwfile)} lines $7$, mode {mode:o}"
    report.check(not leaks, f"passwords found: { {k: v[:3] for k, v in leaks.items()} }")
    report.check(len(hashed) == len(USERS) == len(pwfile), f"password file lines not all $7$ hashes: {len(hashed)}")
    report.check(mode & 0o077 == 0, f"the password file is readable by others (mode {mode:o})")
    report.check(bool(lab.client_errors), "no client error was collected: the scan of client errors proves nothing")
    return report


# ----------------------------------------------------------------------------------------------------------------


Scenario = Callable[[Report, Lab, bool, Deadline], Awaitable[None]]


# ----------------------------------------------------------------------------------------------------------------
# Hostile strings: escape sequences, forged log lines, bidi overrides and markup in everything a client sends
# ----------------------------------------------------------------------------------------------------------------

#: Text that would retitle or clear a terminal, forge a log line, reverse what follows or become a Textual action.
HOSTILE_TEXTS = (
    "\x1b]0;pwned\x07\x1b[2J",
    "\nforged: 12:00:00 INFO admin connected",
    "\x9b31m\x85",
    "\u202eadmin",
    "[@click=app.quit]x[/]",
    "[link=https://evil.example]L[/link]",
)


def raw_controls(text: str, allowed: str = "\n") -> list[str]:
    """Control characters (C0 but ``allowed``, DEL, C1) and bidirectional overrides as they are in ``text``."""
    return [
        repr(c)
        for c in text
        if (ord(c) < 0x20 and c not in allowed) or 0x7F <= ord(c) <= 0x9F or 0x202A <= ord(c) <= 0x202E
    ]


def read_terminal(args: list[str], until: Callable[[bytes], bool], seconds: float) -> bytes:
    """Run ``args`` with its standard output on a pseudo-terminal in raw mode (the bytes a terminal would get)
    until ``until(output)`` or ``seconds``; the process is then stopped."""
    import os
    import pty
    import select
    import tty

    master, slave = pty.openpty()
    tty.setraw(slave)
    proc = subprocess.Popen(args, stdout=slave, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    os.close(slave)
    out = bytearray()
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end and not until(bytes(out)):
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        os.close(master)
    return bytes(out)


async def hostile_strings(report: Report, lab: Lab, long: bool, deadline: Deadline) -> None:
    """Client ids, user names, topics, payloads, user properties, content types and wills holding hostile text:
    the broker's log gets them escaped (no control character, no forged line), a topic holding a control
    character is refused as malformed (0x81), and ``mqttchat sub -v -d`` on a terminal shows them neutralised."""
    marker = f"hostile-{secrets.token_hex(4)}"
    rounds = 5 if long else 1
    sent = refused_logins = refused_topics = topics_tried = published = 0
    password = lab.passwords["alice"]
    sub_args = [*mqttchat_command(), "sub", "-p", str(lab.broker.port), "-u", "alice", "-P", password,
                "-t", f"users/alice/{marker}/#", "-v", "-d", "-q", "1"]  # fmt: skip
    expected = len(HOSTILE_TEXTS) * rounds
    terminal = asyncio.create_task(
        asyncio.to_thread(read_terminal, sub_args, lambda out: out.count(b"PUBLISH") >= expected, 30)
    )
    await asyncio.sleep(1.5)  # the subscriber connects
    for _ in range(rounds):
        for index, text in enumerate(HOSTILE_TEXTS):
            if deadline.expired:
                break
            # A refused login with a hostile user name and client id (both logged).
            stranger = MQTTClient(lab.url(None), username=f"u{text}{marker}", password=lab.wrong_password(),
                                  client_id=f"c{text}{marker}", reconnect=False, connect_timeout=10.0)  # fmt: skip
            try:
                await stranger.connect()
            except ConnectError:
                refused_logins += 1
            finally:
                await stranger.disconnect()
            # alice with a hostile client id, publishing hostile payloads and properties on her own topic.
            alice = lab.client("alice", client_id=f"a{index}{text}{marker}",
                               will=Will(f"users/alice/{marker}/will", text.encode(), 1, False,
                                         Properties(content_type=text)))  # fmt: skip
            await alice.connect()
            props = Properties(content_type=text, user_property=[(text, text)], response_topic=f"users/alice/{text}")
            result = await alice.publish(f"users/alice/{marker}/{index}", f"{text} {marker}".encode(), 1,
                                         properties=props)  # fmt: skip
            published += int(result.ok)
            sent += 1
            await alice.disconnect()
            if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text):
                # The same text in a topic name: a malformed packet, the connection closed (0x81).
                topics_tried += 1
                rogue = lab.client("alice", client_id=f"r{index}{marker}")
                await rogue.connect()
                try:
                    await rogue.publish(f"users/alice/{marker}/{text}", b"x", 1)
                except ClientError:
                    refused_topics += 1
                finally:
                    await rogue.disconnect()
    out = await terminal
    shown = out.decode("utf-8", "replace")
    log = lab.broker.log_text()
    log_lines = [line for line in log.splitlines() if marker in line]
    forged = [line for line in log.splitlines() if line.startswith("forged")]
    report.figures["hostile strings sent"] = sent
    report.figures["messages published"] = published
    report.figures["refused logins"] = refused_logins
    report.figures["topics with control characters refused (0x81)"] = f"{refused_topics}/{topics_tried}"
    report.figures["broker log lines with them"] = len(log_lines)
    report.figures["raw control characters in the log"] = len(raw_controls(log))
    report.figures["forged log lines"] = len(forged)
    report.figures["messages shown by sub on a terminal"] = shown.count(f" {marker}")
    report.figures["raw control characters sub wrote"] = len(raw_controls(shown, "\r\n"))
    report.check(published == sent, f"{sent - published} hostile publishes not acknowledged")
    report.check(refused_logins == sent, "a login with a hostile user name and a wrong password was accepted")
    report.check(refused_topics == topics_tried, "a topic with a control character was routed")
    report.check(len(log_lines) >= sent, "the broker's log does not name the hostile clients")
    report.check(not raw_controls(log), f"raw control characters in the broker's log: {raw_controls(log)[:5]}")
    report.check(not forged, f"forged log lines: {forged[:2]}")
    report.check(shown.count(f" {marker}") >= sent, "sub did not show every hostile message")
    report.check(not raw_controls(shown, "\r\n"), f"sub wrote raw control characters: {raw_controls(shown)[:5]}")


async def guarded(name: str, scenario: Scenario, lab: Lab, long: bool, seconds: float) -> Report:
    """Run one scenario within ``seconds``; a crash or overrun is a problem of its report, not the end of the run."""
    report = Report(name)
    deadline = Deadline(seconds)
    try:
        async with asyncio.timeout(seconds + 15):
            await scenario(report, lab, long, deadline)
    except TimeoutError:
        report.problems.append(f"did not finish within {seconds + 15:g} s")
    except Exception as exc:
        report.problems.append(f"crashed: {type(exc).__name__}: {exc}")
    if not lab.broker.alive():
        tail = " | ".join(lab.broker.log_text().splitlines()[-5:])
        report.problems.append(f"the broker process died: {tail}")
    return report


async def run(long: bool, workdir: Path) -> list[Report]:
    lab = await asyncio.to_thread(setup, workdir)
    scenarios: list[tuple[str, Scenario, float]] = [
        ("security: logins", logins, 240 if long else 20),
        ("security: ACL bypass", acl_bypass, 180 if long else 20),
        ("security: forged chat identity", forged_identity, 120 if long else 15),
        ("security: session takeover", session_takeover, 60 if long else 15),
        ("security: TLS", tls_handshakes, 180 if long else 20),
        ("security: pre-login flood", prelogin_flood, 180 if long else 30),
        ("security: login flood", login_flood, 120 if long else 30),
        ("security: user enumeration by timing", timing_enumeration, 120 if long else 30),
        ("security: hostile strings", hostile_strings, 120 if long else 45),
    ]
    reports: list[Report] = []
    try:
        for name, scenario, seconds in scenarios:
            reports.append(await guarded(name, scenario, lab, long, seconds))
    finally:
        lab.broker.stop()
    reports.append(secrets_report(lab))
    return reports
