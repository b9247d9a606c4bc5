"""The broker's side of SCRAM (ScramLogin) against the client's (ScramAuth): verifiers from $7$ hashes
(SCRAM-SHA-512) and from '# mqttchat: scram' lines (any mechanism), wrong proofs, unknown users, a tampered
server signature."""

from __future__ import annotations

from pathlib import Path

import pytest

from mqttchat.broker.auth import PasswordFile, ScramLogin, ScramRefused, hash_password, scram_directive
from mqttchat.client.auth import ScramAuth, ServerAuthenticationFailed
from mqttchat.config.toml import ConfigError


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
