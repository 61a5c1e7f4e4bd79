"""Damage sites: find, read and serialize sites; associate an observation with the site of the same
defect, and rescore sites.

Association takes the nearest site of a compatible class within a radius (PostGIS ST_DWithin on the
GiST index with a radius in degrees that holds the circle, then the exact metric distance), and moves the site's position estimate
towards the observation, weighted by confidence and by how close the camera was.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from geoalchemy2.shape import to_shape
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, object_session, sessionmaker

from geotag import haversine_m, metres_per_degree_lon
from service.db.history import SiteVerification
from service.db.survey import cap_low_trust, survey_sites
from service.db.tables import DamageSite, Frame, Observation, RoadSegment, point
from service.domain.classes import COMPATIBLE
from service.domain.history import NOT_SEEN_AGAIN, STILL_THERE, Pass, growth_m_per_30d
from service.domain.ranking import RankingConfig, SiteFacts, score, severity
from service.domain.roads import section_label
from service.domain.statuses import SITE_ASSOCIABLE, SiteStatus
from service.errors import InvalidInput, NotFound

ASSOCIABLE_STATUSES = SITE_ASSOCIABLE
ROAD_SEARCH_M = 15.0
NEARBY_LIMIT = 50  # sites within one search radius; more than this would be a data error


def site_latlon(site: DamageSite) -> tuple[float, float]:
    shape = to_shape(site.position)
    return shape.y, shape.x


def nearby_sites(
    session: Session, class_name: str, lat: float, lon: float, radius_m: float
) -> list[tuple[DamageSite, float]]:
    """Associable sites of a compatible class within ``radius_m``, nearest first, with distances (m)."""
    pt = point(lat, lon)
    # A radius in degrees that holds the metric circle (a degree of longitude is the shorter one):
    # the GiST index narrows the search to it, the exact distance decides.
    radius_deg = radius_m / metres_per_degree_lon(lat)
    candidates = session.scalars(
        select(DamageSite)
        .where(
            DamageSite.status.in_(ASSOCIABLE_STATUSES),
            DamageSite.class_name.in_(COMPATIBLE.get(class_name, (class_name,))),
            func.ST_DWithin(DamageSite.position, pt, radius_deg),
        )
        .order_by(DamageSite.position.op("<->")(pt))
        .limit(NEARBY_LIMIT)
    ).all()
    found = []
    for site in candidates:
        d = haversine_m(lat, lon, *site_latlon(site))
        if d <= radius_m:
            found.append((site, d))
    return sorted(found, key=lambda pair: pair[1])


def find_site(
    session: Session,
    class_name: str,
    lat: float,
    lon: float,
    radius_m: float,
    exclude: Collection[int] = (),
) -> DamageSite | None:
    """The nearest associable site of a compatible class within ``radius_m``, not in ``exclude``."""
    for site, _ in nearby_sites(session, class_name, lat, lon, radius_m):
        if site.id not in exclude:
            return site
    return None


def road_importance(session: Session, lat: float, lon: float) -> float | None:
    """Importance of the nearest imported road within ROAD_SEARCH_M, or None (no road network)."""
    pt = func.ST_SetSRID(func.ST_MakePoint(lon, lat), 4326)
    row = session.execute(
        select(RoadSegment.importance, func.ST_Distance(func.geography(RoadSegment.geom), func.geography(pt)))
        .order_by(RoadSegment.geom.op("<->")(pt))
        .limit(1)
    ).first()
    if row is None or row[1] > ROAD_SEARCH_M:
        return None
    return float(row[0])


def new_site(
    class_name: str, lat: float, lon: float, first_seen: datetime, last_seen: datetime, **fields: Any
) -> DamageSite:
    """A new open site with no sightings yet (its position, class and times; ``fields`` set more)."""
    return DamageSite(
        class_name=class_name,
        class_votes={},
        position=point(lat, lon),
        position_weight=0.0,
        max_confidence=0.0,
        sightings=0,
        n_observations=0,
        status=SiteStatus.OPEN,
        first_seen=first_seen,
        last_seen=last_seen,
        **fields,
    )


def add_observation(
    session: Session,
    *,
    class_name: str,
    confidence: float,
    lat: float,
    lon: float,
    size_m: float | None,
    distance_m: float | None,
    seen_at: datetime,
    site: DamageSite | None,
    model_version_id: int | None,
) -> DamageSite:
    """Attach one located observation to ``site`` (a new site when None) and update the site.

    Sightings (distinct frames) are counted by the caller, which knows the frame.
    """
    weight = confidence / (1.0 + (distance_m or 10.0) / 10.0)  # near, sure sightings count more
    if site is not None:  # re-read under a row lock: staff may have decided on it meanwhile
        session.refresh(site, with_for_update=True)
    if site is None:
        site = new_site(class_name, lat, lon, seen_at, seen_at, model_version_id=model_version_id)
        session.add(site)
        slat, slon = lat, lon
    else:
        slat, slon = site_latlon(site)
    total = site.position_weight + weight
    new_lat = (slat * site.position_weight + lat * weight) / total
    new_lon = (slon * site.position_weight + lon * weight) / total
    site.position = point(new_lat, new_lon)
    site.position_weight = total
    votes = dict(site.class_votes)
    votes[class_name] = votes.get(class_name, 0.0) + confidence
    site.class_votes = votes
    if site.status == SiteStatus.OPEN:  # once staff decided, the class is theirs
        site.class_name = max(votes, key=lambda k: votes[k])
    site.max_confidence = max(site.max_confidence, confidence)
    if size_m is not None:
        site.size_m = max(site.size_m or 0.0, size_m)
    site.n_observations += 1
    site.first_seen = min(site.first_seen, seen_at)
    site.last_seen = max(site.last_seen, seen_at)
    site.model_version_id = model_version_id or site.model_version_id
    site.road_importance = road_importance(session, new_lat, new_lon)
    session.flush()
    return site


def site_growths(session: Session, site_ids: Collection[int]) -> dict[int, float | None]:
    """Each site's size trend across its sized sightings (metres per 30 days), for the ranking; one query."""
    rows = session.execute(
        select(Observation.site_id, Frame.captured_at, Observation.size_m)
        .join(Frame, Frame.id == Observation.frame_id)
        .where(
            Observation.site_id.in_(list(site_ids)),
            Observation.size_m.is_not(None),
            Frame.captured_at.is_not(None),
        )
    ).all()
    passes: dict[int, list[Pass]] = {sid: [] for sid in site_ids}
    for sid, at, size in rows:
        if sid is not None and at is not None:  # both filtered in the query; for the type checker
            passes[sid].append(Pass(0, "", at, True, size))
    return {sid: growth_m_per_30d(p) for sid, p in passes.items()}


