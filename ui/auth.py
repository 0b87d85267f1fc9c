"""UI logins and roles.

Users live in the database (table `ui_users`, shared by every worker and host), each
with a role and a salted PBKDF2 hash of the password (`pbkdf2_sha256$iterations$salt$hash`)
and nothing else. `supportbot users add NAME --role agent|admin` writes it. An old
`ui_users` file (settings.ui_users_path) is imported once on first start (bot.runtime).

While the table holds no user the staff UI is open (like the API without keys: the server
then only listens on loopback); once it holds one, `/` asks for a login and each handler
checks the caller's role on the server (a hidden tab is not a permission), on every
call: a removed or demoted user loses access at once, also in a session already open.

Logins are throttled (`LoginThrottle`): after `MAX_FAILURES` wrong passwords for a name
within `WINDOW_S`, that name is refused (even with the right password) for a lockout
that doubles with every further failure, up to `MAX_LOCK_S`; and all names together may
fail at most `GLOBAL_FAILURES_PER_MINUTE` times a minute, so guessing across many names
is slow too.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import threading
import time
from collections import deque
from dataclasses import dataclass

from core.errors import InputError
from storage.repositories import ui_users

ROLES = ("agent", "admin")
ITERATIONS = 200_000  # PBKDF2-SHA256 rounds (OWASP 2023 recommends 600k; 200k keeps logins < 0.1 s on 2 cores)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        actual = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(actual.hex(), digest)


def _user(row) -> User:
    return User(row.name, row.role, row.password_hash)


def list_users(sessions) -> dict[str, User]:
    """Every user by name; `sessions`: a session factory on the database."""
    with sessions() as session:
        return {row.name: _user(row) for row in ui_users.list_users(session)}


def get_user(sessions, name: str | None) -> User | None:
    with sessions() as session:
        row = ui_users.get_user(session, name=name or "")
        return _user(row) if row is not None else None


def add_user(sessions, name: str, role: str, password: str) -> User:
    """Add a user or change an existing one's role and password."""
    if not _NAME.match(name or ""):
        raise InputError(f"invalid user name {name!r}: letters, digits and ._@- (up to 64)")
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
    if len(password or "") < 8:
        raise InputError("the password needs at least 8 characters")
    with sessions.begin() as session:
        return _user(ui_users.put_user(session, name=name, role=role, password_hash=hash_password(password)))


def remove_user(sessions, name: str) -> bool:
    with sessions.begin() as session:
        return ui_users.remove_user(session, name=name)


class LoginThrottle:
    MAX_FAILURES = 5  # wrong passwords for one name before it is locked
    WINDOW_S = 900.0  # failures older than this are forgotten
    FIRST_LOCK_S = 30.0  # doubles with each further failure
    MAX_LOCK_S = 900.0
    GLOBAL_FAILURES_PER_MINUTE = 30

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._failures: dict[str, deque] = {}
        self._locked_until: dict[str, float] = {}
        self._recent: deque = deque()  # every failure, for the global limit
        self._lock = threading.Lock()

    def allowed(self, name: str) -> bool:
        now = self.clock()
        with self._lock:
            while self._recent and now - self._recent[0] > 60.0:
                self._recent.popleft()
            if len(self._recent) >= self.GLOBAL_FAILURES_PER_MINUTE:
                return False
            return self._locked_until.get(name, 0.0) <= now

    def failed(self, name: str) -> None:
        now = self.clock()
        with self._lock:
            self._recent.append(now)
            times = self._failures.setdefault(name, deque())
            times.append(now)
            while times and now - times[0] > self.WINDOW_S:
                times.popleft()
            if len(times) >= self.MAX_FAILURES:
                extra = len(times) - self.MAX_FAILURES
                self._locked_until[name] = now + min(self.MAX_LOCK_S, self.FIRST_LOCK_S * 2 ** extra)
            if len(self._failures) > 10_000:  # names that never existed: forget the oldest
                self._failures.pop(next(iter(self._failures)))

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name, None)
            self._locked_until.pop(name, None)


_DUMMY_HASH = hash_password("not a password of anyone", salt=b"\0" * 16)


class Access:
    """Who may do what in one running UI. `enabled` is decided when the UI is built."""

    def __init__(self, sessions, throttle: LoginThrottle | None = None):
        self.sessions = sessions
        self.enabled = bool(list_users(sessions))
        self.throttle = throttle or LoginThrottle()

    def check_login(self, username: str, password: str) -> bool:
        if not self.throttle.allowed(username or ""):
            return False
        user = get_user(self.sessions, username)  # read each time: removed users lose access at once
        # an unknown name costs the same hashing as a known one: no timing hint
        ok = verify_password(password or "", user.password_hash if user else _DUMMY_HASH) and user is not None
        if ok:
            self.throttle.succeeded(username)
        else:
            self.throttle.failed(username or "")
        return ok

    def role(self, username: str | None) -> str | None:
        """The caller's role; with logins off everyone is admin (loopback-only server)."""
        if not self.enabled:
            return "admin"
        user = get_user(self.sessions, username)
        return user.role if user else None
