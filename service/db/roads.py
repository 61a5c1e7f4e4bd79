"""The road network in PostGIS: import (replace atomically, re-attach sites and frames), nearest section,
per-section importance overrides, and recording where each frame was taken.

An import reads and sections the whole file first (``service/db/road_files.py``, ``service/domain/roads.py``);
only then, in one transaction under an exclusive advisory lock (``ROADS_LOCK``), it replaces ``road_section``, applies the
overrides, and re-attaches every site (nearest section within ``SITE_SECTION_M``) and every matched frame
(the matching rule of ``service/domain/matching.py``, on the new sections) and counts their passes again
(``service/db/coverage.py``). Any error rolls everything back:
the current network stays as it was.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geoalchemy2 import WKTElement
from geoalchemy2.shape import to_shape
from shapely import STRtree
from shapely.geometry import LineString
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from service.db.coverage import rebuild_coverage
from service.db.road_files import DEFAULT_MAX_FILE_BYTES, read_network
from service.db.road_tables import ROADS_LOCK as ROADS_LOCK  # re-exported: the lock an import holds
from service.db.road_tables import (
    FrameRoad,
    RoadImport,
    RoadImportanceOverride,
    RoadSection,
    SiteSurvey,
)
from service.db.tables import DamageSite, Frame
from service.domain.matching import Candidate, MatchParams, match_frame, seen_interval
from service.domain.roads import (
    DEFAULT_HIGHWAY_CLASSES,
    DEFAULT_IMPORTANCE_VERSION,
    DEFAULT_MAX_SECTION_M,
    Section,
    build_sections,
    section_label,
)

SITE_SECTION_M = 15.0  # a site farther than this from every section lies on no known road
_INSERT_BATCH = 5000
_M_PER_DEG_LAT = 111_320.0


@dataclass(frozen=True)
class ImportOptions:
    highway_classes: tuple[str, ...] = DEFAULT_HIGHWAY_CLASSES
    max_section_m: float = DEFAULT_MAX_SECTION_M
    importance_version: str = DEFAULT_IMPORTANCE_VERSION
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    match: MatchParams = field(default_factory=MatchParams)


def _linestring(coords: Sequence[tuple[float, float]]) -> WKTElement:
    return WKTElement("LINESTRING(" + ", ".join(f"{x:.8f} {y:.8f}" for x, y in coords) + ")", srid=4326)


def _section_row(s: Section) -> dict[str, Any]:
    return {
        "id": s.id,
        "way_id": s.way_id,
        "ordinal": s.ordinal,
        "name": s.name,
        "highway": s.highway,
        "oneway": s.oneway,
        "surface": s.surface,
        "importance": s.importance,
        "importance_source": s.importance_source,
        "from_name": s.from_name,
        "to_name": s.to_name,
        "length_m": s.length_m,
        "geom": _linestring(s.coords),
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def import_network(
    sessions: sessionmaker[Session], path: Path, options: ImportOptions | None = None
) -> dict[str, Any]:
    """Replace the network with the sections of ``path``; returns what was imported and re-attached."""
    options = options or ImportOptions()
    ways = read_network(path, options.highway_classes, options.max_file_bytes)
    sections = build_sections(ways, options.max_section_m, options.importance_version)
    sha = _sha256(path)
    with sessions() as session, session.begin():
        session.execute(select(func.pg_advisory_xact_lock(ROADS_LOCK)))
        session.execute(delete(RoadSection))
        rows = [_section_row(s) for s in sections]
        for start in range(0, len(rows), _INSERT_BATCH):
            session.execute(insert(RoadSection), rows[start : start + _INSERT_BATCH])
        overrides = apply_overrides(session)
        sites = reattach_sites(session)
        frames = reattach_frames(session, sections, options.match)
        rebuild_coverage(session)  # the frames' passes on the new sections
        record = RoadImport(
            source=str(path),
            sha256=sha,
            n_ways=len(ways),
            n_sections=len(sections),
            length_km=sum(s.length_m for s in sections) / 1000.0,
            max_section_m=options.max_section_m,
            importance_version=options.importance_version,
            sites_attached=sites,
            frames_attached=frames,
        )
        session.add(record)
    return {
        "roads": len(ways),
        "road_sections": len(sections),
        "length_km": round(record.length_km, 3),
        "importance_version": options.importance_version,
        "overrides_applied": overrides,
        "sites_attached": sites,
        "frames_attached": frames,
    }


def apply_overrides(session: Session) -> int:
    result = session.execute(
        update(RoadSection)
        .where(RoadSection.id == RoadImportanceOverride.section_id)
        .values(importance=RoadImportanceOverride.importance, importance_source="override")
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def set_importance_override(
    session: Session, section_id: str, importance: float | None, reason: str | None = None
) -> dict[str, Any]:
    """Staff's importance for one section (None: back to the class mapping at the next import, and now)."""
    section = session.get(RoadSection, section_id, with_for_update=True)
    if section is None:
        raise ValueError(f"no road section {section_id!r} (ids look like 'w4243035:0')")
    if importance is None:
        session.execute(delete(RoadImportanceOverride).where(RoadImportanceOverride.section_id == section_id))
        from service.domain.roads import class_importance

        section.importance = class_importance(section.highway)
        section.importance_source = DEFAULT_IMPORTANCE_VERSION
    else:
        if not (math.isfinite(importance) and 0.0 <= importance <= 1.0):
            raise ValueError(f"importance: expected 0..1, got {importance}")
        row = session.get(RoadImportanceOverride, section_id)
        if row is None:
            session.add(RoadImportanceOverride(section_id=section_id, importance=importance, reason=reason))
        else:
            row.importance, row.reason = importance, reason
        section.importance, section.importance_source = importance, "override"
    session.execute(
        update(DamageSite)
        .where(DamageSite.id == SiteSurvey.site_id, SiteSurvey.section_id == section_id)
        .values(road_importance=section.importance)
    )
    return {"section": section_id, "importance": section.importance, "source": section.importance_source}


