"""The records of drive tracking (sightings, frames, known sites, tracks, registration, the plan of a
drive) and the local tangent plane they live on. Validated once where built; pure."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from geotag import local_m, offset
from service.domain.geo import Box, Camera, ground_offset, locate_detection

ALGORITHM = "tracks-v1"
BOX_TOUCH_PX = 12.0


@dataclass(frozen=True)
class Sighting:
    """One detection located on the ground (before any drive correction)."""

    key: int  # the caller's id (an observation)
    class_name: str
    confidence: float
    lat: float
    lon: float
    distance_m: float | None  # from the camera; None: no heading, the position is the camera's
    size_m: float | None
    sizeable: bool  # the whole box lies on the road within range: its size can be trusted
    box: Box

    @classmethod
    def locate(
        cls,
        key: int,
        class_name: str,
        confidence: float,
        box: Box,
        fix_lat: float,
        fix_lon: float,
        heading: float | None,
        width: int,
        height: int,
        cam: Camera,
    ) -> Sighting | None:
        """A detection located from the camera's fix and heading; None when not on the road plane."""
        est = locate_detection(fix_lat, fix_lon, heading, box, width, height, cam)
        if est is None:
            return None
        top = ground_offset((box[0] + box[2]) / 2.0, box[1], width, height, cam)
        return cls(
            key, class_name, confidence, est.lat, est.lon, est.distance_m, est.size_m, top is not None, box
        )


@dataclass(frozen=True)
class FrameInput:
    key: int  # the caller's id (a frame)
    seen_at: datetime
    lat: float  # the GPS fix
    lon: float
    heading: float | None
    sightings: tuple[Sighting, ...]


@dataclass(frozen=True)
class KnownSite:
    key: int
    class_name: str
    lat: float
    lon: float
    sightings: int = 1


@dataclass(frozen=True)
class Config:
    compatible: Mapping[str, Collection[str]] = field(default_factory=dict)  # class -> classes it may join
    link_sigma_m: float = 0.45  # linking: GPS left after smoothing, plus the track's own error
    range_error_per_m2: float = 0.003  # along the line of sight: about 3 px at 1.4 m camera height
    heading_error_rad: float = 0.03  # across it
    link_gate_sigmas: float = 2.5
    # Linking: the cost (in gate units) of a detection whose class differs from the track's vote. The
    # detector confuses crack classes in about one detection in seven, so a differing label is weak
    # evidence of another defect: it decides between two tracks that fit alike, never the gate.
    link_class_penalty: float = 0.3
    # Linking: the detector's range, a high quantile of the drive's sightings' forward distances; a
    # track that would lie beyond it in a frame was hardly seen there (a far detection of one of two
    # defects side by side belongs to the one still in range).
    view_quantile: float = 0.95
    view_min_sightings: int = 30
    view_penalty_max: float = 1.0
    relink_rounds: int = 2  # whole tracks: sightings move to the track they fit clearly better
    relink_margin: float = 0.05
    relink_reach_m: float = 8.0
    gate_no_heading_m: float = 8.0  # linking a sighting without a heading (its position is the camera's)
    max_gap_frames: int = 3
    split_box_m: float = 1.0  # touching boxes of one frame closer than this on the ground: one defect
    merge_m: float = 2.0
    revisit_merge_m: float = 5.0  # new sites: a spot driven again later (GPS drift in between)
    revisit_after_m: float = 100.0
    size_range_m: float = 12.0
    search_m: float = 20.0  # registration: how far a track may be from a known site it proposes
    inlier_m: float = 1.5
    min_site_sightings: int = 2  # registration only against sites seen in this many frames
    drift_sigma_m: float = 80.0  # registration: local (drift) correction, Gaussian along the drive
    drift_window_m: float = 200.0
    max_drift_m: float = 8.0
    # Per metre from the drive offset, in votes: only a tie-break. The map holds the drift of the
    # drives that built it, so a stretch may need an offset metres from its neighbours'; a larger
    # penalty let neighbours 100 m away and one swapped crack of a close pair outvote the stretch's
    # own tracks (hard bench 20/3: 193 of 200 defects exactly one site at 0.05, 191 at 0.15).
    drift_penalty: float = 0.05
    snap_m: float = 4.0  # an unconfirmed track takes its own site's offset within this of the guess
    snap_margin_m: float = 2.0  # ... when the next candidate is this much farther
    gate_m: float = 4.0  # assignment: farthest a (corrected) track may be from the site it joins
    smooth_window_s: float = 3.5  # GPS fixes: straight-line fit over the frames this close in time
    smooth_max_m: float = 1.5
    smooth_max_deg: float = 6.0
    unconfirmed_gate_m: float = 7.0  # the same for a track whose local offset no neighbour confirmed
    registered_gate_m: float = 5.0  # the same for a drive registered with support >= 2
    weak_site_penalty_m2: float = 4.0  # assignment: joining a site seen once costs this much more
    class_penalty_m2: float = 2.0  # assignment: joining a site of another (compatible) class

    def compatible_with(self, a: str, b: str) -> bool:
        return a == b or b in self.compatible.get(a, ())


