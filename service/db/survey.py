"""What each processed frame tells about the road network: its section, footprint and capture quality; and
what that means for the sites it saw (their section, low trust when only unusable frames saw them).

``record_frame`` runs in the worker's frame transaction, ``survey_site`` whenever a site is rescored; both
take the road network's advisory lock shared, so an import (which takes it exclusively) never runs while a
frame or site is being attached to sections it is removing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import shapely
from geoalchemy2 import WKTElement
from geoalchemy2.shape import to_shape
from sqlalchemy import distinct, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, sessionmaker

from service.db.road_tables import FrameQuality, FrameRoad, SiteSurvey
from service.db.roads import ROADS_LOCK, nearest_section, radius_deg
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
from service.domain.ranking import RankingConfig
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


def _upsert(session: Session, table: Any, row: dict[str, Any]) -> None:
    stmt = pg_insert(table).values(**row)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["frame_id"], set_={k: v for k, v in row.items() if k != "frame_id"}
        )
    )


def _polygon(ring: list[tuple[float, float]]) -> WKTElement:
    return WKTElement("POLYGON((" + ", ".join(f"{x:.8f} {y:.8f}" for x, y in ring) + "))", srid=4326)


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
    """Match the frame to a section and store its footprint and quality verdict (in the frame's transaction;
    waits while an import replaces the network)."""
    params = params or MatchParams()
    session.flush()  # the frame row, for a new frame
    candidates, previous = _near_and_previous(session, frame, lat, lon, params.max_distance_m)
    match = match_frame(lat, lon, heading, candidates, previous, params)
    cand = next((c for c in candidates if match and c.id == match.section_id), None)
    ring = None
    if heading is not None:
        ring = footprint(lat, lon, heading, cam, frame.width, frame.height, clear_range_m)
    seen = seen_interval(cand, ring) if cand is not None and ring is not None else None
    _upsert(
        session,
        FrameRoad.__table__,
        {
            "frame_id": frame.id,
            "section_id": cand.id if cand else None,
            "distance_m": match.distance_m if match else None,
            "seen_from_m": seen[0] if seen else None,
            "seen_to_m": seen[1] if seen else None,
            "footprint": _polygon(ring) if ring else None,
        },
    )
    if verdict is not None:
        _upsert(
            session,
            FrameQuality.__table__,
            {
                "frame_id": frame.id,
                "usable": verdict.usable,
                "reasons": list(verdict.reasons),
                "metrics": dict(verdict.metrics),
                "version": verdict.version,
            },
        )
    return FrameSurvey(cand.id if cand else None, seen, verdict is None or verdict.usable)


def survey_site(session: Session, site: DamageSite) -> SiteSurvey | None:
    """Refresh the site's section (and road importance) and its usable/unusable sightings.

    Called whenever a site is rescored (``service/db/sites.py``), before scoring; ``cap_low_trust`` after. Skipped (None) while an import replaces the network: the import
    re-attaches every committed site, and the next rescore this one.
    """
    if not session.scalar(select(func.pg_try_advisory_xact_lock_shared(ROADS_LOCK))):
        return None
    session.flush()
    usable, unusable = session.execute(
        select(
            func.count(distinct(Observation.frame_id)).filter(FrameQuality.usable.is_not(False)),
            func.count(distinct(Observation.frame_id)).filter(FrameQuality.usable.is_(False)),
        )
        .select_from(Observation)
        .outerjoin(FrameQuality, FrameQuality.frame_id == Observation.frame_id)
        .where(Observation.site_id == site.id)
    ).one()
    survey = session.get(SiteSurvey, site.id)
    if survey is None:
        survey = SiteSurvey(site_id=site.id)
        session.add(survey)
    survey.usable_sightings, survey.unusable_sightings = int(usable), int(unusable)
    pos = to_shape(site.position)
    found = nearest_section(session, pos.y, pos.x)
    survey.section_id = found[0].id if found else None
    survey.section_distance_m = found[1] if found else None
    site.road_importance = found[0].importance if found else None
    return survey


def cap_low_trust(site: DamageSite, survey: SiteSurvey | None) -> None:
    """A site no usable frame has seen keeps at most LOW_TRUST_MAX_PRIORITY, marked in its components."""
    if survey is None or survey.usable_sightings > 0 or survey.unusable_sightings == 0:
        return
    components: dict[str, Any] = dict(site.score_components or {})
    components["low_trust"] = True
    site.score_components = components
    site.priority = min(site.priority, LOW_TRUST_MAX_PRIORITY)


_SITES_OF_DRIVE = text(
    """
    SELECT DISTINCT o.site_id FROM observation o
    JOIN drive_frame df ON df.frame_id = o.frame_id
    WHERE df.drive_id = (SELECT drive_id FROM drive_frame WHERE frame_id = :frame)
      AND o.site_id IS NOT NULL
    ORDER BY o.site_id
    """
)


def refresh_sites_of_drive(sessions: sessionmaker[Session], frame_id: int, ranking: RankingConfig) -> int:
    """Once the frame's drive is associated, rescore its sites: each gets its section and, when only
    unusable frames saw it, the low-trust cap (association creates sites before they have ids)."""
    from service.db.sites import rescore

    with sessions() as session, session.begin():
        ids = list(session.scalars(_SITES_OF_DRIVE, {"frame": frame_id}))
        if not ids:
            return 0
        for site in session.scalars(
            select(DamageSite).where(DamageSite.id.in_(ids)).order_by(DamageSite.id).with_for_update()
        ):
            rescore(site, ranking)
    return len(ids)