def missed_passes(check: SiteVerification | None, site: DamageSite) -> int:
    """Covering passes since the site's last sighting that did not see it, as the verification of routine
    drives last counted them (``service/db/history.py``); 0 when a sighting came after that check."""
    if check is None or check.state not in (STILL_THERE, NOT_SEEN_AGAIN):
        return 0
    if check.since is not None and site.last_seen > check.since:
        return 0  # seen again since the check counted the misses
    return check.passes_since


def _apply(site: DamageSite, facts: SiteFacts, config: RankingConfig, now: datetime) -> None:
    result = score(facts, now, config)
    site.priority = result.priority
    site.score_components = {
        "components": result.components,
        "terms": result.terms,
        "unknown": list(result.unknown),
    }
    site.ranking_version = result.config_version
    site.severity = severity(facts)


def _facts(site: DamageSite, growth: float | None = None, missed: int = 0) -> SiteFacts:
    return SiteFacts(
        class_name=site.class_name,
        size_m=site.size_m,
        confidence=site.max_confidence,
        sightings=max(site.sightings, 1),
        last_seen=site.last_seen,
        road_importance=site.road_importance,
        growth_m_per_30d=growth,
        missed_passes=missed,
    )


def rescore_sites(
    session: Session, sites: Sequence[DamageSite], config: RankingConfig, now: datetime | None = None
) -> None:
    """Recompute priority, its components, severity and the config version on each site: its section,
    sightings, growth and verification read for all of them at once (a few queries, not a few per site).
    New sites are written first, so they get ids, sections and the low-trust check like the others."""
    sites = list({id(s): s for s in sites}.values())
    if not sites:
        return
    session.flush()
    now = now or datetime.now(UTC)
    ids = [site.id for site in sites]
    surveys = survey_sites(session, sites)
    growth = site_growths(session, ids)
    checks = {
        c.site_id: c
        for c in session.scalars(select(SiteVerification).where(SiteVerification.site_id.in_(ids)))
    }
    for site in sites:
        _apply(site, _facts(site, growth.get(site.id), missed_passes(checks.get(site.id), site)), config, now)
        cap_low_trust(site, surveys.get(site.id) if surveys is not None else None)  # unusable frames only


