"""Sending pending photos in batches, exactly once.

A photo's transmission is counted in the journal before its bytes leave, and every photo is checked
against ``/frames/missing`` before it is sent (once per cycle, and again before each retry of a batch).
A photo the server already has is therefore never sent again: it is recorded as ``sent`` when this
uploader transmitted it earlier (the answer was lost), else as ``duplicate``. A 413 halves the batch
size for good; another 4xx for a whole batch halves that batch until the one photo at fault fails alone.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uploader.api import Api, Part, Retrier
from uploader.errors import BatchTooLarge, RequestRejected, TransientError
from uploader.journal import Journal, Photo
from uploader.progress import Progress

log = logging.getLogger(__name__)


@dataclass
class RunStats:
    """What happened in this run (the journal holds the totals)."""

    found: int = 0
    sent: int = 0
    no_location: int = 0
    duplicates: int = 0
    skipped: int = 0
    failed: int = 0
    unstable: int = 0
    would_send: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)

    def note(self) -> str:
        return f"sent {self.sent} dup {self.duplicates} failed {self.failed}"


class Sender:
    def __init__(
        self,
        root: Path,
        journal: Journal,
        api: Api,
        retrier: Retrier,
        stats: RunStats,
        progress: Progress,
        *,
        batch_size: int = 20,
        batch_bytes: int = 16 * 1024 * 1024,
        clock_offset_s: float = 0.0,
        stop: threading.Event | None = None,
    ) -> None:
        self.root, self.journal, self.api, self.retrier = root, journal, api, retrier
        self.stats, self.progress = stats, progress
        self.batch_size, self.batch_bytes = max(1, batch_size), batch_bytes
        self.clock_offset_s = clock_offset_s
        self.stop = stop or threading.Event()

    def send(self, pending: list[Photo]) -> None:
        """Send `pending` (in this order) in batches; each photo ends resolved or stays pending."""
        self.progress.start(len(pending))
        try:
            hashes = [p.sha256 for p in pending]
            missing = self.retrier.run(lambda _: self.api.missing(hashes), "asking what is missing")
            for photo in pending:
                if photo.sha256 not in missing:
                    self._already_there(photo)
            queue = [p for p in pending if p.sha256 in missing]
            while queue and not self.stop.is_set():
                batch = [queue.pop(0)]  # at least one photo, however large
                size = batch[0].size
                while queue and len(batch) < self.batch_size and size + queue[0].size <= self.batch_bytes:
                    size += queue[0].size
                    batch.append(queue.pop(0))
                self._send(batch)
        finally:
            self.progress.finish()

    def _send(self, batch: list[Photo]) -> None:
        try:
            self.retrier.run(lambda attempt: self._attempt(batch, attempt), f"batch of {len(batch)}")
        except (BatchTooLarge, RequestRejected) as exc:
            todo = [p for p in batch if p.state == "pending"]
            if len(todo) <= 1:
                for photo in todo:
                    self._fail(photo, str(exc))
                return
            half = len(todo) // 2
            if isinstance(exc, BatchTooLarge):
                self.batch_size = max(1, min(self.batch_size, len(todo)) // 2)
                log.warning(
                    "server refused %d photos (%s): batches of %d now", len(todo), exc.detail, self.batch_size
                )
            else:
                log.warning("server refused a batch of %d (%s): sending it in halves", len(todo), exc)
            self._send(todo[:half])
            self._send(todo[half:])

    def _attempt(self, batch: list[Photo], attempt: int) -> None:
        todo = [p for p in batch if p.state == "pending"]
        if attempt > 0 and todo:  # the failed try may have reached the server: send only what it lacks
            missing = self.api.missing([p.sha256 for p in todo])
            for photo in todo:
                if photo.sha256 not in missing:
                    self._already_there(photo)
            todo = [p for p in todo if p.sha256 in missing]
        parts = [part for part in (self._read(p) for p in todo) if part is not None]
        todo = [p for p in todo if p.state == "pending"]
        if not todo:
            return
        self.journal.note_attempt(p.sha256 for p in todo)
        for photo in todo:
            photo.attempts += 1
        results = self.api.send_batch(parts, self._metadata(todo))
        self._record(todo, results)

    def _read(self, photo: Photo) -> Part | None:
        try:
            data = (self.root / photo.path).read_bytes()
        except FileNotFoundError:
            self._fail(photo, "file removed before it could be sent")
            return None
        except OSError as exc:
            raise TransientError(f"{photo.path}: cannot read: {exc}") from exc
        if hashlib.sha256(data).hexdigest() != photo.sha256:
            self._fail(photo, "file changed before it could be sent (the new content is a new photo)")
            return None
        return Part(photo.path, data)

    def _metadata(self, photos: list[Photo]) -> dict[str, Any]:
        """Positions from the tracks, per image: the server then places photos where sampling did."""
        images: dict[str, Any] = {}
        for p in photos:
            if p.source == "track" and p.captured_at is not None:
                meta = {"captured_at": p.captured_at.isoformat(), "lat": p.lat, "lon": p.lon}
                meta.update({k: v for k, v in (("heading", p.heading), ("speed", p.speed)) if v is not None})
                images[p.path] = meta
        return {"clock_offset_s": self.clock_offset_s, "images": images}

    def _record(self, photos: list[Photo], results: list[dict[str, Any]]) -> None:
        by_sha = {p.sha256: p for p in photos}
        by_name = {p.path: p for p in photos}
        for result in results:
            photo = by_sha.get(result.get("sha256") or "") or by_name.get(result.get("filename") or "")
            if photo is None or photo.state != "pending":
                continue
            status = result.get("status")
            if status in ("queued", "no_location"):
                self._resolve(photo, "sent", status, result.get("frame_id"))
            elif status == "duplicate":
                self._already_there(photo, result.get("frame_id"), previous_tries=1)
            elif status == "rejected":
                self._fail(photo, str(result.get("reason") or "rejected by the server"))
            else:
                log.warning("%s: unexpected status %r from the server; will try again", photo.path, status)
        left = [p.path for p in photos if p.state == "pending"]
        if left:
            log.warning("server did not report on %d photos (%s...); they stay pending", len(left), left[0])
        log.info("batch of %d: %s", len(photos), self.stats.note())

    def _already_there(self, photo: Photo, frame_id: int | None = None, previous_tries: int = 0) -> None:
        if photo.attempts > previous_tries:  # our own earlier transmission reached it
            self._resolve(photo, "sent", "stored", frame_id)
        else:
            self._resolve(photo, "duplicate", "duplicate", frame_id)

    def _fail(self, photo: Photo, reason: str) -> None:
        log.warning("%s: failed: %s", photo.path, reason)
        self.stats.failures.append({"file": photo.path, "sha256": photo.sha256, "reason": reason})
        self._resolve(photo, "failed", None, None, reason)

    def _resolve(
        self, photo: Photo, state: str, status: str | None, frame_id: Any, reason: str | None = None
    ) -> None:
        self.journal.resolve(
            photo.sha256, state, status, frame_id if isinstance(frame_id, int) else None, reason
        )
        photo.state, photo.server_status, photo.reason = state, status, reason
        if state == "sent":
            self.stats.sent += 1
            self.stats.no_location += status == "no_location"
        elif state == "duplicate":
            self.stats.duplicates += 1
        elif state == "failed":
            self.stats.failed += 1
        self.progress.advance(1, self.stats.note())
