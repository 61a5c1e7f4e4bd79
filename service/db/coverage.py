"""Coverage of the road network: which sections were surveyed when, and how well; the one source for the
coverage layer, the summary, the streets pages and the condition grades (service/db/grades.py).

What the frames add up to is kept in two tables (migration 0014), written in each frame's transaction by
``service/db/survey.py`` (``record_frame``) and rebuilt from the frames by ``rebuild_coverage`` (nightly,
after an import, ``python -m service roads rebuild-coverage``):

- ``section_pass``: one row per pass, i.e. one vehicle on one day (UTC), over one section: its frames,
  unusable frames, last frame, last usable frame, last usable frame that saw a stretch of the section, and
  the union of the stretches its usable frames saw (``frame_road.seen_from_m``..``seen_to_m``);
- ``section_coverage``: per section, the last pass and the last usable pass of all time.

A pass belongs to a period when its last (usable, seeing) frame does: a pass on the day a period starts
counts whole or not at all.

Per section (``section_coverage``):

- ``last_usable_pass``: the latest capture time of a usable frame matched to it (None: never);
- ``passes``: usable passes in the current period and the one before (``ROADWATCH_COVERAGE_PERIOD_DAYS``,
  default 182 days); a pass is one vehicle on one day, as for the condition grades;
- ``seen_share``: the share of its length inside the footprints of usable frames of the current period
  (the union of each frame's seen stretch). A frame counts for the section it was matched to only: the
  start of the next section inside its footprint is not counted, so shares are slightly low at section
  starts, never too high;
- ``unusable_share``: the share of its frames (current period) that the quality gate found unusable:
  "driven, not usable" is not "not driven".

The summary (``coverage_summary``) gives km surveyed by usable frames within N months, km not surveyed for
N months (driven with only unusable frames, or not driven, or never) and km never surveyed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from service.db.road_tables import ROADS_LOCK
from service.domain.grades import covered_share

# --- keeping the tables -----------------------------------------------------------------------------------

# A pass from its frames (the migration's backfill is the same statement). ``keyed`` limits it to passes.
_PASSES_FROM_FRAMES = """
    SELECT fr.section_id, f.vehicle_id, (f.captured_at AT TIME ZONE 'UTC')::date AS day,
           count(*)::integer AS frames, (count(*) FILTER (WHERE q.usable IS false))::integer AS unusable_frames,
           max(f.captured_at) AS last_at,
           max(f.captured_at) FILTER (WHERE COALESCE(q.usable, true)) AS last_usable_at,
           max(f.captured_at) FILTER (WHERE COALESCE(q.usable, true) AND fr.seen_from_m IS NOT NULL
                                      AND fr.seen_to_m IS NOT NULL) AS last_seen_at,
           COALESCE(range_agg(numrange(LEAST(fr.seen_from_m, fr.seen_to_m)::numeric,
                                       GREATEST(fr.seen_from_m, fr.seen_to_m)::numeric, '[]'))
                    FILTER (WHERE COALESCE(q.usable, true) AND fr.seen_from_m IS NOT NULL
                            AND fr.seen_to_m IS NOT NULL), '{}') AS seen
    FROM {frames}
    JOIN road_section s ON s.id = fr.section_id
    LEFT JOIN frame_quality q ON q.frame_id = fr.frame_id
    WHERE f.captured_at IS NOT NULL
    GROUP BY 1, 2, 3
