"""One upload cycle (find new photos, decide which to keep, send them) and the ``send``/``watch`` loops
around it. How photos are sent exactly once is described in ``uploader.sender``."""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uploader.api import Api, Retrier
from uploader.errors import TransientError
from uploader.journal import Journal, Photo
from uploader.photos import Locator, Scanner, TrackSet, sample
from uploader.progress import Progress
from uploader.sender import RunStats, Sender

log = logging.getLogger(__name__)


@dataclass
class Options:
    every_m: float | None = None
    clock_offset_s: float = 0.0
    track_max_gap_s: float = 30.0
    tracks: list[Path] = field(default_factory=list)
    batch_size: int = 20
    batch_bytes: int = 16 * 1024 * 1024
    dry_run: bool = False


class Uploader:
    """Sends the photos below `root`; `api` may be None for a dry run."""

    def __init__(
        self,
        root: Path,
        journal: Journal,
        api: Api | None,
        options: Options | None = None,
        retrier: Retrier | None = None,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.root = root
        self.stop = stop or threading.Event()  # set: finish the request in flight, then return
        self.journal = journal
        self.api = api
        self.options = options or Options()
        self.retrier = retrier or Retrier()
        self.progress = progress or Progress(enabled=False)
        self.scanner = Scanner(root)
        self.tracks = TrackSet(root, self.options.tracks)
        self.locator = Locator(self.options.clock_offset_s, self.options.track_max_gap_s)
        self.stats = RunStats()
        self.sender: Sender | None = None
        if not self.options.dry_run:
            if api is None:
                raise ValueError("an Api is needed unless dry_run")
            self.sender = Sender(
                root,
                journal,
                api,
                self.retrier,
                self.stats,
                self.progress,
                batch_size=self.options.batch_size,
                batch_bytes=self.options.batch_bytes,
                clock_offset_s=self.options.clock_offset_s,
                stop=self.stop,
            )

    # finding -----------------------------------------------------------------------------------------
    def discover(self) -> int:
        """Add the stable new photo files to the journal (pending or skipped); returns how many."""
        ready, self.stats.unstable = self.scanner.poll(self.journal)
        track = self.tracks.refresh()
        found: list[tuple[Photo, int]] = []
        for cand in ready:
            try:
                data = cand.path.read_bytes()
            except OSError as exc:
                log.warning("%s: unreadable, will try again: %s", cand.rel, exc)
                continue
            if len(data) != cand.size:  # changed while we read it
                self.scanner.forget(cand.rel)
                continue
            photo = self.locator.inspect(cand, data, track)
            if self.journal.get(photo.sha256) is not None:  # the same bytes under another name
                self.journal.remember_file(cand.rel, cand.size, cand.mtime_ns, photo.sha256)
                continue
            found.append((photo, cand.mtime_ns))
        found.sort(key=lambda f: (f[0].captured_at is None, f[0].captured_at or 0, f[0].path))
        added = 0
        for photo, mtime_ns in found:
            if self.journal.get(photo.sha256) is None:  # else: two new files with the same bytes
                reason = sample(self.journal, photo, self.options.every_m)
                if reason is not None:
                    photo.state, photo.reason = "skipped", reason
                    self.stats.skipped += 1
                self.journal.add(photo)
                added += 1
            self.journal.remember_file(photo.path, photo.size, mtime_ns, photo.sha256)
        self.stats.found += added
        if added:
            log.info("found %d new photos (%d sampled out so far)", added, self.stats.skipped)
        return added

    # sending -----------------------------------------------------------------------------------------
    def send_pending(self) -> None:
        pending = self.journal.pending()
        if not pending:
            return
        for photo in pending:  # a track may have arrived after the photo was found
            if photo.source == "none" and self.locator.from_track(photo, self.tracks.track):
                self.journal.set_position(photo)
        if self.sender is None:
            self.stats.would_send = len(pending)
            return
        self.sender.send(pending)

    # loops -------------------------------------------------------------------------------------------
    def cycle(self) -> None:
        self.discover()
        self.send_pending()

    def send_once(self, settle_s: float = 1.0, sleep: Any = None) -> None:
        """Two polls `settle_s` apart (files still growing wait for the next run), then one cycle."""
        self.scanner.poll(self.journal)
        if settle_s > 0 and (sleep or self.stop.wait)(settle_s):
            return
        self.cycle()

    def watch(self, poll_s: float = 5.0, max_wait_s: float = 300.0) -> None:
        """Cycle every `poll_s` until `self.stop` is set; after a failed cycle wait longer (backoff, jitter)."""
        failures = 0
        while not self.stop.is_set():
            wait = poll_s
            try:
                self.cycle()
                failures = 0
            except TransientError as exc:
                if self.stop.is_set():
                    break
                failures += 1
                wait = min(max_wait_s, poll_s * 2.0**failures) * random.uniform(0.5, 1.0)
                log.warning("cycle failed (%s); next try in %.0f s, photos stay pending", exc, wait)
            if self.stop.wait(wait):
                break

    def summary(self) -> dict[str, Any]:
        counts = self.journal.counts()
        s = self.stats
        out: dict[str, Any] = {
            "sent": s.sent,
            "no_location": s.no_location,
            "duplicates": s.duplicates,
            "skipped": s.skipped,
            "failed": s.failed,
            "failures": s.failures,
            "found": s.found,
            "pending": counts["pending"],
            "still_writing": s.unstable,
            "journal": counts,
        }
        if self.options.dry_run:
            out["would_send"] = s.would_send
        return out
