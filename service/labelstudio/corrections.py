"""``pull`` fetches finished annotations (label-studio-sdk export) and writes them as YOLO labels into the
corrections folder (``data_dir/corrections``): a YOLO source with ``data.yaml`` and ``train/`` and
``valid/`` folders of ``images/`` and ``labels/`` that ``python -m datasets build`` merges into training
data. The split of a photo is fixed by a hash of its sha256: ``valid`` is the held-out part that
``python -m training adapt`` evaluates on and never trains on. The optional webhook
(service/labelstudio_webhook.py) applies one annotation the same way as soon as it is saved.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.db.engine import transaction
from service.db.store import ImageStore
from service.db.tables import (
    Frame,
    LabelStudioTask,
)
from service.domain.classes import CLASSES
from service.domain.params import parse_timestamp
from service.labelstudio.client import FROM_NAME, SPLITS, connect, ensure_project, holdout_split
from service.settings import Settings

log = logging.getLogger(__name__)


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
    try:
        return parse_timestamp(value, naive_is_utc=True)  # Label Studio's clock speaks UTC
    except ValueError:
        return None


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
    if frame is None:  # the frame was deleted since the task was sent
        return "image_missing"
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
