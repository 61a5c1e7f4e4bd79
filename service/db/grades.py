"""Condition grades per road section in PostGIS: what each section's survey says (coverage by usable
frames), its current grade with every input, and the grade history (migration 0012).

``section_surveys`` reads a batch of sections' passes (``service/db/coverage.py``, the table the worker keeps
as frames are recorded): the union of the stretches that usable frames saw (PostgreSQL multiranges), the
number of passes (distinct vehicle and day) and the last usable pass, within a period. ``recompute`` grades sections with ``service.domain.grades`` and writes a new ``section_grade``
row only when the grade, its status, its inputs or the config version changed: the rows of a section are
its history, the one with ``current`` its grade today.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

import psycopg
from sqlalchemy import JSON, BigInteger, Boolean, Float, Index, String, func, select, text, update
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from service.db.coverage import period_coverage
from service.db.road_tables import RoadSection, SiteSurvey
from service.db.tables import Base, DamageSite
from service.domain.grades import Grade, GradeSite, GradingConfig, SectionSurvey, grade_section
from service.domain.statuses import SiteStatus

# Sites that are not (or no longer) damage on the road do not count towards a grade.
NOT_COUNTED = (SiteStatus.REJECTED, SiteStatus.REPAIRED)


class SectionGrade(Base):
    """One grade of one section: its value (None: insufficient data), status, inputs, config version."""

    __tablename__ = "section_grade"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    section_id: Mapped[str] = mapped_column(String(100))
    computed_at: Mapped[datetime] = mapped_column()
    checked_at: Mapped[datetime] = mapped_column()  # a regrade that changed nothing moves only this
    grade: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(30))
    colour_class: Mapped[str | None] = mapped_column(String(10))
    config_version: Mapped[str] = mapped_column(String(80))
    surveyed_share: Mapped[float] = mapped_column(Float)
    passes: Mapped[int] = mapped_column(BigInteger)
    last_pass: Mapped[datetime | None] = mapped_column()
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    current: Mapped[bool] = mapped_column(Boolean, default=True)
    __table_args__ = (
        Index("ix_section_grade_current", "section_id", postgresql_where=text("current")),
        Index("ix_section_grade_section", "section_id", "computed_at"),
    )


class SectionRef(NamedTuple):
    """What grading needs of a section (no geometry: a city has 100,000 of them)."""

    id: str
    length_m: float
    highway: str | None


_SECTION_REF = select(RoadSection.id, RoadSection.length_m, RoadSection.highway)


def section_refs(session: Session, section_ids: Sequence[str]) -> list[SectionRef]:
    rows = session.execute(_SECTION_REF.where(RoadSection.id == func.any(array(list(section_ids))))).all()
    return [SectionRef(*row) for row in rows]


def section_surveys(
    session: Session,
    sections: Sequence[SectionRef],
    config: GradingConfig,
    now: datetime,
) -> dict[str, SectionSurvey]:
    """Each section's coverage by usable frames within the config's ``max_age_days`` before ``now``: the
    passes that saw a stretch of it (service/db/coverage.py, the one source of coverage)."""
    since = now - timedelta(days=config.max_age_days)
    periods = period_coverage(session, [s.id for s in sections], since, now)
    out = {}
    for s in sections:
        period = periods[s.id]
        out[s.id] = SectionSurvey(
            section_id=s.id,
            length_m=s.length_m,
            width_m=config.width_m(s.highway),
            surveyed_share=period.seen_share(s.length_m),
            passes=period.passes_seeing,
            last_pass=period.last_seen_at,
        )
    return out


def section_sites(session: Session, section_ids: Sequence[str]) -> dict[str, list[GradeSite]]:
    """The damage sites on each section (rejected and repaired ones marked as not counting)."""
    rows = session.execute(
        select(
            SiteSurvey.section_id,
            DamageSite.id,
            DamageSite.class_name,
            DamageSite.size_m,
            DamageSite.max_confidence,
            DamageSite.status,
        )
        .join(DamageSite, DamageSite.id == SiteSurvey.site_id)
        .where(SiteSurvey.section_id == func.any(array(list(section_ids))))
    ).all()
    out: dict[str, list[GradeSite]] = {sid: [] for sid in section_ids}
    for section_id, site_id, cls, size, conf, status in rows:
        out.setdefault(str(section_id), []).append(
            GradeSite(site_id, cls, size, conf, counts=status not in NOT_COUNTED)
        )
    return out


def _same(row: SectionGrade, grade: Grade) -> bool:
    return (
        row.grade == grade.grade
        and row.status == grade.status
        and row.config_version == grade.config_version
        and row.inputs.get("components") == grade.as_dict()["components"]
        and row.passes == grade.passes
    )


def store_grades(session: Session, grades: Iterable[Grade], now: datetime) -> int:
    """Write the grades that changed as new current rows (the old ones stay as history); returns how many."""
    grades = list(grades)
    current = {
        row.section_id: row
        for row in session.scalars(
            select(SectionGrade).where(
                SectionGrade.current,
                SectionGrade.section_id == func.any(array([g.section_id for g in grades])),
            )
        )
    }
    changed = [g for g in grades if g.section_id not in current or not _same(current[g.section_id], g)]
    changed_ids = {g.section_id for g in changed}
    unchanged = [g.section_id for g in grades if g.section_id in current and g.section_id not in changed_ids]
    if unchanged:
        session.execute(
            update(SectionGrade)
            .where(SectionGrade.current, SectionGrade.section_id == func.any(array(unchanged)))
            .values(checked_at=now)
        )
    if not changed:
        return 0
    session.execute(
        update(SectionGrade)
        .where(
            SectionGrade.current, SectionGrade.section_id == func.any(array([g.section_id for g in changed]))
        )
        .values(current=False)
    )
    rows = [
        {
            "section_id": g.section_id,
            "computed_at": now,
            "checked_at": now,
            "grade": g.grade,
            "status": g.status,
            "colour_class": g.colour_class,
            "config_version": g.config_version,
            "surveyed_share": g.surveyed_share,
            "passes": g.passes,
            "last_pass": g.last_pass,
            "inputs": g.as_dict(),
            "current": True,
        }
        for g in changed
    ]
    # COPY: a city's nightly regrade writes up to 100,000 rows (an ORM insert is 10x slower here).
    columns = list(rows[0])
    raw = cast("psycopg.Connection[Any]", session.connection().connection.driver_connection)
    with raw.cursor() as cursor, cursor.copy(f"COPY section_grade ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([json.dumps(row[c]) if c == "inputs" else row[c] for c in columns])
    session.flush()
    return len(changed)


def grade_sections(
    session: Session, sections: Sequence[SectionRef], config: GradingConfig, now: datetime
) -> list[Grade]:
    """The grades of ``sections`` from the database's current sites and coverage (nothing written)."""
    surveys = section_surveys(session, sections, config, now)
    sites = section_sites(session, [s.id for s in sections])
    return [grade_section(surveys[s.id], sites[s.id], config, now) for s in sections]