def rescore(site: DamageSite, config: RankingConfig, now: datetime | None = None) -> None:
    """:func:`rescore_sites` for one site; a site in no session (not stored) is scored from itself alone."""
    session = object_session(site)
    if session is None:
        _apply(site, _facts(site), config, now or datetime.now(UTC))
    else:
        rescore_sites(session, [site], config, now)


def rescore_all(sessions: sessionmaker[Session], config: RankingConfig, batch: int = 1000) -> int:
    """Rescore every site not yet repaired, in batches of one transaction each; returns the count."""
    done, last_id = 0, 0
    while True:
        with sessions() as session, session.begin():
            sites = session.scalars(
                select(DamageSite)
                .where(DamageSite.id > last_id, DamageSite.status != SiteStatus.REPAIRED)
                .order_by(DamageSite.id)
                .limit(batch)
                .with_for_update(skip_locked=True)
            ).all()
            rescore_sites(session, sites, config)
        if not sites:
            return done
        done += len(sites)
        last_id = sites[-1].id


def site_properties(site: DamageSite) -> dict[str, Any]:
    """A site's fields as the API, the exports and the web map show them."""
    return {
        "id": str(site.public_id),
        "class": site.class_name,
        "status": site.status,
        "proposed_by_model": site.status == SiteStatus.OPEN and not site.citizen_reported,
        "priority": round(site.priority, 2),
        "score_components": site.score_components,
        "ranking_version": site.ranking_version,
        "severity": site.severity,
        "size_m": site.size_m,
        "max_confidence": round(site.max_confidence, 4),
        "sightings": site.sightings,
        "observations": site.n_observations,
        "first_seen": site.first_seen.isoformat(),
        "last_seen": site.last_seen.isoformat(),
        "model_version_id": site.model_version_id,
        "citizen_reports": site.citizen_reports,  # Open311 reports attached (service/db/open311.py)
        "citizen_reported": site.citizen_reported,  # created from a citizen's report, not by the model
        **site_street(site),
    }


def site_street(site: DamageSite) -> dict[str, Any]:
    """The section the site lies on: street, the streets it lies between, and the section id."""
    survey = getattr(site, "survey", None)  # service/db/road_tables.py
    section = survey.section if survey is not None else None
    return {
        "section_id": section.id if section else None,
        "street": section.name if section else None,
        "from_street": section.from_name if section else None,
        "to_street": section.to_name if section else None,
        "location": section_label(section.name, section.from_name, section.to_name) if section else None,
        "low_trust": bool((site.score_components or {}).get("low_trust")),
    }


def site_feature(site: DamageSite) -> dict[str, Any]:
    """A site as a GeoJSON feature (lon, lat to 7 decimals)."""
    p = to_shape(site.position)
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [round(p.x, 7), round(p.y, 7)]},
        "properties": site_properties(site),
    }


def site_row(site: DamageSite, **extra: Any) -> dict[str, Any]:
    """A site as one flat row (lat, lon columns) for CSV."""
    p = to_shape(site.position)
    return {**site_properties(site), "lat": round(p.y, 7), "lon": round(p.x, 7), **extra}


def ranked(query: Select[Any]) -> Select[Any]:
    """Highest priority first; ties by id, so pages never overlap."""
    return query.order_by(DamageSite.priority.desc(), DamageSite.id)


def stream_sites(session: Session, query: Select[Any], batch: int = 1000) -> Iterator[DamageSite]:
    """All sites of ``query`` in ranked order, read ``batch`` at a time (for exports)."""
    offset = 0
    while True:
        rows = session.scalars(ranked(query).limit(batch).offset(offset)).all()
        yield from rows
        if len(rows) < batch:
            return
        offset += batch


def get_site(session: Session, site_id: str) -> DamageSite:
    """The site with public id ``site_id`` (a UUID)."""
    try:
        public_id = uuid.UUID(site_id)
    except ValueError as exc:
        raise InvalidInput(f"site id must be a UUID, got {site_id!r}") from exc
    site = session.scalar(select(DamageSite).where(DamageSite.public_id == public_id))
    if site is None:
        raise NotFound(f"no site {site_id}")
    return site
