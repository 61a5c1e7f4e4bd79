"""Finding, identifying, locating and sampling photos in a folder.

Photos are ``*.jpg``/``*.jpeg`` anywhere below the folder (hidden files and folders are ignored). A file is
taken only when its size and modification time were the same on two consecutive polls, so a file still
being copied is never sent half-written. Position comes from the photo's EXIF GPS, else from the tracks
(GPX or NMEA, ``*.gpx *.nmea *.nma *.log`` beside the photos, or given explicitly) at the photo's time
corrected by the clock offset, else the photo has none and is still sent (the server flags it).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from geotag import Fix, Track, TrackError, haversine_m, interpolate, parse_track, read_exif
from uploader.journal import Journal, Photo

log = logging.getLogger(__name__)

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg"})
TRACK_SUFFIXES = frozenset({".gpx", ".nmea", ".nma", ".log"})


def _walk(root: Path, suffixes: frozenset[str]) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [
            Path(dirpath, f)
            for f in sorted(filenames)
            if not f.startswith(".") and os.path.splitext(f)[1].lower() in suffixes
        ]
    return found


@dataclass
class Candidate:
    """A photo file that was stable across two polls and is not in the journal yet."""

    rel: str
    path: Path
    size: int
    mtime_ns: int


@dataclass
class Scanner:
    """Polls `root` for photo files; ``poll()`` returns the ones whose (size, mtime) did not change."""

    root: Path
    _seen: dict[str, tuple[int, int]] = field(default_factory=dict)

    def poll(self, journal: Journal) -> tuple[list[Candidate], int]:
        """(stable new files, number of files still changing or empty)."""
        ready, unstable = [], 0
        for path in _walk(self.root, PHOTO_SUFFIXES):
            rel = path.relative_to(self.root).as_posix()
            try:
                st = path.stat()
            except OSError:  # removed between listing and stat
                continue
            sig = (st.st_size, st.st_mtime_ns)
            known = journal.known_file(rel)
            if known is not None and known[:2] == sig:
                self._seen.pop(rel, None)
                continue
            if st.st_size > 0 and self._seen.get(rel) == sig:
                ready.append(Candidate(rel, path, *sig))
            else:
                unstable += 1
            self._seen[rel] = sig
        return ready, unstable

    def forget(self, rel: str) -> None:
        self._seen.pop(rel, None)


class TrackSet:
    """The tracks beside the photos (and any given explicitly), merged; re-read when a file changes."""

    def __init__(self, root: Path | None, extra: list[Path] | None = None) -> None:
        self.root = root
        self.extra = list(extra or [])
        self._parsed: dict[Path, tuple[tuple[int, int], list[Fix]]] = {}
        self.track = Track()

    def refresh(self) -> Track:
        paths = (_walk(self.root, TRACK_SUFFIXES) if self.root else []) + self.extra
        changed = False
        for path in paths:
            try:
                st = path.stat()
            except OSError as exc:
                log.warning("track %s: %s", path, exc)
                continue
            sig = (st.st_size, st.st_mtime_ns)
            if path in self._parsed and self._parsed[path][0] == sig:
                continue
            try:
                fixes: list[Fix] = list(parse_track(path.read_bytes(), path.name))
                log.info("track %s: %d fixes", path.name, len(fixes))
            except (OSError, TrackError) as exc:
                log.warning("track %s ignored: %s", path.name, exc)
                fixes = []
            self._parsed[path] = (sig, fixes)
            changed = True
        if changed or set(self._parsed) - set(paths):
            self._parsed = {p: v for p, v in self._parsed.items() if p in paths}
            self.track = Track(f for _, fixes in self._parsed.values() for f in fixes)
        return self.track


@dataclass(frozen=True)
class Locator:
    """Places a photo: EXIF GPS first, else the track at capture time + `clock_offset_s`."""

    clock_offset_s: float = 0.0
    max_gap_s: float = 30.0

    def from_track(self, photo: Photo, track: Track) -> bool:
        """Set `photo`'s position from `track` (its captured_at is the camera's clock); True if found."""
        if not track or photo.captured_at is None:
            return False
        fix = interpolate(track, photo.captured_at, self.max_gap_s, self.clock_offset_s)
        if fix is None:
            return False
        photo.captured_at, photo.lat, photo.lon = fix.time, fix.lat, fix.lon
        photo.heading, photo.speed, photo.source = fix.heading, fix.speed, "track"
        return True

    def inspect(self, candidate: Candidate, data: bytes, track: Track) -> Photo:
        """A pending journal row for these bytes, located as well as EXIF and tracks allow."""
        exif = read_exif(data)
        photo = Photo(
            sha256=hashlib.sha256(data).hexdigest(),
            path=candidate.rel,
            size=len(data),
            captured_at=exif.captured_at,
            lat=None,
            lon=None,
            heading=None,
            speed=None,
            source="none",
            state="pending",
        )
        if exif.fix is not None:
            fix = exif.fix
            photo.captured_at = exif.captured_at or fix.time
            photo.lat, photo.lon, photo.heading, photo.speed = fix.lat, fix.lon, fix.heading, fix.speed
            photo.source = "exif"
        elif not self.from_track(photo, track):
            log.debug("%s: no position (%s)", candidate.rel, "; ".join(exif.warnings))
        return photo


def sample(journal: Journal, photo: Photo, every_m: float | None) -> str | None:
    """Why `photo` is left out by distance sampling, or None to keep it.

    Keeps one photo per `every_m` metres: a photo is kept when it is at least that far (great circle)
    from the last kept photo taken before it. Distance to the last kept photo, not summed along the way,
    so GPS jitter of a stopped vehicle never adds up. Photos without a position are always kept.
    """
    if not every_m or not photo.has_position:
        return None
    anchor = journal.last_kept_position(photo.captured_at)
    if anchor is None:
        return None
    if photo.lat is None or photo.lon is None:  # has_position says otherwise; never trust it blindly
        return None
    dist = haversine_m(anchor[0], anchor[1], photo.lat, photo.lon)
    if dist >= every_m:
        return None
    return f"sampled out: {dist:.1f} m from the previous kept photo (--every-m {every_m:g})"