"""
_ALL_FRAMES = "frame_road fr JOIN frame f ON f.id = fr.frame_id"
_KEYED_FRAMES = """keys k
    JOIN frame f ON f.vehicle_id = k.vehicle_id AND f.captured_at >= (k.day::timestamp AT TIME ZONE 'UTC')
                AND f.captured_at < ((k.day + 1)::timestamp AT TIME ZONE 'UTC')
    JOIN frame_road fr ON fr.frame_id = f.id AND fr.section_id = k.section_id"""
_PASS_COLUMNS = "frames, unusable_frames, last_at, last_usable_at, last_seen_at, seen"
_SET_PASS = ", ".join(f"{c} = EXCLUDED.{c}" for c in _PASS_COLUMNS.split(", ")) + ", updated_at = now()"

_RECOUNT = text(
    f"""
    WITH keys AS (
        SELECT DISTINCT * FROM unnest(CAST(:sections AS varchar[]), CAST(:vehicles AS integer[]),
                                      CAST(:days AS date[])) AS k(section_id, vehicle_id, day)
    ), counted AS ({_PASSES_FROM_FRAMES.replace("{frames}", _KEYED_FRAMES)}
    ), gone AS (
        DELETE FROM section_pass p USING keys k
        WHERE (p.section_id, p.vehicle_id, p.day) = (k.section_id, k.vehicle_id, k.day)
          AND NOT EXISTS (SELECT 1 FROM counted c
                          WHERE (c.section_id, c.vehicle_id, c.day) = (k.section_id, k.vehicle_id, k.day))
    )
    INSERT INTO section_pass (section_id, vehicle_id, day, {_PASS_COLUMNS})
    SELECT section_id, vehicle_id, day, {_PASS_COLUMNS} FROM counted
    ON CONFLICT (section_id, day, vehicle_id) DO UPDATE SET {_SET_PASS}
    """
)

# Each section's last passes from its passes; only the rows that differ are written (``updated_at`` tells
# the regrade what changed).
_SECTIONS_FROM_PASSES = text(
    """
    WITH wanted AS (
        SELECT section_id, max(last_at) AS last_at, max(last_usable_at) AS last_usable_at
        FROM section_pass WHERE CAST(:all AS boolean) OR section_id = ANY(CAST(:sections AS varchar[]))
        GROUP BY section_id
    ), gone AS (
        DELETE FROM section_coverage c
        WHERE (CAST(:all AS boolean) OR c.section_id = ANY(CAST(:sections AS varchar[])))
          AND NOT EXISTS (SELECT 1 FROM wanted w WHERE w.section_id = c.section_id)
        RETURNING 1
    ), written AS (
        INSERT INTO section_coverage (section_id, last_at, last_usable_at)
        SELECT w.section_id, w.last_at, w.last_usable_at FROM wanted w
        LEFT JOIN section_coverage c ON c.section_id = w.section_id
        WHERE c.section_id IS NULL
           OR (c.last_at, c.last_usable_at) IS DISTINCT FROM (w.last_at, w.last_usable_at)
        ON CONFLICT (section_id) DO UPDATE SET last_at = EXCLUDED.last_at,
            last_usable_at = EXCLUDED.last_usable_at, updated_at = now()
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM written)
    """
)


def _day(t: datetime) -> date:
    return t.astimezone(UTC).date()


def recount_passes(
    session: Session, passes: Iterable[tuple[str, int, datetime]], frame_ids: Sequence[int] = ()
) -> None:
    """Count again, from the stored frames, the given passes (section, vehicle, any time of its day) and the
    passes the frames ``frame_ids`` now belong to; then those sections' last passes. Idempotent."""
    keys = {(sid, vehicle, _day(t)) for sid, vehicle, t in passes}
    if frame_ids:
        rows = session.execute(
            text(
                """SELECT fr.section_id, f.vehicle_id, f.captured_at FROM frame_road fr
                   JOIN frame f ON f.id = fr.frame_id
                   WHERE fr.frame_id = ANY(:ids) AND fr.section_id IS NOT NULL AND f.captured_at IS NOT NULL"""
            ),
            {"ids": list(frame_ids)},
        )
        keys |= {(sid, vehicle, _day(t)) for sid, vehicle, t in rows}
    if not keys:
        return
    ordered = sorted(keys)
    session.execute(
        _RECOUNT,
        {
            "sections": [k[0] for k in ordered],
            "vehicles": [k[1] for k in ordered],
            "days": [k[2] for k in ordered],
        },
    )
    session.execute(_SECTIONS_FROM_PASSES, {"all": False, "sections": sorted({k[0] for k in keys})})


_REBUILD = [
    f"CREATE TEMP TABLE rebuilt_pass ON COMMIT DROP AS {_PASSES_FROM_FRAMES.replace('{frames}', _ALL_FRAMES)}",
    "ALTER TABLE rebuilt_pass ADD PRIMARY KEY (section_id, day, vehicle_id)",
    """
    WITH gone AS (
        DELETE FROM section_pass p
        WHERE NOT EXISTS (SELECT 1 FROM rebuilt_pass r
                          WHERE (r.section_id, r.day, r.vehicle_id) = (p.section_id, p.day, p.vehicle_id))
        RETURNING 1
    ), written AS (
        INSERT INTO section_pass (section_id, vehicle_id, day, {columns})
        SELECT r.section_id, r.vehicle_id, r.day, {r_columns} FROM rebuilt_pass r
        LEFT JOIN section_pass p ON (p.section_id, p.day, p.vehicle_id) = (r.section_id, r.day, r.vehicle_id)
        WHERE p.section_id IS NULL OR ({p_columns}) IS DISTINCT FROM ({r_columns})
        ON CONFLICT (section_id, day, vehicle_id) DO UPDATE SET {set_pass}
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM written)
    """.format(
        columns=_PASS_COLUMNS,
        set_pass=_SET_PASS,
        r_columns=", ".join(f"r.{c}" for c in _PASS_COLUMNS.split(", ")),
        p_columns=", ".join(f"p.{c}" for c in _PASS_COLUMNS.split(", ")),
    ),
]


