"""Administrative commands: vehicles, staff users, road network import."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select

from service.db.engine import make_engine, make_sessionmaker, transaction
from service.db.tables import Vehicle
from service.db.users import add_user
from service.db.vehicles import add_vehicle, reissue_token
from service.domain.geo import Camera
from service.domain.statuses import Role
from service.settings import Settings


def import_roads(sessions, path: Path) -> int:  # type: ignore[no-untyped-def]
    """Replace the road network with the roads of a file (service/db/roads.py); returns how many roads."""
    from service.db.roads import import_network

    return int(import_network(sessions, path)["roads"])


def demo_credentials(sessions) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A fresh token for the vehicle 'demo'; an 'admin' account with a printed password, once."""
    from service.db.tables import User, Vehicle

    out: dict[str, str] = {"admin_user": "admin"}
    with transaction(sessions) as session:
        vehicle = session.scalar(select(Vehicle).where(Vehicle.name == "demo"))
        if vehicle is None:
            vehicle, token = add_vehicle(session, "demo")
        else:
            token = reissue_token(vehicle)
        out["vehicle_token"] = token
        if session.scalar(select(User).where(User.username == "admin")) is None:
            password = secrets.token_urlsafe(12)
            add_user(session, "admin", password, Role.ADMIN)
            out["admin_password"] = password
    return out


KEEP = object()  # `vehicle set` without --privacy-horizon: leave the band as it is


def vehicle_record(vehicle: Vehicle) -> dict[str, Any]:
    """What an administrator sees of a vehicle (never its token)."""
    return {
        "vehicle": vehicle.name,
        "id": vehicle.id,
        "active": vehicle.active,
        "camera_height_m": vehicle.camera_height_m,
        "camera_pitch_deg": vehicle.camera_pitch_deg,
        "camera_hfov_deg": vehicle.camera_hfov_deg,
        # None: the service's ROADWATCH_PRIVACY_HORIZON; 0: no band
        "privacy_horizon": vehicle.privacy_horizon,
    }


def list_vehicles(sessions) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    with sessions() as session:
        return [vehicle_record(v) for v in session.scalars(select(Vehicle).order_by(Vehicle.name))]


def manage_vehicle(sessions, args: argparse.Namespace) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """``vehicle add|set|revoke|token``; returns what to print (a token only when one is issued)."""
    with transaction(sessions) as session:
        if args.action == "add":
            Camera(args.height_m, args.pitch_deg, args.hfov_deg)
            vehicle, token = add_vehicle(
                session,
                args.name,
                camera_height_m=args.height_m,
                camera_pitch_deg=args.pitch_deg,
                camera_hfov_deg=args.hfov_deg,
            )
            vehicle.privacy_horizon = args.privacy_horizon
            return {**vehicle_record(vehicle), "token": token}
        found = session.scalar(select(Vehicle).where(Vehicle.name == args.name))
        if found is None:
            raise ValueError(f"no vehicle named {args.name!r} (see `python -m service vehicle list`)")
        vehicle = found
        if args.action == "set":
            height = args.height_m if args.height_m is not None else vehicle.camera_height_m
            pitch = args.pitch_deg if args.pitch_deg is not None else vehicle.camera_pitch_deg
            hfov = args.hfov_deg if args.hfov_deg is not None else vehicle.camera_hfov_deg
            Camera(height, pitch, hfov)
            vehicle.camera_height_m, vehicle.camera_pitch_deg, vehicle.camera_hfov_deg = height, pitch, hfov
            if args.privacy_horizon is not KEEP:
                vehicle.privacy_horizon = args.privacy_horizon
            return vehicle_record(vehicle)
        if args.action == "revoke":
            vehicle.active = False
            return vehicle_record(vehicle)
        token = reissue_token(vehicle)  # "token": replaces the old one; the vehicle may upload again
        vehicle.active = True
        return {**vehicle_record(vehicle), "token": token}


def run_admin(settings: Settings, args: argparse.Namespace) -> int:
    sessions = make_sessionmaker(make_engine(settings.database_url, pool_size=1))
    try:
        if args.command == "vehicle":
            if args.action == "list":
                for row in list_vehicles(sessions):
                    print(json.dumps(row))
            else:
                print(json.dumps(manage_vehicle(sessions, args)))
        elif args.command == "user":
            password = args.password or secrets.token_urlsafe(12)
            with transaction(sessions) as session:
                user = add_user(session, args.username, password, args.role)
            out = {"user": user.username, "role": user.role}
            if not args.password:
                out["password"] = password
            print(json.dumps(out))
        elif args.command == "demo":
            print(json.dumps(demo_credentials(sessions)))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
