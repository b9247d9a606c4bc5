"""``mqttchat passwd``: mosquitto_passwd's options and habits, one-line errors."""

from __future__ import annotations

import argparse
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mqttchat.broker.auth import PasswordFile, hash_password
from mqttchat.commands import passwd

MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="mqttchat", add_help=False)
    sub = parser.add_subparsers(dest="command")
    passwd.build_parser(sub)
    args = parser.parse_args(["passwd", "-I", "10", *argv])
    result: int = args.handler(args)
    return result


class Prompts:
    """Answers for getpass, in order; records the prompts shown."""

    def __init__(self) -> None:
        self.answers: list[str] = []
        self.prompts: list[str] = []

    def __call__(self, prompt: str = "Password: ", stream: object = None) -> str:
        self.prompts.append(prompt)
        if not self.answers:
            raise EOFError
        return self.answers.pop(0)


@pytest.fixture
def prompts(monkeypatch: pytest.MonkeyPatch) -> Iterator[Prompts]:
    fake = Prompts()
    monkeypatch.setattr("getpass.getpass", fake)
    yield fake


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.startswith("mqttchat passwd: "), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def test_create_and_add_in_batch_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "passwd"
    assert run("-c", "-b", str(path), "alice", "alice-pw") == 0
    assert run("-b", str(path), "bob", "bob-pw") == 0
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    pwfile = PasswordFile.load(path)
    assert pwfile.users() == ["alice", "bob"]
    assert pwfile.verify("alice", "alice-pw") and pwfile.verify("bob", "bob-pw")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "alice-pw" not in path.read_text()
    assert path.read_text().startswith("alice:$7$10$"), "-I sets the iteration count"


