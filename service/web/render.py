"""Rendering pages: Jinja2 templates with the translator, the user and the CSRF token; security headers;
and ``WebRoute``, which turns authentication and other HTTP errors of pages into a login redirect or an
error page instead of JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import jinja2
from fastapi import HTTPException, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from service.access.sessions import csrf_token
from service.db.frames import failed_count
from service.db.tables import User
from service.db.users import role_at_least
from service.domain.demo import is_demo_vehicle
from service.domain.statuses import Role
from service.web.i18n import COOKIE, LANGUAGE_NAMES, LANGUAGES, Translator, choose_language

log = logging.getLogger(__name__)
WEB_DIR = Path(__file__).resolve().parent
templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(WEB_DIR / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
)
templates.env.globals["is_demo_vehicle"] = is_demo_vehicle  # the demo badge on vehicle names


def translator(request: Request) -> Translator:
    settings = request.app.state.settings
    return Translator(choose_language(request, settings.default_locale), settings.display_timezone)


def _tile_origin(url: str) -> str:
    parts = urlsplit(url.replace("{s}", "a"))
    if not parts.scheme or not parts.netloc:
        return ""
    host = parts.netloc.replace("a.", "*.", 1) if "{s}" in url else parts.netloc
    return f"{parts.scheme}://{host}"


def security_headers(request: Request, response: Response) -> None:
    tiles = _tile_origin(request.app.state.settings.tile_url)
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; img-src 'self' data: {tiles}; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"


def lang_url(request: Request, lang: str) -> str:
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    return request.url.path + "?" + urlencode([*params, ("lang", lang)])


def flash(request: Request, message: str, kind: str = "ok") -> None:
    """A message shown once on the next page (after a redirect)."""
    request.session["flash"] = {"message": message, "kind": kind}


def _failed_frames(request: Request, user: User | None) -> int:
    """For admins: how many frames failed (the navigation shows it on every page)."""
    if user is None or not role_at_least(user.role, Role.ADMIN):
        return 0
    with request.app.state.sessions() as session:
        return failed_count(session)


def page(request: Request, name: str, user: User | None, status_code: int = 200, **context: Any) -> Response:
    t = translator(request)
    settings = request.app.state.settings
    context.update(
        request=request,
        user=user,
        _=t,
        t=t,
        lang=t.lang,
        languages=[(code, LANGUAGE_NAMES[code], lang_url(request, code)) for code in LANGUAGES],
        csrf_token=csrf_token(request),
        can=lambda role: user is not None and role_at_least(user.role, role),
        flash_message=request.session.pop("flash", None),
        tile_url=settings.tile_url,
        tile_attribution=settings.tile_attribution,
        path=request.url.path,
        failed_frames=_failed_frames(request, user),
    )
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie(COOKIE, t.lang, max_age=365 * 86400, samesite="lax", httponly=True)
    security_headers(request, response)
    return response


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def error_page(request: Request, status_code: int, detail: str) -> Response:
    """An error as a page in the user's language; 401 becomes a redirect to the login form."""
    if status_code == 401:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":
            referer = request.headers.get("referer")
            target = urlsplit(referer).path if referer else "/sites"
        return redirect("/login?next=" + quote(target, safe="/"))
    t = translator(request)
    titles = {403: "error.forbidden", 404: "error.not_found", 409: "error.conflict", 422: "error.invalid"}
    return page(
        request,
        "error.html",
        None,
        status_code=status_code,
        title=t(titles.get(status_code, "error.other")),
        detail=detail,
        code=status_code,
    )


class WebRoute(APIRoute):
    """A route of the web app: HTTP errors become pages (and 401 a redirect to the login form); the
    service's own errors (``service.errors``) become pages in ``service.app``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPException as exc:  # raised by FastAPI and the access dependencies
                return error_page(request, exc.status_code, str(exc.detail))

        return handle
