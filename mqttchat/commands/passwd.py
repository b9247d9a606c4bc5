"""``mqttchat passwd``: manage a broker password file in mosquitto_passwd's format and habits."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from mqttchat.broker.auth import DEFAULT_ITERATIONS, SCRAM_MIN_ITERATIONS, PasswordFile, username_problem
from mqttchat.config.toml import ConfigError

PROG = "mqttchat passwd"


class _UsageError(Exception):
    """Wrong combination of arguments: exit status 2."""


class _Failure(Exception):
    """The command could not do its job: exit status 1."""


def build_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "passwd",
        help="manage a password file (mosquitto_passwd format)",
        description=(
            "Add, change or delete a user in a broker password file. The file is interchangeable with\n"
            "mosquitto_passwd's: one user:$7$iterations$salt$hash line per user (PBKDF2-HMAC-SHA512)."
        ),
        add_help=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n  mqttchat passwd -c users.txt alice\n  mqttchat passwd -b users.txt bob secret\n"
            "  mqttchat passwd -D users.txt bob\n  mqttchat passwd -U plain.txt"
        ),
    )
    p.add_argument("--help", action="help", help="show this help and exit")
    p.add_argument("-c", "--create", action="store_true", help="create the file, overwriting an existing one")
    p.add_argument("-b", "--batch", action="store_true", help="take the password from the command line")
    p.add_argument("-D", "--delete", action="store_true", help="delete the user")
    p.add_argument(
        "-U",
        "--upgrade",
        action="store_true",
        help="hash the plain-text passwords of a user:password file (lines already hashed are kept)",
    )
    p.add_argument(
        "-I",
        "--iterations",
        type=int,
        default=DEFAULT_ITERATIONS,
        metavar="N",
        help=f"PBKDF2 iterations for new hashes (default {DEFAULT_ITERATIONS}; mosquitto_passwd uses 101)",
    )
    p.add_argument(
        "--scram",
        action="append",
        default=[],
        metavar="MECHANISM",
        help="also let the user log in with SCRAM-SHA-1, SCRAM-SHA-256 or SCRAM-SHA-512 (MQTT 5 enhanced "
        "authentication): a '# mqttchat: scram' line, a comment to mosquitto (SCRAM-SHA-512 works from the hash "
        "itself; repeatable)",
    )
    p.add_argument("file", metavar="FILE", help="the password file")
    p.add_argument("username", metavar="USER", nargs="?", help="the user to add, change or delete")
    p.add_argument("password", metavar="PASSWORD", nargs="?", help="the password (with -b)")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Run ``mqttchat passwd``; problems are one line on stderr and exit status 1 (2 for wrong usage)."""
    try:
        _run(args)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except _UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except (_Failure, ConfigError, ValueError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        print(f"{PROG}: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    return 0


def _check_usage(args: argparse.Namespace) -> None:
    if args.iterations < 1:
        raise _UsageError("-I needs a number of iterations of at least 1")
    if args.scram and (args.upgrade or args.delete):
        raise _UsageError("--scram goes with adding or changing a password")
    if args.upgrade:
        if args.create or args.batch or args.delete:
            raise _UsageError("-U cannot be combined with -c, -b or -D")
        if args.username is not None:
            raise _UsageError("-U takes only the password file")
        return
    if args.create and args.delete:
        raise _UsageError("-c and -D cannot be used together")
    if args.username is None:
        raise _UsageError("missing USER (see --help)")
    if args.delete:
        if args.password is not None:
            raise _UsageError("-D takes no password")
    elif args.batch and args.password is None:
        raise _UsageError("-b needs the password on the command line")
    elif not args.batch and args.password is not None:
        raise _UsageError("give a password on the command line only with -b (or leave it out to be prompted)")


def _run(args: argparse.Namespace) -> None:
    _check_usage(args)
    path = Path(args.file)
    if args.upgrade:
        _must_exist(path)
        PasswordFile.load(path, hash_plain_text=True, iterations=args.iterations).save()
        return
    problem = username_problem(args.username)
    if problem and not args.delete:
        raise _Failure(problem)
    if args.create:
        pwfile = PasswordFile(path)
    else:
        pwfile = _existing(path)
    if args.delete:
        if not pwfile.remove(args.username):
            raise _Failure(f"user {args.username!r} is not in {path}")
        pwfile.save()
        return
    password = args.password if args.batch else _prompt()
    pwfile.set_password(args.username, password, args.iterations)
    for mechanism in args.scram:
        pwfile.set_scram(args.username, password, mechanism.upper(), max(args.iterations, SCRAM_MIN_ITERATIONS))
    pwfile.save()


def _must_exist(path: Path) -> None:
    if not path.exists():
        raise _Failure(f"{path}: no such file (use -c to create it)")


def _existing(path: Path) -> PasswordFile:
    _must_exist(path)
    return PasswordFile.load(path)


def _prompt() -> str:
    """Ask for the password twice, without echo."""
    try:
        first = getpass.getpass("Password: ")
        second = getpass.getpass("Reenter password: ")
    except EOFError:
        raise _Failure("no password given") from None
    if first != second:
        raise _Failure("the passwords do not match")
    if not first:
        raise _Failure("the password is empty")
    return first
