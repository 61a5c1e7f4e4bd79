"""A site's passes in PostGIS and the verification of repairs by routine drives (migration 0013).

A pass (one vehicle, one day) *covered* a site when a usable frame's footprint (``frame_road.footprint``)
contains the site's position, or when one of its frames has a detection of a compatible class within
``reach_m`` of it (a detection is evidence that the spot was in view). It *saw* the site when such a
detection exists: detections are matched by position, not by site, so damage seen again at a repaired
spot (which association files as a new site) counts for the repaired one. ``service/domain/history.py``
turns the passes into a timeline, a growth trend and a verification state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from geoalchemy2.shape import to_shape
from sqlalchemy import BigInteger, DateTime, Integer, String, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from service.db.tables import Base, DamageSite, Decision
from service.domain.classes import COMPATIBLE
from service.domain.history import Pass, Verification, verify
from service.domain.statuses import SITE_NEEDS_ACTION, SiteStatus


class SiteVerification(Base):
    """What routine drives said about a site when last checked."""

    __tablename__ = "site_verification"
    site_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    state: Mapped[str] = mapped_column(String(30))
    passes_since: Mapped[int] = mapped_column(Integer)
    since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


_PASSES_SQL = text(
    """
    WITH evidence AS (
        SELECT f.id AS frame_id, f.vehicle_id, f.captured_at,
               o.id AS obs_id, o.size_m, o.confidence
        FROM frame f
        JOIN frame_road fr ON fr.frame_id = f.id
        LEFT JOIN frame_quality q ON q.frame_id = f.id
        LEFT JOIN observation o ON o.frame_id = f.id AND o.class_name = ANY(:classes)
             AND o.position IS NOT NULL AND ST_DWithin(o.position::geography, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, :reach)
        WHERE fr.footprint IS NOT NULL AND ST_Covers(fr.footprint, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)) AND COALESCE(q.usable, true)
          AND f.captured_at IS NOT NULL
        UNION ALL
        SELECT f.id, f.vehicle_id, f.captured_at, o.id, o.size_m, o.confidence
        FROM observation o JOIN frame f ON f.id = o.frame_id
        WHERE o.class_name = ANY(:classes) AND o.position IS NOT NULL
          AND ST_DWithin(o.position, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :reach_deg)
          AND ST_DWithin(o.position::geography, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, :reach)
          AND f.captured_at IS NOT NULL
    )
    SELECT vehicle_id, (captured_at AT TIME ZONE 'UTC')::date AS day, max(captured_at) AS at,
           bool_or(obs_id IS NOT NULL) AS seen, max(size_m) AS size_m, max(confidence) AS confidence,
           (array_agg(frame_id ORDER BY obs_id IS NULL, captured_at DESC))[1] AS frame_id
    FROM evidence GROUP BY vehicle_id, day ORDER BY at
    """
)


def site_passes(session: Session, site: DamageSite, reach_m: float = 4.0) -> list[Pass]:
    """Every pass that covered the site's spot, oldest first, with whether it saw the site."""
    p = to_shape(site.position)
    rows = session.execute(
        _PASSES_SQL,
        {
            "lon": p.x,
            "lat": p.y,
            "classes": list(COMPATIBLE.get(site.class_name, (site.class_name,))),
            "reach": reach_m,
            "reach_deg": reach_m / 50_000.0,  # a box that holds the circle at any latitude below 80 degrees
        },
    ).all()
    return [
        Pass(r.vehicle_id, r.day.isoformat(), r.at, bool(r.seen), r.size_m, r.confidence, r.frame_id)
        for r in rows
    ]


def repaired_at(session: Session, site: DamageSite) -> datetime | None:
    """When staff (or a finished work order) marked the site repaired; None unless it is repaired now."""
    if site.status != SiteStatus.REPAIRED:
        return None
    return session.scalar(
        select(func.max(Decision.at)).where(
            Decision.site_id == site.id, Decision.new_status == SiteStatus.REPAIRED
        )
    )


