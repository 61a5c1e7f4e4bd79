"""The client's own state: which photos it found, decided, sent, and what the server said (SQLite).

A photo is keyed by the sha256 of its bytes, so a file renamed, copied twice or re-copied from the card
is still one photo. ``files`` caches path -> (size, mtime, sha256) so a poll does not re-hash old files.
Every change is committed at once (rollback journal, synchronous=FULL: also safe on SD cards and network
shares, where SQLite's WAL mode is not). Photo states:

``pending``   to send;  ``sent``  the server stored it (``server_status`` queued or no_location, or
``stored`` when a resumed run found it on the server after an interrupted send);
``duplicate`` the server had these bytes before this uploader sent them;  ``skipped``  left out by
distance sampling;  ``failed``  the server refused it (``reason``), not retried unless asked.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from uploader.errors import JournalError

try:
    import fcntl
except ImportError:  # Windows: no advisory lock; do not run two uploaders on one journal there
    fcntl = None  # type: ignore[assignment]

STATES = ("pending", "sent", "duplicate", "skipped", "failed")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS photos (
    sha256 TEXT PRIMARY KEY, path TEXT NOT NULL, size INTEGER NOT NULL,
    captured_at TEXT, lat REAL, lon REAL, heading REAL, speed REAL, source TEXT NOT NULL,
    state TEXT NOT NULL, server_status TEXT, frame_id INTEGER, reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS photos_state ON photos (state, captured_at);
CREATE INDEX IF NOT EXISTS photos_time ON photos (captured_at);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _iso(when: datetime | None) -> str | None:
    return when.astimezone(UTC).isoformat(timespec="microseconds") if when is not None else None


@dataclass
class Photo:
    """One row of the journal."""

    sha256: str
    path: str
    size: int
    captured_at: datetime | None
    lat: float | None
    lon: float | None
    heading: float | None
    speed: float | None
    source: str
    state: str
    server_status: str | None = None
    frame_id: int | None = None
    reason: str | None = None
    attempts: int = 0

    @property
    def has_position(self) -> bool:
        return self.lat is not None and self.lon is not None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Photo:
        data = {k: row[k] for k in row.keys() if k in cls.__dataclass_fields__}  # noqa: SIM118
        if data["captured_at"]:
            data["captured_at"] = datetime.fromisoformat(data["captured_at"])
        return cls(**data)


class Journal:
    """Open with ``Journal(path)``; ``dry_run=True`` works on an in-memory copy and writes nothing."""

    def __init__(self, path: Path, *, dry_run: bool = False) -> None:
        self.path = path
        self._lock: IO[bytes] | None = None
        try:
            if dry_run:
                self.db = sqlite3.connect(":memory:", check_same_thread=False)
                if path.is_file():
                    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as src:
                        src.backup(self.db)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._take_lock(path)
                self.db = sqlite3.connect(path, timeout=30, check_same_thread=False)  # one thread at a time
                self.db.execute("PRAGMA synchronous=FULL")
            self.db.row_factory = sqlite3.Row
            self.db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            self._release()
            raise JournalError(f"journal {path}: {exc}") from exc

    def _take_lock(self, path: Path) -> None:
        if fcntl is None:
            return
        self._lock = open(path.with_name(path.name + ".lock"), "wb")  # noqa: SIM115
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._release()
            raise JournalError(f"journal {path} is in use by another uploader process") from exc

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def close(self) -> None:
        self.db.close()
        self._release()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self.db:  # commits, or rolls back on error
            yield self.db

    # files -------------------------------------------------------------------------------------------
    def known_file(self, path: str) -> tuple[int, int, str] | None:
        row = self.db.execute("SELECT size, mtime_ns, sha256 FROM files WHERE path = ?", (path,)).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def remember_file(self, path: str, size: int, mtime_ns: int, sha256: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO files VALUES (?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET"
                " size = excluded.size, mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256",
                (path, size, mtime_ns, sha256),
            )

    # photos ------------------------------------------------------------------------------------------
    def get(self, sha256: str) -> Photo | None:
        row = self.db.execute("SELECT * FROM photos WHERE sha256 = ?", (sha256,)).fetchone()
        return Photo.from_row(row) if row else None

    def add(self, photo: Photo) -> None:
        now = _now()
        with self._tx() as db:
            db.execute(
                "INSERT INTO photos (sha256, path, size, captured_at, lat, lon, heading, speed, source, state,"
                " reason, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    photo.sha256, photo.path, photo.size, _iso(photo.captured_at), photo.lat, photo.lon,
                    photo.heading, photo.speed, photo.source, photo.state, photo.reason, now, now,
                ),
            )  # fmt: skip

    def last_kept_position(self, before: datetime | None) -> tuple[float, float] | None:
        """Position of the latest photo not sampled out, taken at or before `before` (any, if None)."""
        sql = "SELECT lat, lon FROM photos WHERE state != 'skipped' AND lat IS NOT NULL"
        args: tuple[Any, ...] = ()
        if before is not None:
            sql += " AND captured_at <= ? ORDER BY captured_at DESC LIMIT 1"
            args = (_iso(before),)
        else:
            sql += " ORDER BY rowid DESC LIMIT 1"
        row = self.db.execute(sql, args).fetchone()
        return (row[0], row[1]) if row else None

    def pending(self) -> list[Photo]:
        rows = self.db.execute(
            "SELECT * FROM photos WHERE state = 'pending' ORDER BY captured_at IS NULL, captured_at, path"
        )
        return [Photo.from_row(r) for r in rows]

    def set_position(self, photo: Photo) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE photos SET captured_at = ?, lat = ?, lon = ?, heading = ?, speed = ?, source = ?,"
                " updated_at = ? WHERE sha256 = ?",
                (
                    _iso(photo.captured_at), photo.lat, photo.lon, photo.heading, photo.speed, photo.source,
                    _now(), photo.sha256,
                ),
            )  # fmt: skip

    def note_attempt(self, hashes: Iterable[str]) -> None:
        """Count a transmission before it starts: a later 'duplicate' then means our own earlier send."""
        with self._tx() as db:
            db.executemany(
                "UPDATE photos SET attempts = attempts + 1, updated_at = ? WHERE sha256 = ?",
                [(_now(), h) for h in hashes],
            )

    def resolve(
        self,
        sha256: str,
        state: str,
        server_status: str | None = None,
        frame_id: int | None = None,
        reason: str | None = None,
    ) -> None:
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}, got {state!r}")
        with self._tx() as db:
            db.execute(
                "UPDATE photos SET state = ?, server_status = ?, frame_id = ?, reason = ?, updated_at = ?"
                " WHERE sha256 = ?",
                (state, server_status, frame_id, reason, _now(), sha256),
            )

    def reset_failed(self) -> int:
        with self._tx() as db:
            return db.execute(
                "UPDATE photos SET state = 'pending', reason = NULL, updated_at = ? WHERE state = 'failed'",
                (_now(),),
            ).rowcount

    # reports -----------------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for state, n in self.db.execute("SELECT state, count(*) FROM photos GROUP BY state"):
            out[state] = n
        out["no_location"] = self.db.execute(
            "SELECT count(*) FROM photos WHERE state = 'sent' AND server_status = 'no_location'"
        ).fetchone()[0]
        return out

    def failures(self, limit: int = 50) -> list[dict[str, str]]:
        rows = self.db.execute(
            "SELECT path, sha256, reason FROM photos WHERE state = 'failed' ORDER BY updated_at, path LIMIT ?",
            (limit,),
        )
        return [{"file": r[0], "sha256": r[1], "reason": r[2] or ""} for r in rows]