# The nearest section of each site by metric distance: the 5 nearest by the (degree) index, then exact.
_REATTACH_SITES = text(
    """
    WITH nearest AS (
        SELECT d.id AS site_id, n.id AS section_id, n.dist, n.importance
        FROM damage_site d
        CROSS JOIN LATERAL (
            SELECT c.id, c.importance, ST_Distance(c.geom::geography, d.position::geography) AS dist
            FROM (SELECT id, importance, geom FROM road_section
                  ORDER BY geom <-> d.position LIMIT 5) c
            ORDER BY dist LIMIT 1
        ) n
    ), attached AS (
        SELECT site_id, section_id, dist, importance FROM nearest WHERE dist <= :reach
    ), surveyed AS (
        INSERT INTO site_survey (site_id, section_id, section_distance_m)
        SELECT d.id, a.section_id, a.dist FROM damage_site d LEFT JOIN attached a ON a.site_id = d.id
        ON CONFLICT (site_id) DO UPDATE
            SET section_id = EXCLUDED.section_id, section_distance_m = EXCLUDED.section_distance_m
        RETURNING site_id
    )
    UPDATE damage_site d SET road_importance = a.importance
    FROM damage_site d2 LEFT JOIN attached a ON a.site_id = d2.id
    WHERE d.id = d2.id AND d.road_importance IS DISTINCT FROM a.importance
    """
)


def reattach_sites(session: Session) -> int:
    """Give every site the section it lies on (None beyond SITE_SECTION_M); returns how many have one."""
    session.execute(_REATTACH_SITES, {"reach": SITE_SECTION_M})
    return int(session.scalar(select(func.count()).where(SiteSurvey.section_id.is_not(None))) or 0)


def _frames_in_drive_order(session: Session) -> Iterator[tuple[int, int, Any, float | None, Any]]:
    rows = session.execute(
        select(Frame.id, Frame.vehicle_id, Frame.position, Frame.heading, FrameRoad.footprint)
        .join(FrameRoad, FrameRoad.frame_id == Frame.id)
        .where(Frame.position.is_not(None))
        .order_by(Frame.vehicle_id, Frame.captured_at, Frame.id)
        .execution_options(yield_per=5000)
    )
    yield from rows


class SectionIndex:
    """The sections in memory with an STRtree, for re-matching frames during an import."""

    def __init__(self, sections: Sequence[Section]) -> None:
        self.candidates = [Candidate(s.id, s.coords, s.oneway) for s in sections]
        self.by_id = {c.id: c for c in self.candidates}
        self.tree = STRtree([LineString(c.coords) for c in self.candidates])

    def near(self, lat: float, lon: float, radius_m: float) -> list[Candidate]:
        dlat = radius_m / _M_PER_DEG_LAT
        dlon = dlat / max(math.cos(math.radians(lat)), 1e-6)
        from shapely.geometry import box

        hits = self.tree.query(box(lon - dlon, lat - dlat, lon + dlon, lat + dlat))
        return sorted((self.candidates[int(i)] for i in hits), key=lambda c: c.id)  # as sections_near


