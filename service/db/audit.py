"""The audit log of accounts and frames: one row per action, never changed afterwards."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.tables import AuditEvent


def record(
    session: Session,
    action: str,
    actor_id: int | None,
    *,
    target_user_id: int | None = None,
    frame_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add one event (committed with the caller's transaction)."""
    event = AuditEvent(
        action=action,
        actor_id=actor_id,
        target_user_id=target_user_id,
        frame_id=frame_id,
        detail=detail or {},
    )
    session.add(event)
    return event


def recent(session: Session, limit: int = 50) -> list[AuditEvent]:
    """The newest events first."""
    return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)))
