"""Password files (interchangeable with mosquitto's, both ways) and ACL decisions."""

from __future__ import annotations

import base64
import hashlib
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from mqttchat.broker.auth import (
    ALLOW_ALL,
    DEFAULT_ITERATIONS,
    MOSQUITTO_ITERATIONS,
    AccessControl,
    ClientAccess,
    PasswordFile,
    filter_contains,
    filters_overlap,
    hash_password,
)
from mqttchat.config.toml import ConfigError
from tests.helpers.brokers import run_mosquitto

MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
needs_mosquitto_passwd = pytest.mark.skipif(not Path(MOSQUITTO_PASSWD).exists(), reason="mosquitto_passwd missing")
needs_mosquitto = pytest.mark.skipif(
    not Path(MOSQUITTO_PUB).exists() or not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()),
    reason="mosquitto and mosquitto_pub missing",
)

# A few iterations keep the tests fast where the count does not matter.
FAST = 10


# ----------------------------------------------------------------------------------------------------------------
# Hashes and password files
# ----------------------------------------------------------------------------------------------------------------


def test_hash_format_matches_mosquitto() -> None:
    salt = bytes(range(12))
    text = hash_password("secret", 1000, salt)
    kind, iterations, salt_b64, digest_b64 = text.split("$")[1:]
    assert (kind, iterations) == ("7", "1000")
    assert base64.b64decode(salt_b64) == salt and len(salt_b64) == 16
    assert base64.b64decode(digest_b64) == hashlib.pbkdf2_hmac("sha512", b"secret", salt, 1000)
    assert len(digest_b64) == 88 and digest_b64.endswith("==")
    default = hash_password("secret")
    assert default.startswith(f"$7${DEFAULT_ITERATIONS}$")
    assert default != hash_password("secret"), "every hash gets a fresh salt"


def test_hash_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="12 bytes"):
        hash_password("x", FAST, b"short")
    with pytest.raises(ValueError, match="iterations"):
        hash_password("x", 0)


def test_verify_round_trip_wrong_password_and_unknown_user() -> None:
    pwfile = PasswordFile()
    pwfile.set_password("alice", "correct horse", FAST)
    pwfile.set_password("bob", "", FAST)
    assert pwfile.verify("alice", "correct horse")
    assert pwfile.verify("alice", b"correct horse")
    assert not pwfile.verify("alice", "correct horse ")
    assert not pwfile.verify("alice", "")
    assert not pwfile.verify("bob", ""), "an empty password is refused even when it is the stored one"
    pwfile.empty_password_allowed.add("bob")
    assert pwfile.verify("bob", "")
    assert not pwfile.verify("alice", "")
    assert not pwfile.verify("carol", "correct horse")
    assert pwfile.users() == ["alice", "bob"]
    pwfile.set_password("alice", "battery staple", FAST)
    assert not pwfile.verify("alice", "correct horse")
    assert pwfile.verify("alice", "battery staple")
    assert pwfile.users() == ["alice", "bob"]
    assert pwfile.remove("alice")
    assert not pwfile.remove("alice")
    assert not pwfile.verify("alice", "battery staple")
    assert pwfile.users() == ["bob"]


def test_non_ascii_password() -> None:
    pwfile = PasswordFile()
    pwfile.set_password("zoë", "pässwörd ✓", FAST)
    assert pwfile.verify("zoë", "pässwörd ✓")
    assert pwfile.verify("zoë", "pässwörd ✓".encode())
    assert not pwfile.verify("zoë", "passwort")


@pytest.mark.parametrize("name", ["a:b", "a\nb", "", "#admin", " alice", "alice\r"])
def test_unstorable_user_names(name: str) -> None:
    with pytest.raises(ValueError):
        PasswordFile().set_password(name, "pw", FAST)