def test_change_password(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    assert run("-c", "-b", str(path), "alice", "old") == 0
    assert run("-b", str(path), "alice", "new") == 0
    pwfile = PasswordFile.load(path)
    assert pwfile.users() == ["alice"]
    assert pwfile.verify("alice", "new") and not pwfile.verify("alice", "old")


def test_create_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    assert run("-c", "-b", str(path), "alice", "pw") == 0
    assert run("-c", "-b", str(path), "bob", "pw") == 0
    assert PasswordFile.load(path).users() == ["bob"]


def test_delete(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "passwd"
    assert run("-c", "-b", str(path), "alice", "pw") == 0
    assert run("-b", str(path), "bob", "pw") == 0
    assert run("-D", str(path), "alice") == 0
    assert PasswordFile.load(path).users() == ["bob"]
    assert run("-D", str(path), "alice") == 1
    assert "user 'alice' is not in" in one_line_error(capsys)
    assert PasswordFile.load(path).users() == ["bob"]


def test_prompted_password(tmp_path: Path, prompts: Prompts) -> None:
    path = tmp_path / "passwd"
    prompts.answers = ["typed-pw", "typed-pw"]
    assert run("-c", str(path), "alice") == 0
    assert prompts.prompts == ["Password: ", "Reenter password: "]
    assert PasswordFile.load(path).verify("alice", "typed-pw")
    prompts.answers = ["changed", "changed"]
    assert run(str(path), "alice") == 0
    assert PasswordFile.load(path).verify("alice", "changed")


def test_prompt_mismatch_changes_nothing(tmp_path: Path, prompts: Prompts, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "passwd"
    assert run("-c", "-b", str(path), "alice", "pw") == 0
    before = path.read_bytes()
    prompts.answers = ["one", "two"]
    assert run(str(path), "alice") == 1
    assert "do not match" in one_line_error(capsys)
    assert path.read_bytes() == before
    prompts.answers = ["one", "two"]
    assert run("-c", str(tmp_path / "new"), "alice") == 1
    assert not (tmp_path / "new").exists()
    one_line_error(capsys)


def test_prompt_empty_or_eof(tmp_path: Path, prompts: Prompts, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "passwd"
    prompts.answers = ["", ""]
    assert run("-c", str(path), "alice") == 1
    assert "empty" in one_line_error(capsys)
    prompts.answers = []
    assert run("-c", str(path), "alice") == 1
    assert "no password" in one_line_error(capsys)
    assert not path.exists()


def test_missing_file_without_create(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "missing"
    assert run("-b", str(path), "alice", "pw") == 1
    err = one_line_error(capsys)
    assert "no such file" in err and "-c" in err
    assert run("-D", str(path), "alice") == 1
    one_line_error(capsys)
    assert not path.exists()


def test_malformed_file_is_reported_with_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "passwd"
    path.write_text(f"# users\nalice:{hash_password('pw', 10)}\nbob\n")
    before = path.read_bytes()
    assert run("-b", str(path), "carol", "pw") == 1
    assert f"{path}:3:" in one_line_error(capsys)
    assert path.read_bytes() == before


def test_bad_user_name(tmp_path: Path, capsys: pytest.CaptureFixture[str], prompts: Prompts) -> None:
    path = tmp_path / "passwd"
    assert run("-c", "-b", str(path), "a:b", "pw") == 1
    assert "':'" in one_line_error(capsys)
    assert run("-c", str(path), "a:b") == 1
    one_line_error(capsys)
    assert prompts.prompts == [], "the user name is checked before asking for a password"
    assert not path.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["-c", "-D", "FILE", "alice"],
        ["-b", "FILE", "alice"],
        ["FILE", "alice", "pw"],
        ["-D", "FILE", "alice", "pw"],
        ["FILE"],
        ["-U", "FILE", "alice"],
        ["-U", "-c", "FILE"],
        ["-I", "0", "-b", "FILE", "alice", "pw"],
    ],
)
def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    path = tmp_path / "passwd"
    assert run(*[str(path) if a == "FILE" else a for a in argv]) == 2
    one_line_error(capsys)
    assert not path.exists()


def test_upgrade_plain_text_file(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    kept = hash_password("bob-pw", 10)
    path.write_text(f"# plain\nalice:alice-pw\nbob:{kept}\n")
    assert run("-U", str(path)) == 0
    text = path.read_text()
    assert "alice-pw" not in text and kept in text and text.startswith("# plain\n")
    pwfile = PasswordFile.load(path)
    assert pwfile.verify("alice", "alice-pw") and pwfile.verify("bob", "bob-pw")


@pytest.mark.skipif(not Path(MOSQUITTO_PASSWD).exists(), reason="mosquitto_passwd missing")
def test_files_pass_between_mqttchat_and_mosquitto_passwd(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    assert run("-c", "-b", str(path), "alice", "alice-pw") == 0
    subprocess.run([MOSQUITTO_PASSWD, "-b", str(path), "bob", "bob-pw"], check=True, timeout=30)
    assert run("-b", str(path), "carol", "carol-pw") == 0
    subprocess.run([MOSQUITTO_PASSWD, "-D", str(path), "alice"], check=True, timeout=30)
    pwfile = PasswordFile.load(path)
    assert pwfile.users() == ["bob", "carol"]
    assert pwfile.verify("bob", "bob-pw") and pwfile.verify("carol", "carol-pw")


def test_subprocess_errors_are_one_line(tmp_path: Path) -> None:
    code = (
        "import argparse, sys\n"
        "from mqttchat.commands import passwd\n"
        "parser = argparse.ArgumentParser(prog='mqttchat', add_help=False)\n"
        "passwd.build_parser(parser.add_subparsers())\n"
        "args = parser.parse_args(['passwd', *sys.argv[1:]])\n"
        "sys.exit(args.handler(args))\n"
    )
    missing = tmp_path / "nowhere" / "passwd"
    result = subprocess.run(
        [sys.executable, "-c", code, "-b", str(missing), "alice", "pw"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("mqttchat passwd: "), result.stderr
    unwritable = tmp_path / "dir-not-file"
    unwritable.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", code, "-c", "-b", str(unwritable / "sub" / "passwd"), "alice", "pw"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    result = subprocess.run(
        [sys.executable, "-c", code, "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and "-D" in result.stdout and "FILE" in result.stdout
