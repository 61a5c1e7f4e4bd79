"""The correction loop with Label Studio: send frames with the model's boxes, fetch people's corrections.

``push`` creates (or checks) a project with a RectangleLabels configuration for the model's classes, a
Local Files storage over the image store, and sends frames as tasks: the stored, anonymized image (served
by Label Studio from its document root) with the model's boxes as a prediction (model version, score).
Which frames: ``uncertain`` (least certain detections first), ``rejected`` (sites that staff rejected or
relabelled) or ``random``. A frame is recorded in ``labelstudio_task`` only once Label Studio has created
its task, and never sent again; a task created but not recorded (a crash between the two) is found in the
project by its frame's sha256 and recorded on the next push.

``pull`` fetches finished annotations (label-studio-sdk export) and writes them as YOLO labels into the
corrections folder (``data_dir/corrections``): a YOLO source with ``data.yaml`` and ``train/`` and
``valid/`` folders of ``images/`` and ``labels/`` that ``python -m datasets build`` merges into training
data. The split of a photo is fixed by a hash of its sha256: ``valid`` is the held-out part that
``python -m training adapt`` evaluates on and never trains on. The optional webhook
(service/labelstudio_webhook.py) applies one annotation the same way as soon as it is saved.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import yaml
from sqlalchemy import Select, func, literal, or_, select
from sqlalchemy.orm import Session, sessionmaker

from service.db import transaction
from service.models import (
    LABELSTUDIO_STRATEGIES,
    DamageSite,
    Decision,
    Frame,
    LabelStudioTask,
    ModelVersion,
    Observation,
)
from service.settings import Settings
from service.store import ImageStore

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio

log = logging.getLogger(__name__)

CLASSES = ("D00", "D10", "D20", "D40")  # class id = position, as in every dataset and model
FROM_NAME, TO_NAME = "label", "image"
SPLITS = ("train", "valid")
# pg_advisory_xact_lock key: one push at a time, so two pushes never send the same frame.
PUSH_LOCK = 0x4C53_5055  # "LSPU"
T = TypeVar("T")


class LabelStudioError(RuntimeError):
    """Label Studio is unreachable, refused us, or its project does not fit: a message for people."""


def label_config(classes: tuple[str, ...] = CLASSES) -> str:
    """RectangleLabels over the image; ``category`` keeps class ids in Label Studio's YOLO export."""
    labels = "\n    ".join(f'<Label value="{name}" category="{i}"/>' for i, name in enumerate(classes))
    return (
        "<View>\n"
        f'  <Image name="{TO_NAME}" value="$image" zoom="true"/>\n'
        f'  <RectangleLabels name="{FROM_NAME}" toName="{TO_NAME}">\n    {labels}\n  </RectangleLabels>\n'
        "</View>"
    )


