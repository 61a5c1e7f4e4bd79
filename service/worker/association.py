"""Associating one frame's located detections with damage sites, correcting the drive's GPS offset.

Phone GPS is off by 3-5 m, and the error stays nearly constant over minutes of one drive. So all
detections of a frame, and of neighbouring frames of the same drive, share one offset. Each frame:

1. starts from the offset estimated on the vehicle's recent frames (``prior``, east/north metres).
   Without a prior (the first frames of a drive over known sites) it acquires one: every known site
   within the wider ``search_m`` of a detection proposes a shift, and the shift that most of the
   frame's detections agree on (to ``AGREE_M``) wins, the smallest among equals; a lone detection near
   a lone site takes that site's shift. Then it shifts the detections and associates within ``radius_m``;
2. associates most confident detections first; a site taken by one detection of the frame cannot take
   another one (two defects seen side by side stay two sites) unless their boxes touch in the image
   (one crack that the model split into two boxes);
3. records its own offset: the prior plus the median residual between matched sites and detections.

The map keeps the reference of the first drive; later drives are aligned to it, so sightings of one
defect from different drives agree to about a metre instead of 5-10 m.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from geoalchemy2.shape import to_shape
from sqlalchemy import Row, exists, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from geotag import M_PER_DEG_LAT, local_m, metres_per_degree_lon, offset
from service.db.drives import Drive, DriveFrame, Track, TrackObservation
from service.db.engine import transaction
from service.db.sites import (
    ROAD_SEARCH_M,
    add_observation,
    find_site,
    nearby_sites,
    rescore,
    site_latlon,
)
from service.db.tables import DamageSite, Frame, Observation, Vehicle, point
from service.domain import tracking
from service.domain.classes import COMPATIBLE
from service.domain.geo import Camera
from service.domain.ranking import RankingConfig
from service.domain.registration import assign_tracks, register_drive
from service.domain.statuses import SITE_ASSOCIABLE, FrameStatus, SiteStatus

BOX_TOUCH_PX = 12.0
AGREE_M = 2.0  # shifts proposed by different detections closer than this are one shift


@dataclass(frozen=True)
class Located:
    """One detection located on the ground (before any drive-offset correction)."""

    class_name: str
    confidence: float
    lat: float
    lon: float
    distance_m: float | None
    size_m: float | None
    box: tuple[float, float, float, float]


@dataclass
class FrameAssociation:
    sites: list[DamageSite] = field(default_factory=list)  # per detection, in input order
    positions: list[tuple[float, float]] = field(default_factory=list)  # corrected lat/lon per detection
    offset: tuple[float, float] | None = None  # this frame's east/north GPS correction estimate, metres
    matched: int = 0


shift = offset  # (lat, lon) moved east_m, north_m
residual_m = local_m  # east/north metres from one position to another


def combine_offsets(offsets: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """The drive's current offset from its recent frames' estimates: the component-wise median."""
    if not offsets:
        return None
    return statistics.median(o[0] for o in offsets), statistics.median(o[1] for o in offsets)


def acquire_offset(
    session: Session, detections: Sequence[Located], search_m: float
) -> tuple[float, float] | None:
    """A first east/north offset for a drive with none yet, or None when the frame cannot tell.

    Accepted only when it can be checked: two or more known sites agree on it, or the frame's one
    detection near known sites has exactly one of them in reach. A lone detection among several
    sites could belong to any of them, and a wrong first offset would misplace the whole drive.
    """
    proposals: list[tuple[int, int, tuple[float, float]]] = []  # (detection, site, shift onto the site)
    for i, det in enumerate(detections):
        for site, _ in nearby_sites(session, det.class_name, det.lat, det.lon, search_m):
            proposals.append((i, site.id, residual_m(det.lat, det.lon, *site_latlon(site))))
    if len(proposals) == 1:
        return proposals[0][2]
    best: tuple[int, float] | None = None
    offset = None
    for _, _, shift_ in proposals:
        agreeing: dict[int, tuple[float, int, tuple[float, float]]] = {}  # detection -> nearest shift
        for j, site_id, other in proposals:
            d = math.dist(shift_, other)
            if d <= AGREE_M and (j not in agreeing or d < agreeing[j][0]):
                agreeing[j] = (d, site_id, other)
        sites = {site_id for _, site_id, _ in agreeing.values()}
        if len(sites) < 2:
            continue
        key = (-len(sites), math.hypot(*shift_))
        if best is None or key < best:
            best = key
            offset = (
                statistics.median(v[2][0] for v in agreeing.values()),
                statistics.median(v[2][1] for v in agreeing.values()),
            )
    return offset


def _touch(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return not (
        a[2] + BOX_TOUCH_PX < b[0]
        or b[2] + BOX_TOUCH_PX < a[0]
        or a[3] + BOX_TOUCH_PX < b[1]
        or b[3] + BOX_TOUCH_PX < a[1]
    )


def associate_frame(
    session: Session,
    detections: Sequence[Located],
    *,
    prior: tuple[float, float] | None,
    radius_m: float,
    search_m: float,
    seen_at: datetime,
    model_version_id: int | None,
    ranking: RankingConfig,
) -> FrameAssociation:
    """Attach every detection of one frame to a site (new or existing); count one sighting per site."""
    result = FrameAssociation(sites=[None] * len(detections), positions=[(0.0, 0.0)] * len(detections))  # type: ignore[list-item]
    start = prior if prior is not None else acquire_offset(session, detections, search_m)
    east0, north0 = start or (0.0, 0.0)
    radius = radius_m
    claimed: dict[int, list[tuple[float, float, float, float]]] = {}  # site id -> boxes in this frame
    residuals: list[tuple[float, float]] = []
    order = sorted(range(len(detections)), key=lambda i: -detections[i].confidence)
    for i in order:
        det = detections[i]
        lat, lon = shift(det.lat, det.lon, east0, north0)
        blocked = {sid for sid, boxes in claimed.items() if not any(_touch(det.box, b) for b in boxes)}
        site = find_site(session, det.class_name, lat, lon, radius, exclude=blocked)
        if site is not None and site.id not in claimed:
            residuals.append(residual_m(lat, lon, *site_latlon(site)))
        new_sighting = site is None or site.id not in claimed
        site = add_observation(
            session,
            class_name=det.class_name,
            confidence=det.confidence,
            lat=lat,
            lon=lon,
            size_m=det.size_m,
            distance_m=det.distance_m,
            seen_at=seen_at,
            site=site,
            model_version_id=model_version_id,
        )
        if new_sighting:
            site.sightings += 1
        claimed.setdefault(site.id, []).append(det.box)
        rescore(site, ranking)
        result.sites[i] = site
        result.positions[i] = (lat, lon)
    result.matched = len(residuals)
    if residuals and start is not None:  # without a checked start, residuals may come from wrong sites
        result.offset = (
            east0 + statistics.median(r[0] for r in residuals),
            north0 + statistics.median(r[1] for r in residuals),
        )
    else:
        result.offset = prior  # an acquired offset that matched nothing is not kept
    return result


# --- per drive segment: tracks, registration, one-to-one assignment (issue 13) ------------------

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
    return DamageSite(
        class_name=t.class_name,
        class_votes={},
        position=point(lat, lon),
        position_weight=0.0,
        max_confidence=0.0,
        sightings=0,
        n_observations=0,
        status=SiteStatus.OPEN,
        first_seen=t.first_seen,
        last_seen=t.last_seen,
        model_version_id=model_version_id,
    )


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
    ranking: RankingConfig,
    drive: Drive | None = None,
    before_write: Callable[[], None] | None = None,
) -> SegmentResult:
    """Track, register and assign one drive segment (``frames`` in time order); write sites, tracks, drive.

    Takes the lock of every map cell the segment's tracks may touch, so a concurrent segment over the
    same defects waits and then sees this one's sites. Commits nothing: the caller's transaction does.
    ``before_write`` (tests) runs after the locks are held and before anything is written.
    """
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
            rescore(x, ranking)
    session.flush()
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


def _segments(
    session: Session, vehicle_id: int, around: datetime | None, frame_id: int
) -> list[list[Row[int, datetime | None, str, int]]]:
    """The vehicle's located frames near ``around`` as drives: (id, captured_at, status, associated)."""
    query = (
        select(Frame.id, Frame.captured_at, Frame.status, DriveFrame.drive_id)
        .outerjoin(DriveFrame, DriveFrame.frame_id == Frame.id)
        .where(Frame.vehicle_id == vehicle_id, Frame.position.is_not(None))
    )
    if around is None:
        query = query.where(Frame.id == frame_id)
    else:
        query = query.where(Frame.captured_at.between(around - DRIVE_LOOKAROUND, around + DRIVE_LOOKAROUND))
    rows = session.execute(query.order_by(Frame.captured_at, Frame.id)).all()
    groups = tracking.split_drives([r.captured_at for r in rows], DRIVE_GAP.total_seconds())
    return [[rows[i] for i in g] for g in groups]


