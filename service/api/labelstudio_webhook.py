"""Label Studio's webhook: each saved annotation goes into the corrections folder at once (no timer).

Label Studio posts ``{"action": "ANNOTATION_CREATED"|"ANNOTATION_UPDATED", "task": {...}, "annotation":
{...}}`` with the header ``X-Roadwatch-Webhook-Secret`` that ``push`` configured
(ROADWATCH_LABELSTUDIO_WEBHOOK_SECRET and ..._WEBHOOK_BASE_URL). The route answers 404 while no secret is
set. Mount it with ``app.include_router(labelstudio_webhook.router)``.
"""

from __future__ import annotations

import hmac
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, HTTPException, Request
from sqlalchemy import select

from service.db.engine import transaction
from service.db.tables import Frame, LabelStudioTask
from service.labelstudio import apply_annotation, final_annotation

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/labelstudio", tags=["labelstudio"])
ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")


@router.post("/webhook", summary="Label Studio webhook: an annotation was created or updated")
def webhook(
    request: Request,
    payload: Annotated[dict[str, Any], Body()],
    x_roadwatch_webhook_secret: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    settings = request.app.state.settings
    secret = settings.labelstudio_webhook_secret
    if secret is None:
        raise HTTPException(404, "the Label Studio webhook is not enabled")
    if not x_roadwatch_webhook_secret or not hmac.compare_digest(
        x_roadwatch_webhook_secret.encode(), secret.get_secret_value().encode()
    ):
        raise HTTPException(401, "wrong or missing X-Roadwatch-Webhook-Secret")
    action = payload.get("action")
    if action not in ACTIONS:
        return {"ignored": action}
    task, annotation = payload.get("task") or {}, payload.get("annotation") or {}
    if not isinstance(task, dict) or not isinstance(annotation, dict) or "id" not in task:
        raise HTTPException(422, "payload needs 'task' and 'annotation' objects")
    project = payload.get("project")
    project_id = task.get("project") or (project.get("id") if isinstance(project, dict) else None)
    ids = [task["id"], annotation.get("id"), *([project_id] if project_id is not None else [])]
    if not all(_is_id(value) for value in ids):
        raise HTTPException(422, "task, annotation and project ids must be positive integers")
    if not isinstance(task.get("data") or {}, dict) or not isinstance(annotation.get("result", []), list):
        raise HTTPException(422, "'task.data' must be an object and 'annotation.result' a list")
    with transaction(request.app.state.sessions) as session:
        query = select(LabelStudioTask).where(LabelStudioTask.task_id == task["id"])
        if project_id is not None:
            query = query.where(LabelStudioTask.project_id == project_id)
        row = session.scalar(query)
        frame = session.get(Frame, row.frame_id) if row else None
        if row is None or frame is None or frame.sha256 != (task.get("data") or {}).get("sha256"):
            return {"ignored": "not a task of this service"}
        if final_annotation([annotation]) is None:
            return {"ignored": "skipped annotation"}
        outcome = apply_annotation(session, settings, row, annotation, request.app.state.store)
    log.info("webhook %s: task %s -> %s", action, task["id"], outcome)
    return {"task_id": task["id"], "frame_id": row.frame_id, "outcome": outcome}


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63
