"""Demo data in the database: which sites and frames are demo data, and removing all of it.

What is demo data is decided in ``service/domain/demo.py`` (a vehicle named ``demo:...``; its frames; the
sites only its frames support). :func:`purge_demo` deletes it in one transaction: the demo frames'
observations, the sites no other frame supports (with their decisions, work-order entries, survey rows),
the frames, their batches and drives, and the vehicles. Rows of other tables that point at deleted rows are
found in PostgreSQL's catalogue, not listed here: a table added later (tracks, grades, ...) is covered
too. A nullable reference is cleared, a required one deletes its row. Sites supported by demo and other
frames keep the other observations and are counted and scored again from them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from service.db.road_tables import RoadImport
from service.db.sites import rescore
from service.db.tables import DamageSite, Frame, Observation, Vehicle
from service.domain.demo import DEMO_PREFIX
from service.domain.ranking import RankingConfig

_DEMO_VEHICLE = Vehicle.name.startswith(DEMO_PREFIX, autoescape=True)
DEMO_IMPORT_PREFIX = "demo: "  # road_import.source of a network the demo imported

# Single-column foreign keys: (referencing table, column, nullable, referenced table).
_FOREIGN_KEYS = text(
    """
    SELECT c.conrelid::regclass::text AS child, a.attname AS col, NOT a.attnotnull AS nullable,
           c.confrelid::regclass::text AS parent,
           EXISTS (SELECT 1 FROM pg_attribute i WHERE i.attrelid = c.conrelid AND i.attname = 'id'
                   AND NOT i.attisdropped) AS has_id
    FROM pg_constraint c
    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
    WHERE c.contype = 'f' AND cardinality(c.conkey) = 1
    """
)


def demo_vehicle_ids(session: Session) -> list[int]:
    return list(session.scalars(select(Vehicle.id).where(_DEMO_VEHICLE).order_by(Vehicle.id)))


def demo_frame_ids(session: Session, frame_ids: Collection[int]) -> set[int]:
    """Those of ``frame_ids`` that demo vehicles took."""
    if not frame_ids:
        return set()
    rows = session.scalars(
        select(Frame.id)
        .join(Vehicle, Vehicle.id == Frame.vehicle_id)
        .where(Frame.id.in_(list(frame_ids)), _DEMO_VEHICLE)
    )
    return set(rows)


def demo_site_ids(session: Session, site_ids: Collection[int] | None = None) -> set[int]:
    """Those of ``site_ids`` (None: all sites) whose every observation comes from a demo frame."""
    if site_ids is not None and not site_ids:
        return set()
    query = (
        select(Observation.site_id)
        .join(Frame, Frame.id == Observation.frame_id)
        .join(Vehicle, Vehicle.id == Frame.vehicle_id)
        .where(Observation.site_id.is_not(None))
        .group_by(Observation.site_id)
        .having(func.bool_and(_DEMO_VEHICLE))
    )
    if site_ids is not None:
        query = query.where(Observation.site_id.in_(list(site_ids)))
    return {int(s) for s in session.scalars(query) if s is not None}


def has_non_demo_data(session: Session) -> bool:
    """Whether any frame or site of a real vehicle exists (``make run`` loads the demo only when not)."""
    real_frame = select(Frame.id).join(Vehicle, Vehicle.id == Frame.vehicle_id).where(~_DEMO_VEHICLE).limit(1)
    if session.scalar(real_frame) is not None:
        return True
    any_site = session.scalar(select(DamageSite.id).limit(1))
    return any_site is not None and len(demo_site_ids(session)) < (
        session.scalar(select(func.count()).select_from(DamageSite)) or 0
    )


def mark_demo_import(session: Session) -> None:
    """Name the latest road import as the demo's (``road_import.source``)."""
    latest = session.scalar(select(RoadImport).order_by(RoadImport.id.desc()).limit(1))
    if latest is not None and not latest.source.startswith(DEMO_IMPORT_PREFIX):
        latest.source = DEMO_IMPORT_PREFIX + latest.source


@dataclass
class Purged:
    """What :func:`purge_demo` deleted (counts) and the image files to delete once it is committed."""

    vehicles: int = 0
    frames: int = 0
    observations: int = 0
    sites: int = 0
    sites_rescored: int = 0
    rows: dict[str, int] = field(default_factory=dict)  # per table, everything deleted
    image_keys: list[str] = field(default_factory=list)  # anonymized copies (image store)
    upload_keys: list[str] = field(default_factory=list)  # uploads not yet anonymized (originals store)

    def summary(self) -> dict[str, Any]:
        return {
            "vehicles": self.vehicles,
            "frames": self.frames,
            "observations": self.observations,
            "sites": self.sites,
            "sites_rescored": self.sites_rescored,
            "rows": dict(sorted(self.rows.items())),
        }