def _frame_inputs(
    session: Session, frame_ids: Sequence[int], cam: Camera
) -> tuple[list[tracking.FrameInput], list[Observation]]:
    frames = {f.id: f for f in session.scalars(select(Frame).where(Frame.id.in_(frame_ids)))}
    observations = session.scalars(
        select(Observation).where(Observation.frame_id.in_(frame_ids)).order_by(Observation.id)
    ).all()
    by_frame: dict[int, list[Observation]] = {}
    for obs in observations:
        by_frame.setdefault(obs.frame_id, []).append(obs)
    inputs = []
    for fid in frame_ids:
        f = frames[fid]
        fix = to_shape(f.position)
        located = (
            tracking.Sighting.locate(
                o.id,
                o.class_name,
                o.confidence,
                (o.x1, o.y1, o.x2, o.y2),
                fix.y,
                fix.x,
                f.heading,
                f.width,
                f.height,
                cam,
            )
            for o in by_frame.get(fid, [])
        )
        seen_at = f.captured_at or f.processed_at or datetime.now(UTC)
        inputs.append(
            tracking.FrameInput(fid, seen_at, fix.y, fix.x, f.heading, tuple(s for s in located if s))
        )
    return inputs, list(observations)


def associate_ready(
    sessions: sessionmaker[Session],
    frame_id: int,
    *,
    config: AssociationConfig,
    model_version_id: int | None,
    ranking: RankingConfig,
    before_write: Callable[[], None] | None = None,
) -> list[int]:
    """Associate every drive of the frame's vehicle near it whose frames are all located (none still
    queued) and that has located frames not yet associated: one transaction per drive segment.

    Returns the ids of the drives written. Safe to call any number of times and from any number of
    workers: a frame joins a drive once (``drive_frame``'s primary key, checked under the vehicle's lock).
    """
    with sessions() as session:
        frame = session.get(Frame, frame_id)
        if frame is None or frame.position is None:
            return []
        vehicle_id, around = frame.vehicle_id, frame.captured_at
        if around is not None and session.scalar(  # cheap and common: a neighbour is still queued
            select(
                exists().where(
                    Frame.vehicle_id == vehicle_id,
                    Frame.status == FrameStatus.QUEUED,
                    Frame.position.is_not(None),
                    Frame.captured_at.between(around - DRIVE_GAP, around + DRIVE_GAP),
                )
            )
        ):
            return []
    written: list[int] = []
    with sessions() as session:
        segments = _segments(session, vehicle_id, around, frame_id)
    for segment in segments:
        if not _pending(segment):
            continue
        with transaction(sessions) as session:
            session.execute(select(func.pg_advisory_xact_lock(VEHICLE_LOCK, vehicle_id)))
            # Again under the lock: another worker may have associated it, or a frame is still queued.
            fresh = [
                s
                for s in _segments(session, vehicle_id, around, frame_id)
                if {r.id for r in s} & {r.id for r in segment}
            ]
            segment = [r for s in fresh for r in s]
            pending = _pending(segment)
            if not pending:
                continue
            vehicle = session.get(Vehicle, vehicle_id)
            if vehicle is None:
                return written
            cam = Camera(vehicle.camera_height_m, vehicle.camera_pitch_deg, vehicle.camera_hfov_deg)
            inputs, observations = _frame_inputs(session, pending, cam)
            if any(o.site_id is not None for o in observations):  # associated frame by frame (before 0007)
                inputs = [
                    f
                    for f in inputs
                    if not any(o.site_id is not None and o.frame_id == f.key for o in observations)
                ]
            drive_ids = [r.drive_id for r in segment if r.drive_id is not None]
            drive = session.get(Drive, max(drive_ids)) if drive_ids else None
            result = associate_segment(
                session,
                vehicle_id,
                inputs,
                config=config,
                model_version_id=model_version_id,
                ranking=ranking,
                drive=drive,
                before_write=before_write,
            )
            for obs in observations:
                if obs.id in result.site_of:
                    obs.site_id = result.site_of[obs.id]
                    obs.position = point(*result.positions[obs.id])
            session.add_all(
                TrackObservation(observation_id=k, track_id=v) for k, v in result.track_of.items()
            )
            session.add_all(DriveFrame(frame_id=fid, drive_id=result.drive_id) for fid in pending)
            registered = result.plan.registration.reference == "map"
            own = (result.plan.registration.offset_e_m, result.plan.registration.offset_n_m)
            for f in session.scalars(select(Frame).where(Frame.id.in_(pending))):
                if registered:
                    f.gps_offset_e_m, f.gps_offset_n_m = result.frame_offsets.get(f.id, own)
            written.append(result.drive_id)
    return written


