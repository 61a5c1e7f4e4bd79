"""Vehicle upload tokens and staff passwords.

Vehicle tokens are 256-bit random strings shown once; only their sha256 is stored (a slow hash adds
nothing at that entropy). Staff passwords are hashed with argon2id (argon2-cffi).
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.tables import ROLES, User, Vehicle

TOKEN_PREFIX = "rwv_"
_hasher = PasswordHasher()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_vehicle(session: Session, name: str, **camera: float) -> tuple[Vehicle, str]:
    """Create a vehicle; returns it and its token (the only time the token is visible)."""
    if not name or len(name) > 200 or "\x00" in name:
        raise ValueError("the vehicle name needs 1 to 200 characters and no NUL")
    if session.scalar(select(Vehicle).where(Vehicle.name == name)):
        raise ValueError(f"a vehicle named {name!r} exists already")
    token = new_token()
    vehicle = Vehicle(name=name, token_hash=token_hash(token), **camera)
    session.add(vehicle)
    session.flush()
    return vehicle, token


def reissue_token(vehicle: Vehicle) -> str:
    """A new upload token for ``vehicle`` (the old one stops working); returns it, shown this once."""
    token = new_token()
    vehicle.token_hash = token_hash(token)
    return token


def vehicle_for_token(session: Session, token: str) -> Vehicle | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    return session.scalar(select(Vehicle).where(Vehicle.token_hash == token_hash(token), Vehicle.active))


def add_user(session: Session, username: str, password: str, role: str) -> User:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if len(password) < 10:
        raise ValueError("password must have at least 10 characters")
    if not username or len(username) > 200 or "\x00" in username:
        raise ValueError("username must have 1 to 200 characters and no NUL")
    if session.scalar(select(User).where(User.username == username)):
        raise ValueError(f"a user named {username!r} exists already")
    user = User(username=username, password_hash=_hasher.hash(password), role=role)
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, username: str, password: str) -> User | None:
    # PostgreSQL text cannot hold NUL: such a name matches no user (and must not reach the query).
    user = (
        None
        if "\x00" in username
        else session.scalar(select(User).where(User.username == username, User.active))
    )
    if user is None:
        _hasher.hash(password)  # same work whether or not the user exists
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    return user


def role_at_least(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


class LoginThrottle:
    """Failed staff logins per user name, in this process.

    Every attempt counts as a failure from the moment it starts (:meth:`begin`, one locked step), so
    parallel guesses cannot all pass the check before any is counted; a successful login clears the
    name (:meth:`succeeded`). After ``max_failures`` within ``window_s`` seconds the name is locked
    until the oldest of them is ``window_s`` old: even the right password is refused meanwhile, so
    guessing online gets ``max_failures`` tries per window. Keyed by name, not address: proxies hide
    addresses, and a guesser can change his. (So anyone can lock a name for a window: the price of
    not letting anyone guess it.)
    """

    MAX_NAMES = 10_000  # bounded memory under a flood of made-up names

    def __init__(
        self, max_failures: int = 10, window_s: float = 900.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_failures, self.window_s, self._clock = max_failures, window_s, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(username: str) -> str:
        return username.strip().casefold()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            self._failures.pop(key, None)
        return times

    def _wait(self, times: deque[float], now: float) -> int:
        if len(times) < self.max_failures:
            return 0
        return max(1, math.ceil(times[0] + self.window_s - now))

    def retry_after(self, username: str) -> int:
        """Seconds until ``username`` may try again; 0 when it may now."""
        with self._lock:
            now = self._clock()
            return self._wait(self._recent(self._key(username), now), now)

    def begin(self, username: str) -> int:
        """Start an attempt: 0 and the attempt counted (as failed until :meth:`succeeded`), or the
        seconds to wait (nothing counted)."""
        with self._lock:
            now, key = self._clock(), self._key(username)
            times = self._recent(key, now)
            wait = self._wait(times, now)
            if wait:
                return wait
            if key not in self._failures and len(self._failures) >= self.MAX_NAMES:
                self._make_room(now)
            times.append(now)
            self._failures[key] = times
            return 0

    def _make_room(self, now: float) -> None:
        for other in list(self._failures):  # expired names first
            self._recent(other, now)
        if len(self._failures) < self.MAX_NAMES:
            return
        # Then the name with the fewest failures that is not locked: a flood of made-up names must
        # not push a locked (attacked) name out.
        open_names = [k for k, t in self._failures.items() if len(t) < self.max_failures]
        victim = min(open_names or self._failures, key=lambda k: len(self._failures[k]))
        del self._failures[victim]

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(self._key(username), None)
