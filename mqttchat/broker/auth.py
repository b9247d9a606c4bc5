"""Broker security: mosquitto-compatible password files and ACL files, compiled into fast per-client checks."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mqttchat.config.toml import ConfigError, read_text, write_atomically
from mqttchat.protocol import (
    Auth,
    Properties,
    ReasonCode,
    RemoteProtocolError,
    matches,
    parse_shared_subscription,
    topic_filter_problem,
)
from mqttchat.protocol.cache import BoundedCache
from mqttchat.protocol.topics import is_wildcard

__all__ = [
    "ALLOW_ALL",
    "DEFAULT_ITERATIONS",
    "MOSQUITTO_ITERATIONS",
    "SALT_LENGTH",
    "SCRAM_MECHANISMS",
    "AccessControl",
    "ClientAccess",
    "EnhancedAuth",
    "PasswordFile",
    "ScramLogin",
    "ScramRefused",
    "filter_contains",
    "filters_overlap",
    "hash_password",
    "scram_directive",
    "username_problem",
]

# --------------------------------------------------------------------------------------------------------------
# Password file
#
# One ``username:hash`` per line, exactly as mosquitto 2.x reads and mosquitto_passwd writes:
#   $7$<iterations>$<salt>$<digest>   PBKDF2-HMAC-SHA512 (mosquitto_passwd 2.0 writes 101 iterations)
#   $6$<salt>$<digest>                SHA512(password + salt), mosquitto 1.x; read only
# salt: 12 random bytes, digest: 64 bytes, both standard base64 (+/) with = padding. mosquitto 2.0 drops an
# entry whose salt is not exactly 12 bytes or whose digest is not 64, and accepts any iteration count >= 1.
#
# An empty password is refused, whatever the stored hash, unless the file names the user in a comment that
# mosquitto ignores:   # mqttchat: allow_empty_password <username>
# --------------------------------------------------------------------------------------------------------------

#: PBKDF2 rounds for new hashes: ~15-20 ms on a 2020s x86 core; mosquitto accepts any count in the field.
DEFAULT_ITERATIONS = 25_000
#: What mosquitto_passwd 2.0 writes.
MOSQUITTO_ITERATIONS = 101
#: mosquitto requires exactly this salt length.
SALT_LENGTH = 12
_DIGEST_LENGTH = 64
#: A file may not make one check cost more than this (it would stall every CONNECT).
_MAX_ITERATIONS = 10_000_000
_WS = " \t\n\r\v\f"  # what mosquitto's isspace() trims (ASCII only)
#: A comment starting so is a directive for mqttchat (mosquitto reads it as a comment).
_DIRECTIVE = "mqttchat:"
_ALLOW_EMPTY = "allow_empty_password"
_SCRAM = "scram"
_B64_RE = re.compile(r"[A-Za-z0-9+/]+={0,2}")


@dataclass(frozen=True, slots=True)
class _Hash:
    """A parsed ``$6$`` or ``$7$`` password hash."""

    scheme: str  # "6" or "7"
    iterations: int  # 0 for $6$
    salt: bytes
    digest: bytes
    text: str

    def compute(self, password: bytes) -> bytes:
        if self.scheme == "7":
            return hashlib.pbkdf2_hmac("sha512", password, self.salt, self.iterations)
        return hashlib.sha512(password + self.salt).digest()

    def check(self, password: bytes) -> bool:
        return hmac.compare_digest(self.compute(password), self.digest)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    if not _B64_RE.fullmatch(text):
        raise ValueError(f"the {what} is not base64")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError(f"the {what} is not base64") from None


def _parse_hash(text: str) -> _Hash:
    """Parse a stored hash; ValueError says what is wrong (never echoing the text)."""
    parts = text.split("$")
    if len(parts) < 2 or parts[0] != "":
        raise ValueError("the password is not hashed (expected $7$... or $6$...; mqttchat passwd -U converts)")
    scheme = parts[1]
    if scheme == "7":
        if len(parts) != 5:
            raise ValueError("a $7$ hash has the form $7$<iterations>$<salt>$<hash>")
        count = parts[2]
        if not count.isascii() or not count.isdigit():
            raise ValueError(f"the iteration count {count[:20]!r} is not a number")
        iterations = int(count)
        if not 1 <= iterations <= _MAX_ITERATIONS:
            raise ValueError(f"the iteration count must be between 1 and {_MAX_ITERATIONS}")
        salt_text, digest_text = parts[3], parts[4]
    elif scheme == "6":
        if len(parts) != 4:
            raise ValueError("a $6$ hash has the form $6$<salt>$<hash>")
        iterations = 0
        salt_text, digest_text = parts[2], parts[3]
    else:
        raise ValueError(f"unknown hash type ${scheme[:10]}$ (mosquitto knows $6$ and $7$)")
    salt = _unb64(salt_text, "salt")
    digest = _unb64(digest_text, "hash")
    if len(salt) != SALT_LENGTH:
        raise ValueError(f"the salt must be {SALT_LENGTH} bytes (mosquitto ignores other lengths), not {len(salt)}")
    if len(digest) != _DIGEST_LENGTH:
        raise ValueError(f"the hash must be {_DIGEST_LENGTH} bytes (SHA-512), not {len(digest)}")
    return _Hash(scheme, iterations, salt, digest, text)


def hash_password(password: str, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None) -> str:
    """``$7$<iterations>$<salt>$<PBKDF2-HMAC-SHA512>`` for ``password``, as mosquitto 2.x reads it."""
    if not isinstance(iterations, int) or isinstance(iterations, bool) or not 1 <= iterations <= _MAX_ITERATIONS:
        raise ValueError(f"iterations must be an integer between 1 and {_MAX_ITERATIONS}")
    if salt is None:
        salt = os.urandom(SALT_LENGTH)
    elif len(salt) != SALT_LENGTH:
        raise ValueError(f"the salt must be {SALT_LENGTH} bytes: mosquitto ignores entries with other lengths")
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8", "surrogatepass"), salt, iterations)
    return f"$7${iterations}${_b64(salt)}${_b64(digest)}"


def username_problem(username: str) -> str | None:
    """Why ``username`` cannot be stored in a password file, or None when it can."""
    if not username:
        return "the user name is empty"
    if ":" in username:
        return "a user name must not contain ':'"
    if any(c in username for c in "\n\r\0"):
        return "a user name must not contain a line break or NUL"
    if username.startswith("#"):
        return "a user name must not start with '#' (the line would read as a comment)"
    if username != username.strip(_WS):
        return "a user name must not start or end with white space (mosquitto trims it)"
    if len(username.encode("utf-8", "surrogatepass")) > 65_535:
        return "the user name is longer than 65535 bytes"
    return None


def _lines(text: str) -> list[str]:
    """The lines of a file as mosquitto's fgets sees them: split at \\n only, without a final empty one."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


