"""JSON API for staff decisions on sites, so tools can do what staff do in the browser.

Reading needs the viewer role, changing needs the reviewer role (HTTP Basic, or the browser session
with the ``X-CSRF-Token`` header). Vehicle tokens are not staff credentials and get 401.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from service.access.deps import ReviewerDep, SessionDep, ViewerDep
from service.access.sessions import check_csrf_api
from service.api.schemas import DecisionIn, DecisionOut, DecisionResult
from service.db.decisions import decide, decisions_of
from service.db.engine import transaction
from service.db.sites import get_site, site_feature
from service.db.tables import Decision

router = APIRouter(prefix="/api/v1", tags=["decisions and work orders"])
WRITE = [Depends(check_csrf_api)]


def decision_out(d: Decision, site_id: str) -> DecisionOut:
    return DecisionOut(
        id=d.id,
        site=site_id,
        user=d.user_name,
        at=d.at.isoformat(),
        action=d.action,
        reason=d.reason,
        previous_status=d.previous_status,
        new_status=d.new_status,
        previous_class=d.previous_class,
        new_class=d.new_class,
        model_version_id=d.model_version_id,
        ranking_version=d.ranking_version,
    )


@router.get("/sites/{site_id}/decisions", summary="The decisions on a site, oldest first")
def list_decisions(site_id: str, session: SessionDep, user: ViewerDep) -> list[DecisionOut]:
    site = get_site(session, site_id)
    return [decision_out(d, site_id) for d in decisions_of(session, site)]


@router.post("/sites/{site_id}/decisions", status_code=201, dependencies=WRITE, summary="Decide on a site")
def post_decision(site_id: str, body: DecisionIn, request: Request, user: ReviewerDep) -> DecisionResult:
    with transaction(request.app.state.sessions) as session:
        site = get_site(session, site_id)
        decision = decide(session, site, user, body.action, reason=body.reason, new_class=body.class_)
        session.refresh(decision)
        return DecisionResult.model_validate(
            {"decision": decision_out(decision, site_id), "site": site_feature(site)}
        )
