"""The janitor, a small loop in every worker: it retries jobs whose worker stopped sending heartbeats
(killed with SIGKILL, machine lost), marks frames failed whose job used up its attempts, queues frames
left ``queued`` without a job (the database went away between storing a frame and queueing it), and
deletes uploads that are anonymized or orphaned.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import procrastinate
from sqlalchemy import select, text

from service.db.store import ImageStore
from service.db.tables import Frame
from service.domain.statuses import FrameStatus
from service.settings import Settings
from service.worker.jobs import defer_frames

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
    UPDATE frame f SET status = 'failed', error = 'processing failed after all retries (see the worker log)'
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


def sweep_originals(sessions: Any, originals: ImageStore, orphan_age_s: float = ORPHAN_UPLOAD_AGE_S) -> int:
    """Delete uploads whose anonymized copy is stored or whose frame failed (a worker died between
    storing the copy and deleting the upload), and old uploads or temporary files that no frame
    refers to (a crash while receiving them). Returns how many were deleted."""
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
            rows = session.execute(
                select(
                    Frame.sha256, (Frame.anonymized_at.is_not(None)) | (Frame.status == FrameStatus.FAILED)
                ).where(Frame.sha256.in_(chunk))
            ).all()
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


async def janitor(app: procrastinate.App, settings: Settings, sessions: Any, originals: ImageStore) -> None:
    """Forever: retry stalled jobs, queue orphaned frames, delete uploads already anonymized."""
    while True:
        try:
            stalled = await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=settings.stalled_after_s)
            for job in stalled:
                log.warning(
                    "retrying job %s (%s): its worker stopped sending heartbeats", job.id, job.task_name
                )
                try:  # one job that cannot be retried must not stop the rest of the pass
                    await app.job_manager.retry_job(job)
                except Exception:  # unexpected: logged, the next pass tries again
                    log.exception("could not retry job %s", job.id)
            with sessions() as session, session.begin():
                given_up = session.execute(GIVE_UP_SQL).rowcount
            if given_up:
                log.error("%d frames failed after all retries", given_up)
            with sessions() as session:
                orphans = [row[0] for row in session.execute(ORPHANS_SQL, {"age": settings.stalled_after_s})]
            if orphans:
                log.warning("queueing %d frames that had no job", len(orphans))
                await asyncio.to_thread(defer_frames, app, orphans)
            await asyncio.to_thread(sweep_originals, sessions, originals)
        except Exception:  # the janitor must outlive database hiccups
            log.exception("janitor pass failed")
        await asyncio.sleep(settings.heartbeat_interval_s)
