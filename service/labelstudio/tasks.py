"""The correction loop with Label Studio: send frames with the model's boxes, fetch people's corrections.

``push`` creates (or checks) a project with a RectangleLabels configuration for the model's classes, a
Local Files storage over the image store, and sends frames as tasks: the stored, anonymized image (served
by Label Studio from its document root) with the model's boxes as a prediction (model version, score).
Which frames: ``random`` (the default: it gave the adapted model more held-out mAP50 than the others at
50, 100 and 200 corrections, ``bench/active_learning.py``), ``uncertain`` (least certain detections
first) or ``rejected`` (sites that staff rejected or relabelled). A frame is recorded in
``labelstudio_task`` only once Label Studio has created its task, and never sent again; a task created
but not recorded (a crash between the two) is found in the project by its frame's sha256 and recorded on
the next push.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, literal, or_, select
from sqlalchemy.orm import Session, sessionmaker

from service.db.engine import transaction
from service.db.store import ImageStore
from service.db.tables import DamageSite, Decision, Frame, LabelStudioTask, ModelVersion, Observation
from service.domain.classes import CLASSES
from service.domain.statuses import PUSH_STRATEGIES, FrameStatus, PushStrategy, SiteStatus
from service.labelstudio.client import (
    FROM_NAME,
    PUSH_LOCK,
    TO_NAME,
    Connection,
    LabelStudioError,
    connect,
    ensure_project,
    ensure_storage,
    ensure_webhook,
    local_file_url,
)
from service.settings import Settings

log = logging.getLogger(__name__)


def candidates(strategy: str) -> Select[Any]:
    """Frames with a stored anonymized image, not sent yet, best first for ``strategy``."""
    base = (
        select(Frame)
        .where(
            Frame.image_key.is_not(None), Frame.image_deleted_at.is_(None), Frame.status == FrameStatus.DONE
        )
        .where(~select(LabelStudioTask.frame_id).where(LabelStudioTask.frame_id == Frame.id).exists())
    )
    if strategy == PushStrategy.UNCERTAIN:
        # The least certain detection of a frame decides: lowest confidence first.
        least = (
            select(Observation.frame_id, func.min(Observation.confidence).label("least"))
            .group_by(Observation.frame_id)
            .subquery()
        )
        return base.join(least, least.c.frame_id == Frame.id).order_by(least.c.least, Frame.id)
    if strategy == PushStrategy.REJECTED:
        # Frames that saw sites which staff rejected as false or gave another class, latest first.
        decided = (
            select(Observation.frame_id, func.max(Decision.at).label("decided"))
            .join(DamageSite, DamageSite.id == Observation.site_id)
            .join(Decision, Decision.site_id == DamageSite.id)
            .where(
                or_(
                    Decision.action == "reject",
                    Decision.new_status == SiteStatus.REJECTED,
                    Decision.new_class != Decision.previous_class,
                )
            )
            .group_by(Observation.frame_id)
            .subquery()
        )
        return base.join(decided, decided.c.frame_id == Frame.id).order_by(decided.c.decided.desc(), Frame.id)
    if strategy == PushStrategy.RANDOM:
        return base.order_by(func.random())
    raise ValueError(f"strategy must be one of {', '.join(PUSH_STRATEGIES)}, got {strategy!r}")


def prediction(frame: Frame, observations: list[Observation], model_name: str | None) -> dict[str, Any]:
    """The model's boxes as a Label Studio prediction (percent coordinates, top-left origin)."""
    w, h = frame.width, frame.height
    result = []
    for i, obs in enumerate(sorted(observations, key=lambda o: -o.confidence)):
        x1, y1 = max(0.0, min(obs.x1, w)), max(0.0, min(obs.y1, h))
        x2, y2 = max(0.0, min(obs.x2, w)), max(0.0, min(obs.y2, h))
        if x2 <= x1 or y2 <= y1 or obs.class_name not in CLASSES:
            continue
        result.append(
            {
                "id": f"obs{obs.id or i}",
                "from_name": FROM_NAME,
                "to_name": TO_NAME,
                "type": "rectanglelabels",
                "original_width": w,
                "original_height": h,
                "image_rotation": 0,
                "value": {
                    "x": 100 * x1 / w,
                    "y": 100 * y1 / h,
                    "width": 100 * (x2 - x1) / w,
                    "height": 100 * (y2 - y1) / h,
                    "rotation": 0,
                    "rectanglelabels": [obs.class_name],
                },
                "score": round(obs.confidence, 4),
            }
        )
    score = min((o.confidence for o in observations), default=1.0)
    return {"model_version": model_name or "unknown", "score": round(score, 4), "result": result}


# --- push -----------------------------------------------------------------------------------------


RemoteTask = tuple[int, int | None, str | None, str | None]


def _remote_frames(conn: Connection, project_id: int) -> Iterator[RemoteTask]:
    """(task id, frame id, sha256, strategy) of every task in the project."""
    pager: Any = conn.call(
        "listing tasks",
        conn.client.tasks.list,
        project=project_id,
        fields="task_only",
        page_size=500,
    )
    tasks = conn.call("listing tasks", lambda: list(pager))
    for task in tasks:
        data = task.data or {}
        yield task.id, data.get("frame_id"), data.get("sha256"), data.get("strategy")