def rebuild_coverage(session: Session) -> dict[str, int]:
    """Rebuild both tables from the frames, in the caller's transaction, under the road network's lock
    (exclusive: frames wait to be recorded meanwhile). Only rows that differ are written; returns how many
    passes and sections were fixed (0 and 0: the tables were right)."""
    session.execute(select(func.pg_advisory_xact_lock(ROADS_LOCK)))
    # Fresh statistics first: after a bulk load (a migration, a restore) the planner would otherwise join
    # a million frames by nested loops (minutes instead of seconds).
    session.execute(text("ANALYZE frame, frame_road, frame_quality, road_section"))
    for sql in _REBUILD[:-1]:
        session.execute(text(sql))
    passes = int(session.scalar(text(_REBUILD[-1])) or 0)
    session.execute(text("DROP TABLE rebuilt_pass"))
    sections = int(session.scalar(_SECTIONS_FROM_PASSES, {"all": True, "sections": []}) or 0)
    return {"passes_fixed": passes, "sections_fixed": sections}


# --- reading them -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeriodCoverage:
    """What the usable passes of one period say about a section (``passes_seeing``: those that saw a stretch
    of it, as the condition grades count them; ``last_seen_at``: the last of those)."""

    passes: int
    passes_seeing: int
    last_seen_at: datetime | None
    seen: tuple[tuple[float, float], ...]
    frames: int
    unusable_frames: int

    def seen_share(self, length_m: float) -> float:
        return covered_share(self.seen, length_m)


_PERIOD = text(
    """
    SELECT p.section_id,
           count(*) FILTER (WHERE p.last_usable_at BETWEEN :since AND :until) AS passes,
           count(*) FILTER (WHERE p.last_seen_at BETWEEN :since AND :until) AS passes_seeing,
           max(p.last_seen_at) FILTER (WHERE p.last_seen_at BETWEEN :since AND :until) AS last_seen_at,
           range_agg(p.seen) FILTER (WHERE p.last_seen_at BETWEEN :since AND :until) AS seen,
           COALESCE(sum(p.frames) FILTER (WHERE p.last_at BETWEEN :since AND :until), 0) AS frames,
           COALESCE(sum(p.unusable_frames) FILTER (WHERE p.last_at BETWEEN :since AND :until), 0)
               AS unusable_frames
    FROM section_pass p
    WHERE p.section_id = ANY(CAST(:ids AS varchar[])) AND p.day >= CAST(:first_day AS date)
      AND p.day <= CAST(:last_day AS date)
    GROUP BY p.section_id
    """
)
_NO_PASSES = PeriodCoverage(0, 0, None, (), 0, 0)


def _intervals(multirange: Any) -> tuple[tuple[float, float], ...]:
    """(from, to) metres of a numeric multirange as psycopg returns it."""
    return tuple(
        (float(r.lower), float(r.upper))
        for r in multirange or ()
        if r.lower is not None and r.upper is not None
    )


def period_coverage(
    session: Session, section_ids: Sequence[str], since: datetime, until: datetime
) -> dict[str, PeriodCoverage]:
    """Each section's passes whose last frame lies in [since, until]; sections without any get zeros."""
    rows = session.execute(
        _PERIOD,
        {
            "ids": list(section_ids),
            "since": since,
            "until": until,
            "first_day": _day(since),
            "last_day": _day(until),
        },
    )
    out = dict.fromkeys(section_ids, _NO_PASSES)
    for r in rows:
        out[r.section_id] = PeriodCoverage(
            int(r.passes),
            int(r.passes_seeing),
            r.last_seen_at,
            _intervals(r.seen),
            int(r.frames),
            int(r.unusable_frames),
        )
    return out


def last_passes(session: Session, section_ids: Sequence[str]) -> dict[str, tuple[datetime, datetime | None]]:
    """(last pass, last usable pass) of each section that was ever driven."""
    rows = session.execute(
        text(
            "SELECT section_id, last_at, last_usable_at FROM section_coverage "
            "WHERE section_id = ANY(CAST(:ids AS varchar[]))"
        ),
        {"ids": list(section_ids)},
    )
    return {r.section_id: (r.last_at, r.last_usable_at) for r in rows}