def config_labels(config: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Label values of a project's configuration, and (name, toName) of its RectangleLabels tags."""
    try:
        root = ET.fromstring(config)
    except ET.ParseError as exc:
        raise LabelStudioError(f"the project's label configuration is not valid XML: {exc}") from exc
    labels: list[str] = []
    tags: list[tuple[str, str]] = []
    for tag in root.iter("RectangleLabels"):
        tags.append((tag.get("name", ""), tag.get("toName", "")))
        labels.extend(label.get("value", "") for label in tag.iter("Label"))
    return labels, tags


def holdout_split(sha256: str, percent: int) -> str:
    """``valid`` (held out, never trained on) for about ``percent`` % of photos, fixed by the sha256."""
    digest = hashlib.sha256(b"roadwatch-holdout\0" + sha256.encode()).digest()
    return "valid" if int.from_bytes(digest[:4], "big") % 100 < percent else "train"


# --- the connection -------------------------------------------------------------------------------


@dataclass
class Connection:
    client: LabelStudio
    url: str

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one SDK call; turn transport and HTTP errors into a LabelStudioError people can act on."""
        import httpx
        from label_studio_sdk.core.api_error import ApiError

        try:
            return fn(*args, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise LabelStudioError(
                f"Label Studio is not reachable at {self.url} ({what}): {exc}. Is it running? "
                "(`make labelstudio-start`, then `scripts/labelstudio.sh env`)"
            ) from exc
        except httpx.TimeoutException as exc:
            raise LabelStudioError(f"Label Studio at {self.url} did not answer in time ({what})") from exc
        except httpx.HTTPError as exc:
            raise LabelStudioError(f"talking to Label Studio at {self.url} failed ({what}): {exc}") from exc
        except ApiError as exc:
            if exc.status_code in (401, 403):
                raise LabelStudioError(
                    f"Label Studio at {self.url} refused the API token ({exc.status_code}, {what}): check "
                    "ROADWATCH_LABELSTUDIO_TOKEN (the user's legacy API token; the server needs "
                    "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true)"
                ) from exc
            raise LabelStudioError(
                f"Label Studio at {self.url} refused {what}: HTTP {exc.status_code}: {_short(exc.body)}"
            ) from exc


def _short(body: Any, limit: int = 500) -> str:
    text = str(body)
    return text if len(text) <= limit else text[:limit] + "..."


def connect(settings: Settings) -> Connection:
    """A client for ``settings.labelstudio_url`` whose token has been checked (``whoami``)."""
    if not settings.labelstudio_url:
        raise LabelStudioError("ROADWATCH_LABELSTUDIO_URL is not set (see `scripts/labelstudio.sh env`)")
    if settings.labelstudio_token is None or not settings.labelstudio_token.get_secret_value():
        raise LabelStudioError("ROADWATCH_LABELSTUDIO_TOKEN is not set (see `scripts/labelstudio.sh env`)")
    from label_studio_sdk import LabelStudio

    url = settings.labelstudio_url.rstrip("/")
    client = LabelStudio(
        base_url=url, api_key=settings.labelstudio_token.get_secret_value(), timeout=60, max_retries=0
    )
    conn = Connection(client, url)
    conn.call("checking the token", client.users.whoami)
    return conn


def find_project(conn: Connection, title: str) -> Any | None:
    matches = [
        p
        for p in conn.call("listing projects", lambda: list(conn.client.projects.list(title=title)))
        if p.title == title
    ]
    if len(matches) > 1:
        raise LabelStudioError(
            f"Label Studio has {len(matches)} projects titled {title!r} (ids "
            f"{', '.join(str(p.id) for p in matches)}): rename all but one, or set ROADWATCH_LABELSTUDIO_PROJECT"
        )
    if not matches:
        return None
    return conn.call("reading the project", conn.client.projects.get, matches[0].id)


def check_project(project: Any, classes: tuple[str, ...] = CLASSES) -> bool:
    """Raise when the project labels another class set; True when its configuration is exactly ours."""
    config = project.label_config or ""
    labels, tags = config_labels(config)
    if sorted(labels) != sorted(classes):
        raise LabelStudioError(
            f"the Label Studio project {project.title!r} (id {project.id}) labels {labels or 'nothing'} with "
            f"rectangles, but the model's classes are {list(classes)}: set ROADWATCH_LABELSTUDIO_PROJECT to "
            "another title (a new project is created) or give that project these labels"
        )
    return (FROM_NAME, TO_NAME) in tags and config.strip() == label_config(classes).strip()


def ensure_project(conn: Connection, settings: Settings, create: bool = True) -> Any:
    """The project titled ``settings.labelstudio_project``: created, or checked and updated to our config."""
    title = settings.labelstudio_project
    project = find_project(conn, title)
    if project is None:
        if not create:
            raise LabelStudioError(
                f"Label Studio has no project titled {title!r}: `python -m service labelstudio push` creates it"
            )
        project = conn.call(
            "creating the project",
            conn.client.projects.create,
            title=title,
            description="Roadwatch: correct the model's boxes (D00 longitudinal crack, D10 transverse "
            "crack, D20 alligator crack, D40 pothole). Delete false boxes, add missed damage.",
            label_config=label_config(),
        )
        log.info("created Label Studio project %r (id %s)", title, project.id)
        return conn.call("reading the project", conn.client.projects.get, project.id)
    if not check_project(project):
        # Same labels, other tags or attributes (e.g. no category): make it ours. Label Studio refuses
        # changes that would orphan existing annotations, which then surfaces as a clear error.
        conn.call(
            "updating the label configuration",
            conn.client.projects.update,
            project.id,
            label_config=label_config(),
        )
        project = conn.call("reading the project", conn.client.projects.get, project.id)
    return project


def document_root(settings: Settings) -> Path:
    return (settings.labelstudio_document_root or settings.data_dir).resolve()


def local_file_url(settings: Settings, path: Path) -> str:
    """The URL Label Studio serves ``path`` under (Local Files, relative to its document root)."""
    root = document_root(settings)
    try:
        relative = path.resolve().relative_to(root)
    except ValueError as exc:
        raise LabelStudioError(
            f"the image folder {settings.image_dir} is not inside Label Studio's document root {root}: start "
            "Label Studio with LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT set to a parent of it and set "
            "ROADWATCH_LABELSTUDIO_DOCUMENT_ROOT to the same folder"
        ) from exc
    return "/data/local-files/?d=" + quote(relative.as_posix(), safe="/")


def ensure_storage(conn: Connection, settings: Settings, project_id: int) -> None:
    """A Local Files storage over the image store, which lets the project's tasks read those files."""
    path = str(settings.image_dir.resolve())
    storages = conn.call("listing storages", conn.client.import_storage.local.list, project=project_id)
    if any(getattr(s, "path", None) == path for s in storages):
        return
    conn.call(
        "creating the Local Files storage (is LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT a parent of "
        f"{path}, and LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true?)",
        conn.client.import_storage.local.create,
        project=project_id,
        path=path,
        title="Roadwatch images",
        description="Anonymized frames of the Roadwatch image store (tasks are sent by the service; never sync)",
        use_blob_urls=False,
    )


# --- choosing frames ------------------------------------------------------------------------------


def candidates(strategy: str) -> Select[Any]:
    """Frames with a stored anonymized image, not sent yet, best first for ``strategy``."""
    base = (
        select(Frame)
        .where(Frame.image_key.is_not(None), Frame.image_deleted_at.is_(None), Frame.status == "done")
        .where(~select(LabelStudioTask.frame_id).where(LabelStudioTask.frame_id == Frame.id).exists())
    )
    if strategy == "uncertain":
        # The least certain detection of a frame decides: lowest confidence first.
        least = (
            select(Observation.frame_id, func.min(Observation.confidence).label("least"))
            .group_by(Observation.frame_id)
            .subquery()
        )
        return base.join(least, least.c.frame_id == Frame.id).order_by(least.c.least, Frame.id)
    if strategy == "rejected":
        # Frames that saw sites which staff rejected as false or gave another class, latest first.
        decided = (
            select(Observation.frame_id, func.max(Decision.at).label("decided"))
            .join(DamageSite, DamageSite.id == Observation.site_id)
            .join(Decision, Decision.site_id == DamageSite.id)
            .where(
                or_(
                    Decision.action == "reject",
                    Decision.new_status == "rejected",
                    Decision.new_class != Decision.previous_class,
                )
            )
            .group_by(Observation.frame_id)
            .subquery()
        )
        return base.join(decided, decided.c.frame_id == Frame.id).order_by(decided.c.decided.desc(), Frame.id)
    if strategy == "random":
        return base.order_by(func.random())
    raise ValueError(f"strategy must be one of {', '.join(LABELSTUDIO_STRATEGIES)}, got {strategy!r}")


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


def _remote_frames(
    conn: Connection, project_id: int
) -> Iterator[tuple[int, int | None, str | None, str | None]]:
    """(task id, frame id, sha256, strategy) of every task in the project."""
    pager = conn.call(
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


def reconcile(session: Session, conn: Connection, project_id: int) -> int:
    """Record tasks that Label Studio has but we did not record (a push interrupted after sending)."""
    recorded = set(
        session.scalars(select(LabelStudioTask.task_id).where(LabelStudioTask.project_id == project_id))
    )
    missing = [r for r in _remote_frames(conn, project_id) if r[0] not in recorded and r[1] is not None]
    added = 0
    for task_id, frame_id, sha, strategy in missing:
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
                strategy=strategy if strategy in LABELSTUDIO_STRATEGIES else "random",
                model_version_id=frame.model_version_id,
            )
        )
        added += 1
    if added:
        session.flush()
        log.warning("recorded %d task(s) that an interrupted push had sent without recording", added)
    return added


