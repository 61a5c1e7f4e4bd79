"""Staff pages: the ranked list with its map, filters and exports; a site with photos, score, history and
the decision forms."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import StreamingResponse
from geoalchemy2.shape import to_shape
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from service.access.deps import ReviewerDep, SessionDep, ViewerDep
from service.access.sessions import check_csrf_form
from service.db.coverage import daily_summary
from service.db.decisions import DecisionError, allowed_actions, decide, decisions_of
from service.db.demo import demo_frame_ids, demo_site_ids
from service.db.drives import tracks_of
from service.db.engine import transaction
from service.db.history import timeline
from service.db.sites import get_site, ranked
from service.db.tables import DamageSite, Frame, ModelVersion, Observation, WorkOrder, WorkOrderSite
from service.db.work_orders import active_order_of
from service.domain.classes import CLASSES
from service.domain.statuses import SITE_STATUSES, WORK_ORDER_ACTIVE, SiteStatus
from service.exports import sites_csv, sites_geojson
from service.web.filters import WebSiteFilter
from service.web.render import WebRoute, flash, page, redirect, translator

router = APIRouter(route_class=WebRoute, include_in_schema=False)
PAGE_SIZE = 50
MAP_LIMIT = 5000
FilterDep = Annotated[WebSiteFilter, Depends()]


def band(priority: float) -> str:
    """Priority band used for colours and its spoken label (the number is always shown too)."""
    return "high" if priority >= 70 else "medium" if priority >= 40 else "low"


@router.get("/")
def home(user: ViewerDep) -> Response:
    return redirect("/sites")


@router.get("/sites")
def sites_page(
    request: Request, session: SessionDep, user: ViewerDep, filters: FilterDep, page_no: int = 1
) -> Response:
    page_no = min(max(page_no, 1), 10**9)  # the offset must stay a bigint
    total = session.scalar(filters.apply(select(func.count()).select_from(DamageSite))) or 0
    sites = session.scalars(
        ranked(filters.apply(select(DamageSite))).limit(PAGE_SIZE).offset((page_no - 1) * PAGE_SIZE)
    ).all()
    pages = max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    tiles_above = request.app.state.settings.map_tiles_above
    return page(
        request,
        "sites.html",
        user,
        tiles_above=tiles_above,
        # Above the threshold the map draws vector tiles: it needs the sites' extent and the labels.
        map_extent=site_extent(session, filters) if total > tiles_above else "",
        map_labels=map_labels(translator(request)) if total > tiles_above else "",
        filters=filters,
        sites=sites,
        total=total,
        page_no=page_no,
        pages=pages,
        first_rank=(page_no - 1) * PAGE_SIZE + 1,
        demo=demo_site_ids(session, [s.id for s in sites]),
        classes=CLASSES,
        statuses=SITE_STATUSES,
        band=band,
        query=filters.query_string(),
        page_url=lambda n: "/sites?" + filters.query_string(page_no=n),
        coverage=daily_summary(request.app.state, session),
    )


def site_extent(session: SessionDep, filters: WebSiteFilter) -> str:
    """West,south,east,north of the filtered sites (for the tiled map to fit them); "" when none."""
    return map_extent(session, filters.apply(select(DamageSite.id)), DamageSite.position)


def map_extent(session: Session, query: Select[Any], geom: Any) -> str:
    """West,south,east,north of ``geom`` over the rows of ``query`` (for a tiled map to fit them, on the
    sites and the streets pages); "" when none."""
    extent = func.ST_Extent(geom)
    box = session.execute(
        query.with_only_columns(
            func.ST_XMin(extent), func.ST_YMin(extent), func.ST_XMax(extent), func.ST_YMax(extent)
        )
    ).one()
    return "" if box[0] is None else ",".join(f"{v:.6f}" for v in box)


def map_labels(t: Any) -> str:
    """Class and status names for the tiled map's popups (the tiles carry the codes), as JSON."""
    return json.dumps(
        {
            "class": {c: t(f"class.{c}") for c in CLASSES},
            "status": {s: t(f"status.{s}") for s in SITE_STATUSES},
        }
    )


def map_feature(site: DamageSite, t: Any, demo: bool = False) -> dict[str, Any]:
    p = to_shape(site.position)
    label = t(
        "js.marker",
        cls=t(f"class.{site.class_name}"),
        status=t(f"status.{site.status}"),
        priority=t.number(site.priority),
    )
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [round(p.x, 7), round(p.y, 7)]},
        "properties": {
            "id": str(site.public_id),
            "url": f"/sites/{site.public_id}",
            "status": site.status,
            "band": band(site.priority)
            if site.status not in (SiteStatus.REJECTED, SiteStatus.REPAIRED)
            else "closed",
            "label": f"{t('demo.badge')}: {label}" if demo else label,  # demo data, marked on the map too
        },
    }


