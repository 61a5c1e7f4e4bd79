"""Irreversible anonymisation of dashcam frames, before any image is stored or shown (GDPR).

Faces and number plates belong to people and vehicles, so the privacy model
(``weights/privacy-persons-vehicles.onnx``, see ``weights/PRIVACY_MODEL.md``) finds whole persons,
bicycles, cars, motorcycles, buses and trucks; each box is grown by a margin and destroyed (pixelated
to a coarse grid, then blurred). As a second layer everything above a horizon row is destroyed too:
only the road matters, and pedestrians, cars and house fronts in the distance sit up there.

Pure functions: the worker calls :func:`anonymize` and stores only :func:`encode_jpeg`'s output.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector import Detection, Detector, ModelError
from detector.manifest import WEIGHTS_DIR
from service.domain.geo import Camera, horizon_fraction

# Found by its fixed name, not through the manifest: the manifest's default is the damage model.
PRIVACY_MODEL_PATH = WEIGHTS_DIR / "privacy-persons-vehicles.onnx"
# The same model quantised to int8 (weights/PRIVACY_MODEL.md: its audit and speed against fp32).
PRIVACY_MODEL_PATHS = {"fp32": PRIVACY_MODEL_PATH, "int8": WEIGHTS_DIR / "privacy-persons-vehicles-int8.onnx"}
# Each file's confidence threshold (weights/PRIVACY_MODEL.md, "Fine-tune" and "Operating point"). The
# shipped model is COCO's YOLOv5n fine-tuned on the 320 audit frames, so its thresholds come from the
# cross-validation (bench/privacy_finetune.py: each audit object judged by a fold model that did not train
# on its frame): int8 at 0.08 with the coarse pass protects 973 of 1004 by itself (persons 0.96, vehicles
# 0.97; 985, 0.98, with the camera's 5 % band; at 0.10: 0.978), and the damage model on the stored copies
# loses 2.4 points mAP50. fp32 at 0.09: 979 / 987, 2.7 points.
PRIVACY_OPERATING_POINTS = {"fp32": 0.09, "int8": 0.08}
PRIVACY_CLASSES = ("person", "bicycle", "car", "motorcycle", "bus", "truck")
# A second, coarse pass over the whole frame at this input size (px, longer side), its boxes added to the
# first pass's (weights/PRIVACY_MODEL.md, "Views"): at 640 px the model misses near, large and edge-cut
# people and vehicles that it finds whole at 320. With the COCO model (before the fine-tune) it raised the
# audit from 869 to 898 of 1004; with the fine-tune, cross-validated, from 0.94 to 0.97 (int8 at 0.09), for
# 3-4 ms more per 1280x720 photo (14 instead of 11 ms, one thread).
COARSE_PASS = 320
# Its threshold (never below the first pass's): its extra boxes are where the damage model loses most on the
# stored copies; measured with the COCO model, from 0.15 it kept 898 of the 908 objects it finds from 0.09 and
# mAP50 on the stored copies 0.745 (0.09: 0.742). The fine-tune's cross-validation ran with it unchanged.
COARSE_MIN_CONFIDENCE = 0.15
MIN_CELL = 8  # px: a pixelation cell never smaller than this
CELLS_ACROSS = 8  # at most this many cells along a region's longer side

Box = tuple[int, int, int, int]  # x1, y1, x2, y2: half-open pixel bounds, [x1, x2) x [y1, y2)


@dataclass(frozen=True)
class PrivacyConfig:
    """What to blur and how generously.

    ``margin``: each box grows by this fraction of its width/height on every side (boxes are tight,
    hair and mirrors are not). ``min_confidence``: low, since missing a person is worse than blurring
    a bush. ``horizon``: fraction of the image height from the top blurred as a whole; None = off,
    unless ``horizon_margin`` is set: then each frame's band is derived from its camera (the horizon row
    of the pinhole model plus this fraction of the height, see :func:`band_for`). ``coarse_pass``: the
    input size of a second pass whose boxes are added (None: one pass; see :data:`COARSE_PASS`), from
    ``coarse_min_confidence`` (:data:`COARSE_MIN_CONFIDENCE`; never below ``min_confidence``).
    """

    margin: float = 0.15
    min_confidence: float = PRIVACY_OPERATING_POINTS["int8"]  # the default file's
    horizon: float | None = 0.35
    horizon_margin: float | None = None
    classes: frozenset[str] = field(default_factory=lambda: frozenset(PRIVACY_CLASSES))
    coarse_pass: int | None = COARSE_PASS
    coarse_min_confidence: float | None = COARSE_MIN_CONFIDENCE  # None: min_confidence

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", frozenset(self.classes))  # accept any iterable of names
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise ValueError(f"margin must be a finite number >= 0, got {self.margin}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {self.min_confidence}")
        if self.horizon is not None and not 0.0 <= self.horizon <= 1.0:
            raise ValueError(f"horizon must be None or in [0, 1], got {self.horizon}")
        if not self.classes:
            raise ValueError("classes must name at least one class to blur")
        if self.horizon_margin is not None and not 0.0 <= self.horizon_margin <= 1.0:
            raise ValueError(f"horizon_margin must be None or in [0, 1], got {self.horizon_margin}")
        if self.coarse_min_confidence is not None and not 0.0 <= self.coarse_min_confidence <= 1.0:
            raise ValueError(
                f"coarse_min_confidence must be None or in [0, 1], got {self.coarse_min_confidence}"
            )
        if self.coarse_pass is not None and not 32 <= self.coarse_pass <= 4096:
            raise ValueError(f"coarse_pass must be None or 32..4096 px, got {self.coarse_pass}")


def band_for(
    config: PrivacyConfig, override: float | None, cam: Camera, width: int, height: int
) -> float | None:
    """The fraction of one frame's height blurred from the top: the vehicle's ``override`` (0: no band),
    else the configured ``horizon``, else (``horizon_margin`` set) where the camera's horizon lies plus
    the margin, else None (no band)."""
    if override is not None:
        return override
    if config.horizon is not None:
        return config.horizon
    if config.horizon_margin is None:
        return None
    return min(1.0, horizon_fraction(width, height, cam) + config.horizon_margin)


@dataclass(frozen=True)
class BlurredBox:
    """One destroyed region: the detection's class and confidence, the grown and clipped box."""

    class_name: str
    confidence: float
    box: Box