def _count_pbkdf2(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = hashlib.pbkdf2_hmac

    def counting(name: str, password: bytes, salt: bytes, iterations: int, dklen: int | None = None) -> bytes:
        calls.append(iterations)
        return real(name, password, salt, iterations, dklen)

    monkeypatch.setattr(hashlib, "pbkdf2_hmac", counting)
    return calls


def test_unknown_user_costs_a_full_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    pwfile = PasswordFile()
    pwfile.set_password("alice", "pw", 500)
    pwfile.set_password("bob", "pw", 500)
    calls = _count_pbkdf2(monkeypatch)
    assert not pwfile.verify("mallory", "pw")
    assert calls == [500], "a dummy hash shaped like the file's entries is computed"
    assert not PasswordFile().verify("mallory", "pw")
    assert calls == [500, DEFAULT_ITERATIONS]


def test_successful_checks_are_cached_safely(monkeypatch: pytest.MonkeyPatch) -> None:
    pwfile = PasswordFile()
    pwfile.set_password("alice", "pw", 500)
    calls = _count_pbkdf2(monkeypatch)
    assert pwfile.verify("alice", "pw")
    assert pwfile.verify("alice", "pw")
    assert pwfile.verify("alice", "pw")
    assert len(calls) == 1, "a reconnecting client costs one PBKDF2"
    assert not pwfile.verify("alice", "wrong")
    assert not pwfile.verify("alice", "wrong")
    assert len(calls) == 3, "failures are never cached"
    pwfile.set_password("alice", "new", 500)
    calls.clear()
    assert not pwfile.verify("alice", "pw"), "a changed password invalidates the cache"
    assert pwfile.verify("alice", "new")
    assert len(calls) == 2
    uncached = PasswordFile(cache=False)
    uncached.set_password("bob", "pw", 500)
    calls.clear()
    assert uncached.verify("bob", "pw") and uncached.verify("bob", "pw")
    assert len(calls) == 2


def test_unknown_users_cost_what_the_files_users_do(monkeypatch: pytest.MonkeyPatch) -> None:
    """A file mixing mosquitto_passwd's 101 iterations with more: an unknown user's dummy check has the shape of
    one of the file's users (the same one for the same name), so no answer time marks a name as unknown."""
    pwfile = PasswordFile()
    pwfile.set_password("alice", "pw", MOSQUITTO_ITERATIONS)
    pwfile.set_password("bob", "pw", 2000)
    pwfile.set_password("carol", "pw", 2000)
    calls = _count_pbkdf2(monkeypatch)
    per_name: dict[str, int] = {}
    for i in range(48):
        assert not pwfile.verify(f"nobody-{i}", "pw")
        per_name[f"nobody-{i}"] = calls[-1]
    assert len(calls) == 48, "one PBKDF2 per unknown user"
    assert set(per_name.values()) == {MOSQUITTO_ITERATIONS, 2000}, "unknown users cost what known users do"
    fast = sum(count == MOSQUITTO_ITERATIONS for count in per_name.values())
    assert 4 <= fast <= 32, f"{fast} of 48 unknown names cost 101 iterations; about a third should"
    for name, count in list(per_name.items())[:10]:
        assert not pwfile.verify(name, "other")
        assert calls[-1] == count, "a name always costs the same"


def test_verify_cached_answers_without_pbkdf2(monkeypatch: pytest.MonkeyPatch) -> None:
    pwfile = PasswordFile()
    pwfile.set_password("alice", "pw", 500)
    calls = _count_pbkdf2(monkeypatch)
    assert not pwfile.verify_cached("alice", "pw"), "nothing is cached before a full check"
    assert pwfile.verify("alice", "pw")
    assert pwfile.verify_cached("alice", "pw") and pwfile.verify_cached("alice", b"pw")
    assert not pwfile.verify_cached("alice", "wrong") and not pwfile.verify_cached("nobody", "pw")
    assert len(calls) == 1
    # A reload keeps what was confirmed for unchanged hashes only.
    reloaded = PasswordFile()
    reloaded._hashes = dict(pwfile._hashes)
    reloaded.set_password("bob", "pw", 500)
    reloaded.adopt_cache(pwfile)
    assert reloaded.verify_cached("alice", "pw")
    changed = PasswordFile()
    changed.set_password("alice", "pw", 500)  # same password, new salt: another hash
    changed.adopt_cache(pwfile)
    assert not changed.verify_cached("alice", "pw")


def test_empty_password_only_where_the_file_allows_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "passwd"
    empty = hash_password("", FAST)
    path.write_text(
        f"# mqttchat: allow_empty_password bob\nalice:{empty}\nbob:{empty}\ncarol:{hash_password('pw', FAST)}\n"
    )
    pwfile = PasswordFile.load(path)
    calls = _count_pbkdf2(monkeypatch)
    assert not pwfile.verify("alice", ""), "alice's stored hash is of the empty password, which is still refused"
    assert not pwfile.verify("carol", b"") and not pwfile.verify("nobody", "")
    assert calls == [], "an empty password is refused without computing anything, for every user"
    assert pwfile.refuses_at_once("alice", "") and not pwfile.refuses_at_once("alice", "x")
    assert pwfile.verify("bob", ""), "bob is named in the file"
    assert not pwfile.verify("bob", "x")
    pwfile.save()
    assert path.read_text().startswith("# mqttchat: allow_empty_password bob\n"), "the directive survives a save"
    path.write_text(f"alice:{empty}\n#mqttchat: allow_empty_passwords alice\n")
    with pytest.raises(ConfigError, match="unknown mqttchat directive") as info:
        PasswordFile.load(path)
    assert info.value.line == 2


def test_byte_order_mark_does_not_hide_the_first_user(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    path.write_bytes(b"\xef\xbb\xbf" + f"alice:{hash_password('pw', FAST)}\n".encode())
    pwfile = PasswordFile.load(path)
    assert pwfile.users() == ["alice"]
    assert pwfile.verify("alice", "pw")
    acl = tmp_path / "acl"
    acl.write_bytes(b"\xef\xbb\xbfuser alice\ntopic read a/#\n")
    assert AccessControl.load(acl).users() == ["alice"]


def test_file_round_trip_keeps_comments_and_order(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    pwfile = PasswordFile(path)
    pwfile.set_password("alice", "a-secret", FAST)
    pwfile.set_password("bob", "b-secret", FAST)
    pwfile.save()
    text = path.read_text()
    path.write_text("# users of the chat\n\n" + text + "   # trailing comment\n")
    loaded = PasswordFile.load(path)
    assert loaded.path == path
    assert loaded.users() == ["alice", "bob"]
    assert loaded.verify("alice", "a-secret") and loaded.verify("bob", "b-secret")
    assert not loaded.verify("alice", "b-secret")
    loaded.remove("alice")
    loaded.set_password("carol", "c-secret", FAST)
    loaded.save()
    lines = path.read_text().splitlines()
    assert lines[0] == "# users of the chat" and lines[1] == ""
    assert [line.split(":")[0] for line in lines[2:]] == ["bob", "   # trailing comment", "carol"]
    again = PasswordFile.load(path)
    assert again.users() == ["bob", "carol"] and again.verify("carol", "c-secret")


def test_file_is_private_and_holds_no_plain_password(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    path.write_text("")
    path.chmod(0o644)
    pwfile = PasswordFile.load(path)
    pwfile.set_password("alice", "VeryPlainSecret", FAST)
    pwfile.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"VeryPlainSecret" not in path.read_bytes()
    assert "VeryPlainSecret" not in repr(pwfile)
    other = tmp_path / "copy"
    pwfile.save(other)
    assert pwfile.path == other and stat.S_IMODE(other.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy", "passwd"], "no temporary file is left behind"


def test_save_writes_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    link = tmp_path / "link"
    pwfile = PasswordFile(real)
    pwfile.set_password("alice", "pw", FAST)
    pwfile.save()
    link.symlink_to(real)
    loaded = PasswordFile.load(link)
    loaded.set_password("bob", "pw", FAST)
    loaded.save()
    assert link.is_symlink()
    assert PasswordFile.load(real).users() == ["alice", "bob"]


def test_save_without_a_path() -> None:
    with pytest.raises(ValueError, match="no path"):
        PasswordFile().save()


def test_reads_mosquitto_6_hashes(tmp_path: Path) -> None:
    salt = b"0123456789ab"
    digest = hashlib.sha512(b"oldpw" + salt).digest()
    path = tmp_path / "passwd"
    path.write_text(f"old:$6${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}\n")
    pwfile = PasswordFile.load(path)
    assert pwfile.verify("old", "oldpw")
    assert not pwfile.verify("old", "newpw")


GOOD = hash_password("pw", FAST)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("no colon here", "username:hash"),
        ("alice:plaintext", "not hashed"),
        (":" + GOOD, "empty"),
        ("alice:$5$abc$def", "unknown hash type"),
        ("alice:$7$many$" + GOOD.split("$", 3)[3], "not a number"),
        ("alice:$7$0$" + GOOD.split("$", 3)[3], "between 1"),
        ("alice:$7$10$!!!!$" + GOOD.split("$")[4], "salt is not base64"),
        ("alice:$7$10$" + base64.b64encode(b"x" * 8).decode() + "$" + GOOD.split("$")[4], "12 bytes"),
        ("alice:$7$10$" + GOOD.split("$")[3] + "$" + base64.b64encode(b"x" * 32).decode(), "64 bytes"),
        ("alice:$7$10$" + GOOD.split("$")[3], "form"),
        ("alice:" + GOOD + "\nalice:" + GOOD, "already appears on line 4"),
    ],
    ids=lambda value: value if " " in value or value in ("empty", "form") else "line",  # stable: the hash is salted
)
def test_malformed_line_names_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "passwd"
    path.write_text(f"# header\n\nbob:{GOOD}\n{line}\n")
    with pytest.raises(ConfigError) as info:
        PasswordFile.load(path)
    err = info.value
    expected_line = 5 if "already" in message else 4
    assert err.file == str(path) and err.line == expected_line
    assert message in str(err)
    assert str(err).startswith(f"{path}:{expected_line}: ")


def test_missing_or_undecodable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the password file") as info:
        PasswordFile.load(tmp_path / "missing")
    assert info.value.line is None
    path = tmp_path / "binary"
    path.write_bytes(f"bob:{GOOD}\n".encode() + b"\xff\xfe:x\n")
    with pytest.raises(ConfigError, match="UTF-8") as info:
        PasswordFile.load(path)
    assert info.value.line == 2


def test_hash_plain_text_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    path.write_text(f"# plain\nalice:alice-pw\nbob:{hash_password('bob-pw', FAST)}\n")
    with pytest.raises(ConfigError):
        PasswordFile.load(path)
    upgraded = PasswordFile.load(path, hash_plain_text=True)
    assert upgraded.verify("alice", "alice-pw") and upgraded.verify("bob", "bob-pw")
    upgraded.save()
    assert "alice-pw" not in path.read_text()
    assert PasswordFile.load(path).verify("alice", "alice-pw")


# ----------------------------------------------------------------------------------------------------------------
# Interoperability with Debian's mosquitto 2.0
# ----------------------------------------------------------------------------------------------------------------


@needs_mosquitto_passwd
def test_reads_files_written_by_mosquitto_passwd(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    subprocess.run([MOSQUITTO_PASSWD, "-b", "-c", str(path), "alice", "alice-pw"], check=True, timeout=30)
    subprocess.run([MOSQUITTO_PASSWD, "-b", str(path), "bob", "bøb pw:with colon"], check=True, timeout=30)
    subprocess.run([MOSQUITTO_PASSWD, "-H", "sha512", "-b", str(path), "old", "old-pw"], check=True, timeout=30)
    text = path.read_text()
    assert text.startswith("alice:$7$101$")
    assert "old:$6$" in text
    pwfile = PasswordFile.load(path)
    assert pwfile.users() == ["alice", "bob", "old"]
    assert pwfile.verify("alice", "alice-pw")
    assert pwfile.verify("bob", "bøb pw:with colon")
    assert pwfile.verify("old", "old-pw")
    assert not pwfile.verify("alice", "bob-pw")
    assert not pwfile.verify("old", "alice-pw")


@needs_mosquitto_passwd
def test_mosquitto_passwd_edits_our_files(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    pwfile = PasswordFile(path)
    pwfile.set_password("alice", "alice-pw")
    pwfile.save()
    subprocess.run([MOSQUITTO_PASSWD, "-b", str(path), "bob", "bob-pw"], check=True, timeout=30)
    loaded = PasswordFile.load(path)
    assert loaded.verify("alice", "alice-pw") and loaded.verify("bob", "bob-pw")


def _mosquitto_pub(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(port), "-t", "t", "-m", "x", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@needs_mosquitto
def test_mosquitto_accepts_our_password_file(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    pwfile = PasswordFile(path)
    pwfile.set_password("alice", "pw")  # the default (high) iteration count
    pwfile.set_password("bob", "bob:pw ✓", 101)
    pwfile.save()
    path.write_text("# written by mqttchat\n" + path.read_text())
    config = f"allow_anonymous false\npassword_file {path}\n"
    with run_mosquitto(tmp_path / "mosquitto", config) as broker:
        ok = _mosquitto_pub(broker.port, "-u", "alice", "-P", "pw")
        assert ok.returncode == 0, ok.stderr
        ok = _mosquitto_pub(broker.port, "-u", "bob", "-P", "bob:pw ✓", "-V", "mqttv311")
        assert ok.returncode == 0, ok.stderr
        wrong = _mosquitto_pub(broker.port, "-u", "alice", "-P", "not-pw")
        assert wrong.returncode != 0
        assert "not authori" in wrong.stderr.lower()
        unknown = _mosquitto_pub(broker.port, "-u", "carol", "-P", "pw")
        assert unknown.returncode != 0
        anonymous = _mosquitto_pub(broker.port)
        assert anonymous.returncode != 0
        assert "removing entry" not in broker.log_text(), broker.log_text()


# ----------------------------------------------------------------------------------------------------------------
# Topic filter algebra
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outer", "inner", "expected"),
    [
        ("chat/#", "chat/+/x", True),
        ("chat/#", "chat", True),
        ("chat/#", "chat/#", True),
        ("chat/+/msg", "chat/#", False),
        ("chat/+/msg", "chat/a/msg", True),
        ("a/+", "a/b", True),
        ("a/+", "a/+", True),
        ("a/+", "a/#", False),
        ("a/+", "a", False),
        ("a/+", "a/b/c", False),
        ("a/b", "a/b", True),
        ("a/b", "a/+", False),
        ("a", "a/#", False),
        ("a/+/#", "a/b", True),
        ("#", "+/x", True),
        ("#", "#", True),
        ("#", "$SYS/x", False),
        ("+/#", "$SYS/#", False),
        ("+/x", "$SYS/x", False),
        ("$SYS/#", "$SYS/+", True),
        ("$SYS/#", "#", False),
        ("a//b", "a//b", True),
        ("a/+/b", "a//b", True),
    ],
)
def test_filter_contains(outer: str, inner: str, expected: bool) -> None:
    assert filter_contains(outer, inner) is expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("home/secret/#", "home/+", True),
        ("home/secret/#", "home/#", True),
        ("home/secret/#", "home/kitchen/#", False),
        ("home/secret/#", "home/+/light", True),
        ("a/+", "+/b", True),
        ("a", "a/#", True),
        ("a/b", "a", False),
        ("+/+", "a", False),
        ("a/+/c", "a/b/+", True),
        ("a/b/c", "a/b/d", False),
        ("#", "$SYS/x", False),
        ("$SYS/#", "#", False),
        ("$SYS/#", "$SYS/+", True),
        ("+", "#", True),
    ],
)
def test_filters_overlap(a: str, b: str, expected: bool) -> None:
    assert filters_overlap(a, b) is expected
    assert filters_overlap(b, a) is expected


# ----------------------------------------------------------------------------------------------------------------
# ACL decisions
# ----------------------------------------------------------------------------------------------------------------

ACL = """\
# comment
topic read $SYS/#            # rules before any `user` line apply to anonymous clients
topic read public/#

user alice
topic readwrite home/#
topic write chat/lobby
topic deny home/secret/#
topic read sensors/+/temp

user bob
  topic read home/+/light
topic subscribe reports/#
topic read reports/public/#
topic alerts/bob

user ops
topic read #   # everything, but not $SYS
topic read $share-not-special/x

pattern write chat/v1/%u/#   # pattern lines apply to every client; %u = user name, %c = client id
pattern read chat/#
pattern subscribe telemetry/#   # extension: may subscribe
pattern readwrite clients/%c/#
pattern readwrite %u/inbox/#
pattern deny chat/v1/%u/muted
"""

Op = Callable[[ClientAccess, str], bool]
PUB: Op = ClientAccess.can_publish
SUB: Op = ClientAccess.can_subscribe
RECV: Op = ClientAccess.can_receive

ANON = None

DECISIONS: list[tuple[str | None, str, Op, str, bool]] = [
    # anonymous: the rules before the first `user` line, plus patterns without %u
    (ANON, "anon1", RECV, "$SYS/broker/uptime", True),
    (ANON, "anon1", SUB, "$SYS/#", True),
    (ANON, "anon1", SUB, "$SYS/broker/+", True),
    (ANON, "anon1", PUB, "$SYS/broker/uptime", False),
    (ANON, "anon1", SUB, "#", True),  # wider than the rights: granted, filtered per message
    (ANON, "anon1", RECV, "public/news", True),
    (ANON, "anon1", PUB, "public/news", False),
    (ANON, "anon1", RECV, "chat/lobby", True),
    (ANON, "anon1", PUB, "chat/v1/alice/x", False),
    (ANON, "anon1", PUB, "home/kitchen", False),
    (ANON, "anon1", PUB, "clients/anon1/status", True),
    (ANON, "anon1", PUB, "clients/other/status", False),
    (ANON, "anon1", RECV, "chat/v1/alice/muted", False),  # a deny with %u is widened for anonymous clients
    # alice: her section plus the patterns
    ("alice", "a1", PUB, "home/kitchen", True),
    ("alice", "a1", RECV, "home/kitchen", True),
    ("alice", "a1", PUB, "home", True),
    ("alice", "a1", PUB, "home/secret/x", False),
    ("alice", "a1", PUB, "home/secret", False),
    ("alice", "a1", RECV, "home/secret/x", False),
    ("alice", "a1", SUB, "home/secret/x", False),
    ("alice", "a1", SUB, "home/#", True),  # partly denied: granted, home/secret filtered out per message
    ("alice", "a1", SUB, "home/+", True),
    ("alice", "a1", SUB, "home/secret/#", False),  # wholly inside the deny
    ("alice", "a1", SUB, "home/secret/+/x", False),
    ("alice", "a1", SUB, "elsewhere/#", False),  # overlaps no rule: nothing could ever arrive
    ("alice", "a1", SUB, "home/+/light", True),
    ("alice", "a1", SUB, "home/kitchen/#", True),
    ("alice", "a1", SUB, "home/kitchen/+", True),
    ("alice", "a1", PUB, "chat/lobby", True),
    ("alice", "a1", PUB, "chat/other", False),
    ("alice", "a1", PUB, "chat/v1/alice/msg", True),
    ("alice", "a1", PUB, "chat/v1/alice", True),
    ("alice", "a1", PUB, "chat/v1/bob/msg", False),
    ("alice", "a1", PUB, "chat/v1/alice/muted", False),
    ("alice", "a1", RECV, "chat/v1/alice/muted", False),
    ("alice", "a1", RECV, "chat/v1/bob/muted", True),
    ("alice", "a1", SUB, "chat/#", True),  # chat/v1/alice/muted is filtered per message
    ("alice", "a1", SUB, "chat/+/msg", True),
    ("alice", "a1", SUB, "chat/lobby", True),
    ("alice", "a1", RECV, "$SYS/broker/uptime", False),  # anonymous rules do not apply to users
    ("alice", "a1", SUB, "#", True),
    ("alice", "a1", SUB, "$SYS/#", False),  # `#` rules do not reach $SYS, and alice has no $SYS rule
    ("alice", "a1", SUB, "sensors/+/temp", True),
    ("alice", "a1", SUB, "sensors/kitchen/temp", True),
    ("alice", "a1", SUB, "sensors/#", True),
    ("alice", "a1", SUB, "sensors/+/+", True),
    ("alice", "a1", RECV, "sensors/kitchen/humidity", False),
    ("alice", "a1", PUB, "sensors/kitchen/temp", False),
    ("alice", "a1", SUB, "$share/g/home/kitchen/#", True),
    ("alice", "a1", SUB, "$share/g/home/#", True),
    ("alice", "a1", SUB, "$share/g/home/secret/#", False),
    ("alice", "a1", SUB, "$share/g/#", True),
    ("alice", "a1", SUB, "$share//x", False),
    ("alice", "a1", SUB, "home/kit+chen", False),  # not a valid filter
    ("alice", "a1", PUB, "home/+", False),  # not a valid topic name
    ("alice", "a1", PUB, "clients/a1/x", True),
    ("alice", "a1", PUB, "alice/inbox/1", True),
    ("alice", "a1", PUB, "bob/inbox/1", False),
    # bob: read/subscribe/readwrite without an access word
    ("bob", "b1", SUB, "home/+/light", True),
    ("bob", "b1", RECV, "home/kitchen/light", True),
    ("bob", "b1", SUB, "home/#", True),
    ("bob", "b1", RECV, "home/kitchen/oven", False),
    ("bob", "b1", SUB, "home/+/+", True),
    ("bob", "b1", SUB, "reports/#", True),  # `subscribe` may subscribe...
    ("bob", "b1", RECV, "reports/private/x", False),  # ...but does not grant receiving
    ("bob", "b1", RECV, "reports/public/x", True),
    ("bob", "b1", SUB, "telemetry/#", True),
    ("bob", "b1", SUB, "$share/workers/telemetry/+", True),
    ("bob", "b1", RECV, "telemetry/x", False),
    ("bob", "b1", PUB, "telemetry/x", False),
    ("bob", "b1", PUB, "alerts/bob", True),
    ("bob", "b1", RECV, "alerts/bob", True),
    ("bob", "b1", PUB, "chat/v1/bob/x", True),
    ("bob", "b1", PUB, "chat/v1/alice/x", False),
    # ops: `#` does not reach $SYS
    ("ops", "o1", SUB, "#", True),
    ("ops", "o1", SUB, "a/#", True),
    ("ops", "o1", SUB, "+/x", True),
    ("ops", "o1", RECV, "a/b", True),
    ("ops", "o1", SUB, "$SYS/#", False),
    ("ops", "o1", RECV, "$SYS/broker/uptime", False),
    ("ops", "o1", SUB, "chat/#", True),
    ("ops", "o1", SUB, "chat/v1/ops/muted", False),
    ("ops", "o1", SUB, "chat/v1/+/muted", True),
    ("ops", "o1", RECV, "chat/v1/ops/muted", False),
    ("ops", "o1", SUB, "chat/v1/+/msg", True),
    # an unknown user gets the patterns only
    ("carl", "c1", PUB, "chat/v1/carl/x", True),
    ("carl", "c1", RECV, "chat/v1/alice/muted", True),
    ("carl", "c1", RECV, "chat/v1/carl/muted", False),
    ("carl", "c1", PUB, "carl/inbox/x", True),
    ("carl", "c1", RECV, "public/news", False),
    # user names and client ids that would turn a pattern into a wildcard or reach into another tree
    ("+", "c", PUB, "chat/v1/alice/x", False),
    ("+", "c", PUB, "chat/v1/+/x", False),
    ("#", "c", PUB, "chat/v1/alice/x", False),
    ("#", "c", RECV, "chat/v1/alice/muted", False),  # deny widened: an odd name only loses access
    ("#", "c", RECV, "chat/lobby", True),
    ("a/b", "c", PUB, "chat/v1/a/b/x", False),
    ("a", "c", PUB, "chat/v1/a/b/x", True),
    ("", "c", PUB, "chat/v1//x", False),
    ("$SYS", "c", PUB, "$SYS/inbox/x", False),
    ("x", "+", PUB, "clients/other/x", False),
    ("x", "#", PUB, "clients/other/x", False),
    ("x", "x/y", PUB, "clients/x/y/z", False),
    ("x", "x", PUB, "clients/x/y/z", True),
    ("x", "", PUB, "clients//z", False),
]


@pytest.mark.parametrize(
    ("username", "client_id", "op", "topic", "expected"),
    DECISIONS,
    ids=[f"{u}-{c}-{op.__name__}-{t}" for u, c, op, t, _ in DECISIONS],
)
def test_acl_decisions(username: str | None, client_id: str, op: Op, topic: str, expected: bool) -> None:
    access = AccessControl.parse(ACL, "acl.conf").for_client(username, client_id)
    assert op(access, topic) is expected
    assert op(access, topic) is expected, "memoised answers agree"


def test_allow_all() -> None:
    for topic in ("$SYS/anything", "a/b"):
        assert ALLOW_ALL.can_publish(topic)
        assert ALLOW_ALL.can_subscribe(topic)
        assert ALLOW_ALL.can_receive(topic)
    assert ALLOW_ALL.can_subscribe("#")
    assert isinstance(ALLOW_ALL, ClientAccess)


def test_empty_acl_denies_everything() -> None:
    access = AccessControl.parse("# nothing\n").for_client("alice", "a")
    assert not access.can_publish("a") and not access.can_subscribe("a") and not access.can_receive("a")


def test_receive_memo_is_bounded() -> None:
    access = AccessControl.parse("topic read a/#\n").for_client(None, "c")
    for i in range(5000):
        assert access.can_receive(f"a/{i}")
        assert not access.can_receive(f"b/{i}")
    assert len(access._receive_cache) <= 1024


def test_load_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "acl"
    path.write_text(ACL)
    acl = AccessControl.load(path)
    assert acl.users() == ["alice", "bob", "ops"]
    assert acl.for_client("alice", "a").can_publish("home/x")
    with pytest.raises(ConfigError, match="cannot read the ACL file"):
        AccessControl.load(tmp_path / "missing")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("topci read a/b", "unknown keyword 'topci'"),
        ("topic raed a/b", "unknown access 'raed'"),
        ("topic read", "missing topic"),
        ("topic", "missing topic"),
        ("pattern write", "missing topic"),
        ("topic read a/#/b", "'#' must be the last level"),
        ("topic read a/b+", "whole level"),
        ("topic read $share/g/a", "shared subscription"),
        ("user", "missing user name"),
        ("user   # just a comment", "missing user name"),
    ],
)
def test_acl_parse_error_names_the_line(line: str, message: str) -> None:
    text = f"# header\ntopic read a\n\nuser alice\n{line}\ntopic read b\n"
    with pytest.raises(ConfigError) as info:
        AccessControl.parse(text, "acl.conf")
    assert info.value.file == "acl.conf" and info.value.line == 5
    assert message in str(info.value)
    assert str(info.value).startswith("acl.conf:5: ")


def test_acl_parse_error_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "acl"
    path.write_text("topic read a\r\ntopic bogus a b\r\n")
    with pytest.raises(ConfigError) as info:
        AccessControl.load(path)
    assert info.value.file == str(path) and info.value.line == 2


def test_acl_topic_without_access_word_and_inline_comments() -> None:
    acl = AccessControl.parse("topic a/#  # a comment\ntopic read #\nuser u\ntopic write with space/x\n")
    anon = acl.for_client(None, "c")
    assert anon.can_publish("a/x") and anon.can_receive("a/x")
    assert anon.can_subscribe("#")
    assert acl.for_client("u", "c").can_publish("with space/x")
