"""Association as a stage per drive segment: a vehicle's located frames, grouped into drives by pauses,
are tracked (``service.domain.tracking``), registered against the known sites near the drive's path and
assigned one-to-one to sites (``service.domain.registration``) in one transaction under advisory locks
per map cell, so workers in different parts of a city never wait on each other. ``service.worker.drives``
decides when a drive is ready and finds drives left unassociated; ``service.worker.frame_association`` is
the older per-frame method, kept for comparison in the benchmark.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from geoalchemy2.shape import to_shape
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from geotag import M_PER_DEG_LAT, metres_per_degree_lon
from service.db.drives import Drive, Track
from service.db.sites import (
    ROAD_SEARCH_M,
    new_site,
    site_latlon,
)
from service.db.tables import DamageSite, point
from service.domain import tracking
from service.domain.classes import COMPATIBLE
from service.domain.registration import assign_tracks, register_drive
from service.domain.statuses import SITE_ASSOCIABLE, SiteStatus

VEHICLE_LOCK = 7301  # pg_advisory_xact_lock(VEHICLE_LOCK, vehicle id): one association per vehicle at a time
CELL_LOCK = 7302  # pg_advisory_xact_lock(CELL_LOCK, cell key): one association per map cell at a time
CELL_DEG = 0.005  # lock cells of 0.005 x 0.005 degrees (about 550 x 340 m at 52 N)
DRIVE_GAP = timedelta(minutes=5)  # a longer pause between a vehicle's photos starts a new drive
DRIVE_LOOKAROUND = timedelta(hours=6)  # a drive longer than this is associated in pieces


@dataclass(frozen=True)
class AssociationConfig:
    radius_m: float = 4.0  # farthest a track of an unregistered drive may be from the site it joins
    # Farthest a track may be from a known site it registers against: two drives' GPS errors of 2-8 m
    # each plus drift put the same defect up to about 20 m apart.
    search_m: float = tracking.Config.search_m

    def tracking(self) -> tracking.Config:
        return tracking.Config(
            compatible=COMPATIBLE,
            search_m=self.search_m,
            gate_m=self.radius_m,
            registered_gate_m=max(self.radius_m, tracking.Config.registered_gate_m),
        )


@dataclass
class SegmentResult:
    drive_id: int
    plan: tracking.DrivePlan
    site_of: dict[int, int] = field(default_factory=dict)  # sighting key -> site id
    track_of: dict[int, int] = field(default_factory=dict)  # sighting key -> track id
    positions: dict[int, tuple[float, float]] = field(default_factory=dict)  # sighting key -> lat, lon
    frame_offsets: dict[int, tuple[float, float]] = field(default_factory=dict)  # frame key -> east, north
    sites: list[DamageSite] = field(default_factory=list)  # every site the segment's tracks went to


def cell_keys(points: Iterable[tuple[float, float]], margin_m: float) -> list[int]:
    """Lock keys (sorted) of the cells that squares of ``margin_m`` around the (lat, lon) points touch.

    Two segments whose points come within ``margin_m`` of each other share a key, so they never
    associate at the same time; segments in other parts of the city never wait for each other.
    """
    cells: set[tuple[int, int]] = set()
    for lat, lon in points:
        dlat, dlon = margin_m / M_PER_DEG_LAT, margin_m / metres_per_degree_lon(lat)
        for iy in range(math.floor((lat - dlat) / CELL_DEG), math.floor((lat + dlat) / CELL_DEG) + 1):
            for ix in range(math.floor((lon - dlon) / CELL_DEG), math.floor((lon + dlon) / CELL_DEG) + 1):
                cells.add((ix, iy))
    # A stable 32-bit key per cell; a collision only makes two segments wait for each other.
    keys = {((ix * 73_856_093) ^ (iy * 19_349_663)) % (1 << 32) - (1 << 31) for ix, iy in cells}
    return sorted(keys)


def lock_cells(session: Session, keys: Sequence[int]) -> None:
    for key in sorted(keys):  # in order: two transactions never wait for each other in a cycle
        session.execute(select(func.pg_advisory_xact_lock(CELL_LOCK, key)))


def candidate_sites(
    session: Session, points: Sequence[tuple[float, float]], radius_m: float
) -> list[tracking.KnownSite]:
    """Associable sites within ``radius_m`` of any of the (lat, lon) points: one query (GiST per point)."""
    if not points:
        return []
    max_lat = max(abs(lat) for lat, _ in points)
    radius_deg = radius_m / metres_per_degree_lon(max_lat)
    rows = session.execute(
        text(
            """
            SELECT DISTINCT s.id, s.class_name, ST_Y(s.position), ST_X(s.position), s.sightings
            FROM damage_site s
            JOIN (SELECT unnest(CAST(:lats AS float8[])) AS lat, unnest(CAST(:lons AS float8[])) AS lon) p
              ON ST_DWithin(s.position, ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326), :deg)
            WHERE s.status = ANY(CAST(:statuses AS text[]))
            ORDER BY s.id
            """
        ),
        {
            "lats": [lat for lat, _ in points],
            "lons": [lon for _, lon in points],
            "deg": radius_deg,
            "statuses": [str(s) for s in SITE_ASSOCIABLE],
        },
    ).all()
    return [tracking.KnownSite(int(r[0]), r[1], float(r[2]), float(r[3]), int(r[4])) for r in rows]


def _weight(s: tracking.Sighting) -> float:
    return s.confidence / (1.0 + (s.distance_m or 10.0) / 10.0)  # near, sure sightings count more


def _new_site(t: tracking.Track, lat: float, lon: float, model_version_id: int | None) -> DamageSite:
    return new_site(t.class_name, lat, lon, t.first_seen, t.last_seen, model_version_id=model_version_id)


def merge_track(
    session: Session,
    site: DamageSite,
    track: tracking.Track,
    sightings: Sequence[tuple[tracking.Sighting, tuple[float, float]]],
    model_version_id: int | None,
) -> None:
    """Add a track's sightings (with their corrected positions) to ``site``; counts its frames once each."""
    slat, slon = site_latlon(site) if site.position_weight > 0 else sightings[0][1]
    total, wlat, wlon = site.position_weight, slat * site.position_weight, slon * site.position_weight
    votes = dict(site.class_votes)
    for s, (lat, lon) in sightings:
        w = _weight(s)
        total, wlat, wlon = total + w, wlat + w * lat, wlon + w * lon
        votes[s.class_name] = votes.get(s.class_name, 0.0) + s.confidence
    site.position = point(wlat / total, wlon / total)
    site.position_weight = total
    site.class_votes = votes
    if site.status == SiteStatus.OPEN:  # once staff decided, the class is theirs
        site.class_name = max(sorted(votes), key=lambda k: votes[k])
    site.max_confidence = max(site.max_confidence, track.max_confidence)
    if track.size_m is not None:
        site.size_m = max(site.size_m or 0.0, track.size_m)
    site.sightings += track.sightings
    site.n_observations += len(sightings)
    site.first_seen = min(site.first_seen, track.first_seen)
    site.last_seen = max(site.last_seen, track.last_seen)
    site.model_version_id = model_version_id or site.model_version_id


