"""Capture quality: can a photo show road damage at all? Simple image statistics, no model.

Each frame gets a :class:`Verdict`: ``usable`` and the reasons it is not:

- ``blurred`` (motion or focus): little fine detail in the road area (the lower 60 % of the image) in the
  direction that has the least of it (a motion streak removes detail along one direction only), relative to
  the area's own contrast, so an even road is not taken for a blurred one;
- ``dark`` (night, tunnel): mean brightness below ``dark_max_mean``;
- ``overexposed``: a large share of saturated pixels (250..255);
- ``covered`` (lens covered, or the view mostly sky or bonnet): most 16x16 blocks are without texture.

Thresholds live in :class:`Thresholds` (``ROADWATCH_QUALITY_*`` settings); ``bench/quality.py`` calibrates
them on real photos and degraded copies. Statistics are computed on a copy scaled to 512 px width, so the
result does not depend on the camera's resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

VERSION = "stats-1"
WORK_WIDTH = 512
ROAD_TOP = 0.4  # the road area starts at this fraction of the height
BLOCK = 16
FLAT_BLOCK_STD = 2.5  # grey levels: a block this even shows no texture
REASONS = ("blurred", "dark", "overexposed", "covered")


@dataclass(frozen=True)
class Thresholds:
    blur_min: float = 0.085
    dark_max_mean: float = 50.0
    bright_min_share: float = 0.30
    flat_min_share: float = 0.60

    def __post_init__(self) -> None:
        for name in ("bright_min_share", "flat_min_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}: expected 0..1, got {value!r}")
        if not 0.0 <= self.dark_max_mean <= 255.0:
            raise ValueError(f"dark_max_mean: expected 0..255, got {self.dark_max_mean!r}")
        if self.blur_min < 0.0:
            raise ValueError(f"blur_min: expected >= 0, got {self.blur_min!r}")


@dataclass(frozen=True)
class Verdict:
    usable: bool
    reasons: tuple[str, ...]
    metrics: dict[str, float] = field(default_factory=dict)
    version: str = VERSION


def _grey(image: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    h, w = image.shape[:2]
    if w != WORK_WIDTH:
        image = cv2.resize(
            image, (WORK_WIDTH, max(1, round(h * WORK_WIDTH / w))), interpolation=cv2.INTER_AREA
        )
    return image


def _weakest_detail(road: np.ndarray[Any, Any]) -> float:
    """Fine detail in the direction that has the least of it: the smaller eigenvalue of the structure tensor
    (mean outer product of the gradient) of the road area's high-pass (the image minus a 1-pixel blur). A
    motion streak removes detail along one direction only, a focus blur along all of them."""
    fine = road - cv2.GaussianBlur(road, (0, 0), 1.0)
    gx = cv2.Sobel(fine, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(fine, cv2.CV_32F, 0, 1, ksize=3)
    a, b, c = float((gx * gx).mean()), float((gx * gy).mean()), float((gy * gy).mean())
    return (a + c) / 2.0 - math.sqrt(max((a - c) ** 2 / 4.0 + b * b, 0.0))


def measure(image: np.ndarray[Any, Any]) -> dict[str, float]:
    """The statistics the verdict is based on, for an 8-bit BGR or grey image."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or min(image.shape[:2]) < BLOCK:
        raise ValueError(
            f"image: expected 8-bit grey or BGR of at least {BLOCK} px, got {image.dtype} {image.shape}"
        )
    grey = _grey(image)
    h, w = grey.shape
    road = grey[int(h * ROAD_TOP) :].astype(np.float32)
    contrast = float(road.var())
    sharpness = _weakest_detail(road) / (contrast + 25.0)
    bh, bw = h // BLOCK, w // BLOCK
    blocks = grey[: bh * BLOCK, : bw * BLOCK].astype(np.float32).reshape(bh, BLOCK, bw, BLOCK)
    flat = float((blocks.std(axis=(1, 3)) < FLAT_BLOCK_STD).mean())
    return {
        "mean": float(grey.mean()),
        "bright_share": float((grey >= 250).mean()),
        "sharpness": sharpness,
        "flat_share": flat,
    }


def reasons(m: dict[str, float], t: Thresholds) -> tuple[str, ...]:
    """Why a photo with these statistics (:func:`measure`) is unusable; empty when it is usable."""
    out = []
    if m["sharpness"] < t.blur_min:
        out.append("blurred")
    if m["mean"] < t.dark_max_mean:
        out.append("dark")
    if m["bright_share"] >= t.bright_min_share:
        out.append("overexposed")
    if m["flat_share"] >= t.flat_min_share:
        out.append("covered")
    return tuple(out)


def assess(image: np.ndarray[Any, Any], thresholds: Thresholds | None = None) -> Verdict:
    """The quality verdict of one photo."""
    m = measure(image)
    found = reasons(m, thresholds or Thresholds())
    return Verdict(not found, found, {k: round(v, 5) for k, v in m.items()})
