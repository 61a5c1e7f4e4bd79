"""Administrative commands: vehicles, staff users, road network import."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path

from geoalchemy2.shape import from_shape
from shapely.geometry import LineString, MultiLineString, shape

from service.auth import add_user, add_vehicle
from service.db import make_engine, make_sessionmaker, transaction
from service.models import RoadSegment
from service.settings import Settings


def import_roads(sessions, path: Path) -> int:  # type: ignore[no-untyped-def]
    """Replace the road network with the LineStrings of a GeoJSON file; returns the count."""
    data = json.loads(path.read_text())
    features = data.get("features", []) if isinstance(data, dict) else []
    segments = []
    for i, feature in enumerate(features):
        props = feature.get("properties") or {}
        try:
            importance = float(props["importance"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"feature {i}: expected a numeric 'importance' property (0..1)") from exc
        if not 0.0 <= importance <= 1.0:
            raise ValueError(f"feature {i}: importance must be in 0..1, got {importance}")
        geom = shape(feature["geometry"])
        lines = list(geom.geoms) if isinstance(geom, MultiLineString) else [geom]
        for line in lines:
            if not isinstance(line, LineString):
                raise ValueError(f"feature {i}: expected LineString geometry, got {line.geom_type}")
            segments.append(
                RoadSegment(name=props.get("name"), importance=importance, geom=from_shape(line, 4326))
            )
    with transaction(sessions) as session:
        session.query(RoadSegment).delete()
        session.add_all(segments)
    return len(segments)


def demo_credentials(sessions) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A fresh token for the vehicle 'demo'; an 'admin' account with a printed password, once."""
    from sqlalchemy import select

    from service.auth import new_token, token_hash
    from service.models import User, Vehicle

    out: dict[str, str] = {"admin_user": "admin"}
    with transaction(sessions) as session:
        vehicle = session.scalar(select(Vehicle).where(Vehicle.name == "demo"))
        if vehicle is None:
            vehicle, token = add_vehicle(session, "demo")
        else:
            token = new_token()
            vehicle.token_hash = token_hash(token)
        out["vehicle_token"] = token
        if session.scalar(select(User).where(User.username == "admin")) is None:
            password = secrets.token_urlsafe(12)
            add_user(session, "admin", password, "admin")
            out["admin_password"] = password
    return out


def run_admin(settings: Settings, args: argparse.Namespace) -> int:
    sessions = make_sessionmaker(make_engine(settings.database_url, pool_size=1))
    try:
        if args.command == "vehicle":
            with transaction(sessions) as session:
                vehicle, token = add_vehicle(
                    session,
                    args.name,
                    camera_height_m=args.height_m,
                    camera_pitch_deg=args.pitch_deg,
                    camera_hfov_deg=args.hfov_deg,
                )
                print(json.dumps({"vehicle": vehicle.name, "id": vehicle.id, "token": token}))
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
        elif args.command == "roads":
            print(json.dumps({"road_segments": import_roads(sessions, args.geojson)}))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
