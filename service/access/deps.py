"""FastAPI dependencies: settings, sessions, the job queue, vehicle and staff authentication."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service.db.tables import User, Vehicle
from service.db.users import authenticate, role_at_least
from service.db.vehicles import vehicle_for_token
from service.domain.statuses import Role
from service.settings import Settings

_bearer = HTTPBearer(auto_error=False)
_basic = HTTPBasic(auto_error=False)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request):  # type: ignore[no-untyped-def]
    with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def current_vehicle(
    session: SessionDep, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Vehicle:
    if creds is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing vehicle token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    vehicle = vehicle_for_token(session, creds.credentials)
    if vehicle is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "unknown or revoked vehicle token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # A plain record from here on, and the connection back to the pool: an upload takes long, and 20
    # uploads holding a connection each exhausted the pool (bench/soak.py).
    session.expunge(vehicle)
    session.rollback()
    return vehicle


VehicleDep = Annotated[Vehicle, Depends(current_vehicle)]


SESSION_USER, SESSION_VERSION = "user_id", "sv"


def start_session(request: Request, user: User) -> None:
    """The web session of a user who just logged in (or changed the password): valid until the
    user's ``session_version`` changes."""
    request.session[SESSION_USER] = user.id
    request.session[SESSION_VERSION] = user.session_version


def session_user(request: Request, session: Session) -> User | None:
    """The active user of the web session cookie, if the session is still valid: made with the user's
    current session version (logout, deactivation and a password change raise it)."""
    user_id = request.session.get(SESSION_USER) if "session" in request.scope else None
    if user_id is None:
        return None
    user = session.get(User, user_id)
    if user is None or not user.active or request.session.get(SESSION_VERSION) != user.session_version:
        return None
    return user


def current_user(
    request: Request, session: SessionDep, creds: Annotated[HTTPBasicCredentials | None, Depends(_basic)]
) -> User:
    """A staff user, from the web session cookie or HTTP Basic credentials (API clients)."""
    user = session_user(request, session)
    if user is not None:
        return user
    if creds is not None:
        cache = request.app.state.basic_cache
        key = cache.key(creds.username, creds.password)
        cached = cache.get(key)
        if cached is not None:
            # Valid only while the password it was verified with is (a change raises the version).
            cached_id, version = cached
            user = session.get(User, cached_id)
            if user is not None and user.active and user.session_version == version:
                return user
        # Past the cache (credentials verified in the last minute or so): guesses never hit it.
        throttle = request.app.state.login_throttle
        wait = throttle.begin(creds.username)
        if wait:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"too many failed logins for this user name: try again in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        user = authenticate(session, creds.username, creds.password)
        if user is not None:
            throttle.succeeded(creds.username)
            cache.put(key, (user.id, user.session_version))
            return user
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "staff login required",
        headers={"WWW-Authenticate": 'Basic realm="roadwatch"'},
    )


def require_role(role: str):  # type: ignore[no-untyped-def]
    def check(user: Annotated[User, Depends(current_user)]) -> User:
        if not role_at_least(user.role, role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs the role {role}; you are {user.role}")
        return user

    return check


ViewerDep = Annotated[User, Depends(require_role(Role.VIEWER))]
ReviewerDep = Annotated[User, Depends(require_role(Role.REVIEWER))]
AdminDep = Annotated[User, Depends(require_role(Role.ADMIN))]


def constant_time_equal(a: str, b: str) -> bool:
    return secrets.compare_digest(a.encode(), b.encode())