@dataclass(frozen=True)
class AnonymizationReport:
    """What :func:`anonymize` destroyed; rows ``[0, horizon_row)`` when the horizon band is on."""

    width: int
    height: int
    boxes: tuple[BlurredBox, ...]
    horizon_row: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for the frame's audit record."""
        return {**asdict(self), "boxes": [{**asdict(b), "box": list(b.box)} for b in self.boxes]}


def grow_box(box: Sequence[float], margin: float, width: int, height: int) -> Box:
    """Grow ``box`` (x1, y1, x2, y2) by ``margin`` x its size on every side, clip to the image.

    Rounds outwards, so a partly covered pixel counts as covered.
    """
    x1, y1, x2, y2 = box
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    return (
        max(0, math.floor(x1 - dx)),
        max(0, math.floor(y1 - dy)),
        min(width, math.ceil(x2 + dx)),
        min(height, math.ceil(y2 + dy)),
    )


def horizon_row(height: int, horizon: float | None) -> int | None:
    """First row below the horizon band (rounded down the image: the band never shrinks)."""
    return None if horizon is None else min(height, math.ceil(horizon * height))


def cell_size(width: int, height: int) -> int:
    """Pixelation cell: at least MIN_CELL px, and at most CELLS_ACROSS cells along the longer side."""
    return max(MIN_CELL, math.ceil(max(width, height) / CELLS_ACROSS))


