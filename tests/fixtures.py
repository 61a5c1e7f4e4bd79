"""Generated test images: road-like textures and JPEGs with EXIF GPS, written with Pillow."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import cv2
import numpy as np
from PIL import Image


def road_like(width: int, height: int, seed: int) -> np.ndarray:
    """Grey asphalt texture with dark cracks and a dark blob (BGR): enough for the model to react."""
    rng = np.random.default_rng(seed)
    img = rng.normal(120, 18, (height, width, 3)).clip(0, 255).astype(np.uint8)
    img = cv2.GaussianBlur(img, (3, 3), 0)
    for _ in range(4):
        pts = np.cumsum(rng.integers(-6, 7, (40, 2)), axis=0) + rng.integers(0, min(width, height), 2)
        cv2.polylines(img, [pts.astype(np.int32)], False, (35, 35, 35), int(rng.integers(2, 5)))
    center = (int(rng.integers(width // 4, 3 * width // 4)), int(rng.integers(height // 2, height - 20)))
    cv2.ellipse(img, center, (width // 10, height // 20), 0, 0, 360, (25, 25, 30), -1)
    return img


def _dms(value: float) -> tuple[float, float, float]:
    value = abs(value)
    d = int(value)
    m = int((value - d) * 60)
    s = (value - d - m / 60) * 3600
    return (float(d), float(m), round(s, 4))


def gps_jpeg(
    lat: float | None,
    lon: float | None,
    when: datetime | None = None,
    heading: float | None = None,
    *,
    seed: int = 0,
    size: tuple[int, int] = (640, 480),
    image: np.ndarray | None = None,
) -> bytes:
    """A JPEG with EXIF DateTimeOriginal and, when lat/lon are given, GPS position and direction."""
    bgr = image if image is not None else road_like(size[0], size[1], seed)
    pil = Image.fromarray(bgr[..., ::-1])
    exif = Image.Exif()
    if when is not None:
        sub: dict[int, Any] = {0x9003: when.astimezone(UTC).strftime("%Y:%m:%d %H:%M:%S"), 0x9011: "+00:00"}
        exif[0x8769] = sub
    if lat is not None and lon is not None:
        gps: dict[int, Any] = {
            1: "N" if lat >= 0 else "S",
            2: _dms(lat),
            3: "E" if lon >= 0 else "W",
            4: _dms(lon),
        }
        if when is not None:
            t = when.astimezone(UTC)
            gps[7] = (float(t.hour), float(t.minute), float(t.second))
            gps[29] = t.strftime("%Y:%m:%d")
        if heading is not None:
            gps[16], gps[17] = "T", float(heading)
        exif[0x8825] = gps
    buf = io.BytesIO()
    pil.save(buf, "JPEG", quality=90, exif=exif)
    return buf.getvalue()


T0 = datetime(2026, 9, 1, 8, 0, 0, tzinfo=UTC)
