"""The broker's side of SCRAM (ScramLogin) against the client's (ScramAuth): verifiers from $7$ hashes
(SCRAM-SHA-512) and from '# mqttchat: scram' lines (any mechanism), wrong proofs, unknown users, a tampered
server signature."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mqttchat.broker.auth import PasswordFile, ScramLogin, ScramRefused, hash_password, scram_directive
from mqttchat.client import ClientOptions, ConnackRefused, ConnectionLost, MQTTClient, NotConnected, parse_url
from mqttchat.client.auth import ScramAuth, ServerAuthenticationFailed, TokenAuth
from mqttchat.client.errors import AuthenticationFailed
from mqttchat.config.toml import ConfigError
from mqttchat.protocol import Auth, Packet, ReasonCode


def exchange(passwords: PasswordFile, client: ScramAuth) -> tuple[str, bytes]:
    login = ScramLogin(passwords, client.name)
    server_first = login.start(client.initial_data())
    return login.finish(client.respond(server_first))


def password_file(tmp_path: Path, text: str) -> PasswordFile:
    path = tmp_path / "passwd"
    path.write_text(text)
    return PasswordFile.load(path)


def test_scram_sha_512_from_a_pbkdf2_hash(tmp_path: Path) -> None:
    passwords = password_file(tmp_path, f"alice:{hash_password('secret')}\n")
    client = ScramAuth("alice", "secret", "SCRAM-SHA-512")
    user, server_final = exchange(passwords, client)
    assert user == "alice"
    client.verify(server_final)  # the broker proved it knows the password


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_lines_for_each_mechanism(tmp_path: Path, mechanism: str) -> None:
    line = scram_directive("bob", "hunter2", mechanism, iterations=4096)
    passwords = password_file(tmp_path, f"alice:{hash_password('x')}\n{line}\n")
    assert passwords.dumps().count("# mqttchat: scram bob") == 1  # kept on save, a comment to mosquitto
    client = ScramAuth("bob", "hunter2", mechanism)
    user, server_final = exchange(passwords, client)
    assert user == "bob"
    client.verify(server_final)


def test_wrong_password_and_unknown_user_fail_alike(tmp_path: Path) -> None:
    passwords = password_file(tmp_path, f"alice:{hash_password('secret')}\n")
    with pytest.raises(ScramRefused, match="proof refused"):
        exchange(passwords, ScramAuth("alice", "wrong", "SCRAM-SHA-512"))
    with pytest.raises(ScramRefused, match="no SCRAM-SHA-512 verifier for 'nobody'"):
        exchange(passwords, ScramAuth("nobody", "x", "SCRAM-SHA-512"))
    # An unknown user gets a challenge like a known one (a salt, the usual iterations): nothing tells them apart.
    first = ScramAuth("nobody", "x", "SCRAM-SHA-512").initial_data()
    assert b",i=25000" in ScramLogin(passwords, "SCRAM-SHA-512").start(first)
    with pytest.raises(ScramRefused, match="no SCRAM-SHA-256 verifier"):
        exchange(passwords, ScramAuth("alice", "secret", "SCRAM-SHA-256"))


def test_mosquitto_iteration_count_is_too_low_for_scram(tmp_path: Path) -> None:
    passwords = password_file(tmp_path, f"alice:{hash_password('secret', 101)}\n")
    with pytest.raises(ScramRefused, match="101 iterations, too few for SCRAM"):
        exchange(passwords, ScramAuth("alice", "secret", "SCRAM-SHA-512"))


def test_a_tampered_server_signature_fails_the_client(tmp_path: Path) -> None:
    passwords = password_file(tmp_path, f"alice:{hash_password('secret')}\n")
    client = ScramAuth("alice", "secret", "SCRAM-SHA-512")
    _, server_final = exchange(passwords, client)
    with pytest.raises(ServerAuthenticationFailed):
        client.verify(server_final[:3] + bytes([server_final[3] ^ 1]) + server_final[4:])


def test_bad_scram_lines_name_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown SCRAM mechanism"):
        password_file(tmp_path, "# mqttchat: scram bob SCRAM-MD5 4096 AAAA AAAA AAAA\n")
    with pytest.raises(ConfigError, match="iteration count must be between 4096"):
        password_file(tmp_path, "# mqttchat: scram bob SCRAM-SHA-256 100 AAAA AAAA AAAA\n")
    with pytest.raises(ConfigError, match="keys are 32 bytes"):
        password_file(tmp_path, "# mqttchat: scram bob SCRAM-SHA-256 4096 AAAA AAAA AAAA\n")


# --------------------------------------------------------------------------------------------- end to end


async def scram_broker(broker_factory: Callable[..., Any], tmp_path: Path) -> Any:
    """Our broker with a password file: alice by her PBKDF2 hash (SCRAM-SHA-512), bob by a SCRAM-SHA-256 line."""
    path = tmp_path / "passwd"
    path.write_text(f"alice:{hash_password('secret')}\n{scram_directive('bob', 'hunter2', 'SCRAM-SHA-256', 4096)}\n")
    return await broker_factory(password_file=path, allow_anonymous=False)


def scram_client(port: int, user: str, password: str, mechanism: str, **options: Any) -> MQTTClient:
    url = f"mqtt://127.0.0.1:{port}"
    return MQTTClient(
        ClientOptions(parse_url(url), username=user, auth=ScramAuth(user, password, mechanism), reconnect=False,
                      **options)
    )  # fmt: skip


@pytest.mark.parametrize(("user", "password", "mechanism"), [("alice", "secret", "SCRAM-SHA-512"),
                                                             ("bob", "hunter2", "SCRAM-SHA-256")])  # fmt: skip
async def test_scram_login_publish_and_reauthenticate(
    broker_factory: Callable[..., Any], tmp_path: Path, user: str, password: str, mechanism: str
) -> None:
    broker = await scram_broker(broker_factory, tmp_path)
    sent: list[Packet] = []
    async with scram_client(broker.port, user, password, mechanism) as client:
        client.add_trace_hook(lambda direction, packet, size: sent.append(packet) if direction == "out" else None)
        stream = client.messages()
        await client.subscribe("t", qos=1)
        await client.publish("t", "hi", qos=1)
        async with asyncio.timeout(5):
            assert (await stream.get()).payload == b"hi"
        await client.reauthenticate()  # AUTH 0x19, 0x18 both ways, AUTH Success with the server's signature
        assert [p.reason_code for p in sent if isinstance(p, Auth)] == [
            ReasonCode.RE_AUTHENTICATE,
            ReasonCode.CONTINUE_AUTHENTICATION,
        ]
        await client.publish("t", "still", qos=1)
        async with asyncio.timeout(5):
            assert (await stream.get()).payload == b"still"


async def test_wrong_proof_unknown_user_and_other_methods_are_refused(
    broker_factory: Callable[..., Any], tmp_path: Path
) -> None:
    broker = await scram_broker(broker_factory, tmp_path)
    for user, password, mechanism in (("alice", "wrong", "SCRAM-SHA-512"), ("nobody", "x", "SCRAM-SHA-512"),
                                      ("bob", "hunter2", "SCRAM-SHA-1")):  # fmt: skip
        with pytest.raises(ConnackRefused) as info:
            await scram_client(broker.port, user, password, mechanism).connect()
        assert info.value.reason_code is ReasonCode.NOT_AUTHORIZED
        assert info.value.reason_string == "not authorized"  # the same words whatever the cause
    with pytest.raises(ConnackRefused) as refused:
        await MQTTClient(ClientOptions(parse_url(f"mqtt://127.0.0.1:{broker.port}"), reconnect=False,
                                       auth=TokenAuth("CUSTOM-JWT", lambda: ("t", None)))).connect()  # fmt: skip
    assert refused.value.reason_code is ReasonCode.BAD_AUTHENTICATION_METHOD


async def test_failed_reauthentication_disconnects(broker_factory: Callable[..., Any], tmp_path: Path) -> None:
    broker = await scram_broker(broker_factory, tmp_path)
    client = scram_client(broker.port, "alice", "secret", "SCRAM-SHA-512")
    await client.connect()
    try:
        assert isinstance(client.session.auth, ScramAuth)
        client.session.auth.password = "changed"  # the broker no longer accepts what the client proves
        with pytest.raises((TimeoutError, ConnectionLost, NotConnected)):
            await client.reauthenticate(timeout=5)
        async with asyncio.timeout(5):
            while client.last_disconnect is None:
                await asyncio.sleep(0.02)
        assert client.last_disconnect.disconnect.reason_code is ReasonCode.NOT_AUTHORIZED
    finally:
        await client.disconnect()


async def test_a_tampered_server_signature_fails_the_connection(
    broker_factory: Callable[..., Any], tmp_path: Path
) -> None:
    """Something between client and broker changes the server-final message: the client refuses the broker."""
    broker = await scram_broker(broker_factory, tmp_path)

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", broker.port)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, tamper: bool) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    if tamper and data[:1] == b"\x20" and b"v=" in data:  # the CONNACK with the server-final
                        at = data.index(b"v=") + 2
                        data = data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]
                    dst.write(data)
            dst.close()

        await asyncio.gather(pump(reader, up_writer, False), pump(up_reader, writer, True))

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(AuthenticationFailed, match="SCRAM server signature is wrong"):
            await scram_client(port, "alice", "secret", "SCRAM-SHA-512").connect()
    finally:
        server.close()


async def test_cli_scram_login(broker_factory: Callable[..., Any], tmp_path: Path) -> None:
    import os
    import sys

    broker = await scram_broker(broker_factory, tmp_path)
    args = ["-p", str(broker.port), "--auth-method", "SCRAM-SHA-256", "-u", "bob"]
    ok = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mqttchat", "pub", *args, "-P", "hunter2", "-t", "t", "-m", "x", "-d",
        env=os.environ, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    bad = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mqttchat", "pub", *args, "-P", "nope", "-t", "t", "-m", "x",
        env=os.environ, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(30):
        _, ok_err = await ok.communicate()
        _, bad_err = await bad.communicate()
    assert ok.returncode == 0, ok_err
    assert b"hunter2" not in ok_err  # the -d trace: no password in CONNECT
    assert bad.returncode != 0 and b"Not authorized" in bad_err


def test_passwd_writes_and_removes_scram_lines(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "passwd"

    def passwd(*args: str) -> None:
        done = subprocess.run([sys.executable, "-m", "mqttchat", "passwd", *args], capture_output=True, check=False)
        assert done.returncode == 0, done.stderr

    passwd("-c", "-b", "-I", "5000", "--scram", "SCRAM-SHA-256", "--scram", "scram-sha-1", str(path), "bob", "pw1")
    passwd("-b", "-I", "5000", "--scram", "SCRAM-SHA-256", str(path), "bob", "pw2")  # replaces bob's SHA-256 line
    text = path.read_text()
    assert text.count("# mqttchat: scram bob SCRAM-SHA-256 5000 ") == 1
    assert text.count("# mqttchat: scram bob SCRAM-SHA-1 5000 ") == 1
    passwords = PasswordFile.load(path)
    assert exchange(passwords, ScramAuth("bob", "pw2", "SCRAM-SHA-256"))[0] == "bob"
    with pytest.raises(ScramRefused):
        exchange(passwords, ScramAuth("bob", "pw2", "SCRAM-SHA-1"))  # the SHA-1 line still holds pw1
    passwd("-D", str(path), "bob")
    assert "bob" not in path.read_text()