class PasswordFile:
    """Users and their password hashes, read from and written to a mosquitto 2.x password file.

    Comments and blank lines survive a load/save round trip; new users are appended. Plain passwords are never
    stored: only their hashes, plus (for a user whose last check succeeded) an HMAC of salt + password under a
    random per-instance key, so that a client reconnecting every second costs one PBKDF2 only once. That cache
    is in memory only, is keyed by the stored hash (a changed password never hits it), and a hit only ever
    confirms a password that a full check already accepted.

    An empty password is refused at once for every user, unless a ``# mqttchat: allow_empty_password NAME``
    comment names the user (then the stored hash decides, as for any password).
    """

    def __init__(self, path: str | Path | None = None, *, cache: bool = True) -> None:
        self.path: Path | None = Path(path) if path is not None else None
        self._hashes: dict[str, _Hash] = {}
        # The file's lines in order: ("user", name) for an entry, ("text", line) for a comment or blank line.
        self._layout: list[tuple[str, str]] = []
        self._cache_enabled = cache
        self._cache_key = os.urandom(32)
        self._verified: dict[str, tuple[str, bytes]] = {}
        #: Shapes of the stored hashes, one per user, for unknown users' dummy checks (see _dummy_hash).
        self._dummies: list[_Hash] | None = None
        #: Users who may log in with an empty password (``# mqttchat: allow_empty_password NAME``).
        self.empty_password_allowed: set[str] = set()
        #: SCRAM verifiers from ``# mqttchat: scram …`` lines, by (mechanism, user) (see :class:`ScramLogin`).
        self.scram: dict[tuple[str, str], ScramVerifier] = {}

    def __repr__(self) -> str:
        return f"PasswordFile({str(self.path) if self.path else None!r}, {len(self._hashes)} users)"

    def __len__(self) -> int:
        return len(self._hashes)

    def __contains__(self, username: object) -> bool:
        return username in self._hashes

    # -- reading ---------------------------------------------------------------------------------------------

    @classmethod
    def load(
        cls, path: str | Path, *, hash_plain_text: bool = False, iterations: int = DEFAULT_ITERATIONS
    ) -> PasswordFile:
        """Read a password file.

        Raises:
            ConfigError: the file is missing or unreadable, or a line is malformed (the error names the line).
                With ``hash_plain_text`` (``mqttchat passwd -U``), a ``user:password`` line whose password is
                not a hash is hashed instead (with ``iterations``); lines already hashed are kept.
        """
        file = Path(path)
        text = read_text(file, what="password file", strip_bom=True)
        pwfile = cls(file)
        first_line: dict[str, int] = {}
        for number, raw in enumerate(_lines(text), 1):
            line = raw.strip(_WS)
            if not line or line.startswith("#"):
                pwfile._layout.append(("text", raw.rstrip(_WS)))
                directive = line[1:].strip(_WS)
                if directive.startswith(_DIRECTIVE):
                    pwfile._directive(directive[len(_DIRECTIVE) :].strip(_WS), file, number)
                continue
            username, sep, stored = line.partition(":")
            username, stored = username.strip(_WS), stored.strip(_WS)
            if not sep:
                raise ConfigError(file, number, None, "expected username:hash")
            problem = username_problem(username)
            if problem:
                raise ConfigError(file, number, None, problem)
            if username in first_line:
                raise ConfigError(
                    file, number, None, f"user {username!r} already appears on line {first_line[username]}"
                )
            try:
                parsed = _parse_hash(stored)
            except ValueError as exc:
                if not hash_plain_text or stored.startswith(("$6$", "$7$")):
                    raise ConfigError(file, number, None, f"user {username!r}: {exc}") from None
                parsed = _parse_hash(hash_password(stored, iterations))
            first_line[username] = number
            pwfile._hashes[username] = parsed
            pwfile._layout.append(("user", username))
        return pwfile

    def _directive(self, text: str, file: Path, number: int) -> None:
        keyword, _, rest = text.partition(" ")
        if keyword == _SCRAM:
            try:
                username, mechanism, verifier = _parse_scram_directive(rest)
            except ValueError as exc:
                raise ConfigError(file, number, None, str(exc)) from None
            self.scram[(mechanism, username)] = verifier
            return
        if keyword != _ALLOW_EMPTY or not rest.strip(_WS):
            raise ConfigError(
                file, number, None, f"unknown mqttchat directive (expected '# {_DIRECTIVE} {_ALLOW_EMPTY} USERNAME')"
            )
        self.empty_password_allowed.add(rest.strip(_WS))

    # -- checking --------------------------------------------------------------------------------------------

    def refuses_at_once(self, username: str, password: str | bytes) -> bool:
        """Whether the login is refused without computing anything: an empty password, unless the file allows
        it for this user. The same for known and unknown users, so it tells nothing about who exists."""
        return not password and username not in self.empty_password_allowed

    def verify_cached(self, username: str, password: str | bytes) -> bool:
        """True when ``password`` is the one a full check of ``username`` last accepted (microseconds: an HMAC,
        no PBKDF2). False says nothing: the full check (:meth:`verify`) decides."""
        if not self._cache_enabled:
            return False
        stored = self._hashes.get(username)
        cached = self._verified.get(username)
        if stored is None or cached is None or cached[0] != stored.text:
            return False
        secret = password.encode("utf-8", "surrogatepass") if isinstance(password, str) else bytes(password)
        mac = hmac.new(self._cache_key, stored.salt + secret, hashlib.sha256).digest()
        return hmac.compare_digest(mac, cached[1])

    def verify(self, username: str, password: str | bytes) -> bool:
        """Whether ``password`` is ``username``'s. Constant-time comparison; an unknown user costs what a known
        one does (see :meth:`_dummy_hash`)."""
        if self.refuses_at_once(username, password):
            return False
        secret = password.encode("utf-8", "surrogatepass") if isinstance(password, str) else bytes(password)
        stored = self._hashes.get(username)
        if stored is None:
            self._dummy_hash(username).check(secret)
            return False
        if self.verify_cached(username, secret):
            return True
        if not stored.check(secret):
            return False
        if self._cache_enabled:
            mac = hmac.new(self._cache_key, stored.salt + secret, hashlib.sha256).digest()
            self._verified[username] = (stored.text, mac)
        return True

    def _dummy_hash(self, username: str) -> _Hash:
        """What an unknown user's check computes, so that it costs what a known user's does.

        One of the file's own hash shapes (scheme and iteration count), with a random salt and digest, picked
        for ``username`` by a keyed hash: the same name always costs the same, and unknown names cost what the
        file's users do in the same proportions. In a file mixing mosquitto_passwd's 101 iterations with 25,000,
        no answer time marks a name as unknown.
        """
        if self._dummies is None:
            shapes = [(h.scheme, h.iterations) for h in self._hashes.values()] or [("7", DEFAULT_ITERATIONS)]
            self._dummies = [
                _Hash(scheme, iterations, os.urandom(SALT_LENGTH), os.urandom(_DIGEST_LENGTH), "")
                for scheme, iterations in shapes
            ]
        key = hmac.new(self._cache_key, username.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
        return self._dummies[int.from_bytes(key[:8], "big") % len(self._dummies)]

    def stored_hash(self, username: str) -> str | None:
        """The stored hash text of ``username`` (to tell whether a reload changed it), or None."""
        stored = self._hashes.get(username)
        return None if stored is None else stored.text

    def adopt_cache(self, older: PasswordFile) -> None:
        """Keep what ``older`` (the file before a reload) confirmed, for users whose hash did not change."""
        self._cache_key = older._cache_key
        self._verified = {
            user: entry
            for user, entry in older._verified.items()
            if user in self._hashes and self._hashes[user].text == entry[0]
        }

    # -- changing --------------------------------------------------------------------------------------------

    def set_password(self, username: str, password: str, iterations: int = DEFAULT_ITERATIONS) -> None:
        """Add ``username`` or change its password.

        Raises:
            ValueError: the user name cannot be stored (contains ':' or a line break, is empty, ...).
        """
        problem = username_problem(username)
        if problem:
            raise ValueError(problem)
        parsed = _parse_hash(hash_password(password, iterations))
        if username not in self._hashes:
            self._layout.append(("user", username))
        self._hashes[username] = parsed
        self._verified.pop(username, None)
        self._dummies = None

    def set_scram(self, username: str, password: str, mechanism: str, iterations: int = DEFAULT_ITERATIONS) -> None:
        """Let ``username`` log in with ``mechanism``: a ``# mqttchat: scram`` line (a new salt), replacing the one
        before.

        Raises:
            ValueError: an unknown mechanism, a user name that cannot be stored, too few iterations.
        """
        problem = username_problem(username)
        if problem:
            raise ValueError(problem)
        if not SCRAM_MIN_ITERATIONS <= iterations <= _MAX_ITERATIONS:
            raise ValueError(f"SCRAM needs between {SCRAM_MIN_ITERATIONS} and {_MAX_ITERATIONS} iterations")
        line = scram_directive(username, password, mechanism, iterations)
        _, _, verifier = _parse_scram_directive(line.split(_SCRAM, 1)[1])
        self._drop_scram_lines(username, mechanism)
        self._layout.append(("text", line))
        self.scram[(mechanism, username)] = verifier

    def _drop_scram_lines(self, username: str, mechanism: str | None = None) -> None:
        """Remove ``username``'s SCRAM lines (of ``mechanism``, or all)."""

        def names_user(line: str) -> bool:
            text = line.strip(_WS).lstrip("#").strip(_WS)
            if not text.startswith(_DIRECTIVE):
                return False
            words = text[len(_DIRECTIVE) :].split()
            return len(words) >= 3 and words[0] == _SCRAM and words[1] == username and mechanism in (None, words[2])

        self._layout = [(kind, value) for kind, value in self._layout if kind != "text" or not names_user(value)]
        for key in [key for key in self.scram if key[1] == username and mechanism in (None, key[0])]:
            del self.scram[key]

    def remove(self, username: str) -> bool:
        """Delete ``username`` (and its SCRAM lines); False when there was no such user."""
        had_scram = any(key[1] == username for key in self.scram)
        self._drop_scram_lines(username)
        if self._hashes.pop(username, None) is None:
            return had_scram
        self._layout.remove(("user", username))
        self._verified.pop(username, None)
        self._dummies = None
        return True

    def users(self) -> list[str]:
        """The user names, in file order."""
        return list(self._hashes)

    # -- writing ---------------------------------------------------------------------------------------------

    def dumps(self) -> str:
        """The file's text."""
        lines = [f"{value}:{self._hashes[value].text}" if kind == "user" else value for kind, value in self._layout]
        return "".join(f"{line}\n" for line in lines)

    def save(self, path: str | Path | None = None) -> None:
        """Write the file atomically (a temporary file renamed over it), readable by its owner only (0600).

        Writes through a symlink to its target. When replacing a file owned by someone else (root editing
        mosquitto's file), the owner is kept where the OS allows it.

        Raises:
            ValueError: no path was given and the file was not loaded from one.
            OSError: the file or its directory cannot be written.
        """
        if path is not None:
            self.path = Path(path)
        if self.path is None:
            raise ValueError("no path to save the password file to")
        write_atomically(self.path, self.dumps().encode("utf-8", "surrogatepass"), private=True, make_parents=False)


# --------------------------------------------------------------------------------------------------------------
# SCRAM (MQTT 5 enhanced authentication, RFC 5802 / 7677), with the scramp library
#
# A SCRAM login needs a verifier per user and mechanism: salt, iteration count, StoredKey and ServerKey. They come
# from the password file: a $7$ hash is PBKDF2-HMAC-SHA512, which is SCRAM-SHA-512's SaltedPassword, so every user
# with one (of at least 4096 iterations: mosquitto_passwd writes 101, 'mqttchat passwd' 25,000) can log in with
# SCRAM-SHA-512 as it is; other mechanisms read lines that mosquitto takes for comments:
#   # mqttchat: scram USER SCRAM-SHA-256 <iterations> <salt> <StoredKey> <ServerKey>      (base64)
# which scram_directive() writes.
# --------------------------------------------------------------------------------------------------------------

SCRAM_MECHANISMS = ("SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512")
_SCRAM_HASHES = {"SCRAM-SHA-1": hashlib.sha1, "SCRAM-SHA-256": hashlib.sha256, "SCRAM-SHA-512": hashlib.sha512}
#: The least iteration count scramp (and RFC 7677) accepts.
SCRAM_MIN_ITERATIONS = 4096

#: salt, StoredKey, ServerKey, iteration count: what scramp's server asks for a user.
ScramVerifier = tuple[bytes, bytes, bytes, int]


def _scram_keys(mechanism: str, salted: bytes) -> tuple[bytes, bytes]:
    digest = _SCRAM_HASHES[mechanism]
    client_key = hmac.new(salted, b"Client Key", digest).digest()
    return digest(client_key).digest(), hmac.new(salted, b"Server Key", digest).digest()


def scram_directive(username: str, password: str, mechanism: str = "SCRAM-SHA-256", iterations: int = 10_000) -> str:
    """The password-file line that lets ``username`` log in with ``mechanism`` (a fresh salt)."""
    if mechanism not in _SCRAM_HASHES:
        raise ValueError(f"unknown SCRAM mechanism {mechanism!r}: use one of {', '.join(SCRAM_MECHANISMS)}")
    salt = os.urandom(16)
    name = _SCRAM_HASHES[mechanism]().name
    salted = hashlib.pbkdf2_hmac(name, password.encode("utf-8", "surrogatepass"), salt, iterations)
    stored, server = _scram_keys(mechanism, salted)
    fields = (username, mechanism, str(iterations), _b64(salt), _b64(stored), _b64(server))
    return f"# {_DIRECTIVE} {_SCRAM} {' '.join(fields)}"


def _parse_scram_directive(text: str) -> tuple[str, str, ScramVerifier]:
    parts = text.split()
    if len(parts) != 6:
        raise ValueError(
            "a SCRAM line has the form '# mqttchat: scram USER MECHANISM ITERATIONS SALT STOREDKEY SERVERKEY'"
        )
    username, mechanism, count, salt, stored, server = parts
    if mechanism not in _SCRAM_HASHES:
        raise ValueError(f"unknown SCRAM mechanism {mechanism[:30]!r}: use one of {', '.join(SCRAM_MECHANISMS)}")
    if not count.isascii() or not count.isdigit() or not SCRAM_MIN_ITERATIONS <= int(count) <= _MAX_ITERATIONS:
        raise ValueError(f"the iteration count must be between {SCRAM_MIN_ITERATIONS} and {_MAX_ITERATIONS}")
    size = _SCRAM_HASHES[mechanism]().digest_size
    verifier = (_unb64(salt, "salt"), _unb64(stored, "StoredKey"), _unb64(server, "ServerKey"), int(count))
    if len(verifier[1]) != size or len(verifier[2]) != size:
        raise ValueError(f"{mechanism} keys are {size} bytes")
    return username, mechanism, verifier


class ScramRefused(Exception):
    """The client's SCRAM proof is wrong, its messages are invalid, or the user cannot use SCRAM (the message
    says which, for the log; the client is only told Not authorized)."""


class ScramLogin:
    """The broker's side of one SCRAM exchange: :meth:`start` answers the client-first message (AUTH 0x18),
    :meth:`finish` checks the client's proof and returns the user and the server-final message (for CONNACK or
    AUTH Success)."""

    def __init__(self, passwords: PasswordFile, mechanism: str) -> None:
        if mechanism not in _SCRAM_HASHES:
            raise ValueError(f"unsupported SCRAM mechanism {mechanism!r}")
        self.passwords = passwords
        self.mechanism = mechanism
        self._server: object = None
        #: Why the user cannot succeed whatever the proof (unknown, too few iterations), for the log.
        self.doomed: str | None = None
        #: The user the client-first message names.
        self.username = ""

    def _verifier(self, username: str) -> ScramVerifier:
        self.username = username
        found = self.passwords.scram.get((self.mechanism, username))
        if found is not None:
            return found
        stored = self.passwords._hashes.get(username)
        if self.mechanism == "SCRAM-SHA-512" and stored is not None and stored.scheme == "7":
            if stored.iterations >= SCRAM_MIN_ITERATIONS:
                return (stored.salt, *_scram_keys(self.mechanism, stored.digest), stored.iterations)
            self.doomed = (
                f"the hash of {username!r} has {stored.iterations} iterations, too few for SCRAM "
                f"(at least {SCRAM_MIN_ITERATIONS}): set the password again with mqttchat passwd"
            )
        else:
            self.doomed = f"no {self.mechanism} verifier for {username!r}"
        # An unknown user goes through the same exchange and fails at the proof: the answer tells nothing.
        size = _SCRAM_HASHES[self.mechanism]().digest_size
        key = hmac.new(self.passwords._cache_key, username.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
        return (key[:16], os.urandom(size), os.urandom(size), DEFAULT_ITERATIONS)

    def start(self, client_first: bytes | None) -> bytes:
        """The server-first message for the client's first.

        Raises:
            ScramRefused: the client-first message is invalid.
        """
        from scramp import ScramException, ScramMechanism

        server = ScramMechanism(self.mechanism).make_server(self._verifier)
        try:
            server.set_client_first((client_first or b"").decode("utf-8"))
            answer = str(server.get_server_first()).encode()
        except (ScramException, UnicodeDecodeError) as exc:
            raise ScramRefused(f"invalid SCRAM client-first message: {exc}") from None
        self._server = server
        return answer

    def finish(self, client_final: bytes | None) -> tuple[str, bytes]:
        """The user and the server-final message, once the client's proof checks.

        Raises:
            ScramRefused: the proof is wrong (or the user cannot use SCRAM), or the message is invalid.
        """
        from scramp import ScramException

        server: Any = self._server
        self._server = None
        if server is None:
            raise ScramRefused("SCRAM client-final message before the client-first")
        try:
            server.set_client_final((client_final or b"").decode("utf-8"))
            final = str(server.get_server_final()).encode()
        except (ScramException, UnicodeDecodeError) as exc:
            raise ScramRefused(self.doomed or f"SCRAM proof refused: {exc}") from None
        if self.doomed:
            raise ScramRefused(self.doomed)
        return self.username, final


class EnhancedAuth:
    """One connection's MQTT 5 enhanced authentication with SCRAM: the exchange before CONNACK (CONNECT, AUTH 0x18
    both ways, CONNACK with the server-final message) and each re-authentication (AUTH 0x19, 0x18 both ways, AUTH
    Success). The connection routes AUTH packets here and sends what comes back."""

    __slots__ = ("_login", "connect", "method", "passwords", "username")

    def __init__(self, passwords: PasswordFile, method: str, connect: Any) -> None:
        self.passwords = passwords
        self.method = method
        #: The CONNECT that waits for the exchange (None once the client is connected).
        self.connect: Any = connect
        #: Who logged in (None until then).
        self.username: str | None = None
        self._login: ScramLogin | None = None

    def _properties(self, data: bytes) -> Properties:
        return Properties(authentication_method=self.method, authentication_data=data)

    def challenge(self, data: bytes | None) -> Auth:
        """The AUTH Continue that answers a client-first message (in CONNECT or in AUTH Re-authenticate).

        Raises:
            ScramRefused: the message is invalid.
        """
        login = ScramLogin(self.passwords, self.method)
        answer = login.start(data)
        self._login = login
        return Auth(ReasonCode.CONTINUE_AUTHENTICATION, self._properties(answer))

    def on_auth(self, packet: Auth) -> tuple[str, Properties] | Auth:
        """The client's AUTH: a new challenge (Re-authenticate), or the user and the properties of the final
        answer (CONNACK or AUTH Success) once its proof checks.

        Raises:
            RemoteProtocolError: an AUTH that does not fit the exchange (another method, an unexpected reason).
            ScramRefused: the proof is wrong.
        """
        props = packet.properties
        if props.authentication_method != self.method:
            raise RemoteProtocolError(
                f"AUTH with the authentication method {props.authentication_method!r}, not {self.method!r}"
            )
        if packet.reason_code == ReasonCode.RE_AUTHENTICATE and self._login is None and self.connect is None:
            return self.challenge(props.authentication_data)
        if packet.reason_code != ReasonCode.CONTINUE_AUTHENTICATION or self._login is None:
            raise RemoteProtocolError(f"unexpected AUTH {packet.reason_code.title}")
        login, self._login = self._login, None
        username, final = login.finish(props.authentication_data)
        if self.username is not None and username != self.username:
            raise ScramRefused(f"re-authentication as {username!r}, not {self.username!r}")
        self.username = username
        return username, self._properties(final)


# --------------------------------------------------------------------------------------------------------------
# Access control
#
# mosquitto's acl_file format: `topic [read|write|readwrite|deny] TOPIC` lines apply to anonymous clients until the
# first `user NAME` line, then to that user; `pattern [access] TOPIC` lines apply to every client, with %u and %c
# replaced by the user name and client id. Extension: the access word `subscribe` (may subscribe, not receive).
# mosquitto tries a user's own rules before the patterns (denies first within each list), so there a user's grant
# beats a pattern's deny; here any matching deny, from either list, wins over every grant.
# --------------------------------------------------------------------------------------------------------------

_READ = 1
_WRITE = 2
_SUBSCRIBE = 4
_DENY = 0
_ACCESS_WORDS = {"read": _READ, "write": _WRITE, "readwrite": _READ | _WRITE, "subscribe": _SUBSCRIBE, "deny": _DENY}
#: Each client's memo of can_receive() answers, keyed by topic: at most this many entries and bytes, topics of at
#: most this length (a client subscribed to # is sent every topic anyone publishes: this must not grow with them).
_RECEIVE_CACHE_SIZE = 1024
_RECEIVE_CACHE_BYTES = 128 * 1024
_RECEIVE_CACHE_TOPIC = 256


def filter_contains(outer: str, inner: str) -> bool:
    """Whether every topic that filter ``inner`` can match is matched by filter ``outer``.

    ``chat/#`` contains ``chat/+/x``; ``a/+`` contains ``a/b`` and ``a/+`` but not ``a/#``; a filter starting with a
    wildcard contains nothing under a ``$`` level such as ``$SYS/x``.
    """
    o_levels = outer.split("/")
    i_levels = inner.split("/")
    if o_levels[0] in ("+", "#") and i_levels[0].startswith("$"):
        return False
    for i, o in enumerate(o_levels):
        if o == "#":
            return True
        if i >= len(i_levels):
            return False
        level = i_levels[i]
        if level == "#":
            return False
        if o == "+":
            continue
        if level == "+" or level != o:
            return False
    return len(i_levels) == len(o_levels)


def filters_overlap(a: str, b: str) -> bool:
    """Whether some topic name matches both filters ``a`` and ``b``."""
    a_levels = a.split("/")
    b_levels = b.split("/")
    for i in range(max(len(a_levels), len(b_levels))):
        x = a_levels[i] if i < len(a_levels) else None
        y = b_levels[i] if i < len(b_levels) else None
        if x is None or y is None:
            # One filter has ended: the other must go on with '#', which also matches the parent level.
            return (x or y) == "#"
        x_wild, y_wild = x in ("+", "#"), y in ("+", "#")
        if i == 0 and ((x_wild and y.startswith("$")) or (y_wild and x.startswith("$"))):
            return False
        if x == "#" or y == "#":
            return True
        if not x_wild and not y_wild and x != y:
            return False
    return True


@dataclass(frozen=True, slots=True)
class _Rule:
    access: int  # _READ | _WRITE | _SUBSCRIBE bits; _DENY (0) for a deny rule
    topic: str
    line: int


class _FilterSet:
    """Topic filters matched against topic names: a set for exact ones, a scan for wildcard ones."""

    __slots__ = ("exact", "filters", "wild")

    def __init__(self, filters: Iterable[str]) -> None:
        unique = tuple(dict.fromkeys(filters))
        self.filters = unique
        self.exact = frozenset(f for f in unique if not is_wildcard(f))
        self.wild = tuple(f for f in unique if is_wildcard(f))

    def match(self, topic: str) -> bool:
        if topic in self.exact:
            return True
        return any(matches(f, topic) for f in self.wild)


class ClientAccess:
    """What one client may do, compiled from the ACL for its user name and client id."""

    __slots__ = ("_deny", "_read", "_receive_cache", "_subscribe", "_write")

    def __init__(
        self,
        *,
        read: Iterable[str] = (),
        write: Iterable[str] = (),
        subscribe: Iterable[str] = (),
        deny: Iterable[str] = (),
    ) -> None:
        """``read`` grants receiving and subscribing; ``subscribe`` grants subscribing only."""
        read = tuple(read)
        self._read = _FilterSet(read)
        self._write = _FilterSet(write)
        self._subscribe = _FilterSet((*read, *subscribe))
        self._deny = _FilterSet(deny)
        self._receive_cache: BoundedCache[str, bool] = BoundedCache(
            _RECEIVE_CACHE_SIZE, _RECEIVE_CACHE_BYTES, _RECEIVE_CACHE_TOPIC
        )

    def __repr__(self) -> str:
        parts = [f"{name}={fs.filters!r}" for name, fs in self._describe()]
        return f"ClientAccess({', '.join(parts)})"

    def _describe(self) -> Sequence[tuple[str, _FilterSet]]:
        return [("read", self._read), ("write", self._write), ("subscribe", self._subscribe), ("deny", self._deny)]

    def can_publish(self, topic: str) -> bool:
        """May the client publish to topic name ``topic``? A write/readwrite rule matches it and no deny does."""
        if not topic or is_wildcard(topic):
            return False
        return self._write.match(topic) and not self._deny.match(topic)

    def can_subscribe(self, topic_filter: str) -> bool:
        """May the client subscribe to ``topic_filter`` (``$share/group/F`` is judged on F)?

        As mosquitto does: the filter must overlap a read/readwrite/subscribe rule (some topic could reach the
        client through it) and must not lie wholly inside a deny rule. A filter wider than the client's rights
        (``#`` for a user limited to ``users/alice/#``) is granted, and every message is checked with
        :meth:`can_receive` before it is sent (live, retained or queued), so only what the client may read arrives.
        An explorer subscribed to ``#`` thus shows the part of the tree its user may see.
        """
        if topic_filter_problem(topic_filter) is not None:
            return False
        try:
            shared = parse_shared_subscription(topic_filter)
        except ValueError:
            return False
        if shared is not None:
            topic_filter = shared.topic_filter
        if not any(filters_overlap(rule, topic_filter) for rule in self._subscribe.filters):
            return False
        return not any(filter_contains(rule, topic_filter) for rule in self._deny.filters)

    def can_receive(self, topic: str) -> bool:
        """May the client be sent a message published to ``topic``? A read/readwrite rule matches it and no deny
        does (a subscribe-only rule does not grant this). Memoised per topic."""
        result = self._receive_cache.entries.get(topic)
        if result is None:
            result = self._read.match(topic) and not self._deny.match(topic)
            self._receive_cache.put(topic, result)
        return result


class _AllowAll(ClientAccess):
    __slots__ = ()

    def __repr__(self) -> str:
        return "ALLOW_ALL"

    def can_publish(self, topic: str) -> bool:
        return True

    def can_subscribe(self, topic_filter: str) -> bool:
        return True

    def can_receive(self, topic: str) -> bool:
        return True


#: Access for every client when the broker has no ACL file.
ALLOW_ALL: ClientAccess = _AllowAll()

_UNUSABLE_CHARS = frozenset("+#/\0")


def _unusable(value: str | None) -> bool:
    return not value or any(c in _UNUSABLE_CHARS for c in value)


def _strip_comment(text: str) -> str:
    """``text`` without a trailing ``# comment``: a '#' after white space, not at the start (``#`` is a filter)."""
    text = text.strip()
    for i in range(1, len(text)):
        if text[i] == "#" and text[i - 1].isspace():
            return text[:i].rstrip()
    return text


class AccessControl:
    """A parsed ACL file; :meth:`for_client` compiles the rules of one connection."""

    def __init__(self, file: str = "<acl>") -> None:
        self.file = file
        self._anonymous: list[_Rule] = []
        self._users: dict[str, list[_Rule]] = {}
        self._patterns: list[_Rule] = []

    def __repr__(self) -> str:
        return f"AccessControl({self.file!r}, {len(self._users)} users, {len(self._patterns)} patterns)"

    @classmethod
    def load(cls, path: str | Path) -> AccessControl:
        """Read an ACL file. Raises ConfigError naming the file and the bad line."""
        return cls.parse(read_text(Path(path), what="ACL file", strip_bom=True), str(path))

    @classmethod
    def parse(cls, text: str, file: str = "<acl>") -> AccessControl:
        """Parse ACL text. Raises ConfigError naming ``file`` and the bad line."""
        acl = cls(file)
        user: str | None = None
        for number, raw in enumerate(_lines(text), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            keyword, *more = line.split(None, 1)
            rest = more[0] if more else ""
            if keyword == "user":
                name = _strip_comment(rest)
                if not name or name.startswith("#"):
                    raise ConfigError(file, number, None, "user: missing user name")
                user = name
                acl._users.setdefault(user, [])
            elif keyword in ("topic", "pattern"):
                rule = acl._parse_rule(keyword, rest, number)
                if keyword == "pattern":
                    acl._patterns.append(rule)
                elif user is None:
                    acl._anonymous.append(rule)
                else:
                    acl._users[user].append(rule)
            else:
                raise ConfigError(
                    file, number, None, f"unknown keyword {keyword[:40]!r}: expected topic, pattern or user"
                )
        return acl

    def _parse_rule(self, keyword: str, rest: str, number: int) -> _Rule:
        words = rest.split(None, 1)
        if not words:
            raise ConfigError(self.file, number, None, f"{keyword}: missing topic")
        if words[0] in _ACCESS_WORDS:
            access = _ACCESS_WORDS[words[0]]
            topic = _strip_comment(words[1]) if len(words) > 1 else ""
            if not topic:
                raise ConfigError(
                    self.file,
                    number,
                    None,
                    f"{keyword} {words[0]}: missing topic (for a topic named {words[0]!r}, "
                    f"write '{keyword} readwrite {words[0]}')",
                )
        else:
            # No access word: the rest is the topic (readwrite). A second word means a misspelt access word.
            access = _READ | _WRITE
            topic = _strip_comment(rest)
            if len(topic.split(None, 1)) > 1:
                raise ConfigError(
                    self.file,
                    number,
                    None,
                    f"{keyword}: unknown access {words[0][:40]!r}: use read, write, readwrite, subscribe or deny",
                )
        problem = topic_filter_problem(topic)
        if problem is not None:
            raise ConfigError(self.file, number, None, f"{keyword}: {problem}")
        if topic.startswith("$share/"):
            raise ConfigError(self.file, number, None, f"{keyword}: name the topic, not a shared subscription")
        return _Rule(access, topic, number)

    def users(self) -> list[str]:
        """The user names that have a ``user`` section."""
        return list(self._users)

    def for_client(self, username: str | None, client_id: str) -> ClientAccess:
        """The rules for one connection: its user's (or the anonymous) topic rules plus every pattern."""
        rules = list(self._anonymous if username is None else self._users.get(username, ()))
        for pattern in self._patterns:
            rule = _expand(pattern, username, client_id)
            if rule is not None:
                rules.append(rule)
        return ClientAccess(
            read=[r.topic for r in rules if r.access & _READ],
            write=[r.topic for r in rules if r.access & _WRITE],
            subscribe=[r.topic for r in rules if r.access & _SUBSCRIBE],
            deny=[r.topic for r in rules if r.access == _DENY],
        )


def _expand(pattern: _Rule, username: str | None, client_id: str) -> _Rule | None:
    """``pattern`` with %u and %c replaced, or None when it cannot apply to this client.

    A placeholder whose value is missing (%u of an anonymous client), empty, or contains '+', '#', '/' or NUL, or
    that would turn the first level into a ``$`` level, is unusable: a grant containing one is dropped (it must
    never widen into a wildcard or reach into another user's tree), and a deny containing one is widened
    instead, to '+' for the whole level (so an odd name can only ever lose access).
    """
    if "%" not in pattern.topic:
        return pattern
    values = {"u": username, "c": client_id}
    levels = pattern.topic.split("/")
    out: list[str] = []
    unusable = False
    for index, level in enumerate(levels):
        if "%" not in level:
            out.append(level)
            continue
        pieces: list[str] = []
        bad = False
        i = 0
        while i < len(level):
            if level[i] == "%" and i + 1 < len(level) and level[i + 1] in values:
                value = values[level[i + 1]]
                if value is None or _unusable(value):
                    bad = True
                else:
                    pieces.append(value)
                i += 2
            else:
                pieces.append(level[i])
                i += 1
        expanded = "".join(pieces)
        if index == 0 and expanded.startswith("$") and not level.startswith("$"):
            bad = True
        if bad:
            unusable = True
            out.append("+")
        else:
            out.append(expanded)
    if unusable and pattern.access != _DENY:
        return None
    return _Rule(pattern.access, "/".join(out), pattern.line)