class _Deleter:
    """Deletes rows by id with everything that references them (see the module docstring)."""

    def __init__(self, session: Session, purged: Purged) -> None:
        self.session, self.purged = session, purged
        self.refs: dict[str, list[tuple[str, str, bool, bool]]] = {}
        for child, col, nullable, parent, has_id in session.execute(_FOREIGN_KEYS):
            self.refs.setdefault(parent, []).append((child, col, nullable, has_id))

    def delete(self, table: str, ids: Sequence[Any]) -> int:
        if not ids:
            return 0
        for child, col, nullable, has_id in self.refs.get(table, []):
            if child == table:
                continue
            if nullable:
                self.session.execute(
                    text(f'UPDATE {child} SET "{col}" = NULL WHERE "{col}" = ANY(:ids)'), {"ids": list(ids)}
                )
            elif has_id:
                child_ids = list(
                    self.session.scalars(
                        text(f'SELECT id FROM {child} WHERE "{col}" = ANY(:ids)'), {"ids": list(ids)}
                    )
                )
                self.delete(child, child_ids)
            else:
                n = self.session.execute(
                    text(f'DELETE FROM {child} WHERE "{col}" = ANY(:ids)'), {"ids": list(ids)}
                )
                self._count(child, int(n.rowcount or 0))  # type: ignore[attr-defined]
        n = self.session.execute(text(f"DELETE FROM {table} WHERE id = ANY(:ids)"), {"ids": list(ids)})
        deleted = int(n.rowcount or 0)  # type: ignore[attr-defined]
        self._count(table, deleted)
        return deleted

    def _count(self, table: str, n: int) -> None:
        if n:
            self.purged.rows[table] = self.purged.rows.get(table, 0) + n


def _recount(session: Session, site_ids: Sequence[int], ranking: RankingConfig) -> int:
    """Sightings, observations and first/last seen of ``site_ids`` from their remaining observations."""
    for site in session.scalars(select(DamageSite).where(DamageSite.id.in_(list(site_ids)))):
        frames = select(Observation.frame_id).where(Observation.site_id == site.id)
        seen = session.execute(
            select(
                func.count(func.distinct(Frame.id)),
                func.min(func.coalesce(Frame.captured_at, Frame.created_at)),
                func.max(func.coalesce(Frame.captured_at, Frame.created_at)),
            ).where(Frame.id.in_(frames))
        ).one()
        site.sightings = int(seen[0] or 0)
        site.n_observations = int(
            session.scalar(
                select(func.count()).select_from(Observation).where(Observation.site_id == site.id)
            )
            or 0
        )
        if seen[1] is not None:
            site.first_seen, site.last_seen = seen[1], seen[2]
        rescore(site, ranking)
    return len(site_ids)


def purge_demo(session: Session, ranking: RankingConfig) -> Purged:
    """Delete all demo data (see the module docstring) in the caller's transaction; files are left to the
    caller, after the commit (:attr:`Purged.image_keys`, :attr:`Purged.upload_keys`)."""
    purged = Purged()
    vehicles = demo_vehicle_ids(session)
    if not vehicles:
        return purged
    frames = session.execute(
        select(Frame.id, Frame.sha256, Frame.image_key, Frame.anonymized_at)
        .where(Frame.vehicle_id.in_(vehicles))
        .with_for_update()  # a worker processing one of them waits, then finds it gone
    ).all()
    frame_ids = [f.id for f in frames]
    touched = {
        int(s)
        for s in session.scalars(select(Observation.site_id).where(Observation.frame_id.in_(frame_ids)))
        if s is not None
    }
    demo_sites = demo_site_ids(session, touched)
    mixed = sorted(touched - demo_sites)
    deleter = _Deleter(session, purged)
    obs_ids = list(session.scalars(select(Observation.id).where(Observation.frame_id.in_(frame_ids))))
    purged.observations = deleter.delete("observation", obs_ids)
    purged.sites = deleter.delete("damage_site", sorted(demo_sites))
    purged.frames = len(frame_ids)
    purged.vehicles = deleter.delete("vehicle", vehicles)
    purged.sites_rescored = _recount(session, mixed, ranking)
    kept_keys = set(
        session.scalars(
            select(Frame.image_key).where(Frame.image_key.in_([f.image_key for f in frames if f.image_key]))
        )
    )
    purged.image_keys = sorted({f.image_key for f in frames if f.image_key and f.image_key not in kept_keys})
    purged.upload_keys = sorted(f.sha256 for f in frames if f.anonymized_at is None)
    return purged