@router.get("/sites/map.geojson")
def sites_map(request: Request, session: SessionDep, user: ViewerDep, filters: FilterDep) -> dict[str, Any]:
    t = translator(request)
    sites = session.scalars(ranked(filters.apply(select(DamageSite))).limit(MAP_LIMIT)).all()
    demo = demo_site_ids(session, [s.id for s in sites])
    return {"type": "FeatureCollection", "features": [map_feature(s, t, s.id in demo) for s in sites]}


@router.get("/sites/export.csv")
def export_sites_csv(session: SessionDep, user: ViewerDep, filters: FilterDep) -> StreamingResponse:
    return sites_csv(
        session.scalars(ranked(filters.apply(select(DamageSite))).execution_options(yield_per=500))
    )


@router.get("/sites/export.geojson")
def export_sites_geojson(session: SessionDep, user: ViewerDep, filters: FilterDep) -> StreamingResponse:
    return sites_geojson(
        session.scalars(ranked(filters.apply(select(DamageSite))).execution_options(yield_per=500))
    )


def site_context(session: SessionDep, site: DamageSite) -> dict[str, Any]:
    rows = session.execute(
        select(Observation, Frame)
        .join(Frame, Observation.frame_id == Frame.id)
        .where(Observation.site_id == site.id)
        .order_by(Frame.captured_at.desc().nulls_last(), Observation.id.desc())
    ).all()
    photos: dict[int, dict[str, Any]] = {}
    for obs, frame in rows:
        entry = photos.setdefault(frame.id, {"frame": frame, "observations": []})
        entry["observations"].append(obs)
    decisions = decisions_of(session, site)
    history: list[dict[str, Any]] = [{"kind": "decision", "at": d.at, "item": d} for d in decisions] + [
        {"kind": "sighting", "at": frame.captured_at or frame.created_at, "item": obs, "frame": frame}
        for obs, frame in rows
    ]
    history.sort(key=lambda e: e["at"], reverse=True)
    model_ids = {site.model_version_id, *(d.model_version_id for d in decisions)} - {None}
    models = {m.id: m for m in session.scalars(select(ModelVersion).where(ModelVersion.id.in_(model_ids)))}
    orders = session.scalars(
        select(WorkOrder)
        .join(WorkOrderSite, WorkOrderSite.work_order_id == WorkOrder.id)
        .where(WorkOrderSite.site_id == site.id)
        .order_by(WorkOrder.id)
    ).all()
    open_orders = session.scalars(
        select(WorkOrder).where(WorkOrder.status.in_(WORK_ORDER_ACTIVE)).order_by(WorkOrder.id)
    ).all()
    p = to_shape(site.position)
    return {
        "site": site,
        "lat": p.y,
        "lon": p.x,
        "photos": list(photos.values()),
        "tracks": tracks_of(session, site.id),  # how the site was formed (drives, GPS offsets)
        "demo_site": bool(demo_site_ids(session, [site.id])),
        "demo_frames": demo_frame_ids(session, photos.keys()),
        "history": history,
        "models": models,
        "orders": orders,
        "active_order": active_order_of(session, site),
        "open_orders": open_orders,
        "actions": allowed_actions(site),
        "classes": CLASSES,
        "band": band,
    }


def sparkline(passes: list[dict[str, Any]], width: int = 240, height: int = 48) -> str:
    """SVG polyline points of the size over the sightings (empty with fewer than two sized ones)."""
    sized = [(p["at"], p["size_m"]) for p in passes if p["seen"] and p["size_m"] is not None]
    if len(sized) < 2:
        return ""
    top = max(s for _, s in sized) or 1.0
    step = (width - 8) / (len(sized) - 1)
    return " ".join(
        f"{4 + i * step:.1f},{height - 4 - (height - 8) * s / top:.1f}" for i, (_, s) in enumerate(sized)
    )


@router.get("/sites/{site_id}")
def site_page(site_id: str, request: Request, session: SessionDep, user: ViewerDep) -> Response:
    site = get_site(session, site_id)
    survey = timeline(session, site, request.app.state.settings.verify_passes)  # passes over its spot
    return page(
        request,
        "site.html",
        user,
        survey=survey,
        sparkline=sparkline(survey["passes"]),
        **site_context(session, site),
    )


@router.post("/sites/{site_id}/decide", dependencies=[Depends(check_csrf_form)])
def site_decide(
    site_id: str,
    request: Request,
    user: ReviewerDep,
    action: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    new_class: Annotated[str, Form()] = "",
) -> Response:
    t = translator(request)
    try:
        with transaction(request.app.state.sessions) as session:
            site = get_site(session, site_id)
            decide(session, site, user, action, reason=reason, new_class=new_class or None)
    except DecisionError as exc:
        flash(request, t("flash.decision_failed", detail=str(exc)), "error")
    else:
        flash(request, t(f"flash.decided.{action}"))
    return redirect(f"/sites/{site_id}")
