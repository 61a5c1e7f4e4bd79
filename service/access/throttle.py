"""Brakes on password guessing, and the memory of verified HTTP Basic logins.

Both live on ``app.state`` (one per app, built in ``create_app``), never in module globals.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable


class BasicCache:
    """HTTP Basic credentials verified recently (argon2 is slow on purpose, ~0.1 s: API clients
    sending Basic credentials on every request would pay it every time). Keys are hashes of name and
    password; the value is the user's (id, session version) at the time; an entry lives ``ttl_s`` seconds;
    at most ``max_entries`` (then it starts afresh)."""

    def __init__(
        self, ttl_s: float = 60.0, max_entries: int = 1000, clock: Callable[[], float] = time.monotonic
    ):
        self.ttl_s, self.max_entries, self._clock = ttl_s, max_entries, clock
        self._entries: dict[str, tuple[tuple[int, int], float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(username: str, password: str) -> str:
        return hashlib.sha256(f"{username}\0{password}".encode()).hexdigest()

    def get(self, key: str) -> tuple[int, int] | None:
        """The user (id, session version) verified with these credentials within the last ``ttl_s``
        seconds."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or entry[1] <= self._clock():
            return None
        return entry[0]

    def put(self, key: str, user: tuple[int, int]) -> None:
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (user, self._clock() + self.ttl_s)


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
