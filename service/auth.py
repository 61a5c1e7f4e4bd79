"""Vehicle upload tokens and staff passwords.

Vehicle tokens are 256-bit random strings shown once; only their sha256 is stored (a slow hash adds
nothing at that entropy). Staff passwords are hashed with argon2id (argon2-cffi).
"""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import ROLES, User, Vehicle

TOKEN_PREFIX = "rwv_"
_hasher = PasswordHasher()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_vehicle(session: Session, name: str, **camera: float) -> tuple[Vehicle, str]:
    """Create a vehicle; returns it and its token (the only time the token is visible)."""
    if session.scalar(select(Vehicle).where(Vehicle.name == name)):
        raise ValueError(f"a vehicle named {name!r} exists already")
    token = new_token()
    vehicle = Vehicle(name=name, token_hash=token_hash(token), **camera)
    session.add(vehicle)
    session.flush()
    return vehicle, token


def vehicle_for_token(session: Session, token: str) -> Vehicle | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    return session.scalar(select(Vehicle).where(Vehicle.token_hash == token_hash(token), Vehicle.active))


def add_user(session: Session, username: str, password: str, role: str) -> User:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if len(password) < 10:
        raise ValueError("password must have at least 10 characters")
    if not username or len(username) > 200 or "\x00" in username:
        raise ValueError("username must have 1 to 200 characters and no NUL")
    if session.scalar(select(User).where(User.username == username)):
        raise ValueError(f"a user named {username!r} exists already")
    user = User(username=username, password_hash=_hasher.hash(password), role=role)
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, username: str, password: str) -> User | None:
    # PostgreSQL text cannot hold NUL: such a name matches no user (and must not reach the query).
    user = (
        None
        if "\x00" in username
        else session.scalar(select(User).where(User.username == username, User.active))
    )
    if user is None:
        _hasher.hash(password)  # same work whether or not the user exists
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    return user


def role_at_least(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)