def push(
    settings: Settings, sessions: sessionmaker[Session], limit: int = 50, strategy: str = "uncertain"
) -> dict[str, Any]:
    """Send up to ``limit`` frames chosen by ``strategy``; returns a summary (project, task ids)."""
    if strategy not in LABELSTUDIO_STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(LABELSTUDIO_STRATEGIES)}, got {strategy!r}")
    if limit < 1:
        raise ValueError("limit must be at least 1")
    conn = connect(settings)
    project = ensure_project(conn, settings)
    store = ImageStore(settings.image_dir)
    with transaction(sessions) as session:
        session.execute(select(func.pg_advisory_xact_lock(literal(PUSH_LOCK))))
        recovered = reconcile(session, conn, project.id)
        frames = list(session.scalars(candidates(strategy).limit(limit)))
        summary: dict[str, Any] = {
            "project_id": project.id,
            "project": project.title,
            "strategy": strategy,
            "recovered": recovered,
            "sent": 0,
            "tasks": [],
        }
        if not frames:
            return summary
        ensure_storage(conn, settings, project.id)
        names = {row.id: row.name for row in session.execute(select(ModelVersion.id, ModelVersion.name))}
        tasks, sent_frames = [], []
        for frame in frames:
            assert frame.image_key is not None
            path = store.path(frame.image_key)
            if not path.is_file():
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
            sent_frames.append((frame, model_id))
        if not tasks:
            return summary
        response = conn.call(
            "importing tasks",
            conn.client.projects.import_tasks,
            project.id,
            request=tasks,
            return_task_ids=True,
        )
        task_ids = list(response.task_ids or [])
        if len(task_ids) != len(tasks):
            # Without one id per task we cannot say which frame went where: record nothing; the next push
            # finds the created tasks by their frame's sha256 (reconcile).
            raise LabelStudioError(
                f"Label Studio created {response.task_count} task(s) but returned {len(task_ids)} id(s) for "
                f"{len(tasks)}: nothing recorded; the next push records what was created"
            )
        # Ids come back in request order; check it, since a wrong mapping would corrupt training data.
        for task_id, (frame, _) in zip(task_ids, sent_frames, strict=True):
            task = conn.call("reading a created task", conn.client.tasks.get, str(task_id))
            if (task.data or {}).get("sha256") != frame.sha256:
                raise LabelStudioError(
                    f"task {task_id} does not hold frame {frame.id}: nothing recorded; the next push "
                    "records what was created"
                )
        for task_id, (frame, model_id) in zip(task_ids, sent_frames, strict=True):
            session.add(
                LabelStudioTask(
                    frame_id=frame.id,
                    project_id=project.id,
                    task_id=int(task_id),
                    strategy=strategy,
                    model_version_id=model_id,
                )
            )
            summary["tasks"].append({"frame_id": frame.id, "task_id": int(task_id)})
        summary["sent"] = len(task_ids)
    ensure_webhook(conn, settings, project.id)
    return summary


