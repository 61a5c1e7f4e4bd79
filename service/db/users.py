"""Staff accounts: passwords hashed with argon2id (argon2-cffi), roles viewer < reviewer < admin."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.tables import User
from service.domain.statuses import ROLES
from service.errors import InvalidInput

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 10


def check_password(username: str, password: str) -> None:
    """InvalidInput unless the password is long enough and neither is nor contains the user name."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    name, folded = username.strip().casefold(), password.casefold()
    if name and (folded == name or (len(name) >= 3 and name in folded)):
        raise InvalidInput("password must not be or contain the user name")


def generated_password() -> str:
    """A random password for a new account or a reset (shown once)."""
    return secrets.token_urlsafe(12)


def set_password(session: Session, user: User, password: str) -> None:
    """A new password (checked); every session of the user ends (see ``end_sessions``)."""
    check_password(user.username, password)
    user.password_hash = _hasher.hash(password)
    end_sessions(user)


def end_sessions(user: User) -> None:
    """Every login session of this user, in every process, is over from the next request on: each
    carries the version it was made with (``access.deps.session_user``)."""
    user.session_version = (user.session_version or 0) + 1


def verify_password(user: User, password: str) -> bool:
    try:
        return bool(_hasher.verify(user.password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def add_user(session: Session, username: str, password: str, role: str) -> User:
    """A new active account; ValueError for a bad role, a short password or a taken name."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if not username or len(username) > 200 or "\x00" in username:
        raise ValueError("username must have 1 to 200 characters and no NUL")
    check_password(username, password)
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
    return user if verify_password(user, password) else None


def role_at_least(role: str, needed: str) -> bool:
    """Whether ``role`` includes what ``needed`` may do."""
    return ROLES.index(role) >= ROLES.index(needed)
