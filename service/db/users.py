"""Staff accounts: passwords hashed with argon2id (argon2-cffi), roles viewer < reviewer < admin."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.tables import User
from service.domain.statuses import ROLES

_hasher = PasswordHasher()


def add_user(session: Session, username: str, password: str, role: str) -> User:
    """A new active account; ValueError for a bad role, a short password or a taken name."""
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
    """The active user with this name and password, or None (same work either way)."""
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
    """Whether ``role`` includes what ``needed`` may do."""
    return ROLES.index(role) >= ROLES.index(needed)
