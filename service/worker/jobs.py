"""The job queue, in PostgreSQL itself (procrastinate): no second broker.

``python -m service worker`` runs one worker process; start as many as needed on as many machines.
Each worker also runs the janitor (``service.worker.janitor``). The worker's context (sessions, models,
stores) is passed to ``make_app``; the API builds the same app without one, only to queue jobs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

import procrastinate
from procrastinate import PsycopgConnector, RetryStrategy

from service.settings import Settings

if TYPE_CHECKING:
    from service.worker.pipeline import WorkerContext

log = logging.getLogger(__name__)
QUEUE = "frames"
TASK = "process_frame"


# A frame job that raised is retried after 7, 9, 13, 21, 37, 69, 133 and 261 s (9 minutes in all): longer
# than a database restart or failover of a few minutes. (A worker that dies is the janitor's business.)
FRAME_RETRY = RetryStrategy(max_attempts=8, wait=5, exponential_wait=2)


def lock_for(frame_id: int) -> str:
    return f"frame-{frame_id}"


def make_app(settings: Settings, context: WorkerContext | None = None) -> procrastinate.App:
    """The queue's app with its tasks; ``context`` is what a worker's tasks run with (None: queue only)."""
    app = procrastinate.App(connector=PsycopgConnector(conninfo=settings.psycopg_conninfo))

    def ctx() -> WorkerContext:
        if context is None:
            raise RuntimeError("this app only queues jobs: it has no worker context")
        return context

    @app.task(name=TASK, queue=QUEUE, retry=FRAME_RETRY)
    def process_frame(frame_id: int) -> str:
        from service.db.profiling import PROFILER
        from service.worker.pipeline import process_frame as run

        with PROFILER.frame("worker", frame=frame_id):
            return run(ctx(), frame_id)

    _periodic_tasks(app, ctx)
    return app


def _periodic_tasks(app: procrastinate.App, ctx: Callable[[], WorkerContext]) -> None:
    """The worker's scheduled jobs: nightly rescoring, regrading and retention; frequent regrading and
    verification of what changed."""

    @app.periodic(cron="17 3 * * *", periodic_id="rescore")
    @app.task(name="rescore_sites", queue=QUEUE, queueing_lock="rescore_sites")
    def rescore_sites(timestamp: int) -> int:
        """Nightly: every open site under the ranking config in use (a new config takes effect; growth)."""
        from service.db.sites import rescore_all

        return rescore_all(ctx().sessions, ctx().ranking)

    @app.periodic(cron="*/5 * * * *", periodic_id="regrade")
    @app.task(name="regrade_sections", queue=QUEUE, queueing_lock="regrade_sections")
    def regrade_sections(timestamp: int) -> int:
        """Every 5 minutes: regrade the road sections whose sites or coverage changed."""
        from service.db.grades import regrade_dirty
        from service.worker.context import grading_config

        return regrade_dirty(ctx().sessions, grading_config(ctx().settings), datetime.now(UTC))

    @app.periodic(cron="*/15 * * * *", periodic_id="verify_sites")
    @app.task(name="verify_sites", queue=QUEUE, queueing_lock="verify_sites")
    def verify_sites(timestamp: int) -> int:
        """Every 15 minutes: what new passes say about repaired and open sites (service/db/history.py)."""
        from service.db.history import verify_changed
        from service.db.sites import rescore

        now = datetime.now(UTC)
        counts = verify_changed(
            ctx().sessions,
            ctx().settings.verify_passes,
            now,
            rescore=lambda site: rescore(site, ctx().ranking, now),
        )
        return sum(counts.values())

    @app.periodic(cron="7 3 * * *", periodic_id="rebuild_coverage")
    @app.task(name="rebuild_coverage", queue=QUEUE, queueing_lock="rebuild_coverage")
    def rebuild_coverage_task(timestamp: int) -> int:
        """Nightly, before the regrade: count the sections' passes again from the frames (the worker keeps
        them as it records frames; this fixes whatever differs, e.g. after a restore). Frames wait
        meanwhile (seconds at a million frames)."""
        from service.db.coverage import rebuild_coverage
        from service.db.engine import transaction

        with transaction(ctx().sessions) as session:
            fixed = rebuild_coverage(session)
        if any(fixed.values()):
            log.warning("coverage rebuilt: %s", fixed)
        return sum(fixed.values())

    @app.periodic(cron="29 3 * * *", periodic_id="regrade_all")
    @app.task(name="regrade_all_sections", queue=QUEUE, queueing_lock="regrade_all_sections")
    def regrade_all_sections(timestamp: int) -> int:
        """Nightly: every section (surveys age out of the period; a new grading config takes effect)."""
        from service.db.grades import recompute_all
        from service.worker.context import grading_config

        return recompute_all(ctx().sessions, grading_config(ctx().settings), datetime.now(UTC))["changed"]

    @app.periodic(cron="43 2 * * *", periodic_id="retention")
    @app.task(name="enforce_retention", queue=QUEUE, queueing_lock="enforce_retention")
    def enforce_retention_task(timestamp: int) -> int:
        """Nightly: delete images older than the retention period (sites and decisions stay)."""
        from service.worker.retention import enforce_retention

        settings = ctx().settings
        return enforce_retention(
            ctx().sessions, ctx().store, settings.retention_days, corrections=settings.corrections_dir
        )


def defer_frames(app: procrastinate.App, frame_ids: list[int]) -> int:
    """Queue a job per frame; a frame that already has a waiting job is skipped. Returns queued count.

    All in one statement when none has a waiting job (an upload's batch: one round trip, not one per
    photo); otherwise (the statement inserted nothing) one by one, skipping those.
    """
    jobs = [app.configure_task(TASK, queueing_lock=lock_for(f)).make_new_job(frame_id=f) for f in frame_ids]
    if not jobs:
        return 0
    try:
        app.job_manager.batch_defer_jobs(jobs)
        return len(jobs)
    except procrastinate.exceptions.AlreadyEnqueued:
        pass
    queued = 0
    for frame_id in frame_ids:
        try:
            app.configure_task(TASK, queueing_lock=lock_for(frame_id)).defer(frame_id=frame_id)
            queued += 1
        except procrastinate.exceptions.AlreadyEnqueued:
            pass
    return queued


async def run_worker(settings: Settings, context: WorkerContext, concurrency: int = 1) -> None:
    """Run one worker process (``concurrency`` jobs at a time) and its janitor until stopped."""
    from service.worker.association import AssociationConfig
    from service.worker.drives import associate_stale
    from service.worker.janitor import janitor

    app = make_app(settings, context)
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
        associate = partial(
            associate_stale,
            context.sessions,
            older_than_s=settings.stalled_after_s,
            config=AssociationConfig(radius_m=settings.association_radius_m),
            model_version_id=context.model_version_id,
            ranking=context.ranking,
        )
        cleaner = asyncio.create_task(janitor(app, settings, context.sessions, context.originals, associate))
        try:
            await worker
        finally:
            cleaner.cancel()
