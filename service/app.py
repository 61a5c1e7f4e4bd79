"""The FastAPI application. ``create_app()`` builds settings, database, store and queue once."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import func, select, text
from starlette.middleware.sessions import SessionMiddleware

from service import api, web
from service.access.sessions import session_secret
from service.db.accounts import LoginThrottle
from service.db.engine import make_engine, make_sessionmaker
from service.db.store import ImageStore
from service.db.tables import Frame
from service.settings import Settings
from service.worker.context import model_path
from service.worker.jobs import make_app as make_jobs

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # type: ignore[call-arg]  # DATABASE_URL from the environment
    jobs = make_jobs(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
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
    app.state.engine = make_engine(settings.database_url)
    app.state.sessions = make_sessionmaker(app.state.engine)
    app.state.store = ImageStore(settings.image_dir)  # anonymized images
    app.state.originals = ImageStore(settings.original_dir)  # uploads until anonymized
    app.state.jobs = jobs

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in err.get('loc', ()) if p != 'body')}: {err.get('msg')}"
            for err in exc.errors()
        ]
        return JSONResponse({"detail": "invalid request: " + "; ".join(problems)}, status_code=422)

    @app.get("/health", tags=["health"], summary="Database, queue and model status")
    def health() -> JSONResponse:
        body: dict[str, Any] = {"status": "ok"}
        try:
            with app.state.sessions() as session:
                session.execute(text("SELECT 1"))
                body["database"] = "ok"
                body["frames_queued"] = session.scalar(select(func.count()).where(Frame.status == "queued"))
        except Exception as exc:
            body["status"], body["database"] = "error", f"unreachable: {type(exc).__name__}"
        try:
            path = model_path(settings)
            body["model"] = {"file": path.name, "present": path.is_file()}
            if not path.is_file():
                body["status"] = "error"
        except Exception as exc:
            body["status"], body["model"] = "error", str(exc)
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    for router in api.routers():
        app.include_router(router)
    # Staff web app: signed session cookie (HttpOnly, SameSite=Lax), its pages, static files, JSON API.
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(settings),
        session_cookie="roadwatch_session",
        max_age=settings.session_max_age_s,
        same_site="lax",
        https_only=settings.session_https_only,
    )
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")
    for router in web.routers():
        app.include_router(router)
    return app
