"""Login, logout, and the admin's page of staff accounts (roles viewer, reviewer, admin)."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response
from sqlalchemy import select

from service.access.deps import AdminDep, SessionDep, ViewerDep, session_user, start_session
from service.access.sessions import check_csrf_form, csrf_token, local_path
from service.db.audit import record
from service.db.engine import transaction
from service.db.tables import User
from service.db.users import (
    MIN_PASSWORD_LENGTH,
    add_user,
    authenticate,
    end_sessions,
    generated_password,
    set_password,
    verify_password,
)
from service.domain.statuses import ROLES, Role
from service.errors import Conflict, InvalidInput, NotFound
from service.web.render import WebRoute, flash, page, redirect, translator

router = APIRouter(route_class=WebRoute, include_in_schema=False)


def _logged_in(request: Request, session: SessionDep) -> User | None:
    return session_user(request, session)


@router.get("/login")
def login_form(request: Request, session: SessionDep, next: str = "/sites") -> Response:
    if _logged_in(request, session):
        return redirect(local_path(next))
    return page(request, "login.html", None, next=local_path(next), error=None, username="")


@router.post("/login", dependencies=[Depends(check_csrf_form)])
def login(
    request: Request,
    session: SessionDep,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/sites",
) -> Response:
    throttle = request.app.state.login_throttle
    wait = throttle.begin(username) if username and password else 0
    user = authenticate(session, username.strip(), password) if username and password and not wait else None
    if user is None:
        t = translator(request)
        response = page(
            request,
            "login.html",
            None,
            status_code=429 if wait else 401,
            next=local_path(next),
            error=t("login.locked", minutes=math.ceil(wait / 60)) if wait else t("login.failed"),
            username=username,
        )
        if wait:
            response.headers["Retry-After"] = str(wait)
        return response
    throttle.succeeded(username)
    request.session.clear()  # a new session (and CSRF token) for the logged-in user
    start_session(request, user)
    csrf_token(request)
    return redirect(local_path(next))


@router.post("/logout", dependencies=[Depends(check_csrf_form)])
def logout(request: Request, session: SessionDep) -> Response:
    t = translator(request)
    user = session_user(request, session)
    if user is not None:  # every session of this user ends, also copies of this cookie
        with transaction(request.app.state.sessions) as tx:
            target = tx.get(User, user.id)
            if target is not None:
                end_sessions(target)
                record(tx, "logout", target.id, target_user_id=target.id)
    request.session.clear()
    flash(request, t("flash.logged_out"))
    return redirect("/login")


@router.get("/admin/users")
def users_page(request: Request, session: SessionDep, user: AdminDep) -> Response:
    users = session.scalars(select(User).order_by(User.username)).all()
    return page(request, "users.html", user, users=users, roles=ROLES, reset=None)


@router.post("/admin/users", dependencies=[Depends(check_csrf_form)])
def user_add(
    request: Request,
    user: AdminDep,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = Role.VIEWER,
) -> Response:
    t = translator(request)
    try:
        with transaction(request.app.state.sessions) as session:
            add_user(session, username.strip(), password, role)
    except ValueError as exc:
        flash(request, t("flash.user_failed", detail=str(exc)), "error")
    else:
        flash(request, t("flash.user_added", name=username.strip()))
    return redirect("/admin/users")


@router.post("/admin/users/{user_id}", dependencies=[Depends(check_csrf_form)])
def user_update(
    user_id: int,
    request: Request,
    user: AdminDep,
    role: Annotated[str, Form()] = "",
    active: Annotated[str, Form()] = "",
) -> Response:
    t = translator(request)
    if user_id == user.id:
        raise Conflict("you cannot change your own role or deactivate yourself")
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    with transaction(request.app.state.sessions) as session:
        target = session.get(User, user_id) if 0 < user_id < 2**31 else None
        if target is None:
            raise NotFound(f"no user {user_id}")
        was_active, was_role = target.active, target.role
        target.role, target.active = role, active == "1"
        if was_active and not target.active:
            end_sessions(target)  # a deactivated user's sessions end at once
            record(session, "deactivated", user.id, target_user_id=target.id)
        elif target.active and not was_active:
            record(session, "reactivated", user.id, target_user_id=target.id)
        if role != was_role:
            record(
                session,
                "role_changed",
                user.id,
                target_user_id=target.id,
                detail={"from": was_role, "to": role},
            )
        name = target.username
    flash(request, t("flash.user_saved", name=name))
    return redirect("/admin/users")


@router.get("/account/password")
def password_form(request: Request, user: ViewerDep) -> Response:
    return page(request, "password.html", user, error=None, min_length=MIN_PASSWORD_LENGTH)


@router.post("/account/password", dependencies=[Depends(check_csrf_form)])
def password_change(
    request: Request,
    user: ViewerDep,
    current: Annotated[str, Form()] = "",
    new: Annotated[str, Form()] = "",
    repeat: Annotated[str, Form()] = "",
) -> Response:
    """The user's own password; every other session of the user ends, this one continues."""
    t = translator(request)
    error = None
    if not verify_password(user, current):
        error = t("password.wrong_current")
    elif new != repeat:
        error = t("password.mismatch")
    else:
        try:
            with transaction(request.app.state.sessions) as session:
                target = session.get(User, user.id)
                if target is None:
                    raise NotFound(f"no user {user.id}")
                set_password(session, target, new)
                record(session, "password_changed", target.id, target_user_id=target.id)
                start_session(request, target)
        except InvalidInput as exc:
            error = str(exc)
    if error is not None:
        return page(
            request, "password.html", user, status_code=422, error=error, min_length=MIN_PASSWORD_LENGTH
        )
    flash(request, t("flash.password_changed"))
    return redirect("/sites")


@router.post("/admin/users/{user_id}/password", dependencies=[Depends(check_csrf_form)])
def password_reset(user_id: int, request: Request, user: AdminDep) -> Response:
    """A generated password for another account, shown once on this page (never stored in a cookie);
    every session of that user ends."""
    if user_id == user.id:
        raise Conflict("change your own password on the account page")
    password = generated_password()
    with transaction(request.app.state.sessions) as session:
        target = session.get(User, user_id) if 0 < user_id < 2**31 else None
        if target is None:
            raise NotFound(f"no user {user_id}")
        set_password(session, target, password)
        record(session, "password_reset", user.id, target_user_id=target.id)
        name = target.username
    with request.app.state.sessions() as session:
        users = session.scalars(select(User).order_by(User.username)).all()
        return page(request, "users.html", user, users=users, roles=ROLES, reset=(name, password))
