"""Login, logout, and the admin's page of staff accounts (roles viewer, reviewer, admin)."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response
from sqlalchemy import select

from service.access.deps import AdminDep, SessionDep
from service.access.sessions import check_csrf_form, csrf_token, local_path
from service.db.engine import transaction
from service.db.tables import User
from service.db.users import add_user, authenticate
from service.domain.statuses import ROLES, Role
from service.errors import Conflict, InvalidInput, NotFound
from service.web.render import WebRoute, flash, page, redirect, translator

router = APIRouter(route_class=WebRoute, include_in_schema=False)


def _logged_in(request: Request, session: SessionDep) -> User | None:
    user_id = request.session.get("user_id")
    user = session.get(User, user_id) if user_id is not None else None
    return user if user is not None and user.active else None


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
    request.session["user_id"] = user.id
    csrf_token(request)
    return redirect(local_path(next))


@router.post("/logout", dependencies=[Depends(check_csrf_form)])
def logout(request: Request) -> Response:
    t = translator(request)
    request.session.clear()
    flash(request, t("flash.logged_out"))
    return redirect("/login")


@router.get("/admin/users")
def users_page(request: Request, session: SessionDep, user: AdminDep) -> Response:
    users = session.scalars(select(User).order_by(User.username)).all()
    return page(request, "users.html", user, users=users, roles=ROLES)


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
        target.role, target.active = role, active == "1"
        name = target.username
    flash(request, t("flash.user_saved", name=name))
    return redirect("/admin/users")
