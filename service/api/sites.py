"""Read API for staff and tools: ranked sites as GeoJSON/CSV, one site in full, frame images."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from typing import Annotated, Any

import cv2
import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse
from geoalchemy2.shape import to_shape
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from service.access.deps import SessionDep, ViewerDep
from service.db.tables import SITE_STATUSES, DamageSite, Frame, ModelVersion, Observation

router = APIRouter(prefix="/api/v1", tags=["read"])
CLASSES = ("D00", "D10", "D20", "D40")


class SiteFilter:
    """Query parameters shared by the list and the exports."""

    def __init__(
        self,
        bbox: Annotated[str | None, Query(description="min_lon,min_lat,max_lon,max_lat")] = None,
        status: Annotated[str | None, Query(description="comma-separated statuses")] = None,
        class_: Annotated[str | None, Query(alias="class", description="comma-separated classes")] = None,
    ) -> None:
        self.bbox = _parse_bbox(bbox) if bbox else None
        self.statuses = _parse_list(status, SITE_STATUSES, "status")
        self.classes = _parse_list(class_, CLASSES, "class")

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.bbox:
            query = query.where(DamageSite.position.op("&&")(func.ST_MakeEnvelope(*self.bbox, 4326)))
        if self.statuses:
            query = query.where(DamageSite.status.in_(self.statuses))
        if self.classes:
            query = query.where(DamageSite.class_name.in_(self.classes))
        return query


def _parse_bbox(raw: str) -> tuple[float, float, float, float]:
    try:
        values = [float(v) for v in raw.split(",")]
    except ValueError as exc:
        raise HTTPException(
            422, f"bbox must be 4 numbers min_lon,min_lat,max_lon,max_lat, got {raw!r}"
        ) from exc
    if len(values) != 4 or values[0] >= values[2] or values[1] >= values[3]:
        raise HTTPException(422, f"bbox must be min_lon,min_lat,max_lon,max_lat with min < max, got {raw!r}")
    return values[0], values[1], values[2], values[3]


def _parse_list(raw: str | None, allowed: tuple[str, ...], name: str) -> list[str]:
    if not raw:
        return []
    values = [v.strip() for v in raw.split(",") if v.strip()]
    bad = [v for v in values if v not in allowed]
    if bad:
        raise HTTPException(422, f"{name} must be among {', '.join(allowed)}, got {', '.join(bad)}")
    return values


def site_properties(site: DamageSite) -> dict[str, Any]:
    return {
        "id": str(site.public_id),
        "class": site.class_name,
        "status": site.status,
        "proposed_by_model": site.status == "open",
        "priority": round(site.priority, 2),
        "score_components": site.score_components,
        "ranking_version": site.ranking_version,
        "severity": site.severity,
        "size_m": site.size_m,
        "max_confidence": round(site.max_confidence, 4),
        "sightings": site.sightings,
        "observations": site.n_observations,
        "first_seen": site.first_seen.isoformat(),
        "last_seen": site.last_seen.isoformat(),
        "model_version_id": site.model_version_id,
    }


def site_feature(site: DamageSite) -> dict[str, Any]:
    p = to_shape(site.position)
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [round(p.x, 7), round(p.y, 7)]},
        "properties": site_properties(site),
    }


def ranked(query: Select[Any]) -> Select[Any]:
    return query.order_by(DamageSite.priority.desc(), DamageSite.id)


@router.get("/sites", summary="Damage sites as GeoJSON, highest priority first")
def list_sites(
    session: SessionDep,
    user: ViewerDep,
    filters: Annotated[SiteFilter, Depends()],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,  # PostgreSQL's OFFSET is a bigint
) -> dict[str, Any]:
    query = filters.apply(select(DamageSite))
    total = session.scalar(filters.apply(select(func.count()).select_from(DamageSite)))
    sites = session.scalars(ranked(query).limit(limit).offset(offset)).all()
    return {
        "type": "FeatureCollection",
        "features": [site_feature(s) for s in sites],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


def _stream(session: Session, query: Select[Any], batch: int = 1000) -> Iterator[DamageSite]:
    offset = 0
    while True:
        rows = session.scalars(ranked(query).limit(batch).offset(offset)).all()
        yield from rows
        if len(rows) < batch:
            return
        offset += batch


CSV_FIELDS = [
    "id",
    "class",
    "status",
    "priority",
    "severity",
    "size_m",
    "max_confidence",
    "sightings",
    "first_seen",
    "last_seen",
    "lat",
    "lon",
    "ranking_version",
]


@router.get("/sites.csv", summary="Damage sites as CSV (same filters)")
def export_csv(
    session: SessionDep, user: ViewerDep, filters: Annotated[SiteFilter, Depends()]
) -> StreamingResponse:
    def rows() -> Iterator[str]:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for site in _stream(session, filters.apply(select(DamageSite))):
            p = to_shape(site.position)
            writer.writerow({**site_properties(site), "lat": round(p.y, 7), "lon": round(p.x, 7)})
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
        yield buf.getvalue()

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="sites.csv"'},
    )


@router.get("/sites.geojson", summary="Damage sites as a GeoJSON file (same filters)")
def export_geojson(
    session: SessionDep, user: ViewerDep, filters: Annotated[SiteFilter, Depends()]
) -> StreamingResponse:
    def chunks() -> Iterator[str]:
        yield '{"type": "FeatureCollection", "features": ['
        for i, site in enumerate(_stream(session, filters.apply(select(DamageSite)))):
            yield ("," if i else "") + json.dumps(site_feature(site))
        yield "]}"

    return StreamingResponse(
        chunks(),
        media_type="application/geo+json",
        headers={"Content-Disposition": 'attachment; filename="sites.geojson"'},
    )


def get_site(session: Session, site_id: str) -> DamageSite:
    try:
        public_id = uuid.UUID(site_id)
    except ValueError as exc:
        raise HTTPException(422, f"site id must be a UUID, got {site_id!r}") from exc
    site = session.scalar(select(DamageSite).where(DamageSite.public_id == public_id))
    if site is None:
        raise HTTPException(404, f"no site {site_id}")
    return site


@router.get("/sites/{site_id}", summary="One site with its observations and frames")
def site_detail(site_id: str, session: SessionDep, user: ViewerDep) -> dict[str, Any]:
    site = get_site(session, site_id)
    feature = site_feature(site)
    rows = session.execute(
        select(Observation, Frame, ModelVersion.name)
        .join(Frame, Observation.frame_id == Frame.id)
        .outerjoin(ModelVersion, ModelVersion.id == Observation.model_version_id)
        .where(Observation.site_id == site.id)
        .order_by(Frame.captured_at)
    ).all()
    feature["properties"]["observation_list"] = [
        {
            "id": obs.id,
            "class": obs.class_name,
            "confidence": round(obs.confidence, 4),
            "box": [obs.x1, obs.y1, obs.x2, obs.y2],
            "distance_m": obs.distance_m,
            "size_m": obs.size_m,
            "model_version_id": obs.model_version_id,
            "model_version": model_name,  # the model (manifest name@sha256 prefix) that produced it
            "frame": {
                "id": frame.id,
                "captured_at": frame.captured_at.isoformat() if frame.captured_at else None,
                "image": f"/api/v1/frames/{frame.id}/image",
                "vehicle_id": frame.vehicle_id,
            },
        }
        for obs, frame, model_name in rows
    ]
    return feature


@router.get("/frames/{frame_id}/image", summary="A frame's stored image, boxes drawn on request")
def frame_image(
    frame_id: int, request: Request, session: SessionDep, user: ViewerDep, boxes: bool = False
) -> Response:
    frame = session.get(Frame, frame_id) if 0 < frame_id < 2**63 else None  # bigint ids
    if frame is None:
        raise HTTPException(404, f"no frame {frame_id}")
    if frame.image_deleted_at is not None:
        raise HTTPException(410, f"the image of frame {frame_id} was deleted after the retention period")
    if not frame.image_key:  # only anonymized copies are ever shown
        raise HTTPException(404, f"frame {frame_id} is not anonymized yet")
    try:
        data = request.app.state.store.get(frame.image_key)
    except FileNotFoundError as exc:
        raise HTTPException(410, f"the image of frame {frame_id} was deleted (retention)") from exc
    if boxes:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        for obs in session.scalars(select(Observation).where(Observation.frame_id == frame_id)):
            p1, p2 = (int(obs.x1), int(obs.y1)), (int(obs.x2), int(obs.y2))
            cv2.rectangle(image, p1, p2, (0, 0, 255), 3)
            cv2.putText(
                image,
                f"{obs.class_name} {obs.confidence:.2f}",
                (p1[0], max(p1[1] - 6, 12)),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.7,
                (0, 0, 255),
                2,
            )
        _ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        data = encoded.tobytes()
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})


@router.get("/transparency", summary="Transparency record: AI register entry and record of processing")
def transparency(request: Request, session: SessionDep, user: ViewerDep) -> dict[str, Any]:
    from service.db.transparency import transparency_record
    from service.worker.context import ranking_config

    settings = request.app.state.settings
    return transparency_record(session, settings, ranking_config(settings))
