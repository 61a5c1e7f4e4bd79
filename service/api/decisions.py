"""JSON API for decisions and work orders, so tools can do what staff do in the browser.

Reading needs the viewer role, changing needs the reviewer role (HTTP Basic, or the browser session
with the ``X-CSRF-Token`` header). Vehicle tokens are not staff credentials and get 401.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.access.deps import ReviewerDep, SessionDep, ViewerDep
from service.access.sessions import check_csrf_api
from service.api.sites import get_site, site_feature
from service.db.decisions import (
    ACTIONS,
    DecisionError,
    add_sites,
    create_work_order,
    decide,
    decisions_of,
    order_sites,
    remove_site,
    update_work_order,
)
from service.db.engine import transaction
from service.db.tables import WORK_ORDER_STATUSES, Decision, User, WorkOrder, WorkOrderEvent
from service.web.orders import get_order, order_csv_export, order_geojson_export

router = APIRouter(prefix="/api/v1", tags=["decisions and work orders"])
WRITE = [Depends(check_csrf_api)]


class DecisionIn(BaseModel):
    action: str = Field(description=f"one of {', '.join(ACTIONS)}")
    reason: str | None = Field(None, description="required for reject (why it is a false detection)")
    class_: str | None = Field(None, alias="class", description="the new class, for reclassify")


class WorkOrderIn(BaseModel):
    title: str
    crew: str | None = None
    notes: str | None = None
    sites: list[str] = Field(description="site ids (UUIDs)")


class WorkOrderPatch(BaseModel):
    title: str | None = None
    crew: str | None = None
    notes: str | None = None
    status: str | None = Field(None, description=f"one of {', '.join(WORK_ORDER_STATUSES)}")


class SitesIn(BaseModel):
    sites: list[str]


def decision_json(d: Decision, site_id: str) -> dict[str, Any]:
    return {
        "id": d.id,
        "site": site_id,
        "user": d.user_name,
        "at": d.at.isoformat(),
        "action": d.action,
        "reason": d.reason,
        "previous_status": d.previous_status,
        "new_status": d.new_status,
        "previous_class": d.previous_class,
        "new_class": d.new_class,
        "model_version_id": d.model_version_id,
        "ranking_version": d.ranking_version,
    }


def order_json(session: Session, order: WorkOrder, history: bool = False) -> dict[str, Any]:
    creator = session.get(User, order.created_by_id)
    body: dict[str, Any] = {
        "id": order.id,
        "title": order.title,
        "crew": order.crew,
        "status": order.status,
        "notes": order.notes,
        "created_by": creator.username if creator else None,
        "created_at": order.created_at.isoformat(),
        "updated_at": order.updated_at.isoformat(),
        "sites": [str(s.public_id) for s in order_sites(order)],
    }
    if history:
        rows = session.execute(
            select(WorkOrderEvent, User.username)
            .join(User, User.id == WorkOrderEvent.user_id)
            .where(WorkOrderEvent.work_order_id == order.id)
            .order_by(WorkOrderEvent.id)
        ).all()
        body["history"] = [
            {"at": e.at.isoformat(), "user": name, "action": e.action, **e.detail} for e, name in rows
        ]
    return body


def _fail(exc: DecisionError) -> HTTPException:
    return HTTPException(exc.status_code, str(exc))


@router.get("/sites/{site_id}/decisions", summary="The decisions on a site, oldest first")
def list_decisions(site_id: str, session: SessionDep, user: ViewerDep) -> list[dict[str, Any]]:
    site = get_site(session, site_id)
    return [decision_json(d, site_id) for d in decisions_of(session, site)]


@router.post("/sites/{site_id}/decisions", status_code=201, dependencies=WRITE, summary="Decide on a site")
def post_decision(site_id: str, body: DecisionIn, request: Request, user: ReviewerDep) -> dict[str, Any]:
    try:
        with transaction(request.app.state.sessions) as session:
            site = get_site(session, site_id)
            decision = decide(session, site, user, body.action, reason=body.reason, new_class=body.class_)
            session.refresh(decision)
            return {"decision": decision_json(decision, site_id), "site": site_feature(site)}
    except DecisionError as exc:
        raise _fail(exc) from exc


@router.get("/work-orders", summary="Work orders, newest first")
def list_orders(session: SessionDep, user: ViewerDep, status: str | None = None) -> list[dict[str, Any]]:
    query = select(WorkOrder).order_by(WorkOrder.id.desc())
    if status and status not in WORK_ORDER_STATUSES:
        raise HTTPException(422, f"status must be one of {', '.join(WORK_ORDER_STATUSES)}")
    if status:
        query = query.where(WorkOrder.status == status)
    return [order_json(session, o) for o in session.scalars(query)]


@router.post("/work-orders", status_code=201, dependencies=WRITE, summary="Create a work order")
def post_order(body: WorkOrderIn, request: Request, user: ReviewerDep) -> dict[str, Any]:
    try:
        with transaction(request.app.state.sessions) as session:
            sites = [get_site(session, s) for s in body.sites]
            order = create_work_order(session, user, body.title, sites, crew=body.crew, notes=body.notes)
            session.refresh(order)
            return order_json(session, order, history=True)
    except DecisionError as exc:
        raise _fail(exc) from exc


@router.get("/work-orders/{order_id}", summary="A work order with its history")
def get_order_json(order_id: int, session: SessionDep, user: ViewerDep) -> dict[str, Any]:
    return order_json(session, get_order(session, order_id), history=True)


@router.patch("/work-orders/{order_id}", dependencies=WRITE, summary="Change title, crew, notes or status")
def patch_order(order_id: int, body: WorkOrderPatch, request: Request, user: ReviewerDep) -> dict[str, Any]:
    try:
        with transaction(request.app.state.sessions) as session:
            order = get_order(session, order_id)
            update_work_order(session, order, user, **body.model_dump(exclude_unset=True))
            session.refresh(order)
            return order_json(session, order, history=True)
    except DecisionError as exc:
        raise _fail(exc) from exc


@router.post("/work-orders/{order_id}/sites", dependencies=WRITE, summary="Add sites (schedules them)")
def post_order_sites(order_id: int, body: SitesIn, request: Request, user: ReviewerDep) -> dict[str, Any]:
    try:
        with transaction(request.app.state.sessions) as session:
            order = get_order(session, order_id)
            add_sites(session, order, user, [get_site(session, s) for s in body.sites])
            return order_json(session, order)
    except DecisionError as exc:
        raise _fail(exc) from exc


@router.delete(
    "/work-orders/{order_id}/sites/{site_id}", status_code=204, dependencies=WRITE, summary="Remove a site"
)
def delete_order_site(order_id: int, site_id: str, request: Request, user: ReviewerDep) -> Response:
    try:
        with transaction(request.app.state.sessions) as session:
            remove_site(session, get_order(session, order_id), user, get_site(session, site_id))
    except DecisionError as exc:
        raise _fail(exc) from exc
    return Response(status_code=204)


@router.get("/work-orders/{order_id}/sites.csv", summary="A work order's sites as CSV")
def order_csv_api(order_id: int, session: SessionDep, user: ViewerDep) -> StreamingResponse:
    return order_csv_export(get_order(session, order_id))


@router.get("/work-orders/{order_id}/sites.geojson", summary="A work order's sites as GeoJSON")
def order_geojson_api(order_id: int, session: SessionDep, user: ViewerDep) -> StreamingResponse:
    return order_geojson_export(get_order(session, order_id))