def ensure_webhook(conn: Connection, settings: Settings, project_id: int) -> None:
    """When configured, Label Studio calls the service on every saved annotation (no timer needed)."""
    if settings.labelstudio_webhook_secret is None or not settings.labelstudio_webhook_base_url:
        return
    url = settings.labelstudio_webhook_base_url.rstrip("/") + "/api/v1/labelstudio/webhook"
    hooks = conn.call("listing webhooks", conn.client.webhooks.list, project=str(project_id))
    if any(getattr(h, "url", None) == url for h in hooks):
        return
    conn.call(
        "creating the webhook",
        conn.client.webhooks.create,
        url=url,
        project=project_id,
        send_payload=True,
        send_for_all_actions=False,
        actions=["ANNOTATION_CREATED", "ANNOTATION_UPDATED"],
        headers={"X-Roadwatch-Webhook-Secret": settings.labelstudio_webhook_secret.get_secret_value()},
    )


# --- pull -----------------------------------------------------------------------------------------


def box_to_yolo(value: dict[str, Any], classes: tuple[str, ...] = CLASSES) -> str | None:
    """One rectangle (percent of the image, top-left, rotation in degrees about that corner) as a YOLO
    line ``class cx cy w h`` (normalised); a rotated box becomes its axis-aligned hull."""
    labels = value.get("rectanglelabels") or []
    if len(labels) != 1 or labels[0] not in classes:
        return None
    try:  # a region as Label Studio stores it; anything else is skipped, never an error
        x, y = float(value["x"]), float(value["y"])
        w, h = float(value["width"]), float(value["height"])
        angle = math.radians(float(value.get("rotation") or 0.0))
    except (KeyError, TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in (x, y, w, h, angle)):
        return None
    if angle:
        cos, sin = math.cos(angle), math.sin(angle)
        corners = [
            (x + dx * cos - dy * sin, y + dx * sin + dy * cos) for dx, dy in ((0, 0), (w, 0), (w, h), (0, h))
        ]
        xs, ys = [c[0] for c in corners], [c[1] for c in corners]
        x1, y1, x2, y2 = min(xs), min(ys), max(xs), max(ys)
    else:
        x1, y1, x2, y2 = x, y, x + w, y + h
    x1, y1 = max(0.0, min(x1, 100.0)) / 100, max(0.0, min(y1, 100.0)) / 100
    x2, y2 = max(0.0, min(x2, 100.0)) / 100, max(0.0, min(y2, 100.0)) / 100
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        return None
    return f"{classes.index(labels[0])} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}"


def annotation_lines(result: list[dict[str, Any]]) -> tuple[list[str], int]:
    """YOLO lines of an annotation's rectangles, and how many regions were left out."""
    lines, skipped = [], 0
    for region in result if isinstance(result, list) else []:
        if (
            not isinstance(region, dict)
            or region.get("type") != "rectanglelabels"
            or region.get("from_name") != FROM_NAME
            or not isinstance(region.get("value"), dict)
        ):
            skipped += 1
            continue
        line = box_to_yolo(region["value"])
        if line is None:
            skipped += 1
            continue
        lines.append(line)
    return lines, skipped


