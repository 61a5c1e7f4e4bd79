"""The job queue, in PostgreSQL itself (procrastinate): no second broker.

``python -m service worker`` runs one worker process; start as many as needed on as many machines.
Each worker also runs a small janitor loop that (1) retries jobs whose worker stopped sending
heartbeats (killed with SIGKILL, machine lost) and (2) queues frames left ``queued`` without a job
(for example when the database went away between storing a frame and queueing it).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import procrastinate
from procrastinate import PsycopgConnector, RetryStrategy
from sqlalchemy import text

from service.settings import Settings

log = logging.getLogger(__name__)
QUEUE = "frames"
TASK = "process_frame"

_context: Any = None  # the WorkerContext of this process, set by run_worker


def lock_for(frame_id: int) -> str:
    return f"frame-{frame_id}"


def make_app(settings: Settings) -> procrastinate.App:
    app = procrastinate.App(connector=PsycopgConnector(conninfo=settings.psycopg_conninfo))

    @app.task(name=TASK, queue=QUEUE, retry=RetryStrategy(max_attempts=5, exponential_wait=2))
    def process_frame(frame_id: int) -> str:
        from service.worker.pipeline import process_frame as run

        if _context is None:
            raise RuntimeError("worker context not initialised")
        return run(_context, frame_id)

    @app.periodic(cron="17 3 * * *", periodic_id="rescore")
    @app.task(name="rescore_sites", queue=QUEUE, queueing_lock="rescore_sites")
    def rescore_sites(timestamp: int) -> int:
        """Nightly: priorities include recency, so they change as sites age without new sightings."""
        from service.db.sites import rescore_all

        if _context is None:
            raise RuntimeError("worker context not initialised")
        return rescore_all(_context.sessions, _context.ranking)

    @app.periodic(cron="43 2 * * *", periodic_id="retention")
    @app.task(name="enforce_retention", queue=QUEUE, queueing_lock="enforce_retention")
    def enforce_retention_task(timestamp: int) -> int:
        """Nightly: delete images older than the retention period (sites and decisions stay)."""
        from service.worker.retention import enforce_retention

        if _context is None:
            raise RuntimeError("worker context not initialised")
        return enforce_retention(_context.sessions, _context.store, _context.settings.retention_days)

    return app


def defer_frames(app: procrastinate.App, frame_ids: list[int]) -> int:
    """Queue a job per frame; a frame that already has a waiting job is skipped. Returns queued count."""
    queued = 0
    for frame_id in frame_ids:
        try:
            app.configure_task(TASK, queueing_lock=lock_for(frame_id)).defer(frame_id=frame_id)
            queued += 1
        except procrastinate.exceptions.AlreadyEnqueued:
            pass
    return queued


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


def context_originals() -> Any:
    return _context.originals


# An upload stored with no frame row this long after (the request died between storing the file and
# committing its row, or the row was refused) is orphaned: the janitor deletes it. A re-upload of the
# same bytes touches the file (ImageStore.put), so it is not taken while that request commits.
ORPHAN_UPLOAD_AGE_S = 3600.0


def _older_than(path: Any, cutoff: float) -> bool:
    try:
        return bool(path.stat().st_mtime < cutoff)
    except FileNotFoundError:
        return False


def sweep_originals(sessions: Any, originals: Any, orphan_age_s: float = ORPHAN_UPLOAD_AGE_S) -> int:
    """Delete uploads whose anonymized copy is stored or whose frame failed (a worker died between
    storing the copy and deleting the upload), and old uploads or temporary files that no frame
    refers to (a crash while receiving them). Returns how many were deleted."""
    import time

    from sqlalchemy import select

    from service.db.tables import Frame

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
                select(Frame.sha256, (Frame.anonymized_at.is_not(None)) | (Frame.status == "failed")).where(
                    Frame.sha256.in_(chunk)
                )
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


async def janitor(app: procrastinate.App, settings: Settings, sessions: Any) -> None:
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
                except Exception:
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
            await asyncio.to_thread(sweep_originals, sessions, context_originals())
        except Exception:  # the janitor must outlive database hiccups
            log.exception("janitor pass failed")
        await asyncio.sleep(settings.heartbeat_interval_s)


async def run_worker(settings: Settings, context: Any, concurrency: int = 1) -> None:
    global _context
    _context = context
    app = make_app(settings)
    async with app.open_async():
        worker = asyncio.create_task(
            app.run_worker_async(
                queues=[QUEUE],
                concurrency=concurrency,
                update_heartbeat_interval=settings.heartbeat_interval_s,
                stalled_worker_timeout=settings.stalled_after_s,
                install_signal_handlers=True,
            )
        )
        cleaner = asyncio.create_task(janitor(app, settings, context.sessions))
        try:
            await worker
        finally:
            cleaner.cancel()
