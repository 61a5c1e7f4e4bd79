"""The admin's page of vehicles: camera geometry, privacy band, revoking and re-issuing upload tokens.

A token is shown once, on the page that answers the request that made it; only its sha256 is stored.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.access.deps import AdminDep, SessionDep
from service.access.sessions import check_csrf_form
from service.db.engine import transaction
from service.db.tables import User, Vehicle
from service.db.vehicles import add_vehicle, reissue_token
from service.domain.geo import Camera
from service.errors import NotFound
from service.web.render import WebRoute, flash, page, redirect, translator

router = APIRouter(route_class=WebRoute, include_in_schema=False)


def _number(value: str, what: str) -> float:
    try:
        return float(value.replace(",", "."))  # German decimal comma
    except ValueError:
        raise ValueError(f"{what}: expected a number, got {value[:20]!r}") from None


def _horizon(value: str) -> float | None:
    """Empty: the service default (None); otherwise a fraction of the height, 0 for no band."""
    if not value.strip():
        return None
    fraction = _number(value, "privacy band")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"privacy band: a fraction of the image height, 0..1, got {fraction}")
    return fraction


def _camera(height_m: str, pitch_deg: str, hfov_deg: str) -> tuple[float, float, float]:
    """The form's camera height, pitch and field of view, checked; ValueError if not."""
    camera = (_number(height_m, "height"), _number(pitch_deg, "pitch"), _number(hfov_deg, "field of view"))
    Camera(*camera)
    return camera


def _vehicle(tx: Session, vehicle_id: int) -> Vehicle:
    vehicle = tx.get(Vehicle, vehicle_id) if 0 < vehicle_id < 2**31 else None
    if vehicle is None:
        raise NotFound(f"no vehicle {vehicle_id}")
    return vehicle


def _page(
    request: Request, session: SessionDep, user: User, new_token: str | None = None, token_for: str = ""
) -> Response:
    vehicles = session.scalars(select(Vehicle).order_by(Vehicle.name)).all()
    default = request.app.state.settings.privacy_horizon
    return page(
        request,
        "vehicles.html",
        user,
        vehicles=vehicles,
        default_horizon=default,
        new_token=new_token,
        token_for=token_for,
    )


@router.get("/admin/vehicles")
def vehicles_page(request: Request, session: SessionDep, user: AdminDep) -> Response:
    return _page(request, session, user)


@router.post("/admin/vehicles", dependencies=[Depends(check_csrf_form)])
def vehicle_add(
    request: Request,
    session: SessionDep,
    user: AdminDep,
    name: Annotated[str, Form()] = "",
    height_m: Annotated[str, Form()] = "1.4",
    pitch_deg: Annotated[str, Form()] = "10",
    hfov_deg: Annotated[str, Form()] = "100",
    privacy_horizon: Annotated[str, Form()] = "",
) -> Response:
    t = translator(request)
    try:
        camera, horizon = _camera(height_m, pitch_deg, hfov_deg), _horizon(privacy_horizon)
        with transaction(request.app.state.sessions) as tx:
            vehicle, token = add_vehicle(
                tx,
                name.strip(),
                camera_height_m=camera[0],
                camera_pitch_deg=camera[1],
                camera_hfov_deg=camera[2],
            )
            vehicle.privacy_horizon = horizon
    except ValueError as exc:
        flash(request, t("flash.vehicle_failed", detail=str(exc)), "error")
        return redirect("/admin/vehicles")
    return _page(request, session, user, new_token=token, token_for=name.strip())


@router.post("/admin/vehicles/{vehicle_id}", dependencies=[Depends(check_csrf_form)])
def vehicle_update(
    vehicle_id: int,
    request: Request,
    user: AdminDep,
    height_m: Annotated[str, Form()] = "",
    pitch_deg: Annotated[str, Form()] = "",
    hfov_deg: Annotated[str, Form()] = "",
    privacy_horizon: Annotated[str, Form()] = "",
    active: Annotated[str, Form()] = "",
) -> Response:
    t = translator(request)
    try:
        camera, horizon = _camera(height_m, pitch_deg, hfov_deg), _horizon(privacy_horizon)
    except ValueError as exc:
        flash(request, t("flash.vehicle_failed", detail=str(exc)), "error")
        return redirect("/admin/vehicles")
    with transaction(request.app.state.sessions) as tx:
        vehicle = _vehicle(tx, vehicle_id)
        vehicle.camera_height_m, vehicle.camera_pitch_deg, vehicle.camera_hfov_deg = camera
        vehicle.privacy_horizon, vehicle.active = horizon, active == "1"
        name = vehicle.name
    flash(request, t("flash.vehicle_saved", name=name))
    return redirect("/admin/vehicles")


@router.post("/admin/vehicles/{vehicle_id}/token", dependencies=[Depends(check_csrf_form)])
def vehicle_token(vehicle_id: int, request: Request, session: SessionDep, user: AdminDep) -> Response:
    """A new upload token; the old one stops working at once, and the vehicle is active again."""
    with transaction(request.app.state.sessions) as tx:
        vehicle = _vehicle(tx, vehicle_id)
        token = reissue_token(vehicle)
        vehicle.active = True
        name = vehicle.name
    return _page(request, session, user, new_token=token, token_for=name)