def final_annotation(annotations: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The latest saved (not skipped) annotation of a task; None while nobody finished it."""
    done = [a for a in annotations or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    if not done:
        return None
    return max(done, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), a.get("id", 0)))


def ensure_corrections_folder(folder: Path) -> None:
    for split in SPLITS:
        for kind in ("images", "labels"):
            (folder / split / kind).mkdir(parents=True, exist_ok=True)
    data = {
        "names": list(CLASSES),
        "nc": len(CLASSES),
        "train": "train/images",
        "val": "valid/images",
        "note": "Corrections from Label Studio; valid/ is held out (never trained on). Written by "
        "`python -m service labelstudio pull`.",
    }
    target = folder / "data.yaml"
    text = yaml.safe_dump(data, sort_keys=False)
    if not target.exists() or target.read_text() != text:
        _write_atomic(target, text.encode())


def _write_atomic(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def apply_annotation(
    session: Session,
    settings: Settings,
    row: LabelStudioTask,
    annotation: dict[str, Any],
    store: ImageStore | None = None,
) -> str:
    """Write one task's annotation into the corrections folder; returns written|unchanged|image_missing."""
    annotated_at = _parse_time(annotation.get("updated_at") or annotation.get("created_at"))
    folder = settings.corrections_dir
    frame = session.get(Frame, row.frame_id)
    assert frame is not None
    split = row.split or holdout_split(frame.sha256, settings.labelstudio_holdout_percent)
    image_target = folder / split / "images" / f"{frame.sha256}.jpg"
    label_target = folder / split / "labels" / f"{frame.sha256}.txt"
    if (
        row.annotation_id == annotation.get("id")
        and row.annotated_at is not None
        and annotated_at is not None
        and row.annotated_at == annotated_at
        and image_target.exists()
        and label_target.exists()
    ):
        return "unchanged"
    lines, skipped = annotation_lines(annotation.get("result") or [])
    if skipped:
        log.warning(
            "task %s: %d region(s) that are not %s rectangles left out", row.task_id, skipped, CLASSES
        )
    ensure_corrections_folder(folder)
    if not image_target.exists():
        store = store or ImageStore(settings.image_dir)
        try:
            data = store.get(frame.image_key) if frame.image_key else None
        except FileNotFoundError:
            data = None
        if data is None:
            log.warning("task %s: the image of frame %s is gone (retention); not used", row.task_id, frame.id)
            return "image_missing"
        _write_atomic(image_target, data)
    _write_atomic(label_target, "".join(f"{line}\n" for line in lines).encode())
    row.split, row.n_boxes = split, len(lines)
    row.annotation_id, row.annotated_at = annotation.get("id"), annotated_at
    row.pulled_at = datetime.now(UTC)
    session.flush()
    return "written"


def pull(settings: Settings, sessions: sessionmaker[Session]) -> dict[str, Any]:
    """Fetch finished annotations of the project and write them into the corrections folder."""
    conn = connect(settings)
    project = ensure_project(conn, settings, create=False)
    exported = conn.call("exporting annotations", conn.client.projects.exports.as_json, project.id)
    counts = {"written": 0, "unchanged": 0, "image_missing": 0, "unfinished": 0, "not_ours": 0}
    store = ImageStore(settings.image_dir)
    with transaction(sessions) as session:
        for task in exported:
            row = session.scalar(
                select(LabelStudioTask).where(
                    LabelStudioTask.project_id == project.id, LabelStudioTask.task_id == task["id"]
                )
            )
            frame = session.get(Frame, row.frame_id) if row else None
            if row is None or frame is None or frame.sha256 != (task.get("data") or {}).get("sha256"):
                counts["not_ours"] += 1
                continue
            annotation = final_annotation(task.get("annotations") or [])
            if annotation is None:
                counts["unfinished"] += 1
                continue
            counts[apply_annotation(session, settings, row, annotation, store)] += 1
    splits = {
        split: len(list((settings.corrections_dir / split / "labels").glob("*.txt")))
        if (settings.corrections_dir / split / "labels").is_dir()
        else 0
        for split in SPLITS
    }
    return {"project_id": project.id, "corrections": str(settings.corrections_dir), **counts, "files": splits}


@contextmanager
def cli_errors() -> Iterator[None]:
    """For the CLI: a LabelStudioError becomes one line on stderr and exit status 1."""
    try:
        yield
    except LabelStudioError as exc:
        raise SystemExit(f"error: {exc}") from None