def verify_site(session: Session, site: DamageSite, k: int, now: datetime) -> Verification:
    """Check one site against its passes and store the result (``changed_at`` moves when the state does)."""
    result = verify(site_passes(session, site), repaired_at(session, site), k)
    stmt = insert(SiteVerification).values(
        site_id=site.id,
        state=result.state,
        passes_since=result.passes_since,
        since=result.since,
        changed_at=now,
        checked_at=now,
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[SiteVerification.site_id],
            set_={
                "passes_since": stmt.excluded.passes_since,
                "since": stmt.excluded.since,
                "checked_at": stmt.excluded.checked_at,
                "changed_at": text(
                    "CASE WHEN site_verification.state = EXCLUDED.state "
                    "THEN site_verification.changed_at ELSE EXCLUDED.changed_at END"
                ),
                "state": stmt.excluded.state,
            },
        )
    )
    return result


# Sites worth checking: repaired ones (is the repair holding?) and those that still need someone (are
# they still there?), whose spot a frame covered since they were last checked.
_TO_CHECK = text(
    """
    SELECT d.id FROM damage_site d
    LEFT JOIN site_verification v ON v.site_id = d.id
    WHERE d.status = ANY(:statuses)
      AND EXISTS (
        SELECT 1 FROM frame_road fr JOIN frame f ON f.id = fr.frame_id
        WHERE fr.footprint IS NOT NULL AND ST_Covers(fr.footprint, d.position)
          AND (v.checked_at IS NULL OR f.created_at > v.checked_at))
    ORDER BY d.id LIMIT :limit
    """
)


def verify_changed(
    sessions: sessionmaker[Session],
    k: int,
    now: datetime,
    limit: int = 2000,
    rescore: Callable[[DamageSite], None] | None = None,
) -> dict[str, int]:
    """Verify every repaired or open site whose spot new frames covered; returns the states found.

    ``rescore`` (the ranking) runs on each checked site that is not repaired, in the same transaction: its
    recency counts the covering passes that missed it, which this check has just counted."""
    counts: dict[str, int] = {}
    statuses = [SiteStatus.REPAIRED.value, *(s.value for s in SITE_NEEDS_ACTION)]
    with sessions() as session, session.begin():
        ids = list(session.scalars(_TO_CHECK, {"statuses": statuses, "limit": limit}))
        for site in session.scalars(select(DamageSite).where(DamageSite.id.in_(ids))):
            state = verify_site(session, site, k, now).state
            counts[state] = counts.get(state, 0) + 1
            if rescore is not None and site.status != SiteStatus.REPAIRED:
                rescore(site)
    return counts


def verification_of(session: Session, site_ids: Sequence[int]) -> dict[int, SiteVerification]:
    """The stored verification of each site (absent: never checked)."""
    if not site_ids:
        return {}
    rows = session.scalars(select(SiteVerification).where(SiteVerification.site_id.in_(list(site_ids))))
    return {r.site_id: r for r in rows}


def timeline(session: Session, site: DamageSite, k: int) -> dict[str, Any]:
    """The site's passes, growth trend and verification, as the site page and the API show them."""
    from service.domain.history import growth_m_per_30d, still_there_at

    passes = site_passes(session, site)
    result = verify(passes, repaired_at(session, site), k)
    return {
        "passes": [
            {"vehicle_id": p.vehicle_id, "day": p.day, "at": p.at.isoformat(), "seen": p.seen,
             "size_m": p.size_m, "confidence": p.confidence, "frame_id": p.frame_id}
            for p in passes
        ],
        "growth_m_per_30d": growth_m_per_30d(passes),
        "still_there_at": (lambda t: t.isoformat() if t else None)(still_there_at(passes)),
        "verification": {
            "state": result.state,
            "passes_since": result.passes_since,
            "since": result.since.isoformat() if result.since else None,
            "k": k,
        },
    }  # fmt: skip
