"""What each processed frame tells about the road network: its section, footprint and capture quality; and
what that means for the sites it saw (their section, low trust when only unusable frames saw them).

``record_frame`` runs in the worker's frame transaction, ``survey_sites`` whenever sites are rescored; both
take the road network's advisory lock shared, so an import (which takes it exclusively) never runs while a
frame or site is being attached to sections it is removing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import shapely
from geoalchemy2.shape import to_shape
from sqlalchemy import TextClause, distinct, func, select, text
from sqlalchemy.orm import Session

from service.db.coverage import recount_passes
from service.db.road_tables import ROADS_LOCK, FrameQuality, SiteSurvey
from service.db.roads import nearest_sections, radius_deg
from service.db.tables import DamageSite, Frame, Observation
from service.domain.geo import Camera
from service.domain.matching import (
    DEFAULT_CLEAR_RANGE_M,
    Candidate,
    MatchParams,
    footprint,
    match_frame,
    seen_interval,
)
from service.domain.quality import Thresholds, Verdict
from service.settings import Settings

PREVIOUS_WINDOW = timedelta(seconds=30)  # the drive's previous frame, for continuity of the match
# A site seen only in unusable frames (blurred, dark, ...) is shown, but never ranked above this.
LOW_TRUST_MAX_PRIORITY = 40.0


@dataclass(frozen=True)
class FrameSurvey:
    section_id: str | None
    seen: tuple[float, float] | None
    usable: bool


def quality_thresholds(settings: Settings) -> Thresholds:
    return Thresholds(
        blur_min=settings.quality_blur_min,
        dark_max_mean=settings.quality_dark_max_mean,
        bright_min_share=settings.quality_bright_min_share,
        flat_min_share=settings.quality_flat_min_share,
    )


# One round trip per frame: take the network lock (shared), fetch the sections within reach and say which
# one the drive's previous frame (same vehicle, within 30 s before) was matched to.
_NEAR_AND_PREVIOUS = text(
    """
    WITH lock AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared(:lock)),
    previous AS (
        SELECT fr.section_id FROM frame f JOIN frame_road fr ON fr.frame_id = f.id
        WHERE f.vehicle_id = :vehicle AND f.id <> :frame
          AND f.captured_at BETWEEN CAST(:t AS timestamptz) - make_interval(secs => :window)
                                AND CAST(:t AS timestamptz)
        ORDER BY f.captured_at DESC LIMIT 1
    )
    SELECT s.id, ST_AsBinary(s.geom) AS wkb, s.oneway, s.id = (SELECT section_id FROM previous) AS previous
    FROM road_section s, lock
    WHERE ST_DWithin(s.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :radius_deg)
    ORDER BY s.id
    """
)


def _near_and_previous(
    session: Session, frame: Frame, lat: float, lon: float, radius_m: float
) -> tuple[list[Candidate], Candidate | None]:
    """Sections within ``radius_m`` (ties go to the lower id), and which of them the previous frame had."""
    rows = session.execute(
        _NEAR_AND_PREVIOUS,
        {
            "lock": ROADS_LOCK,
            "vehicle": frame.vehicle_id,
            "frame": frame.id,
            "t": frame.captured_at,
            "window": PREVIOUS_WINDOW.total_seconds(),
            "lon": lon,
            "lat": lat,
            "radius_deg": radius_deg(lat, radius_m),
        },
    ).all()
    candidates, previous = [], None
    for sid, wkb, oneway, is_previous in rows:
        cand = Candidate(sid, tuple(shapely.from_wkb(bytes(wkb)).coords), oneway)
        candidates.append(cand)
        if is_previous:
            previous = cand
    return candidates, previous


# One round trip writes what the frame says: its section and footprint, its quality verdict, and (the first
# time the frame is recorded) its share of the pass over its section (service/db/coverage.py). ``old`` reads
# the rows as they were before this statement: a frame recorded before is recounted from the stored rows
# instead, so recording a frame twice never counts it twice.
_RECORD_ROAD = """
    old AS (SELECT section_id FROM frame_road WHERE frame_id = :frame),
    road AS (
        INSERT INTO frame_road (frame_id, section_id, distance_m, seen_from_m, seen_to_m, footprint)
        VALUES (:frame, CAST(:section AS varchar), CAST(:distance AS float8), CAST(:seen_from AS float8),
                CAST(:seen_to AS float8), ST_GeomFromText(CAST(:footprint AS text), 4326))
        ON CONFLICT (frame_id) DO UPDATE SET section_id = EXCLUDED.section_id,
            distance_m = EXCLUDED.distance_m, seen_from_m = EXCLUDED.seen_from_m,
            seen_to_m = EXCLUDED.seen_to_m, footprint = EXCLUDED.footprint
    )"""
_RECORD_QUALITY = """,
    quality AS (
        INSERT INTO frame_quality (frame_id, usable, reasons, metrics, version)
        VALUES (:frame, :usable, CAST(:reasons AS json), CAST(:metrics AS json), :version)
        ON CONFLICT (frame_id) DO UPDATE SET usable = EXCLUDED.usable, reasons = EXCLUDED.reasons,
            metrics = EXCLUDED.metrics, version = EXCLUDED.version
    )"""
_RECORD_PASS = """,
    me AS (
        SELECT COALESCE(CAST(:usable AS boolean),
                        (SELECT q.usable FROM frame_quality q WHERE q.frame_id = :frame), true) AS usable
        WHERE NOT EXISTS (SELECT 1 FROM old)
    ), contribution AS (
        SELECT CAST(:section AS varchar) AS section_id, CAST(:vehicle AS integer) AS vehicle_id,
               (CAST(:t AS timestamptz) AT TIME ZONE 'UTC')::date AS day,
               CASE WHEN me.usable THEN 0 ELSE 1 END AS unusable_frames,
               CAST(:t AS timestamptz) AS last_at,
               CASE WHEN me.usable THEN CAST(:t AS timestamptz) END AS last_usable_at,
               CASE WHEN me.usable AND CAST(:seen_from AS float8) IS NOT NULL THEN CAST(:t AS timestamptz) END AS last_seen_at,
               CASE WHEN me.usable AND CAST(:seen_from AS float8) IS NOT NULL
                    THEN nummultirange(numrange(LEAST(CAST(:seen_from AS float8), CAST(:seen_to AS float8))::numeric,
                                                GREATEST(CAST(:seen_from AS float8), CAST(:seen_to AS float8))::numeric,
                                                '[]'))
                    ELSE '{}'::nummultirange END AS seen
        FROM me
    ), pass AS (
        INSERT INTO section_pass (section_id, vehicle_id, day, frames, unusable_frames, last_at, last_usable_at,
                                  last_seen_at, seen)
        SELECT section_id, vehicle_id, day, 1, unusable_frames, last_at, last_usable_at, last_seen_at, seen
        FROM contribution
        ON CONFLICT (section_id, day, vehicle_id) DO UPDATE SET
            frames = section_pass.frames + 1,
            unusable_frames = section_pass.unusable_frames + EXCLUDED.unusable_frames,
            last_at = GREATEST(section_pass.last_at, EXCLUDED.last_at),
            last_usable_at = GREATEST(section_pass.last_usable_at, EXCLUDED.last_usable_at),
            last_seen_at = GREATEST(section_pass.last_seen_at, EXCLUDED.last_seen_at),
            seen = section_pass.seen + EXCLUDED.seen,
            updated_at = now()
    ), coverage AS (
        INSERT INTO section_coverage (section_id, last_at, last_usable_at)
        SELECT section_id, last_at, last_usable_at FROM contribution
        ON CONFLICT (section_id) DO UPDATE SET
            last_at = GREATEST(section_coverage.last_at, EXCLUDED.last_at),
            last_usable_at = GREATEST(section_coverage.last_usable_at, EXCLUDED.last_usable_at),
            updated_at = now()
    )"""


def _record_sql(quality: bool, counts: bool) -> TextClause:
    sql = "WITH" + _RECORD_ROAD + (_RECORD_QUALITY if quality else "") + (_RECORD_PASS if counts else "")
    return text(sql + "\nSELECT EXISTS (SELECT 1 FROM old) AS recorded, (SELECT section_id FROM old) AS was")


_RECORD = {(q, c): _record_sql(q, c) for q in (False, True) for c in (False, True)}


def _polygon(ring: list[tuple[float, float]]) -> str:
    return "POLYGON((" + ", ".join(f"{x:.8f} {y:.8f}" for x, y in ring) + "))"


def record_frame(
    session: Session,
    frame: Frame,
    lat: float,
    lon: float,
    heading: float | None,
    cam: Camera,
    verdict: Verdict | None,
    params: MatchParams | None = None,
    clear_range_m: float = DEFAULT_CLEAR_RANGE_M,
) -> FrameSurvey:
    """Match the frame to a section, store its footprint and quality verdict and count it in its pass over
    the section (in the frame's transaction; waits while an import replaces the network).

    Recording a frame again (a retry, a re-run) recounts the passes it was and is part of from the stored
    frames: a frame is counted once, whatever happened before.
    """
    params = params or MatchParams()
    session.flush()  # the frame row, for a new frame
    candidates, previous = _near_and_previous(session, frame, lat, lon, params.max_distance_m)
    match = match_frame(lat, lon, heading, candidates, previous, params)
    cand = next((c for c in candidates if match and c.id == match.section_id), None)
    ring = None
    if heading is not None:
        ring = footprint(lat, lon, heading, cam, frame.width, frame.height, clear_range_m)
    seen = seen_interval(cand, ring) if cand is not None and ring is not None else None
    counts = cand is not None and frame.captured_at is not None
    row = session.execute(
        _RECORD[verdict is not None, counts],
        {
            "frame": frame.id,
            "section": cand.id if cand else None,
            "distance": match.distance_m if match else None,
            "seen_from": seen[0] if seen else None,
            "seen_to": seen[1] if seen else None,
            "footprint": _polygon(ring) if ring else None,
            "usable": verdict.usable if verdict is not None else None,
            "reasons": json.dumps(list(verdict.reasons)) if verdict is not None else None,
            "metrics": json.dumps(dict(verdict.metrics)) if verdict is not None else None,
            "version": verdict.version if verdict is not None else None,
            "vehicle": frame.vehicle_id,
            "t": frame.captured_at,
        },
    ).one()
    if row.recorded and frame.captured_at is not None:  # recorded before: recount from the stored frames
        was = [row.was] if row.was is not None else []
        recount_passes(session, [(sid, frame.vehicle_id, frame.captured_at) for sid in was], [frame.id])
    return FrameSurvey(cand.id if cand else None, seen, verdict is None or verdict.usable)


def survey_sites(session: Session, sites: Sequence[DamageSite]) -> dict[int, SiteSurvey] | None:
    """Refresh each site's section (and road importance) and its usable/unusable sightings, by site id.

    Called whenever sites are rescored (``service/db/sites.py``), before scoring; ``cap_low_trust`` after.
    Three queries for any number of sites. Skipped (None) while an import replaces the network: the import
    re-attaches every committed site, and the next rescore these.
    """
    if not session.scalar(select(func.pg_try_advisory_xact_lock_shared(ROADS_LOCK))):
        return None
    session.flush()
    ids = [site.id for site in sites]
    counts = {
        sid: (int(usable), int(unusable))
        for sid, usable, unusable in session.execute(
            select(
                Observation.site_id,
                func.count(distinct(Observation.frame_id)).filter(FrameQuality.usable.is_not(False)),
                func.count(distinct(Observation.frame_id)).filter(FrameQuality.usable.is_(False)),
            )
            .select_from(Observation)
            .outerjoin(FrameQuality, FrameQuality.frame_id == Observation.frame_id)
            .where(Observation.site_id.in_(ids))
            .group_by(Observation.site_id)
        )
    }
    surveys = {s.site_id: s for s in session.scalars(select(SiteSurvey).where(SiteSurvey.site_id.in_(ids)))}
    positions = [to_shape(site.position) for site in sites]
    nearest = nearest_sections(session, [(pos.y, pos.x) for pos in positions])
    for site, found in zip(sites, nearest, strict=True):
        survey = surveys.get(site.id)
        if survey is None:
            survey = surveys[site.id] = SiteSurvey(site_id=site.id)
            session.add(survey)
        survey.usable_sightings, survey.unusable_sightings = counts.get(site.id, (0, 0))
        survey.section_id = found[0].id if found else None
        survey.section_distance_m = found[1] if found else None
        site.road_importance = found[0].importance if found else None
    return surveys


def cap_low_trust(site: DamageSite, survey: SiteSurvey | None) -> None:
    """A site no usable frame has seen keeps at most LOW_TRUST_MAX_PRIORITY, marked in its components."""
    if survey is None or survey.usable_sightings > 0 or survey.unusable_sightings == 0:
        return
    components: dict[str, Any] = dict(site.score_components or {})
    components["low_trust"] = True
    site.score_components = components
    site.priority = min(site.priority, LOW_TRUST_MAX_PRIORITY)
