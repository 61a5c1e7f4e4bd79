"""Coverage of the road network: which sections were surveyed when, and how well.

Per section (``section_coverage``):

- ``last_usable_pass``: the latest capture time of a usable frame matched to it (None: never);
- ``passes``: usable passes in the current period and the one before (``ROADWATCH_COVERAGE_PERIOD_DAYS``,
  default 182 days); a pass is one vehicle on one day, as for the condition grades (service/db/grades.py);
- ``seen_share``: the share of its length inside the footprints of usable frames of the current period
  (the union of each frame's seen stretch, ``frame_road.seen_from_m``..``seen_to_m``). A frame counts for
  the section it was matched to only: the start of the next section inside its footprint is not counted,
  so shares are slightly low at section starts, never too high;
- ``unusable_share``: the share of its frames (current period) that the quality gate found unusable:
  "driven, not usable" is not "not driven".

The summary (``coverage_summary``) gives km surveyed by usable frames within N months, km not surveyed for
N months (driven with only unusable frames, or not driven, or never) and km never surveyed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from service.domain.grades import covered_share

_PER_SECTION = text(
    """
    SELECT fr.section_id,
           max(f.captured_at) FILTER (WHERE COALESCE(q.usable, true)) AS last_usable_pass,
           max(f.captured_at) AS last_pass,
           count(*) FILTER (WHERE f.captured_at >= :p0) AS frames,
           count(*) FILTER (WHERE f.captured_at >= :p0 AND q.usable IS false) AS unusable_frames,
           count(DISTINCT (f.vehicle_id, (f.captured_at AT TIME ZONE 'UTC')::date))
               FILTER (WHERE COALESCE(q.usable, true) AND f.captured_at >= :p0) AS passes,
           count(DISTINCT (f.vehicle_id, (f.captured_at AT TIME ZONE 'UTC')::date))
               FILTER (WHERE COALESCE(q.usable, true) AND f.captured_at >= :p1 AND f.captured_at < :p0)
               AS passes_before,
           range_agg(numrange(LEAST(fr.seen_from_m, fr.seen_to_m)::numeric,
                              GREATEST(fr.seen_from_m, fr.seen_to_m)::numeric, '[]'))
               FILTER (WHERE COALESCE(q.usable, true) AND f.captured_at >= :p0
                       AND fr.seen_from_m IS NOT NULL AND fr.seen_to_m IS NOT NULL) AS seen
    FROM frame_road fr
    JOIN frame f ON f.id = fr.frame_id
    LEFT JOIN frame_quality q ON q.frame_id = fr.frame_id
    WHERE fr.section_id = ANY(:ids) AND f.captured_at IS NOT NULL AND f.captured_at <= :now
    GROUP BY fr.section_id
    """
)


def _intervals(multirange: Any) -> list[tuple[float, float]]:
    return [
        (float(r.lower), float(r.upper))
        for r in multirange or ()
        if r.lower is not None and r.upper is not None
    ]


def section_coverage(
    session: Session,
    sections: Sequence[tuple[str, float]],
    period_days: int = 182,
    now: datetime | None = None,
) -> dict[str, dict[str, Any]]:
    """Coverage of each (section id, length in m); sections without frames get zeros and None."""
    now = now or datetime.now(UTC)
    p0, p1 = now - timedelta(days=period_days), now - timedelta(days=2 * period_days)
    ids = [sid for sid, _ in sections]
    rows = {
        r.section_id: r for r in session.execute(_PER_SECTION, {"ids": ids, "p0": p0, "p1": p1, "now": now})
    }
    out = {}
    for sid, length in sections:
        r = rows.get(sid)
        frames = int(r.frames) if r else 0
        out[sid] = {
            "last_usable_pass": r.last_usable_pass.isoformat() if r and r.last_usable_pass else None,
            "last_pass": r.last_pass.isoformat() if r and r.last_pass else None,
            "period_days": period_days,
            "passes": int(r.passes) if r else 0,
            "passes_previous_period": int(r.passes_before) if r else 0,
            "seen_share": round(covered_share(_intervals(r.seen), length), 4) if r else 0.0,
            "frames": frames,
            "unusable_share": round(int(r.unusable_frames) / frames, 4) if r and frames else None,
        }
    return out


_SUMMARY = text(
    """
    WITH last AS (
        SELECT fr.section_id,
               max(f.captured_at) FILTER (WHERE COALESCE(q.usable, true)) AS usable_at,
               max(f.captured_at) AS driven_at
        FROM frame_road fr
        JOIN frame f ON f.id = fr.frame_id
        LEFT JOIN frame_quality q ON q.frame_id = fr.frame_id
        WHERE fr.section_id IS NOT NULL AND f.captured_at IS NOT NULL
        GROUP BY fr.section_id
    )
    SELECT count(*) AS sections,
           COALESCE(sum(s.length_m), 0) / 1000.0 AS km,
           COALESCE(sum(s.length_m) FILTER (WHERE l.usable_at >= :cutoff), 0) / 1000.0 AS km_surveyed,
           COALESCE(sum(s.length_m) FILTER (WHERE l.usable_at IS NULL), 0) / 1000.0 AS km_never,
           COALESCE(sum(s.length_m) FILTER (WHERE l.driven_at >= :cutoff
               AND (l.usable_at IS NULL OR l.usable_at < :cutoff)), 0) / 1000.0 AS km_driven_not_usable
    FROM road_section s
    LEFT JOIN last l ON l.section_id = s.id
    """
)


def coverage_summary(session: Session, months: int = 6, now: datetime | None = None) -> dict[str, Any]:
    """Km of the network surveyed by usable frames within ``months`` (30.44 days each), and the rest."""
    if months < 1:
        raise ValueError(f"months: expected >= 1, got {months}")
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=30.44 * months)
    row = session.execute(_SUMMARY, {"cutoff": cutoff}).one()
    km, surveyed = float(row.km), float(row.km_surveyed)
    return {
        "as_of": now.isoformat(),
        "months": months,
        "sections": int(row.sections),
        "km": round(km, 3),
        "km_surveyed": round(surveyed, 3),
        "km_not_surveyed": round(km - surveyed, 3),
        "km_driven_not_usable": round(float(row.km_driven_not_usable), 3),
        "km_never_surveyed": round(float(row.km_never), 3),
        "surveyed_share": round(surveyed / km, 4) if km else 0.0,
    }


class DailySummary:
    """The coverage summary computed at most once per day and process (the start page shows it)."""

    def __init__(self, months: int = 6) -> None:
        self.months = months
        self._day: str | None = None
        self._value: dict[str, Any] | None = None

    def get(self, session: Session, now: datetime | None = None) -> dict[str, Any]:
        now = now or datetime.now(UTC)
        day = now.date().isoformat()
        if self._value is None or self._day != day:
            self._value, self._day = coverage_summary(session, self.months, now), day
        return self._value


def daily_summary(state: Any, session: Session) -> dict[str, Any]:
    """The day's summary, cached on the application's state (``app.state``)."""
    cache = getattr(state, "coverage_summary", None)
    if cache is None:
        cache = state.coverage_summary = DailySummary()
    result: dict[str, Any] = cache.get(session)
    return result
