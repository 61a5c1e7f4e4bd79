"""``GET /health``: database, queue and model status, for load balancers and monitoring (no login)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from detector import ModelError
from service.db.tables import Frame
from service.domain.statuses import FrameStatus

router = APIRouter(tags=["health"])


@router.get("/health", summary="Database, queue and model status")
def health(request: Request) -> JSONResponse:
    body: dict[str, Any] = {"status": "ok"}
    try:
        with request.app.state.sessions() as session:
            session.execute(text("SELECT 1"))
            body["database"] = "ok"
            body["frames_queued"] = session.scalar(
                select(func.count()).where(Frame.status == FrameStatus.QUEUED)
            )
    except SQLAlchemyError as exc:
        body["status"], body["database"] = "error", f"unreachable: {type(exc).__name__}"
    try:
        path = request.app.state.settings.model_file()
        body["model"] = {"file": path.name, "present": path.is_file()}
        privacy = request.app.state.settings.privacy_model_file()
        body["privacy_model"] = {
            "file": privacy.name,
            "present": privacy.is_file(),
            "min_confidence": request.app.state.settings.privacy_threshold(),
        }
        if not (path.is_file() and privacy.is_file()):  # no photo is processed without both
            body["status"] = "error"
    except (ModelError, OSError, ValueError) as exc:
        body["status"], body["model"] = "error", str(exc)
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)