@dataclass(frozen=True)
class Track:
    """One defect seen in one or more frames of a drive."""

    sighting_keys: tuple[int, ...]
    frame_keys: tuple[int, ...]  # distinct frames, in time order
    class_name: str
    class_votes: dict[str, float]
    east: float  # uncorrected, local metres
    north: float
    size_m: float | None
    max_confidence: float
    first_seen: datetime
    last_seen: datetime
    along_m: float  # distance the vehicle had travelled when it first saw the defect
    weights: dict[int, float]  # sighting key -> weight in the position mean

    @property
    def sightings(self) -> int:
        return len(self.frame_keys)


@dataclass(frozen=True)
class Registration:
    offset_e_m: float
    offset_n_m: float
    support: int  # tracks that agreed on the offset
    candidates: int  # tracks with a compatible known site within search_m
    drift_m: float  # largest departure of a track's local offset from the drive's offset
    local: tuple[tuple[float, float], ...]  # per track: the offset applied to it
    # Per track: whether tracks near it along the drive agreed on its offset (else it is interpolated).
    confirmed: tuple[bool, ...] = ()

    @property
    def reference(self) -> str:
        return "map" if self.support > 0 else "own"


@dataclass(frozen=True)
class Assignment:
    sites: tuple[int | None, ...]  # per track: the known site it joins, None for a new site
    match_m: tuple[float | None, ...]  # per track: distance to that known site after correction
    founders: tuple[int | None, ...]  # per track with a new site: the track whose new site it joins


@dataclass(frozen=True)
class DrivePlan:
    origin: tuple[float, float]
    tracks: tuple[Track, ...]
    registration: Registration
    assignment: Assignment

    def corrected(self, i: int) -> tuple[float, float]:
        """Track ``i``'s corrected position as (lat, lon)."""
        t, (de, dn) = self.tracks[i], self.registration.local[i]
        return from_local(t.east + de, t.north + dn, self.origin)

    def sighting_position(self, i: int, sighting: Sighting) -> tuple[float, float]:
        """A sighting of track ``i`` moved by the track's correction, as (lat, lon)."""
        e, n = to_local(sighting.lat, sighting.lon, self.origin)
        de, dn = self.registration.local[i]
        return from_local(e + de, n + dn, self.origin)


def to_local(lat: float, lon: float, origin: tuple[float, float]) -> tuple[float, float]:
    """East/north metres of (lat, lon) from ``origin`` (flat earth: fine over a few km)."""
    return local_m(origin[0], origin[1], lat, lon)


def from_local(east: float, north: float, origin: tuple[float, float]) -> tuple[float, float]:
    return offset(origin[0], origin[1], east, north)
