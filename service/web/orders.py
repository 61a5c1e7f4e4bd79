"""Work-order pages: list, create from selected sites, edit crew and status, print, export."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.access.deps import ReviewerDep, SessionDep, ViewerDep
from service.access.sessions import check_csrf_form
from service.db.decisions import DecisionError
from service.db.demo import demo_site_ids
from service.db.engine import transaction
from service.db.history import verification_of
from service.db.sites import get_site
from service.db.tables import DamageSite, Frame, Observation, User, WorkOrder, WorkOrderEvent, WorkOrderSite
from service.db.work_orders import (
    add_sites,
    create_work_order,
    get_order,
    order_sites,
    remove_site,
    update_work_order,
)
from service.domain.history import CONFIRMED, REAPPEARED
from service.domain.statuses import WORK_ORDER_ACTIVE, WORK_ORDER_TRANSITIONS, SiteStatus
from service.exports import order_csv, order_geojson
from service.web.pages import band, map_feature
from service.web.render import WebRoute, flash, page, redirect, translator

router = APIRouter(route_class=WebRoute, include_in_schema=False)


@router.get("/orders")
def orders_page(request: Request, session: SessionDep, user: ViewerDep) -> Response:
    counts = (
        select(WorkOrderSite.work_order_id, func.count().label("n"))
        .group_by(WorkOrderSite.work_order_id)
        .subquery()
    )
    rows = session.execute(
        select(WorkOrder, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.work_order_id == WorkOrder.id)
        .order_by(WorkOrder.status.in_(WORK_ORDER_ACTIVE).desc(), WorkOrder.id.desc())
    ).all()
    return page(request, "orders.html", user, rows=rows)


@router.post("/orders", dependencies=[Depends(check_csrf_form)])
def order_create(
    request: Request,
    user: ReviewerDep,
    title: Annotated[str, Form()] = "",
    crew: Annotated[str, Form()] = "",
    site: Annotated[list[str] | None, Form()] = None,
) -> Response:
    t = translator(request)
    try:
        with transaction(request.app.state.sessions) as session:
            sites = [get_site(session, s) for s in site or []]
            order = create_work_order(session, user, title, sites, crew=crew)
    except DecisionError as exc:
        flash(request, t("flash.order_failed", detail=str(exc)), "error")
        return redirect("/sites")
    flash(request, t("flash.order_created", id=order.id))
    return redirect(f"/orders/{order.id}")


def order_context(session: Session, order: WorkOrder, t: Any) -> dict[str, Any]:
    sites = order_sites(order)
    events = session.execute(
        select(WorkOrderEvent, User.username)
        .join(User, User.id == WorkOrderEvent.user_id)
        .where(WorkOrderEvent.work_order_id == order.id)
        .order_by(WorkOrderEvent.id.desc())
    ).all()
    photo: dict[int, tuple[Observation, Frame]] = {}
    if sites:
        for obs, frame in session.execute(
            select(Observation, Frame)
            .join(Frame, Observation.frame_id == Frame.id)
            .where(Observation.site_id.in_([s.id for s in sites]), Frame.image_key.is_not(None))
            .order_by(Observation.confidence.desc())
        ).all():
            photo.setdefault(obs.site_id, (obs, frame))  # type: ignore[arg-type]
    creator = session.get(User, order.created_by_id)
    return {
        "order": order,
        "sites": sites,
        "events": events,
        "photo": photo,
        "creator": creator.username if creator else "?",
        "transitions": WORK_ORDER_TRANSITIONS[order.status],
        "active": order.status in WORK_ORDER_ACTIVE,
        "band": band,
        "features": {"type": "FeatureCollection", "features": [map_feature(s, t) for s in sites]},
        "demo": demo_site_ids(session, [s.id for s in sites]),
        "verified": _drive_verification(session, sites),
    }


def _drive_verification(session: Session, sites: list[DamageSite]) -> dict[str, int]:
    """How many of the order's repaired sites routine drives confirmed, and how many still wait."""
    states = verification_of(session, [s.id for s in sites if s.status == SiteStatus.REPAIRED])
    repaired = sum(1 for s in sites if s.status == SiteStatus.REPAIRED)
    confirmed = sum(1 for v in states.values() if v.state == CONFIRMED)
    reappeared = sum(1 for v in states.values() if v.state == REAPPEARED)
    return {"repaired": repaired, "confirmed": confirmed, "reappeared": reappeared}


@router.get("/orders/{order_id}")
def order_page(order_id: int, request: Request, session: SessionDep, user: ViewerDep) -> Response:
    order = get_order(session, order_id)
    return page(request, "order.html", user, **order_context(session, order, translator(request)))


@router.get("/orders/{order_id}/print")
def order_print(order_id: int, request: Request, session: SessionDep, user: ViewerDep) -> Response:
    order = get_order(session, order_id)
    return page(request, "order_print.html", user, **order_context(session, order, translator(request)))


@router.get("/orders/{order_id}/sites.csv")
def order_csv_page(order_id: int, session: SessionDep, user: ViewerDep) -> StreamingResponse:
    return order_csv(get_order(session, order_id))


@router.get("/orders/{order_id}/sites.geojson")
def order_geojson_page(order_id: int, session: SessionDep, user: ViewerDep) -> StreamingResponse:
    return order_geojson(get_order(session, order_id))


@router.post("/orders/{order_id}", dependencies=[Depends(check_csrf_form)])
def order_update(
    order_id: int,
    request: Request,
    user: ReviewerDep,
    title: Annotated[str, Form()] = "",
    crew: Annotated[str, Form()] = "",
    status: Annotated[str, Form()] = "",
    notes: Annotated[str, Form()] = "",
) -> Response:
    t = translator(request)
    try:
        with transaction(request.app.state.sessions) as session:
            order = get_order(session, order_id)
            update_work_order(
                session, order, user, title=title, crew=crew, status=status or None, notes=notes
            )
    except DecisionError as exc:
        flash(request, t("flash.order_failed", detail=str(exc)), "error")
    else:
        flash(request, t("flash.order_saved"))
    return redirect(f"/orders/{order_id}")


@router.post("/sites/{site}/order", dependencies=[Depends(check_csrf_form)])
def order_add_site(
    site: str, request: Request, user: ReviewerDep, order: Annotated[int, Form()] = 0
) -> Response:
    """Add the site to the chosen active work order (and schedule it)."""
    t, order_id = translator(request), order
    try:
        with transaction(request.app.state.sessions) as session:
            add_sites(session, get_order(session, order_id), user, [get_site(session, site)])
    except DecisionError as exc:
        flash(request, t("flash.order_failed", detail=str(exc)), "error")
        return redirect(f"/sites/{site}")
    flash(request, t("flash.site_added", id=order_id))
    return redirect(f"/orders/{order_id}")


@router.post("/orders/{order_id}/sites/{site_id}/remove", dependencies=[Depends(check_csrf_form)])
def order_remove_site(order_id: int, site_id: str, request: Request, user: ReviewerDep) -> Response:
    t = translator(request)
    try:
        with transaction(request.app.state.sessions) as session:
            remove_site(session, get_order(session, order_id), user, get_site(session, site_id))
    except DecisionError as exc:
        flash(request, t("flash.order_failed", detail=str(exc)), "error")
    else:
        flash(request, t("flash.site_removed"))
    return redirect(f"/orders/{order_id}")