def recompute(session: Session, config: GradingConfig, now: datetime, section_ids: Sequence[str]) -> int:
    """Grade the given sections now (after a new sighting, a decision); returns how many changed."""
    sections = section_refs(session, section_ids)
    return store_grades(session, grade_sections(session, sections, config, now), now) if sections else 0


def _batches(session: Session, batch: int) -> Iterator[list[SectionRef]]:
    last = ""
    while True:
        rows = session.execute(
            _SECTION_REF.where(RoadSection.id > last).order_by(RoadSection.id).limit(batch)
        ).all()
        if not rows:
            return
        yield [SectionRef(*row) for row in rows]
        last = rows[-1].id


def recompute_all(
    sessions: sessionmaker[Session], config: GradingConfig, now: datetime, batch: int = 5000
) -> dict[str, int]:
    """Grade every section (nightly, or after a config change), one transaction per batch."""
    counts = {"sections": 0, "changed": 0}
    with sessions() as reader:
        for sections in _batches(reader, batch):
            with sessions() as session, session.begin():
                counts["changed"] += store_grades(
                    session, grade_sections(session, sections, config, now), now
                )
            counts["sections"] += len(sections)
    return counts


def sections_of_sites(session: Session, site_ids: Sequence[int]) -> list[str]:
    """The sections that hold these sites (to regrade after their sightings or decisions change)."""
    rows = session.scalars(
        select(SiteSurvey.section_id).where(
            SiteSurvey.site_id.in_(site_ids), SiteSurvey.section_id.is_not(None)
        )
    )
    return sorted({r for r in rows if r})


# Sections whose sites changed (a sighting, a decision) or whose passes changed (new frames) since their
# grade was last checked, and sections never graded that have sites or frames.
_DIRTY_SQL = text(
    """
    SELECT section_id FROM (
        SELECT ss.section_id FROM site_survey ss
        JOIN damage_site d ON d.id = ss.site_id
        LEFT JOIN section_grade g ON g.section_id = ss.section_id AND g.current
        WHERE ss.section_id IS NOT NULL AND (g.id IS NULL OR d.updated_at > g.checked_at)
        UNION
        SELECT c.section_id FROM section_coverage c
        LEFT JOIN section_grade g ON g.section_id = c.section_id AND g.current
        WHERE g.id IS NULL OR c.updated_at > g.checked_at
    ) dirty
    LIMIT :limit
    """
)


def dirty_sections(session: Session, limit: int = 5000) -> list[str]:
    """Sections to regrade because something about them changed since they were last checked."""
    return sorted(str(r) for r in session.scalars(_DIRTY_SQL, {"limit": limit}))


def regrade_dirty(
    sessions: sessionmaker[Session], config: GradingConfig, now: datetime, limit: int = 5000
) -> int:
    """Regrade the sections that changed (every few minutes in a worker); returns how many grades changed."""
    with sessions() as session, session.begin():
        ids = dirty_sections(session, limit)
        return recompute(session, config, now, ids) if ids else 0