def _destroy(region: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    h, w = region.shape[:2]
    cell = cell_size(w, h)
    cols, rows = math.ceil(w / cell), math.ceil(h / cell)
    # Averaging to a coarse grid throws the detail away (no deconvolution brings it back, unlike a
    # blur alone); blurring then smooths the block edges so the result reads as blurred, not as a
    # mosaic. Blocks and blur are drawn at MIN_CELL px per cell and scaled up: the look of a
    # cell-sized Gaussian at full size, at a cost that does not grow with the region (a full-width
    # horizon band would otherwise need a ~241 px kernel over a million pixels).
    small = cv2.resize(region, (cols, rows), interpolation=cv2.INTER_AREA)
    blocky = cv2.resize(small, (cols * MIN_CELL, rows * MIN_CELL), interpolation=cv2.INTER_NEAREST)
    soft = cv2.GaussianBlur(blocky, (MIN_CELL + 1, MIN_CELL + 1), 0)
    return cv2.resize(soft, (w, h), interpolation=cv2.INTER_LINEAR).reshape(region.shape)


def blur_regions(image_bgr: np.ndarray[Any, Any], boxes: Iterable[Box]) -> np.ndarray[Any, Any]:
    """A copy of the image with every box pixelated and blurred; pixels outside are untouched.

    Boxes are clipped to the image; empty ones are skipped. Overlapping boxes are destroyed in turn.
    """
    out = image_bgr.copy()
    height, width = out.shape[:2]
    for x1, y1, x2, y2 in boxes:
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(width, x2), min(height, y2)
        if x2 > x1 and y2 > y1:
            out[y1:y2, x1:x2] = _destroy(out[y1:y2, x1:x2])
    return out


def anonymize(
    image_bgr: np.ndarray[Any, Any], detector: Detector, config: PrivacyConfig | None = None
) -> tuple[np.ndarray[Any, Any], AnonymizationReport]:
    """Destroy people and vehicles (grown boxes), then the band above the horizon; return a new image.

    Raises :class:`detector.ModelError` when ``detector`` lacks a class to blur: given the damage
    model by mistake, nothing would be found and every face would be stored.
    """
    config = config or PrivacyConfig()
    missing = config.classes - set(detector.names.values())
    if missing:
        raise ModelError(
            f"the detector has no class {sorted(missing)} (it has {sorted(detector.names.values())}): "
            "is it the privacy model?"
        )
    height, width = image_bgr.shape[:2]
    boxes = tuple(
        BlurredBox(d.class_name, d.confidence, grow_box(d.box, config.margin, width, height))
        for d in find_people_and_vehicles(image_bgr, detector, config)
    )
    row = horizon_row(height, config.horizon)
    out = blur_regions(image_bgr, [b.box for b in boxes])
    if row:
        out = blur_regions(out, [(0, 0, width, row)])
    return out, AnonymizationReport(width, height, boxes, row)


def find_people_and_vehicles(
    image_bgr: np.ndarray[Any, Any], detector: Detector, config: PrivacyConfig, conf: float | None = None
) -> list[Detection]:
    """The detections to blur (classes of ``config``, from ``conf``, default its threshold): the model's
    pass at its input size plus, on a model with a dynamic input size, the coarse pass
    (``config.coarse_pass``, when smaller than the model's size). The passes' boxes are not merged:
    the union is blurred, and an object found twice is blurred twice."""
    threshold = config.min_confidence if conf is None else conf
    # multi_label: a box counts if any class to blur passes the threshold, not only its best class.
    found = detector.predict(image_bgr, conf=threshold, multi_label=True)
    coarse = config.coarse_pass
    if coarse is not None and detector.dynamic_size and coarse < detector.imgsz:
        # Never below the first pass's threshold (a sweep asks for lower ones than the config's).
        floor = config.coarse_min_confidence
        coarse_conf = threshold if floor is None else max(threshold, floor)
        found += detector.predict(image_bgr, conf=coarse_conf, multi_label=True, imgsz=coarse)
    return [d for d in found if d.class_name in config.classes]


def encode_jpeg(image_bgr: np.ndarray[Any, Any], quality: int = 90) -> bytes:
    """JPEG bytes with no metadata: OpenCV writes a bare JFIF header, never EXIF (GPS, camera) or XMP.

    The pixels are already upright (decoding applied the EXIF orientation), so nothing is lost.
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in [1, 100], got {quality}")
    ok, data = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cannot encode an image of shape {image_bgr.shape} as JPEG")
    return data.tobytes()


def privacy_model_path(precision: str) -> Path:
    """The shipped privacy model file of ``precision`` (``fp32`` or ``int8``)."""
    if precision not in PRIVACY_MODEL_PATHS:
        raise ValueError(
            f"privacy model precision must be one of {sorted(PRIVACY_MODEL_PATHS)}, got {precision!r}"
        )
    return PRIVACY_MODEL_PATHS[precision]


def privacy_operating_point(precision: str) -> float:
    """The confidence threshold the shipped privacy model of ``precision`` is audited at."""
    privacy_model_path(precision)  # the same error for an unknown precision
    return PRIVACY_OPERATING_POINTS[precision]


def load_privacy_detector(path: Path = PRIVACY_MODEL_PATH, threads: int = 1) -> Detector:
    """The privacy model; refuses a model that lacks any of the classes to blur."""
    detector = Detector.from_path(path, threads)
    missing = set(PRIVACY_CLASSES) - set(detector.names.values())
    if missing:
        raise ModelError(f"{path}: not the privacy model, it lacks {sorted(missing)}")
    return detector