def road_importances(session: Session, points: Sequence[Any]) -> list[float | None]:
    """``road_importance`` for many positions (shapely points) in one query."""
    if not points:
        return []
    rows = session.execute(
        text(
            """
            SELECT p.i, r.importance, ST_Distance(geography(r.geom), geography(p.pt))
            FROM (SELECT i, ST_SetSRID(ST_MakePoint(lon, lat), 4326) AS pt
                  FROM unnest(CAST(:lats AS float8[]), CAST(:lons AS float8[])) WITH ORDINALITY AS u(lat, lon, i)) p
            CROSS JOIN LATERAL (
                SELECT importance, geom FROM road_segment ORDER BY geom <-> p.pt LIMIT 1) r
            """
        ),
        {"lats": [pt.y for pt in points], "lons": [pt.x for pt in points]},
    ).all()
    found = {int(i): float(imp) for i, imp, dist in rows if dist <= ROAD_SEARCH_M}
    return [found.get(k + 1) for k in range(len(points))]


def associate_segment(
    session: Session,
    vehicle_id: int,
    frames: Sequence[tracking.FrameInput],
    *,
    config: AssociationConfig,
    model_version_id: int | None,
    drive: Drive | None = None,
    before_write: Callable[[], None] | None = None,
) -> SegmentResult:
    """Track, register and assign one drive segment (``frames`` in time order); write sites, tracks, drive.

    The sites it wrote (``result.sites``) are not rescored here: the caller links its observations to them
    first and then rescores them once (``rescore_sites``), so sightings, sections and trust count them.

    Takes the lock of every map cell the segment's tracks may touch, so a concurrent segment over the
    same defects waits and then sees this one's sites. Commits nothing: the caller's transaction does.
    ``before_write`` (tests) runs after the locks are held and before anything is written.
    """
    # The one transaction of a drive segment (lock cells, candidates, track, register, assign, write): split,
    # its steps would pass the same half-written state around; each step is a pure function it calls.
    cfg = config.tracking()
    origin = (frames[0].lat, frames[0].lon) if frames else (0.0, 0.0)
    frames = tracking.smooth_fixes(frames, cfg)
    tracks = tracking.track_drive(frames, cfg, origin)
    raw = [tracking.from_local(t.east, t.north, origin) for t in tracks]
    reach = config.search_m + config.radius_m
    lock_cells(session, cell_keys(raw, reach))
    known = candidate_sites(session, raw, reach)
    registration = register_drive(tracks, known, origin, cfg)
    assignment = assign_tracks(tracks, known, registration, origin, cfg)
    plan = tracking.DrivePlan(origin, tuple(tracks), registration, assignment)
    assigned, match = assignment.sites, assignment.match_m
    if before_write is not None:
        before_write()
    if drive is None:
        drive = Drive(vehicle_id=vehicle_id, n_frames=0, n_tracks=0)
        session.add(drive)
    times = [f.seen_at for f in frames]
    if times:
        drive.started_at = min([t for t in (drive.started_at, *times) if t is not None])
        drive.ended_at = max([t for t in (drive.ended_at, *times) if t is not None])
    drive.offset_e_m, drive.offset_n_m = registration.offset_e_m, registration.offset_n_m
    drive.drift_m, drive.support, drive.candidates = (
        registration.drift_m,
        registration.support,
        registration.candidates,
    )
    drive.reference, drive.algorithm = registration.reference, tracking.ALGORITHM
    drive.n_frames = (drive.n_frames or 0) + len(frames)
    drive.n_tracks = (drive.n_tracks or 0) + len(tracks)
    session.flush()
    result = SegmentResult(drive.id, plan)
    existing = {
        s.id: s
        for s in session.scalars(
            select(DamageSite)
            .where(DamageSite.id.in_([k for k in assigned if k is not None]))
            .with_for_update()
        )
    }
    by_key = {s.key: s for f in frames for s in f.sightings}
    founded: dict[int, DamageSite] = {}
    site_by_track: dict[int, DamageSite] = {}
    moved_of: dict[int, list[tuple[tracking.Sighting, tuple[float, float]]]] = {}
    with session.no_autoflush:  # written together below: a few statements, not a few per track
        for i in sorted(range(len(tracks)), key=lambda k: assignment.founders[k] != k):  # founders first
            t = tracks[i]
            target = assigned[i]
            site = existing.get(target) if target is not None else None
            if site is not None and site.status not in SITE_ASSOCIABLE:  # staff closed it meanwhile
                site = None
            founder = assignment.founders[i]
            if site is None and founder is not None and founder != i:
                site = founded.get(founder)
            if site is None:
                site = _new_site(t, *plan.corrected(i), model_version_id)
                session.add(site)
                founded[i] = site
            moved_of[i] = [(by_key[k], plan.sighting_position(i, by_key[k])) for k in t.sighting_keys]
            merge_track(session, site, t, moved_of[i], model_version_id)
            site_by_track[i] = site
        touched = list({id(x): x for x in site_by_track.values()}.values())
        importance = road_importances(session, [to_shape(x.position) for x in touched])
        for x, value in zip(touched, importance, strict=True):
            x.road_importance = value
    session.flush()
    result.sites = touched
    placed = [site_by_track[i] for i in range(len(tracks))]
    rows = []
    for i, (t, site) in enumerate(zip(tracks, placed, strict=True)):
        rows.append(
            Track(
                drive_id=drive.id,
                site_id=site.id,
                class_name=t.class_name,
                position=point(*plan.corrected(i)),
                sightings=t.sightings,
                n_observations=len(t.sighting_keys),
                size_m=t.size_m,
                max_confidence=t.max_confidence,
                match_m=match[i] if site.id == assigned[i] else None,
                first_seen=t.first_seen,
                last_seen=t.last_seen,
            )
        )
    session.add_all(rows)
    session.flush()
    for i, (t, row, site) in enumerate(zip(tracks, rows, placed, strict=True)):
        for s, pos in moved_of[i]:
            result.site_of[s.key] = site.id
            result.track_of[s.key] = row.id
            result.positions[s.key] = pos
        for fk in t.frame_keys:
            result.frame_offsets.setdefault(fk, registration.local[i])
    return result
