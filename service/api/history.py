"""A site across surveys (its passes, growth, verification by routine drives) and the verification queue."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import select

from service.access.deps import SessionDep, ViewerDep
from service.db.history import SiteVerification, timeline
from service.db.sites import get_site, site_feature
from service.db.tables import DamageSite
from service.domain.history import VERIFICATION_STATES
from service.domain.params import parse_choices

router = APIRouter(prefix="/api/v1", tags=["read"])


@router.get("/sites/{site_id}/timeline", summary="Every pass that covered the site, growth, verification")
def site_timeline(site_id: str, request: Request, session: SessionDep, user: ViewerDep) -> dict[str, Any]:
    site = get_site(session, site_id)
    return {"site": str(site.public_id), **timeline(session, site, request.app.state.settings.verify_passes)}


@router.get("/verification", summary="Sites by what routine drives said (e.g. not_seen_again, reappeared)")
def verification_queue(
    session: SessionDep,
    user: ViewerDep,
    state: Annotated[str | None, Query(description="comma-separated states")] = "not_seen_again,reappeared",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    states = parse_choices(state, VERIFICATION_STATES, "state")
    rows = session.execute(
        select(DamageSite, SiteVerification)
        .join(SiteVerification, SiteVerification.site_id == DamageSite.id)
        .where(SiteVerification.state.in_(states))
        .order_by(SiteVerification.changed_at.desc(), DamageSite.id)
        .limit(limit)
    ).all()
    return {
        "states": states,
        "sites": [
            {**site_feature(site), "verification": {"state": v.state, "passes_since": v.passes_since,
             "since": v.since.isoformat() if v.since else None, "changed_at": v.changed_at.isoformat()}}
            for site, v in rows
        ],
    }  # fmt: skip