def reconcile(session: Session, remote: list[RemoteTask], project_id: int) -> int:
    """Record tasks that Label Studio has but we did not record (a push interrupted after sending)."""
    recorded = set(
        session.scalars(select(LabelStudioTask.task_id).where(LabelStudioTask.project_id == project_id))
    )
    added = 0
    for task_id, frame_id, sha, strategy in remote:
        if task_id in recorded or frame_id is None:
            continue
        frame = session.get(Frame, frame_id)
        if frame is None or frame.sha256 != sha:  # another database's frame (or a hand-made task)
            continue
        if session.get(LabelStudioTask, frame.id) is not None:
            continue
        session.add(
            LabelStudioTask(
                frame_id=frame.id,
                project_id=project_id,
                task_id=task_id,
                strategy=strategy if strategy in PUSH_STRATEGIES else PushStrategy.RANDOM,
                model_version_id=frame.model_version_id,
            )
        )
        added += 1
    if added:
        session.flush()
        log.warning("recorded %d task(s) that an interrupted push had sent without recording", added)
    return added


@dataclass(frozen=True)
class Outgoing:
    """A frame about to be sent: its id and sha256, and the model whose boxes go with it."""

    frame_id: int
    sha256: str
    model_id: int | None


@contextmanager
def push_lock(sessions: sessionmaker[Session]) -> Iterator[None]:
    """One push at a time (a session-level advisory lock on its own connection, outside any
    transaction: the calls to Label Studio in between never hold one open)."""
    engine = sessions.kw["bind"]
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as lock:
        lock.execute(select(func.pg_advisory_lock(literal(PUSH_LOCK))))
        try:
            yield
        finally:
            lock.execute(select(func.pg_advisory_unlock(literal(PUSH_LOCK))))


def build_tasks(
    session: Session, settings: Settings, strategy: str, limit: int
) -> tuple[list[dict[str, Any]], list[Outgoing]]:
    """Label Studio tasks (image URL, frame, the model's boxes as a prediction) for up to ``limit``
    frames chosen by ``strategy`` whose stored image exists."""
    store = ImageStore(settings.image_dir)
    names = {row.id: row.name for row in session.execute(select(ModelVersion.id, ModelVersion.name))}
    tasks, outgoing = [], []
    for frame in session.scalars(candidates(strategy).limit(limit)):
        path = store.path(frame.image_key) if frame.image_key else None
        if path is None or not path.is_file():
            log.warning("frame %s: image %s is missing, not sent", frame.id, path)
            continue
        observations = list(session.scalars(select(Observation).where(Observation.frame_id == frame.id)))
        model_id = frame.model_version_id or next((o.model_version_id for o in observations), None)
        tasks.append(
            {
                "data": {
                    "image": local_file_url(settings, path),
                    "frame_id": frame.id,
                    "sha256": frame.sha256,
                    "strategy": strategy,
                    "captured_at": frame.captured_at.isoformat() if frame.captured_at else None,
                },
                "predictions": [prediction(frame, observations, names.get(model_id))],
            }
        )
        outgoing.append(Outgoing(frame.id, frame.sha256, model_id))
    return tasks, outgoing


def import_tasks(
    conn: Connection, project_id: int, tasks: list[dict[str, Any]], outgoing: list[Outgoing]
) -> list[int]:
    """Create the tasks; their ids in request order, each checked to hold its frame."""
    response = conn.call(
        "importing tasks", conn.client.projects.import_tasks, project_id, request=tasks, return_task_ids=True
    )
    task_ids = [int(i) for i in getattr(response, "task_ids", None) or []]
    if len(task_ids) != len(tasks):
        # Without one id per task we cannot say which frame went where: record nothing; the next push
        # finds the created tasks by their frame's sha256 (reconcile).
        raise LabelStudioError(
            f"Label Studio created {response.task_count} task(s) but returned {len(task_ids)} id(s) for "
            f"{len(tasks)}: nothing recorded; the next push records what was created"
        )
    # Ids come back in request order; check it, since a wrong mapping would corrupt training data.
    for task_id, frame in zip(task_ids, outgoing, strict=True):
        task = conn.call("reading a created task", conn.client.tasks.get, str(task_id))
        if (task.data or {}).get("sha256") != frame.sha256:
            raise LabelStudioError(
                f"task {task_id} does not hold frame {frame.frame_id}: nothing recorded; the next push "
                "records what was created"
            )
    return task_ids


def push(
    settings: Settings,
    sessions: sessionmaker[Session],
    limit: int = 50,
    strategy: str = PushStrategy.RANDOM,
) -> dict[str, Any]:
    """Send up to ``limit`` frames chosen by ``strategy``; returns a summary (project, task ids)."""
    if strategy not in PUSH_STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(PUSH_STRATEGIES)}, got {strategy!r}")
    if limit < 1:
        raise ValueError("limit must be at least 1")
    conn = connect(settings)
    project = ensure_project(conn, settings)
    summary: dict[str, Any] = {"project_id": project.id, "project": project.title, "strategy": strategy}
    with push_lock(sessions):
        remote = list(_remote_frames(conn, project.id))
        with transaction(sessions) as session:
            summary["recovered"] = reconcile(session, remote, project.id)
            tasks, outgoing = build_tasks(session, settings, strategy, limit)
        summary.update(sent=0, tasks=[])
        if not tasks:
            return summary
        ensure_storage(conn, settings, project.id)
        task_ids = import_tasks(conn, project.id, tasks, outgoing)
        with transaction(sessions) as session:
            for task_id, frame in zip(task_ids, outgoing, strict=True):
                session.add(
                    LabelStudioTask(
                        frame_id=frame.frame_id,
                        project_id=project.id,
                        task_id=task_id,
                        strategy=strategy,
                        model_version_id=frame.model_id,
                    )
                )
                summary["tasks"].append({"frame_id": frame.frame_id, "task_id": task_id})
        summary["sent"] = len(task_ids)
    ensure_webhook(conn, settings, project.id)
    return summary