# The map's coverage layer: both periods and the last passes in one query (one scan of the passes).
_LAYER = text(
    """
    SELECT ids.section_id, c.last_at, c.last_usable_at, p.passes, p.passes_before, p.seen, p.frames,
           p.unusable_frames
    FROM unnest(CAST(:ids AS varchar[])) AS ids(section_id)
    LEFT JOIN LATERAL (SELECT c.last_at, c.last_usable_at FROM section_coverage c
                       WHERE c.section_id = ids.section_id) c ON true
    LEFT JOIN LATERAL (
        SELECT count(*) FILTER (WHERE p.last_usable_at BETWEEN :since AND :until) AS passes,
               count(*) FILTER (WHERE p.last_usable_at >= :before AND p.last_usable_at < :since) AS passes_before,
               range_agg(p.seen) FILTER (WHERE p.last_seen_at BETWEEN :since AND :until) AS seen,
               COALESCE(sum(p.frames) FILTER (WHERE p.last_at BETWEEN :since AND :until), 0) AS frames,
               COALESCE(sum(p.unusable_frames) FILTER (WHERE p.last_at BETWEEN :since AND :until), 0)
                   AS unusable_frames
        FROM section_pass p
        WHERE p.section_id = ids.section_id AND p.day >= CAST(:first_day AS date)
          AND p.day <= CAST(:last_day AS date)
    ) p ON true
    """
)


def section_coverage(
    session: Session,
    sections: Sequence[tuple[str, float]],
    period_days: int = 182,
    now: datetime | None = None,
) -> dict[str, dict[str, Any]]:
    """Coverage of each (section id, length in m); sections without frames get zeros and None."""
    now = now or datetime.now(UTC)
    p0, p1 = now - timedelta(days=period_days), now - timedelta(days=2 * period_days)
    rows = session.execute(
        _LAYER,
        {
            "ids": [sid for sid, _ in sections],
            "since": p0,
            "until": now,
            "before": p1,
            "first_day": _day(p1),
            "last_day": _day(now),
        },
    )
    found = {r.section_id: r for r in rows}
    out = {}
    for sid, length in sections:
        r = found.get(sid)
        driven, usable = (r.last_at, r.last_usable_at) if r is not None else (None, None)
        frames = int(r.frames or 0) if r is not None else 0
        unusable = int(r.unusable_frames or 0) if r is not None else 0
        out[sid] = {
            "last_usable_pass": usable.isoformat() if usable else None,
            "last_pass": driven.isoformat() if driven else None,
            "period_days": period_days,
            "passes": int(r.passes or 0) if r is not None else 0,
            "passes_previous_period": int(r.passes_before or 0) if r is not None else 0,
            "seen_share": round(covered_share(_intervals(r.seen if r is not None else None), length), 4),
            "frames": frames,
            "unusable_share": round(unusable / frames, 4) if frames else None,
        }
    return out


_SUMMARY = text(
    """
    SELECT count(*) AS sections,
           COALESCE(sum(s.length_m), 0) / 1000.0 AS km,
           COALESCE(sum(s.length_m) FILTER (WHERE c.last_usable_at >= :cutoff), 0) / 1000.0 AS km_surveyed,
           COALESCE(sum(s.length_m) FILTER (WHERE c.last_usable_at IS NULL), 0) / 1000.0 AS km_never,
           COALESCE(sum(s.length_m) FILTER (WHERE c.last_at >= :cutoff
               AND (c.last_usable_at IS NULL OR c.last_usable_at < :cutoff)), 0) / 1000.0 AS km_driven_not_usable
    FROM road_section s
    LEFT JOIN section_coverage c ON c.section_id = s.id
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


@dataclass(frozen=True)
class SectionPassRow:
    """One pass over a section (a vehicle's frames of one day), as the street page lists it."""

    day: date
    vehicle: str
    frames: int
    unusable_frames: int
    last_at: datetime
    usable: bool
    seen_m: float


def section_passes(session: Session, section_id: str, limit: int = 50) -> list[SectionPassRow]:
    """The section's latest passes, newest first: frames, unusable frames and the metres seen clearly."""
    rows = session.execute(
        text(
            """
            SELECT p.day, v.name, p.frames, p.unusable_frames, p.last_at, p.last_usable_at IS NOT NULL AS usable,
                   p.seen
            FROM section_pass p JOIN vehicle v ON v.id = p.vehicle_id
            WHERE p.section_id = :sid ORDER BY p.day DESC, p.last_at DESC LIMIT :limit
            """
        ),
        {"sid": section_id, "limit": limit},
    )
    return [
        SectionPassRow(
            r.day,
            r.name,
            int(r.frames),
            int(r.unusable_frames),
            r.last_at,
            bool(r.usable),
            round(sum(b - a for a, b in _intervals(r.seen)), 1),
        )
        for r in rows
    ]
