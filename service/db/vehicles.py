"""Vehicles and their upload tokens.

Vehicle tokens are 256-bit random strings shown once; only their sha256 is stored (a slow hash adds
nothing at that entropy).
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.tables import Vehicle
from service.domain.demo import DEMO_PREFIX, is_demo_vehicle

TOKEN_PREFIX = "rwv_"


def new_token() -> str:
    """A fresh upload token (prefix ``rwv_``)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the database stores of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def add_vehicle(session: Session, name: str, *, demo: bool = False, **camera: float) -> tuple[Vehicle, str]:
    """Create a vehicle; returns it and its token (the only time the token is visible). Names starting
    with ``demo:`` mark demo vehicles (service/domain/demo.py) and need ``demo=True``."""
    if not name or len(name) > 200 or "\x00" in name:
        raise ValueError("the vehicle name needs 1 to 200 characters and no NUL")
    if is_demo_vehicle(name) != demo:
        raise ValueError(
            f"names starting with {DEMO_PREFIX!r} are reserved for the demo vehicle, got {name!r}"
            if not demo
            else f"a demo vehicle's name starts with {DEMO_PREFIX!r}, got {name!r}"
        )
    if session.scalar(select(Vehicle).where(Vehicle.name == name)):
        raise ValueError(f"a vehicle named {name!r} exists already")
    token = new_token()
    vehicle = Vehicle(name=name, token_hash=token_hash(token), **camera)
    session.add(vehicle)
    session.flush()
    return vehicle, token


def reissue_token(vehicle: Vehicle) -> str:
    """A new upload token for ``vehicle`` (the old one stops working); returns it, shown this once."""
    token = new_token()
    vehicle.token_hash = token_hash(token)
    return token


def vehicle_for_token(session: Session, token: str) -> Vehicle | None:
    """The active vehicle whose token this is, or None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    return session.scalar(select(Vehicle).where(Vehicle.token_hash == token_hash(token), Vehicle.active))
