"""Who is asking: users, their passwords, and signed sign-in tokens.

A shared server knows its users one of three ways (the dashboard picks the first that applies):
an identity provider through Streamlit's own `st.login` (OIDC, configured in
`.streamlit/secrets.toml`); a users file for a small team without one (``FLCORE_USERS``, written
with ``python -m flcore users add NAME``); or nobody, on a laptop, where the one local user owns
every run and the server answers only on 127.0.0.1.

The users file is JSON: ``{"alice": {"password": "scrypt$...", "admin": false}}``. Passwords are
kept only as scrypt hashes (`hashlib.scrypt`, memory-hard, salted per user) and compared in
constant time; a name that does not exist is checked against a dummy hash of the same cost, so
the time a sign-in takes does not tell which names exist. `SignInThrottle` counts failed
sign-ins per user name and per client address, so that passwords cannot be guessed at speed.

A successful sign-in gives the browser a token, ``name.generation.expiry.signature``, signed with
HMAC-SHA256 under a server secret kept next to the users file (made once, readable only by its
owner), so a reload or a second tab stays signed in. It lasts until it expires (12 hours) or
until its user's *session generation* moves on: a small file next to the users file
(``users.json.sessions``, ``{"alice": 3}``) counts each user's sign-outs, and a token is good only
while the number it was signed with is the current one. Signing out (`end_sessions`), a new
password and removing a user each add one, so every token given out before stops working, in
every tab and on every device, not only the cookie of the tab that signed out.
"""

from __future__ import annotations

import base64
import fcntl
import getpass
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

TOKEN_TTL_S = 12 * 3600  # how long a sign-in lasts
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
TOKEN_KIND = b"flcore-session-v2\n"  # signed with every token, so no token of another format verifies


class AuthError(ValueError):
    """A sign-in problem or a bad users file; the message is a sentence for people."""


@dataclass(frozen=True)
class User:
    name: str
    admin: bool = False

    def may_act_on(self, owner: str | None) -> bool:
        """Whether this user may cancel, resume or delete a run owned by `owner`."""
        return self.admin or owner == self.name


def local_user() -> User:
    """The one user of a server without sign-in (a laptop): the account it runs as, an admin."""
    try:
        name = getpass.getuser()
    except Exception:  # no name for this uid (e.g. in a container)
        name = "local"
    return User(name, admin=True)


# Passwords -----------------------------------------------------------------------------------
def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return "scrypt${n}${r}${p}${salt}${digest}".format(
        **_SCRYPT, salt=base64.b64encode(salt).decode(), digest=base64.b64encode(digest).decode()
    )


def check_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


_dummy: list[str] = []


def _dummy_hash() -> str:
    """A hash no password matches, made once, checked in place of a user that does not exist."""
    if not _dummy:
        _dummy.append(hash_password(secrets.token_hex(16)))
    return _dummy[0]


