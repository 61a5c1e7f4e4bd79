"""Recall of the anonymisation (``service.domain.anonymize``) on hand-labelled real road photos.

    python bench/privacy_audit.py [FOLDER ...] [--labels FILE ...]
        [--model weights/privacy-persons-vehicles.onnx] [--min-coverage 0.8] [--threads 1]
        [--time-runs 30] [--time-against MODEL] [--annotate DIR]
    python bench/privacy_audit.py --sweep [--model ...]   # the operating-point curve

FOLDER: folders searched (recursively) for the labelled file names; default ``../shared/data``
relative to the repository root. Images are read from there and never copied.

Labels (``bench/privacy_audit_labels.json``, the fixed first set of 103 frames, and
``bench/privacy_audit_labels-2.json``, the frames added to it; each reported on its own too): file name ->
list of objects
``{"class": "person" | "vehicle", "box": [x1, y1, x2, y2], "face_or_plate_legible": bool}`` in pixels
of the stored image (half-open bounds, as :data:`service.anonymize.Box`); an optional ``note``. How
the frames were chosen and labelled (by eye, never with the privacy model) is in :data:`METHOD`,
which the result file repeats.

Each frame goes through :func:`service.anonymize.anonymize` with the default
:class:`~service.anonymize.PrivacyConfig`. A labelled object counts as protected when at least
``--min-coverage`` (80 %) of its box area lies inside the destroyed regions: the union of the grown
detection boxes and the horizon band (``all``), or the grown boxes alone (``model``: what the model
achieves without the band). Recall is reported per class, for the legible face/plate subset, for
objects the band cannot save (less than 80 % of the box inside the band) and by size, with 95 %
Wilson intervals. Results: a table on stdout and ``bench/results/privacy_audit.json``, which also
lists every miss; another ``--model`` than the shipped fp32 file writes
``bench/results/privacy_audit-<its name less "privacy-persons-vehicles-">.json`` (e.g. ``-int8``).
Speed: the model's inference alone on one letterboxed 640 frame (``--threads``), median of
``--time-runs`` calls, with ``--time-against`` another model timed in alternating rounds under the
same load (the load average is recorded with the result). ``--annotate DIR`` writes each anonymised frame with the labelled boxes drawn
(green: protected by the grown boxes, orange: only by the band, red: not protected; magenta: the
grown detection boxes; cyan: the horizon row) for a visual check.

Cost: the data sets' own damage boxes of each frame (RDD's VOC XML, the Roboflow export's labels) and the
share of each destroyed by the grown boxes, the band or either; a damage box at least half destroyed is
counted as hidden from reviewers and annotators (``damage_cost`` in the result).

``--views base,flip,edge,tiles,plus320,size800``: other ways of looking at each frame at the file's threshold
(a mirrored second pass, boxes cut by the border grown inward, 2x2 tiles, a second pass at a smaller input,
a larger input), each with recall, area, damage hidden
and milliseconds (:func:`view_boxes`; ``privacy_audit-views[-<model>].json``).

``--sweep``: the operating-point curve (issue 21): for each confidence threshold and box growth of a grid
(``--sweep-conf``, ``--sweep-margin``), recall by the model alone and with the band, and the share of the
photo's area the grown boxes destroy (mean over the frames); the model runs once per frame at the lowest
threshold (NMS keeps the same boxes above any higher one). Results: ``privacy_audit-sweep[-<model>].json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import summary_ms, table, time_calls, write_result  # noqa: E402
from datasets.classes import CANONICAL_CLASSES, canonical_name  # noqa: E402
from datasets.voc import parse_voc  # noqa: E402
from datasets.yolo import read_names, read_yolo_labels  # noqa: E402
from detector import Detection, Detector, read_image  # noqa: E402
from detector.preprocess import letterbox, to_tensor, to_uint8_tensor  # noqa: E402
from service.domain.anonymize import (  # noqa: E402
    COARSE_PASS,
    PRIVACY_MODEL_PATH,
    PRIVACY_MODEL_PATHS,
    AnonymizationReport,
    BlurredBox,
    PrivacyConfig,
    anonymize,
    find_people_and_vehicles,
    grow_box,
    horizon_row,
    load_privacy_detector,
    privacy_operating_point,
)

# Set 1: the first 103 frames, kept unchanged so that figures stay comparable; set 2: the frames added later.
DEFAULT_LABELS = (
    ROOT / "bench" / "privacy_audit_labels.json",
    ROOT / "bench" / "privacy_audit_labels-2.json",
)
DEFAULT_DATA = ROOT.parent / "shared" / "data"
CLASSES = ("person", "vehicle")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
PxBox = tuple[int, int, int, int]
Mask = npt.NDArray[np.bool_]
Image = npt.NDArray[np.uint8]
# Size by the square root of the box area, in pixels (COCO's small/medium/large split is 32/96).
SIZE_BUCKETS = ((0, 32, "small <32px"), (32, 96, "medium 32-96px"), (96, math.inf, "large >=96px"))
METHOD = (
    "Frames chosen without the privacy model: contact sheets (16 frames of 256 px per PNG) of every 4th "
    "frame of rdd2022/China_MotorBike/train/images (396 of 1,582: 000000, 000004, ...) and of every "
    "img-* frame of roboflow-road-crack train + valid (214; the frame* and numbered frames there, looked "
    "at in a sample of every 2nd valid frame, show only road surface and were not used). Every frame "
    "where a person, face, number plate or vehicle could be seen was kept (one China frame, 000308, was "
    "dropped when the full-size view showed no object): 51 China_MotorBike + 52 roboflow frames.",
    "Labels: each kept frame was viewed at full size (2x for 512 px, 1.6x for 640 px) with a grid "
    "drawn every 64 px, and every person and vehicle that could be made out got a rough box, including "
    "parts cut by the frame edge (legs and feet of pedestrians at the top edge, a wheel, the bottom of "
    "a car); tiny or doubtful far objects (under ~8 px, or not clearly a person or vehicle) were left "
    "out. A rider and the vehicle ridden are two objects. face_or_plate_legible: the face or the plate "
    "characters could be read at that zoom.",
    "Caveats: China_MotorBike frames come from a few rides, so several frames show the same street "
    "(e.g. 000004, 001016, 001152, 001460; 000036, 000124, 000320, 000832); roboflow img-* frames are "
    "web photos of potholes, many taken from the kerb or crouching, rotated or flipped by the exporter; "
    "boxes are rough (a few px), so coverage near the threshold is uncertain.",
    "Set 2 (privacy_audit_labels-2.json, added later; set 1 above is unchanged): every other frame of both "
    "data sets screened the same way (2,554: all China_MotorBike frames outside set 1, including the "
    "every-4th frames set 1 had not kept, and every Roboflow frame outside set 1); for the China and img-* "
    "frames the top 112-176 px of each frame were also viewed at full size. The screening record (frames "
    "looked at, kept, dropped and why) is in bench/privacy_audit_screening/. Kept: 210 China_MotorBike + 7 "
    "Roboflow frames that show another person or vehicle (661 objects). Not counted in set 2: the "
    "recording vehicle itself (camera car body, mudguard tip, the rider's own scooter or bicycle: 136 "
    "boxes; set 1 counts one own-car hood); the photographer's own hand or foot is counted, as in set 1. "
    "The data hold no night or rain frames.",
)


@dataclass(frozen=True)
class Label:
    """One labelled person or vehicle."""

    frame: str
    cls: str
    box: tuple[int, int, int, int]
    legible: bool
    note: str | None = None
    part: str = ""  # the labels file (its stem): the audit set the frame belongs to


@dataclass(frozen=True)
class Outcome:
    """How much of a labelled box the anonymisation destroyed."""

    label: Label
    cover_all: float  # fraction of the box inside grown boxes | horizon band
    cover_model: float  # fraction inside the grown boxes only
    cover_band: float  # fraction inside the horizon band only
    size: float  # sqrt of the (clipped) box area, px
    at_edge: bool  # the box touches the image border (object cut off)


def load_labels(paths: Path | Sequence[Path]) -> list[Label]:
    """The labels of one or more files; a frame may be labelled in one file only."""
    labels: list[Label] = []
    seen: dict[str, Path] = {}
    for path in [paths] if isinstance(paths, Path) else paths:
        raw = json.loads(path.read_text())
        for frame in raw:
            if frame in seen:
                raise ValueError(f"{path}: {frame} is labelled in {seen[frame]} already")
            seen[frame] = path
        labels += _labels_of(path, raw)
    return labels


def _labels_of(path: Path, raw: dict[str, Any]) -> list[Label]:
    labels = []
    for frame, objects in sorted(raw.items()):
        for obj in objects:
            if obj["class"] not in CLASSES:
                raise ValueError(f"{path}: {frame}: class must be one of {CLASSES}, got {obj['class']!r}")
            x1, y1, x2, y2 = (int(v) for v in obj["box"])
            if not (0 <= x1 < x2 and 0 <= y1 < y2):
                raise ValueError(f"{path}: {frame}: bad box {obj['box']}")
            labels.append(
                Label(
                    frame,
                    obj["class"],
                    (x1, y1, x2, y2),
                    bool(obj["face_or_plate_legible"]),
                    obj.get("note"),
                    path.stem,
                )
            )
    return labels


def index_images(folders: Iterable[Path], wanted: set[str]) -> dict[str, tuple[Path, str]]:
    """File name -> (path, source) for every wanted name under the folders (first match wins).

    ``source``: the file's folder relative to the searched one (or that folder's name), to report
    recall per data set.
    """
    found: dict[str, tuple[Path, str]] = {}
    for folder in folders:
        if not folder.is_dir():
            raise SystemExit(f"not a folder: {folder}")
        for path in sorted(folder.rglob("*")):
            if path.name in wanted and path.suffix.lower() in IMAGE_SUFFIXES and path.name not in found:
                relative = path.parent.relative_to(folder).as_posix()
                found[path.name] = (path, folder.name if relative == "." else relative)
    return found


def region_masks(report: AnonymizationReport) -> tuple[Mask, Mask]:
    """Boolean masks of the destroyed pixels: grown detection boxes, horizon band."""
    model = np.zeros((report.height, report.width), bool)
    for b in report.boxes:
        x1, y1, x2, y2 = b.box
        model[y1:y2, x1:x2] = True
    band = np.zeros_like(model)
    if report.horizon_row:
        band[: report.horizon_row] = True
    return model, band


def measure(label: Label, model: Mask, band: Mask) -> Outcome:
    h, w = model.shape
    x1, y1, x2, y2 = label.box
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"{label.frame}: box {label.box} lies outside the {w}x{h} image")
    m, b = model[y1:y2, x1:x2], band[y1:y2, x1:x2]
    area = m.size
    return Outcome(
        label,
        cover_all=float((m | b).sum()) / area,
        cover_model=float(m.sum()) / area,
        cover_band=float(b.sum()) / area,
        size=math.sqrt(area),
        at_edge=x1 == 0 or y1 == 0 or x2 == w or y2 == h,
    )


DAMAGE_DESTROYED = 0.5  # a damage box with at least half its area destroyed is hidden from reviewers


def damage_boxes(image: Path) -> list[PxBox] | None:
    """The data set's own damage boxes of an audit frame (D00-D40, repairs left out), in pixels: RDD2022's
    ``annotations/xmls/<stem>.xml`` or a YOLO export's ``labels/<stem>.txt`` beside ``images/``; None when
    the frame has no label file (unknown: not counted)."""
    split = image.parent.parent
    xml = split / "annotations" / "xmls" / f"{image.stem}.xml"
    if xml.is_file():
        w, h, boxes = parse_voc(xml)
    else:
        txt = split / "labels" / f"{image.stem}.txt"
        root = split.parent
        if not txt.is_file() or not (root / "data.yaml").is_file():
            return None
        h, w = read_image(image).shape[:2]
        boxes = read_yolo_labels(txt, read_names(root))
    out = []
    for b in boxes:
        if canonical_name(b.name) not in CANONICAL_CLASSES:
            continue
        c = b.clipped()
        box = (round(c.x1 * w), round(c.y1 * h), round(c.x2 * w), round(c.y2 * h))
        if box[2] > box[0] and box[3] > box[1]:
            out.append(box)
    return out


def damage_cover(box: PxBox, model: Mask, band: Mask) -> tuple[float, float, float]:
    """Share of a damage box destroyed by the grown person/vehicle boxes, by the band, by either."""
    x1, y1, x2, y2 = box
    m, b = model[y1:y2, x1:x2], band[y1:y2, x1:x2]
    area = max(m.size, 1)
    return float(m.sum()) / area, float(b.sum()) / area, float((m | b).sum()) / area


def damage_summary(covers: Sequence[tuple[float, float, float]], frames: int) -> dict[str, Any]:
    """What the anonymization costs the damage in the audit frames (the data sets' own damage boxes)."""
    n = len(covers)
    out: dict[str, Any] = {"frames_with_labels": frames, "boxes": n}
    for k, name in enumerate(("model", "band", "all")):
        values = [c[k] for c in covers]
        out[f"mean_destroyed_{name}"] = round(statistics.fmean(values), 4) if n else None
        out[f"hidden_{name}"] = sum(v >= DAMAGE_DESTROYED for v in values)
    return out


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k/n."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def recall_row(name: str, outcomes: Sequence[Outcome], min_coverage: float) -> dict[str, Any]:
    n = len(outcomes)
    k_all = sum(o.cover_all >= min_coverage for o in outcomes)
    k_model = sum(o.cover_model >= min_coverage for o in outcomes)
    lo_all, hi_all = wilson(k_all, n)
    lo_model, hi_model = wilson(k_model, n)
    return {
        "subset": name,
        "n": n,
        "protected": k_all,
        "recall": k_all / n if n else None,
        "ci95": f"{lo_all:.2f}-{hi_all:.2f}" if n else None,
        "protected_model": k_model,
        "recall_model": k_model / n if n else None,
        "ci95_model": f"{lo_model:.2f}-{hi_model:.2f}" if n else None,
    }


def subsets(
    outcomes: Sequence[Outcome], min_coverage: float, sources: dict[str, str]
) -> list[tuple[str, list[Outcome]]]:
    out: list[tuple[str, list[Outcome]]] = [("all objects", list(outcomes))]
    for cls in CLASSES:
        out.append((cls, [o for o in outcomes if o.label.cls == cls]))
    for cls in CLASSES:
        what = "face" if cls == "person" else "plate"
        out.append(
            (f"{cls}, legible {what}", [o for o in outcomes if o.label.cls == cls and o.label.legible])
        )
    out.append(("legible face/plate", [o for o in outcomes if o.label.legible]))
    below = [o for o in outcomes if o.cover_band < min_coverage]
    out.append(("not saved by band", below))
    for cls in CLASSES:
        out.append((f"{cls}, not saved by band", [o for o in below if o.label.cls == cls]))
    for lo, hi, name in SIZE_BUCKETS:
        out.append((name, [o for o in outcomes if lo <= o.size < hi]))
    out.append(("cut by image edge", [o for o in outcomes if o.at_edge]))
    out.append(("fully inside image", [o for o in outcomes if not o.at_edge]))
    for source in sorted(set(sources.values())):
        out.append((source, [o for o in outcomes if sources[o.label.frame] == source]))
    parts = sorted({o.label.part for o in outcomes})
    if len(parts) > 1:  # the fixed first set next to the later ones
        for part in parts:
            group = [o for o in outcomes if o.label.part == part]
            out.append((f"{part} ({len({o.label.frame for o in group})} frames)", group))
    return out


def annotate(
    image: Image, report: AnonymizationReport, outcomes: Sequence[Outcome], min_coverage: float
) -> Image:
    out = image.copy()
    if report.horizon_row:
        cv2.line(out, (0, report.horizon_row), (report.width, report.horizon_row), (255, 255, 0), 1)
    for b in report.boxes:
        x1, y1, x2, y2 = b.box
        cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), (255, 0, 255), 1)
    for o in outcomes:
        if o.cover_model >= min_coverage:
            colour = (0, 200, 0)
        elif o.cover_all >= min_coverage:
            colour = (0, 165, 255)
        else:
            colour = (0, 0, 255)
        x1, y1, x2, y2 = o.label.box
        cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), colour, 2)
        cv2.putText(out, f"{o.cover_model:.0%}", (x1 + 2, y2 - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1)
    return out


def inference_ms(
    detectors: dict[str, Detector], image: Image, runs: int, rounds: int = 3
) -> dict[str, dict[str, float]]:
    """Median/p95/mean ms of each model's inference alone (letterboxed tensor ready), in alternating
    rounds so that every model sees the same load."""
    samples: dict[str, list[float]] = {name: [] for name in detectors}
    for _ in range(rounds):
        for name, det in detectors.items():
            framed = [letterbox(image, det.imgsz)[0]]
            tensor = (to_uint8_tensor if det.uint8_input else to_tensor)(framed)
            feed = {det.input_name: tensor}
            samples[name] += time_calls(partial(det.session.run, None, feed), max(1, runs // rounds))
    return {name: {k: round(v, 2) for k, v in summary_ms(ms).items()} for name, ms in samples.items()}


def operating_point(model: Path) -> float:
    """The threshold the service uses with this model file (its shipped operating point), else the
    default file's (``PrivacyConfig().min_confidence``)."""
    for precision, path in PRIVACY_MODEL_PATHS.items():
        if model.resolve() == path.resolve():
            return privacy_operating_point(precision)
    return PrivacyConfig().min_confidence


def result_name(model: Path, horizon: float | None, coarse_pass: int = COARSE_PASS) -> str:
    """``privacy_audit``, ``-<model>`` for another model than the shipped fp32 one, ``-horizon-<h>``,
    ``-one-pass`` without the coarse pass (``-coarse-<N>`` at another size than the service's)."""
    name = "privacy_audit"
    if model.resolve() != PRIVACY_MODEL_PATH.resolve():
        name += "-" + model.stem.removeprefix("privacy-persons-vehicles-")
    if horizon != PrivacyConfig().horizon:
        name += f"-horizon-{horizon}"
    if coarse_pass != COARSE_PASS:
        name += "-one-pass" if not coarse_pass else f"-coarse-{coarse_pass}"
    return name


def anonymize_ms(
    detector: Detector, image: Image, configs: dict[str, PrivacyConfig], runs: int, rounds: int = 3
) -> dict[str, dict[str, float]]:
    """Median/p95/mean ms of the whole :func:`anonymize` (passes, growing, blurring) of ``image`` under
    each config, in alternating rounds (the same load for each)."""
    samples: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(rounds):
        for name, config in configs.items():
            samples[name] += time_calls(partial(anonymize, image, detector, config), max(1, runs // rounds))
    return {name: {k: round(v, 2) for k, v in summary_ms(ms).items()} for name, ms in samples.items()}


def outcomes_at(
    found: dict[str, list[Detection]],
    images: dict[str, Image],
    labels: Sequence[Label],
    conf: float,
    margin: float,
    horizon: float | None,
    damage: dict[str, list[PxBox]] | None = None,
) -> tuple[list[Outcome], list[float], list[tuple[float, float, float]]]:
    """Each label's outcome, each frame's destroyed share by the grown boxes and each damage box's cover,
    when the detections ``found`` per frame are kept from ``conf`` and grown by ``margin``."""
    outcomes: list[Outcome] = []
    areas: list[float] = []
    covers: list[tuple[float, float, float]] = []
    for frame, image in images.items():
        h, w = image.shape[:2]
        boxes = tuple(
            BlurredBox(d.class_name, d.confidence, grow_box(d.box, margin, w, h))
            for d in found[frame]
            if d.confidence >= conf
        )
        model, band = region_masks(AnonymizationReport(w, h, boxes, horizon_row(h, horizon)))
        outcomes += [measure(lab, model, band) for lab in labels if lab.frame == frame]
        areas.append(float(model.mean()))
        covers += [damage_cover(b, model, band) for b in (damage or {}).get(frame, [])]
    return outcomes, areas, covers


def sweep(
    detector: Detector,
    images: dict[str, Image],
    labels: Sequence[Label],
    confs: Sequence[float],
    margins: Sequence[float],
    horizon: float | None,
    min_coverage: float,
    damage: dict[str, list[PxBox]] | None = None,
    coarse_pass: int | None = COARSE_PASS,
) -> list[dict[str, Any]]:
    """Recall (model alone, with the band), destroyed area and damage hidden by the grown boxes (of the
    frames' ``damage`` boxes) for every (threshold, growth) pair; the boxes as the service finds them
    (:func:`find_people_and_vehicles`: with ``coarse_pass``, its second pass)."""
    config = PrivacyConfig(horizon=horizon, coarse_pass=coarse_pass)
    found = {
        frame: find_people_and_vehicles(image, detector, config, conf=min(confs))
        for frame, image in images.items()
    }
    rows = []
    for conf in confs:
        for margin in margins:
            outcomes, areas, covers = outcomes_at(found, images, labels, conf, margin, horizon, damage)
            n = len(outcomes)
            by_model = sum(o.cover_model >= min_coverage for o in outcomes)
            with_band = sum(o.cover_all >= min_coverage for o in outcomes)
            lo_band, hi_band = wilson(with_band, n)
            lo, hi = wilson(by_model, n)
            cost = damage_summary(covers, len(images))
            rows.append(
                {
                    "conf": conf,
                    "margin": margin,
                    "n": n,
                    "protected_model": by_model,
                    "recall_model": round(by_model / n, 3),
                    "ci95_model": f"{lo:.2f}-{hi:.2f}",
                    "protected_with_band": with_band,
                    "recall_with_band": round(with_band / n, 3),
                    "ci95_with_band": f"{lo_band:.2f}-{hi_band:.2f}",
                    "area_destroyed_by_model": round(statistics.fmean(areas), 4),
                    "damage_destroyed_by_model": cost["mean_destroyed_model"],
                    "damage_hidden_by_model": cost["hidden_model"],
                }
            )
    return rows


VIEWS = ("base", "flip", "edge", "tiles", "size800", "size960")


def view_boxes(detector: Detector, image: Image, view: str, conf: float, margin: float) -> list[PxBox]:
    """The grown boxes one way of looking at a frame gives (issue 21, "resolution and views"):

    ``base``: one pass at the model's size (the service before its coarse pass, which is ``plus320@0.15``);
    ``flip``: also the mirrored frame, boxes mirrored back, union (two
    inferences); ``edge``: boxes touching the border grown inward by half their size (the object goes on
    beyond the frame); ``sizeN``: the model's input at N px instead of 640 (the export is dynamic);
    ``plusN``: the base pass and a second one at N px, union (a small N sees near, large objects whole;
    ``plusN+M``: and a third at M px; ``plusN@T``: the extra passes from threshold T);
    ``tiles``: the base pass and 2x2 overlapping tiles of 60 % of the frame each, every tile at the full
    input size, union (five inferences: small, far objects seen larger)."""
    config = PrivacyConfig()
    h, w = image.shape[:2]
    size = int(view[4:]) if view.startswith("size") else None
    spec, _, extra_conf = view.partition("@")
    extra = [int(v) for v in spec[4:].split("+")] if spec.startswith("plus") else None
    if view not in VIEWS and size is None and extra is None:
        raise ValueError(f"unknown view {view!r} (known: {', '.join(VIEWS)}, sizeN, plusN)")

    def run(
        im: Image, at: int | None = None, threshold: float = conf
    ) -> list[tuple[float, float, float, float]]:
        found = detector.predict(im, conf=threshold, multi_label=True, imgsz=at or size)
        return [d.box for d in found if d.class_name in config.classes]

    raw = run(image)
    if view == "flip":
        mirrored: Image = np.ascontiguousarray(image[:, ::-1])
        raw += [(w - x2, y1, w - x1, y2) for x1, y1, x2, y2 in run(mirrored)]
    for at in extra or []:
        raw += run(image, at, float(extra_conf) if extra_conf else conf)
    if view == "tiles":
        tw, th = round(0.6 * w), round(0.6 * h)
        for ox in (0, w - tw):
            for oy in (0, h - th):
                tile: Image = np.ascontiguousarray(image[oy : oy + th, ox : ox + tw])
                raw += [(x1 + ox, y1 + oy, x2 + ox, y2 + oy) for x1, y1, x2, y2 in run(tile)]
    out = []
    for box in raw:
        x1, y1, x2, y2 = grow_box(box, margin, w, h)
        if view == "edge":
            bw, bh = x2 - x1, y2 - y1
            if box[0] <= 2:
                x2 = min(w, x2 + bw // 2)
            if box[2] >= w - 2:
                x1 = max(0, x1 - bw // 2)
            if box[1] <= 2:
                y2 = min(h, y2 + bh // 2)
            if box[3] >= h - 2:
                y1 = max(0, y1 - bh // 2)
        out.append((x1, y1, x2, y2))
    return out


def compare_views(
    detector: Detector,
    images: dict[str, Image],
    labels: Sequence[Label],
    damage: dict[str, list[PxBox]],
    views: Sequence[str],
    conf: float,
    horizon: float | None,
    min_coverage: float,
) -> list[dict[str, Any]]:
    """Per view: recall by the model alone (all, cut by the edge, large) and with the band, area and
    damage boxes hidden by the boxes, and the median ms per frame of finding the boxes (one thread)."""
    margin = PrivacyConfig().margin
    rows = []
    for view in views:
        outcomes, areas, covers, seconds = [], [], [], []
        for frame, image in images.items():
            h, w = image.shape[:2]
            start = time.perf_counter()
            boxes = view_boxes(detector, image, view, conf, margin)
            seconds.append(time.perf_counter() - start)
            blurred = tuple(BlurredBox("", 1.0, b) for b in boxes)
            model, band = region_masks(AnonymizationReport(w, h, blurred, horizon_row(h, horizon)))
            outcomes += [measure(lab, model, band) for lab in labels if lab.frame == frame]
            areas.append(float(model.mean()))
            covers += [damage_cover(b, model, band) for b in damage.get(frame, [])]
        edge = [o for o in outcomes if o.at_edge]
        large = [o for o in outcomes if o.size >= 96]
        cost = damage_summary(covers, len(images))
        rows.append(
            {
                "view": view,
                "protected_model": sum(o.cover_model >= min_coverage for o in outcomes),
                "protected_with_band": sum(o.cover_all >= min_coverage for o in outcomes),
                "objects": len(outcomes),
                "edge_model": f"{sum(o.cover_model >= min_coverage for o in edge)}/{len(edge)}",
                "large_model": f"{sum(o.cover_model >= min_coverage for o in large)}/{len(large)}",
                "area_destroyed_by_model": round(statistics.fmean(areas), 4),
                "damage_hidden_by_model": cost["hidden_model"],
                "ms_per_frame": round(1000 * statistics.median(seconds), 1),
            }
        )
    return rows


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", type=Path, help=f"image folders (default {DEFAULT_DATA})")
    parser.add_argument(
        "--labels", type=Path, action="append",
        help="labels file (repeatable; default: " + ", ".join(p.name for p in DEFAULT_LABELS) + ")",
    )  # fmt: skip
    parser.add_argument("--model", type=Path, default=PRIVACY_MODEL_PATH)
    parser.add_argument(
        "--min-coverage", type=float, default=0.8, help="fraction of a box that must be destroyed"
    )
    parser.add_argument(
        "--conf", type=float, default=None,
        help="confidence threshold (default: the operating point of a shipped model file, else the default's)",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--time-runs", type=int, default=30, help="timed inferences per model (0: no timing)")
    parser.add_argument("--time-against", type=Path, default=None, help="another model timed alongside")
    parser.add_argument(
        "--horizon",
        type=lambda v: None if v == "none" else float(v),
        default=PrivacyConfig().horizon,
        help="band blurred from the top (fraction of the height, or none); e.g. 0.05 is what the camera-derived "
        "band gives a camera whose horizon lies above the image (the RDD motorbike camera)",
    )
    parser.add_argument("--annotate", type=Path, default=None, help="write annotated anonymised frames here")
    parser.add_argument("--sweep", action="store_true", help="the operating-point curve instead of one audit")
    parser.add_argument("--sweep-conf", default="0.05,0.1,0.15,0.2,0.3")
    parser.add_argument("--sweep-margin", default="0.1,0.15,0.25,0.35")
    parser.add_argument(
        "--views", help=f"compare ways of looking at each frame instead of one audit ({','.join(VIEWS)})"
    )
    parser.add_argument(
        "--coarse-pass",
        type=int,
        default=COARSE_PASS,
        help=f"input px of the service's second, coarse pass (default {COARSE_PASS}; 0: one pass)",
    )
    args = parser.parse_args(argv)

    label_files: list[Path] = args.labels or list(DEFAULT_LABELS)
    labels = load_labels(label_files)
    frames = sorted({lab.frame for lab in labels})
    paths = index_images(args.folders or [DEFAULT_DATA], set(frames))
    missing = [f for f in frames if f not in paths]
    if missing:
        raise SystemExit(f"{len(missing)} labelled frames not found, e.g. {missing[:3]}")
    sources = {frame: source for frame, (_, source) in paths.items()}

    detector: Detector = load_privacy_detector(args.model, args.threads)
    conf = args.conf if args.conf is not None else operating_point(args.model)
    config = PrivacyConfig(horizon=args.horizon, min_confidence=conf, coarse_pass=args.coarse_pass or None)
    if args.sweep:
        images = {frame: read_image(paths[frame][0]) for frame in frames}
        confs = [float(v) for v in args.sweep_conf.split(",")]
        margins = [float(v) for v in args.sweep_margin.split(",")]
        damage = {f: boxes for f in frames if (boxes := damage_boxes(paths[f][0])) is not None}
        rows = sweep(
            detector,
            images,
            labels,
            confs,
            margins,
            args.horizon,
            args.min_coverage,
            damage,
            config.coarse_pass,
        )
        print(table(rows, list(rows[0])))
        name = result_name(args.model, args.horizon, args.coarse_pass).replace(
            "privacy_audit", "privacy_audit-sweep", 1
        )
        print(
            f"wrote {write_result(name, {'model': args.model.name, 'model_sha256': sha256(args.model), 'frames': len(frames), 'objects': len(labels), 'min_coverage': args.min_coverage, 'horizon': args.horizon, 'rows': rows})}"
        )
        return 0
    if args.views:
        images = {frame: read_image(paths[frame][0]) for frame in frames}
        damage = {f: boxes for f in frames if (boxes := damage_boxes(paths[f][0])) is not None}
        views = [v.strip() for v in args.views.split(",") if v.strip()]
        rows = compare_views(detector, images, labels, damage, views, conf, args.horizon, args.min_coverage)
        print(table(rows, list(rows[0])))
        name = result_name(args.model, args.horizon).replace("privacy_audit", "privacy_audit-views", 1)
        print(
            f"wrote {write_result(name, {'model': args.model.name, 'conf': conf, 'threads': args.threads, 'horizon': args.horizon, 'frames': len(frames), 'rows': rows})}"
        )
        return 0
    if args.annotate:
        args.annotate.mkdir(parents=True, exist_ok=True)

    outcomes: list[Outcome] = []
    per_frame: list[dict[str, Any]] = []
    blurred_by_model: list[float] = []
    covers: list[tuple[float, float, float]] = []
    with_damage_labels = 0
    start = time.perf_counter()
    for frame in frames:
        image = read_image(paths[frame][0])
        anonymised, report = anonymize(image, detector, config)
        model, band = region_masks(report)
        got = [measure(lab, model, band) for lab in labels if lab.frame == frame]
        outcomes.extend(got)
        blurred_by_model.append(float(model.mean()))
        frame_damage = damage_boxes(paths[frame][0])
        frame_covers = [damage_cover(b, model, band) for b in frame_damage or []]
        frame_cost = damage_summary(frame_covers, 1)
        covers += frame_covers
        with_damage_labels += frame_damage is not None
        per_frame.append(
            {
                "frame": frame,
                "source": sources[frame],
                "size": [report.width, report.height],
                "labelled": len(got),
                "detections": len(report.boxes),
                "missed_by_model": sum(o.cover_model < args.min_coverage for o in got),
                "missed": sum(o.cover_all < args.min_coverage for o in got),
                "model_area_fraction": round(float(model.mean()), 4),
                "damage_boxes": None if frame_damage is None else len(frame_damage),
                "damage_hidden_by_model": frame_cost["hidden_model"],
                "damage_hidden": frame_cost["hidden_all"],
            }
        )
        if args.annotate:
            cv2.imwrite(
                str(args.annotate / f"{Path(frame).stem}.png"),
                annotate(anonymised, report, got, args.min_coverage),
            )
    seconds = time.perf_counter() - start
    speed: dict[str, Any] = {}
    if args.time_runs > 0:
        timed = {args.model.name: detector}
        if args.time_against:
            timed[args.time_against.name] = load_privacy_detector(args.time_against, args.threads)
        speed = {
            "what": "ONNX Runtime inference alone, one letterboxed 640 frame (the first audit frame)",
            "threads": args.threads,
            "runs": args.time_runs,
            "ms": inference_ms(timed, read_image(paths[frames[0]][0]), args.time_runs),
        }
        for name, ms in speed["ms"].items():
            print(f"{name}: median {ms['median_ms']:.1f} ms, p95 {ms['p95_ms']:.1f} ms per inference")
        # The time budget is per 1280x720 photo: the whole anonymization, one pass against two.
        dashcam: Image = np.ascontiguousarray(
            cv2.resize(read_image(paths[frames[0]][0]), (1280, 720), interpolation=cv2.INTER_LINEAR), np.uint8
        )
        configs = {"as configured": config, "one pass": replace(config, coarse_pass=None)}
        speed["anonymize_1280x720"] = anonymize_ms(detector, dashcam, configs, args.time_runs)
        for name, ms in speed["anonymize_1280x720"].items():
            print(f"anonymize 1280x720, {name}: median {ms['median_ms']:.1f} ms, p95 {ms['p95_ms']:.1f} ms")

    rows = [
        recall_row(name, subset, args.min_coverage)
        for name, subset in subsets(outcomes, args.min_coverage, sources)
    ]
    columns = ["subset", "n", "protected", "recall", "ci95", "protected_model", "recall_model", "ci95_model"]
    print(
        f"{len(frames)} frames, {len(outcomes)} labelled objects; protected = >= {args.min_coverage:.0%} of the box "
        f"destroyed; recall = grown boxes + horizon band {config.horizon}, recall_model = grown boxes only\n"
    )
    print(table([{k: "-" if v is None else v for k, v in row.items()} for row in rows], columns))

    def miss_record(o: Outcome) -> dict[str, Any]:
        record = {
            "frame": o.label.frame,
            "class": o.label.cls,
            "box": list(o.label.box),
            "legible": o.label.legible,
            "size_px": round(o.size, 1),
            "at_edge": o.at_edge,
            "cover_all": round(o.cover_all, 3),
            "cover_model": round(o.cover_model, 3),
            "cover_band": round(o.cover_band, 3),
        }
        if o.label.note:
            record["note"] = o.label.note
        return record

    cost = damage_summary(covers, with_damage_labels)
    print(
        f"\ndamage boxes of the data sets in these frames: {cost['boxes']} ({with_damage_labels} frames with "
        f"labels); share destroyed, mean: model {cost['mean_destroyed_model']}, band {cost['mean_destroyed_band']}, "
        f"either {cost['mean_destroyed_all']}; boxes at least {DAMAGE_DESTROYED:.0%} destroyed: model "
        f"{cost['hidden_model']}, band {cost['hidden_band']}, either {cost['hidden_all']}"
    )
    misses = [miss_record(o) for o in outcomes if o.cover_all < args.min_coverage]
    model_misses = [miss_record(o) for o in outcomes if o.cover_model < args.min_coverage]
    print(f"\nmissed with the band: {len(misses)}; missed by the model alone: {len(model_misses)}")
    for m in misses:
        print(
            f"  MISSED {m['frame']} {m['class']} {m['box']} size {m['size_px']}px cover {m['cover_all']:.0%}"
        )

    path = write_result(
        result_name(args.model, args.horizon, args.coarse_pass),
        {
            "labels": {
                str(f.relative_to(ROOT) if f.is_relative_to(ROOT) else f): sha256(f) for f in label_files
            },
            "method": list(METHOD),
            "model": args.model.name,
            "model_sha256": sha256(args.model),
            "config": {
                "margin": config.margin,
                "min_confidence": config.min_confidence,
                "horizon": config.horizon,
                "coarse_pass": config.coarse_pass,
                "classes": sorted(config.classes),
            },
            "min_coverage": args.min_coverage,
            "frames": len(frames),
            "objects": {
                "total": len(outcomes),
                **{cls: sum(o.label.cls == cls for o in outcomes) for cls in CLASSES},
                "legible_face": sum(o.label.cls == "person" and o.label.legible for o in outcomes),
                "legible_plate": sum(o.label.cls == "vehicle" and o.label.legible for o in outcomes),
            },
            "recall": rows,
            "model_area_fraction_mean": round(float(np.mean(blurred_by_model)), 4),
            "damage_cost": cost,
            "seconds": round(seconds, 1),
            "threads": args.threads,
            "speed": speed,
            "misses": misses,
            "model_misses": model_misses,
            "per_frame": per_frame,
        },
    )
    print(f"\nwrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
