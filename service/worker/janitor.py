"""The janitor, a small loop in every worker: it retries jobs whose worker stopped sending heartbeats
(killed with SIGKILL, machine lost) until a frame has stalled ``max_frame_stalls`` times (a frame that
kills its worker, by running out of memory or a native crash, is then ``failed`` with the reason instead
of being retried for ever), marks frames failed whose job used up its attempts, queues frames left
``queued`` without a job (the database went away between storing a frame and queueing it), and deletes
uploads that are processed or orphaned; the upload of a failed frame is kept ``failed_upload_keep_days``
for inspection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import procrastinate
from procrastinate.jobs import Status
from sqlalchemy import and_, func, or_, select, text

from service.db.store import ImageStore
from service.db.tables import Frame
from service.domain.statuses import FrameStatus
from service.settings import Settings
from service.worker.jobs import TASK, defer_frames

log = logging.getLogger(__name__)


ORPHANS_SQL = text(
    """
    SELECT f.id FROM frame f
    WHERE (f.status = 'queued' OR (f.status = 'no_location' AND f.anonymized_at IS NULL))
      AND f.created_at < now() - make_interval(secs => :age)
      AND NOT EXISTS (
        SELECT 1 FROM procrastinate_jobs j
        WHERE j.queueing_lock = 'frame-' || f.id AND j.status IN ('todo', 'doing'))
    ORDER BY f.id LIMIT 500
    """
)


# A frame whose job used up its attempts (procrastinate status 'failed') is marked failed, so the
# janitor does not queue it again for ever; staff see the error and can re-upload.
GIVE_UP_SQL = text(
    """
    UPDATE frame f SET status = 'failed', error = 'processing failed after all retries (see the worker log)',
                       failed_at = now()
    WHERE (f.status = 'queued' OR (f.status = 'no_location' AND f.anonymized_at IS NULL))
      AND EXISTS (SELECT 1 FROM procrastinate_jobs j
                  WHERE j.queueing_lock = 'frame-' || f.id AND j.status = 'failed')
      AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs j
                      WHERE j.queueing_lock = 'frame-' || f.id AND j.status IN ('todo', 'doing'))
    """
)


# An upload stored with no frame row this long after (the request died between storing the file and
# committing its row, or the row was refused) is orphaned: the janitor deletes it. A re-upload of the
# same bytes touches the file (ImageStore.put), so it is not taken while that request commits.
ORPHAN_UPLOAD_AGE_S = 3600.0


def _older_than(path: Path, cutoff: float) -> bool:
    try:
        return bool(path.stat().st_mtime < cutoff)
    except FileNotFoundError:
        return False


# A frame that stalled its worker this often is counted once per stall here.
STALL_SQL = text(
    """
    UPDATE frame SET stall_count = stall_count + 1
    WHERE id = :id AND status IN ('queued', 'no_location') RETURNING stall_count
    """
)
FAIL_STALLED_SQL = text(
    """
    UPDATE frame SET status = 'failed', failed_at = now(), error = :error
    WHERE id = :id AND status IN ('queued', 'no_location')
    """
)


def sweep_originals(
    sessions: Any,
    originals: ImageStore,
    orphan_age_s: float = ORPHAN_UPLOAD_AGE_S,
    failed_keep_s: float = 7 * 86400.0,
) -> int:
    """Delete uploads that are no longer needed: the frame is done (detections committed), or has no
    position and its anonymized copy is stored, or failed more than ``failed_keep_s`` ago (kept that long
    for inspection); and old uploads or temporary files that no frame refers to (a crash while receiving
    them). Returns how many were deleted."""
    root = originals.root
    if not root.exists():
        return 0
    files = [p for p in root.glob("*/*/*") if p.is_file()]
    deleted = 0
    for p in files:  # a write killed between creating its temporary file and renaming it
        if p.name.startswith(".tmp-") and _older_than(p, time.time() - orphan_age_s):
            p.unlink(missing_ok=True)
            deleted += 1
    paths = {p.name: p for p in files if not p.name.startswith(".tmp-")}
    keys = list(paths)
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        with sessions() as session:
            kept_until = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, failed_keep_s)
            finished = or_(
                Frame.status == FrameStatus.DONE,
                and_(Frame.status == FrameStatus.NO_LOCATION, Frame.anonymized_at.is_not(None)),
                and_(
                    Frame.status == FrameStatus.FAILED,
                    or_(Frame.failed_at.is_(None), Frame.failed_at < kept_until),
                ),
            )
            rows = session.execute(select(Frame.sha256, finished).where(Frame.sha256.in_(chunk))).all()
        done = {sha for sha, finished in rows if finished}
        known = {sha for sha, _ in rows}
        cutoff = time.time() - orphan_age_s
        for key in chunk:
            # The age is read after the query: a request storing these bytes now touched the file.
            if key in done:
                deleted += originals.delete(key)
            elif key not in known and _older_than(paths[key], cutoff):
                paths[key].unlink(missing_ok=True)
                deleted += 1
    return deleted


async def _stalled(app: procrastinate.App, settings: Settings, sessions: Any) -> None:
    """Retry the jobs of workers that stopped sending heartbeats; a frame that stalled its worker
    ``max_frame_stalls`` times fails instead (the job too, so it is not retried again)."""
    stalled = await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=settings.stalled_after_s)
    for job in stalled:
        try:  # one job that cannot be retried must not stop the rest of the pass
            raw_id = job.task_kwargs.get("frame_id") if job.task_name == TASK else None
            frame_id = raw_id if isinstance(raw_id, int) else None
            stalls = (
                await asyncio.to_thread(_count_stall, sessions, frame_id) if frame_id is not None else None
            )
            if frame_id is not None and stalls is not None and stalls >= settings.max_frame_stalls:
                reason = (
                    f"its worker stopped {stalls} times while processing it (out of memory or a crash in "
                    "native code?); the upload is kept for inspection"
                )
                log.error("frame %s failed: %s", frame_id, reason)
                await asyncio.to_thread(_fail_stalled, sessions, frame_id, reason)
                await app.job_manager.finish_job(job, status=Status.FAILED, delete_job=False)
                continue
            log.warning("retrying job %s (%s): its worker stopped sending heartbeats", job.id, job.task_name)
            await app.job_manager.retry_job(job)
        except Exception:  # unexpected: logged, the next pass tries again
            log.exception("could not retry job %s", job.id)


def _count_stall(sessions: Any, frame_id: int) -> int | None:
    with sessions() as session, session.begin():
        return session.execute(STALL_SQL, {"id": frame_id}).scalar()  # type: ignore[no-any-return]


def _fail_stalled(sessions: Any, frame_id: int, reason: str) -> None:
    with sessions() as session, session.begin():
        session.execute(FAIL_STALLED_SQL, {"id": frame_id, "error": reason})


async def janitor_pass(
    app: procrastinate.App,
    settings: Settings,
    sessions: Any,
    originals: ImageStore,
    associate: Callable[[], object] | None = None,
) -> None:
    """One pass: stalled jobs, frames whose job gave up, orphaned frames, uploads no longer needed,
    drives left unassociated (``associate``: the worker's association of stale drives)."""
    await _stalled(app, settings, sessions)
    with sessions() as session, session.begin():
        given_up = session.execute(GIVE_UP_SQL).rowcount
    if given_up:
        log.error("%d frames failed after all retries", given_up)
    with sessions() as session:
        orphans = [row[0] for row in session.execute(ORPHANS_SQL, {"age": settings.stalled_after_s})]
    if orphans:
        log.warning("queueing %d frames that had no job", len(orphans))
        await asyncio.to_thread(defer_frames, app, orphans)
    await asyncio.to_thread(
        sweep_originals, sessions, originals, failed_keep_s=settings.failed_upload_keep_days * 86400.0
    )
    if associate is not None:
        await asyncio.to_thread(associate)


async def janitor(
    app: procrastinate.App,
    settings: Settings,
    sessions: Any,
    originals: ImageStore,
    associate: Callable[[], object] | None = None,
) -> None:
    """Forever: a :func:`janitor_pass` every heartbeat interval."""
    while True:
        try:
            await janitor_pass(app, settings, sessions, originals, associate)
        except Exception:  # the janitor must outlive database hiccups
            log.exception("janitor pass failed")
        await asyncio.sleep(settings.heartbeat_interval_s)