class SignInThrottle:
    """Failed sign-ins in the last `window_s` seconds, per user name and per client address: once
    either has `per_name` or `per_address` of them, further attempts are refused unchecked (no
    hash is computed) until the oldest falls out of the window. At most `max_keys` names and
    addresses are remembered (the longest-quiet forgotten first), so random names cannot fill memory."""

    def __init__(self, per_name: int = 5, per_address: int = 20, window_s: float = 60.0, max_keys: int = 10_000) -> None:
        self.per_name, self.per_address, self.window_s, self.max_keys = per_name, per_address, window_s, max_keys
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def blocked(self, name: str, address: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            return self._count(("name", name), now) >= self.per_name or self._count(("address", address), now) >= self.per_address

    def failed(self, name: str, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            for key in (("name", name), ("address", address)):
                self._failures.setdefault(key, deque()).append(now)
                self._failures[key] = self._failures.pop(key)  # most recent last
            while len(self._failures) > self.max_keys:
                del self._failures[next(iter(self._failures))]

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(("name", name), None)

    def _count(self, key: tuple[str, str], now: float) -> int:
        times = self._failures.get(key)
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return len(times) if times else 0


# The users file ------------------------------------------------------------------------------
class Users:
    """The users file of a server, and the secret its sign-in tokens are signed with."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.secret_path = self.path.with_name(self.path.name + ".secret")
        self.sessions_path = self.path.with_name(self.path.name + ".sessions")

    def load(self) -> dict[str, dict]:
        if not self.path.exists():
            raise AuthError(f"the users file {self.path} does not exist; create it with `python -m flcore users add NAME`")
        try:
            data = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise AuthError(f"the users file {self.path} cannot be read as JSON: {e}") from None
        if not isinstance(data, dict) or not all(isinstance(v, dict) and "password" in v for v in data.values()):
            raise AuthError(f'the users file {self.path} must map each name to {{"password": "scrypt$...", "admin": false}}')
        return data

    def add(self, name: str, password: str, admin: bool = False) -> None:
        """Add or update a user (the file is created, readable by its owner only)."""
        if not NAME_PATTERN.match(name):
            raise AuthError(f"user name {name!r} may use letters, digits and . _ @ - only (1 to 64 characters)")
        if len(password) < 8:
            raise AuthError("a password needs at least 8 characters")
        users = self.load() if self.path.exists() else {}
        if name in users:  # a new password: whoever signed in with the old one is signed out
            self.end_sessions(name)
        users[name] = {"password": hash_password(password), "admin": admin}
        _write_private(self.path, json.dumps(users, indent=2) + "\n")

    def remove(self, name: str) -> None:
        users = self.load()
        if name not in users:
            raise AuthError(f"there is no user {name!r} in {self.path}")
        del users[name]
        _write_private(self.path, json.dumps(users, indent=2) + "\n")
        self.end_sessions(name)  # so that adding the name again does not revive its old tokens

    def authenticate(self, name: str, password: str, admins: frozenset[str] = frozenset()) -> User:
        """The user, if `password` is theirs; else AuthError with one sentence for every failure,
        so a caller learns nothing about which names exist."""
        record = self.load().get(name)
        stored = record["password"] if record else _dummy_hash()  # a wrong name costs one hash, as a wrong password
        if not check_password(password, stored) or record is None:
            raise AuthError("That user name and password do not match.")
        return User(name, admin=bool(record.get("admin")) or name in admins)

    def _secret(self) -> bytes:
        if not self.secret_path.exists():
            _write_private(self.secret_path, secrets.token_hex(32))
        return self.secret_path.read_text().strip().encode()

    def token(self, user: User, now: float | None = None) -> str:
        """A sign-in token for `user`, valid for TOKEN_TTL_S or until they sign out."""
        expiry = int((time.time() if now is None else now) + TOKEN_TTL_S)
        body = f"{user.name}.{self.generation(user.name)}.{expiry}"
        return f"{body}.{self._sign(body)}"

    def user_from_token(self, token: str | None, admins: frozenset[str] = frozenset(), now: float | None = None) -> User | None:
        """The signed-in user of a token, or None (missing, forged, expired, signed out since, or
        the user is gone)."""
        if not token or token.count(".") < 3:
            return None
        body, _, signature = token.rpartition(".")
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        rest, _, expiry = body.rpartition(".")
        name, _, generation = rest.rpartition(".")
        if not expiry.isdigit() or int(expiry) < (time.time() if now is None else now):
            return None
        if not generation.isdigit() or int(generation) != self.generation(name):
            return None  # signed out (or a new password) since this token was given
        record = self.load().get(name)
        if record is None:
            return None
        return User(name, admin=bool(record.get("admin")) or name in admins)

    # Sessions ------------------------------------------------------------------------------------
    def generation(self, name: str) -> int:
        """How many times `name` has been signed out everywhere: the number their tokens must carry."""
        return self._generations().get(name, 0)

    def end_sessions(self, name: str) -> int:
        """Sign `name` out everywhere: every token given to them so far stops working (the next
        request of any tab or device that holds one is asked to sign in). Returns the new generation."""
        with _locked(self.sessions_path):
            generations = self._generations()
            generations[name] = generations.get(name, 0) + 1
            _write_private(self.sessions_path, json.dumps(generations, indent=2, sort_keys=True) + "\n")
        return generations[name]

    def _generations(self) -> dict[str, int]:
        try:
            data = json.loads(self.sessions_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, json.JSONDecodeError) as e:
            raise AuthError(f"the sessions file {self.sessions_path} cannot be read as JSON: {e}") from None
        if not isinstance(data, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in data.values()):
            raise AuthError(f'the sessions file {self.sessions_path} must map each user name to a whole number ({{"alice": 2}})')
        return data

    def _sign(self, body: str) -> str:
        return hmac.new(self._secret(), TOKEN_KIND + body.encode(), hashlib.sha256).hexdigest()


@contextmanager
def _locked(path: Path):
    """Hold an exclusive lock on `path` + '.lock' (between threads and processes: the server and
    the CLI), so that two sign-outs at once both count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, replacing it atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
