"""JSON API for work orders: list, create, change, add and remove sites, export.

Reading needs the viewer role, changing needs the reviewer role (HTTP Basic, or the browser session
with the ``X-CSRF-Token`` header).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.access.deps import ReviewerDep, SessionDep, ViewerDep
from service.access.sessions import check_csrf_api
from service.api.schemas import SitesIn, WorkOrderIn, WorkOrderOut, WorkOrderPatch
from service.db.engine import transaction
from service.db.sites import get_site
from service.db.tables import User, WorkOrder
from service.db.work_orders import (
    add_sites,
    create_work_order,
    get_order,
    order_history,
    order_sites,
    remove_site,
    update_work_order,
)
from service.domain.params import parse_choices
from service.domain.statuses import WORK_ORDER_STATUSES
from service.exports import order_csv, order_geojson, order_gpkg

router = APIRouter(prefix="/api/v1", tags=["decisions and work orders"])
WRITE = [Depends(check_csrf_api)]


def order_out(session: Session, order: WorkOrder, history: bool = False) -> WorkOrderOut:
    creator = session.get(User, order.created_by_id)
    extra = {"history": order_history(session, order)} if history else {}
    return WorkOrderOut(
        id=order.id,
        title=order.title,
        crew=order.crew,
        status=order.status,
        notes=order.notes,
        created_by=creator.username if creator else None,
        created_at=order.created_at.isoformat(),
        updated_at=order.updated_at.isoformat(),
        sites=[str(s.public_id) for s in order_sites(order)],
        **extra,
    )


@router.get("/work-orders", summary="Work orders, newest first", response_model_exclude_unset=True)
def list_orders(session: SessionDep, user: ViewerDep, status: str | None = None) -> list[WorkOrderOut]:
    query = select(WorkOrder).order_by(WorkOrder.id.desc())
    statuses = parse_choices(status, WORK_ORDER_STATUSES, "status")
    if statuses:
        query = query.where(WorkOrder.status.in_(statuses))
    return [order_out(session, o) for o in session.scalars(query)]


@router.post("/work-orders", status_code=201, dependencies=WRITE, summary="Create a work order")
def post_order(body: WorkOrderIn, request: Request, user: ReviewerDep) -> WorkOrderOut:
    with transaction(request.app.state.sessions) as session:
        sites = [get_site(session, s) for s in body.sites]
        order = create_work_order(session, user, body.title, sites, crew=body.crew, notes=body.notes)
        session.refresh(order)
        return order_out(session, order, history=True)


@router.get("/work-orders/{order_id}", summary="A work order with its history")
def get_order_json(order_id: int, session: SessionDep, user: ViewerDep) -> WorkOrderOut:
    return order_out(session, get_order(session, order_id), history=True)


@router.patch("/work-orders/{order_id}", dependencies=WRITE, summary="Change title, crew, notes or status")
def patch_order(order_id: int, body: WorkOrderPatch, request: Request, user: ReviewerDep) -> WorkOrderOut:
    with transaction(request.app.state.sessions) as session:
        order = get_order(session, order_id)
        update_work_order(session, order, user, **body.model_dump(exclude_unset=True))
        session.refresh(order)
        return order_out(session, order, history=True)


@router.post(
    "/work-orders/{order_id}/sites",
    dependencies=WRITE,
    summary="Add sites (schedules them)",
    response_model_exclude_unset=True,
)
def post_order_sites(order_id: int, body: SitesIn, request: Request, user: ReviewerDep) -> WorkOrderOut:
    with transaction(request.app.state.sessions) as session:
        order = get_order(session, order_id)
        add_sites(session, order, user, [get_site(session, s) for s in body.sites])
        return order_out(session, order)


@router.delete(
    "/work-orders/{order_id}/sites/{site_id}", status_code=204, dependencies=WRITE, summary="Remove a site"
)
def delete_order_site(order_id: int, site_id: str, request: Request, user: ReviewerDep) -> Response:
    with transaction(request.app.state.sessions) as session:
        remove_site(session, get_order(session, order_id), user, get_site(session, site_id))
    return Response(status_code=204)


@router.get("/work-orders/{order_id}/sites.csv", summary="A work order's sites as CSV")
def order_csv_api(order_id: int, session: SessionDep, user: ViewerDep) -> StreamingResponse:
    return order_csv(get_order(session, order_id))


@router.get("/work-orders/{order_id}/sites.geojson", summary="A work order's sites as GeoJSON")
def order_geojson_api(order_id: int, session: SessionDep, user: ViewerDep) -> StreamingResponse:
    return order_geojson(get_order(session, order_id))


@router.get("/work-orders/{order_id}/sites.gpkg", summary="A work order's sites as a GeoPackage")
def order_gpkg_api(order_id: int, session: SessionDep, user: ViewerDep) -> FileResponse:
    return order_gpkg(get_order(session, order_id))