def _pending(segment: Sequence[Row[int, datetime | None, str, int]]) -> list[int]:
    """Frames of a drive segment to associate now: none while any frame of it is still queued."""
    if any(r.status == FrameStatus.QUEUED for r in segment):
        return []
    return [r.id for r in segment if r.status == FrameStatus.DONE and r.drive_id is None]


STALE_SQL = text(
    """
    SELECT f.id FROM frame f
    WHERE f.status = 'done' AND f.position IS NOT NULL
      AND f.processed_at < now() - make_interval(secs => :age)
      AND NOT EXISTS (SELECT 1 FROM drive_frame d WHERE d.frame_id = f.id)
      AND NOT EXISTS (SELECT 1 FROM observation o WHERE o.frame_id = f.id AND o.site_id IS NOT NULL)
    ORDER BY f.id LIMIT 200
    """
)


def associate_stale(
    sessions: sessionmaker[Session],
    *,
    older_than_s: float,
    config: AssociationConfig,
    model_version_id: int | None,
    ranking: RankingConfig,
) -> int:
    """Associate the drives of located frames left unassociated for ``older_than_s`` (for the janitor:
    a drive whose last frame failed, or a worker lost between locating a frame and associating its
    drive). Returns how many drive segments were written."""
    with sessions() as session:
        frame_ids = list(session.scalars(STALE_SQL, {"age": older_than_s}))
    written: set[int] = set()
    for frame_id in frame_ids:
        written.update(
            associate_ready(
                sessions, frame_id, config=config, model_version_id=model_version_id, ranking=ranking
            )
        )
    return len(written)
