"""The admin's page of failed frames: why each failed, and a retry (the upload is kept for a while)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool

from service.access.deps import AdminDep, SessionDep
from service.access.sessions import check_csrf_form
from service.db.audit import record
from service.db.engine import transaction
from service.db.frames import failed_frames, retry_failed
from service.web.render import WebRoute, flash, page, redirect, translator
from service.worker.jobs import defer_frames

router = APIRouter(route_class=WebRoute, include_in_schema=False)


@router.get("/admin/frames")
def failed_page(request: Request, session: SessionDep, user: AdminDep) -> Response:
    frames = failed_frames(session)
    originals = request.app.state.originals
    kept = {f.id for f in frames if originals.path(f.sha256).exists()}
    return page(request, "failed_frames.html", user, frames=frames, kept=kept)


@router.post("/admin/frames/{frame_id}/retry", dependencies=[Depends(check_csrf_form)])
async def retry(frame_id: int, request: Request, user: AdminDep) -> Response:
    def reset() -> int:
        with transaction(request.app.state.sessions) as session:
            frame = retry_failed(session, frame_id, request.app.state.originals)
            record(session, "frame_retried", user.id, frame_id=frame.id)
            return frame.id

    retried = await run_in_threadpool(reset)
    await run_in_threadpool(defer_frames, request.app.state.jobs, [retried])
    flash(request, translator(request)("flash.frame_retried", id=retried))
    return redirect("/admin/frames")
