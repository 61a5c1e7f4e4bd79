"""The FastAPI application. ``create_app()`` builds settings, database, store and queue once."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from service import api, web
from service.access.limits import BodyLimits, RequestLimits, token_checker
from service.access.sessions import SessionCookies, session_secret
from service.access.throttle import BasicCache, LoginThrottle
from service.db.engine import make_engine, make_sessionmaker
from service.db.store import ImageStore
from service.errors import Conflict, Forbidden, Gone, InvalidInput, NotFound, ServiceError
from service.settings import Settings
from service.web.render import WebRoute, error_page
from service.worker.jobs import make_app as make_jobs

log = logging.getLogger(__name__)
HTTP_STATUS: dict[type[ServiceError], int] = {
    Gone: 410,
    NotFound: 404,
    Conflict: 409,
    InvalidInput: 422,
    Forbidden: 403,
}


def http_status(exc: ServiceError) -> int:
    """The HTTP status of a service error: its most specific class in ``HTTP_STATUS`` (else 500)."""
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


def install_error_handlers(app: FastAPI) -> None:
    """Service errors and request validation errors as HTTP answers."""

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        # The one place where the service's errors become HTTP: a page for the web app, JSON elsewhere.
        code = http_status(exc)
        if isinstance(request.scope.get("route"), WebRoute):
            return error_page(request, code, str(exc))
        return JSONResponse({"detail": str(exc)}, status_code=code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in err.get('loc', ()) if p != 'body')}: {err.get('msg')}"
            for err in exc.errors()
        ]
        return JSONResponse({"detail": "invalid request: " + "; ".join(problems)}, status_code=422)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # DATABASE_URL from the environment
    jobs = make_jobs(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with jobs.open():  # sync connector: the upload handlers defer from worker threads
            yield

    app = FastAPI(
        title="Roadwatch",
        version="0.1.0",
        description="Road-damage detection for municipal road maintenance. Staff make every repair decision.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.login_throttle = LoginThrottle(settings.login_max_failures, settings.login_window_s)
    app.state.basic_cache = BasicCache()
    app.state.engine = make_engine(settings.database_url)
    app.state.sessions = make_sessionmaker(app.state.engine)
    app.state.store = ImageStore(settings.image_dir)  # anonymized images
    app.state.originals = ImageStore(settings.original_dir)  # uploads until anonymized
    app.state.jobs = jobs

    install_error_handlers(app)
    for router in api.routers():
        app.include_router(router)
    # Staff web app: signed session cookie (HttpOnly, SameSite=Lax, Secure off loopback), its pages,
    # static files, JSON API.
    app.add_middleware(
        SessionCookies,
        secure=settings.session_https_only,
        secret_key=session_secret(settings),
        session_cookie="roadwatch_session",
        max_age=settings.session_max_age_s,
    )
    # Outermost of ours: body limits and the upload's vehicle token before anything reads the body.
    app.add_middleware(
        RequestLimits,
        limits=BodyLimits(
            default=settings.max_body_bytes,
            upload=settings.upload_body_bytes,
            open311=settings.open311_media_max_bytes + settings.max_body_bytes,
        ),
        token_valid=token_checker(app.state.sessions),
    )
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")
    for router in web.routers():
        app.include_router(router)
    return app
