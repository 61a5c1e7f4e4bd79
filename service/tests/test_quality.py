"""The capture-quality gate on generated road photos and their blurred, dark, overexposed, covered copies."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from service.domain.quality import Thresholds, assess, measure


def road_photo(seed: int = 0, width: int = 1280, height: int = 720) -> np.ndarray:
    """Sky above 35 % of the height, grainy asphalt with lane markings and a crack below (BGR)."""
    rng = np.random.default_rng(seed)
    img = np.empty((height, width, 3), np.float32)
    horizon = int(height * 0.35)
    sky = np.linspace(210, 170, horizon, dtype=np.float32)[:, None, None]
    img[:horizon] = sky * np.array([1.0, 0.95, 0.85], np.float32)
    coarse = cv2.resize(
        rng.normal(0, 12, (height // 8, width // 8)).astype(np.float32), (width, height - horizon)
    )
    grain = rng.normal(0, 10, (height - horizon, width)).astype(np.float32)
    img[horizon:] = (105 + coarse + grain)[:, :, None]
    for x0 in (0.3, 0.7):  # lane markings converging to the horizon
        cv2.line(img, (int(width * x0), height), (width // 2, horizon), (235, 235, 235), 12)
    pts = np.cumsum(rng.normal(0, 6, (40, 2)), axis=0).astype(np.int32) + np.array(
        [width // 2, int(height * 0.75)]
    )
    cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, (40, 40, 40), 3)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_a_sharp_daylight_road_photo_is_usable() -> None:
    for seed in range(3):
        verdict = assess(road_photo(seed))
        assert verdict.usable and verdict.reasons == (), verdict.metrics
    small = cv2.resize(road_photo(), (640, 360), interpolation=cv2.INTER_AREA)
    assert assess(small).usable  # statistics are taken at one working width


@pytest.mark.parametrize(
    ("degrade", "reason"),
    [
        (lambda im: cv2.GaussianBlur(im, (0, 0), 9), "blurred"),
        (lambda im: cv2.filter2D(im, -1, np.full((1, 61), 1 / 61, np.float32)), "blurred"),  # motion
        (lambda im: (im.astype(np.float32) * 0.15).astype(np.uint8), "dark"),
        (lambda im: np.clip(im.astype(np.float32) * 3 + 40, 0, 255).astype(np.uint8), "overexposed"),
        (lambda im: (cv2.GaussianBlur(im, (0, 0), 80) * 0.4).astype(np.uint8), "covered"),
    ],
)
def test_each_degradation_is_caught_with_its_reason(degrade, reason: str) -> None:  # type: ignore[no-untyped-def]
    verdict = assess(degrade(road_photo()))
    assert not verdict.usable and reason in verdict.reasons, verdict.metrics


def test_mostly_sky_and_bonnet_is_covered() -> None:
    im = road_photo()
    im[: int(720 * 0.7)] = (200, 190, 180)
    im[int(720 * 0.85) :] = (40, 40, 60)
    assert "covered" in assess(im).reasons


def test_thresholds_are_settings_and_checked() -> None:
    m = measure(road_photo())
    assert assess(road_photo(), Thresholds(blur_min=m["sharpness"] * 2)).reasons == ("blurred",)
    assert assess(road_photo(), Thresholds(dark_max_mean=m["mean"] + 1)).reasons == ("dark",)
    with pytest.raises(ValueError, match=r"bright_min_share: expected 0\.\.1"):
        Thresholds(bright_min_share=2.0)
    with pytest.raises(ValueError, match="expected 8-bit"):
        measure(np.zeros((720, 1280, 3), np.float32))