def reattach_frames(session: Session, sections: Sequence[Section], params: MatchParams) -> int:
    """Match every recorded frame again, on the new sections, in drive order; returns how many matched."""
    index = SectionIndex(sections)
    updates: list[dict[str, Any]] = []
    previous: tuple[int, Candidate | None] = (-1, None)
    matched = 0
    for frame_id, vehicle_id, position, heading, fp in _frames_in_drive_order(session):
        pos = to_shape(position)
        prev = previous[1] if previous[0] == vehicle_id else None
        match = match_frame(
            pos.y, pos.x, heading, index.near(pos.y, pos.x, params.max_distance_m), prev, params
        )
        cand = index.by_id[match.section_id] if match else None
        seen = seen_interval(cand, list(to_shape(fp).exterior.coords)) if cand and fp is not None else None
        updates.append(
            {
                "frame_id": frame_id,
                "section_id": cand.id if cand else None,
                "distance_m": match.distance_m if match else None,
                "seen_from_m": seen[0] if seen else None,
                "seen_to_m": seen[1] if seen else None,
            }
        )
        matched += cand is not None
        previous = (vehicle_id, cand)
    if updates:  # ORM bulk UPDATE by primary key: one executemany
        session.execute(update(FrameRoad), updates)
    return matched


# --- lookups -------------------------------------------------------------------------------------------


def radius_deg(lat: float, radius_m: float) -> float:
    """A radius in degrees that holds a metric circle (a degree of longitude is the shorter one)."""
    return radius_m / (_M_PER_DEG_LAT * max(math.cos(math.radians(lat)), 1e-6))


def sections_near(session: Session, lat: float, lon: float, radius_m: float) -> list[Candidate]:
    pt = func.ST_SetSRID(func.ST_MakePoint(lon, lat), 4326)
    rows = session.execute(
        select(RoadSection.id, RoadSection.geom, RoadSection.oneway)
        .where(func.ST_DWithin(RoadSection.geom, pt, radius_deg(lat, radius_m)))
        .order_by(RoadSection.id)  # ties (a frame on a cut point) go to the lower id, every time
    ).all()
    return [Candidate(sid, tuple(to_shape(geom).coords), oneway) for sid, geom, oneway in rows]


# For each point: the 5 sections nearest by the index (``<->``), then the exact metric distance decides.
_NEAREST_SECTIONS = text(
    """
    SELECT p.i, r.id, r.d
    FROM unnest(CAST(:lats AS float8[]), CAST(:lons AS float8[])) WITH ORDINALITY AS p(lat, lon, i)
    CROSS JOIN LATERAL (
        SELECT c.id, ST_Distance(geography(c.geom), geography(ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326))) AS d
        FROM (SELECT id, geom FROM road_section
              ORDER BY geom <-> ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326) LIMIT 5) c
        ORDER BY d, c.id LIMIT 1
    ) r
    """
)


def nearest_sections(
    session: Session, points: Sequence[tuple[float, float]], reach_m: float = SITE_SECTION_M
) -> list[tuple[RoadSection, float] | None]:
    """For each (lat, lon): the nearest section within ``reach_m`` (metric) and its distance; two queries
    for any number of points."""
    if not points:
        return []
    rows = session.execute(
        _NEAREST_SECTIONS, {"lats": [p[0] for p in points], "lons": [p[1] for p in points]}
    ).all()
    near = {int(i): (sid, float(d)) for i, sid, d in rows if float(d) <= reach_m}
    wanted = {sid for sid, _ in near.values()}
    sections = (
        {s.id: s for s in session.scalars(select(RoadSection).where(RoadSection.id.in_(wanted)))}
        if wanted
        else {}
    )
    out: list[tuple[RoadSection, float] | None] = []
    for k in range(1, len(points) + 1):
        found = near.get(k)
        out.append((sections[found[0]], found[1]) if found else None)
    return out


def nearest_section(
    session: Session, lat: float, lon: float, reach_m: float = SITE_SECTION_M
) -> tuple[RoadSection, float] | None:
    """The section nearest to a point within ``reach_m`` (metric), with its distance."""
    return nearest_sections(session, [(lat, lon)], reach_m)[0]


def label(section: RoadSection | None) -> str | None:
    return section_label(section.name, section.from_name, section.to_name) if section else None


def section_record(section: RoadSection) -> dict[str, Any]:
    """What the API and exports say about a section."""
    return {
        "id": section.id,
        "name": section.name,
        "from_name": section.from_name,
        "to_name": section.to_name,
        "label": label(section),
        "highway": section.highway,
        "oneway": section.oneway,
        "surface": section.surface,
        "importance": section.importance,
        "importance_source": section.importance_source,
        "length_m": round(section.length_m, 1),
    }
