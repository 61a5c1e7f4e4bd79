"""Anonymisation: regions destroyed, everything else byte-identical, no metadata in the stored JPEG."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from detector import Detector, ModelError
from detector.tests.conftest import build_constant_head_model, head_with
from service.domain.anonymize import (
    PRIVACY_CLASSES,
    PRIVACY_MODEL_PATH,
    AnonymizationReport,
    PrivacyConfig,
    anonymize,
    blur_regions,
    cell_size,
    encode_jpeg,
    grow_box,
    horizon_row,
    load_privacy_detector,
)

NAMES = dict(enumerate(PRIVACY_CLASSES))
PERSON, CAR = PRIVACY_CLASSES.index("person"), PRIVACY_CLASSES.index("car")


def checkerboard(height: int, width: int) -> np.ndarray:
    """The hardest case for a blur to hide: 1-pixel black/white alternation, as BGR."""
    ys, xs = np.indices((height, width))
    board = np.where((xs + ys) % 2 == 0, 255, 0).astype(np.uint8)
    return np.repeat(board[..., None], 3, axis=2)


def mask_of(shape: tuple[int, ...], boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    mask = np.zeros(shape[:2], bool)
    for x1, y1, x2, y2 in boxes:
        mask[y1:y2, x1:x2] = True
    return mask


def assert_destroyed(before: np.ndarray, after: np.ndarray, box: tuple[int, int, int, int]) -> None:
    """Per channel, the variance inside ``box`` dropped by more than 90%."""
    x1, y1, x2, y2 = box
    var_before = before[y1:y2, x1:x2].astype(np.float64).var(axis=(0, 1))
    var_after = after[y1:y2, x1:x2].astype(np.float64).var(axis=(0, 1))
    assert (var_after < 0.1 * var_before).all(), f"variance inside {box}: {var_before} -> {var_after}"


def test_blur_regions_destroys_inside_and_leaves_every_pixel_outside() -> None:
    image = checkerboard(64, 80)
    boxes = [(10, 20, 50, 40), (60, 0, 70, 12)]
    out = blur_regions(image, boxes)
    for box in boxes:
        assert_destroyed(image, out, box)
    outside = ~mask_of(image.shape, boxes)
    assert np.array_equal(out[outside], image[outside])
    assert np.array_equal(image, checkerboard(64, 80)), "the input must not be modified"
    assert out.dtype == image.dtype and out.shape == image.shape


def test_blur_regions_clips_boxes_and_skips_empty_ones() -> None:
    image = checkerboard(32, 32)
    out = blur_regions(image, [(-10, -10, 8, 8), (20, 20, 20, 30), (40, 40, 50, 50)])
    assert_destroyed(image, out, (0, 0, 8, 8))
    outside = ~mask_of(image.shape, [(0, 0, 8, 8)])
    assert np.array_equal(out[outside], image[outside])


def test_blur_regions_leaves_no_detail_of_a_small_pattern_in_a_large_box() -> None:
    # A face-sized pattern inside a person-sized box: nothing of its shape survives.
    image = np.full((200, 100, 3), 90, np.uint8)
    image[30:46, 40:56] = checkerboard(16, 16)
    out = blur_regions(image, [(0, 0, 100, 200)])
    assert cell_size(100, 200) == 25
    region = out[30:46, 40:56].astype(int)
    assert region.max() - region.min() < 40  # was 255: the pattern is gone, only a smudge is left


def test_blur_regions_keeps_only_cell_averages_so_different_detail_gives_the_same_output() -> None:
    # A blur alone could be partly undone (deconvolution); after pixelation two different patterns
    # with the same averages per cell come out identical: the detail is gone, not hidden.
    xs = np.indices((64, 64))[1]
    stripes = np.repeat(np.where(xs % 2 == 0, 255, 0).astype(np.uint8)[..., None], 3, axis=2)
    a, b = blur_regions(checkerboard(64, 64), [(0, 0, 64, 64)]), blur_regions(stripes, [(0, 0, 64, 64)])
    assert np.array_equal(a, b)


def test_grow_box_grows_by_the_margin_on_every_side_and_rounds_outwards() -> None:
    assert grow_box((64, 76, 96, 100), 0.15, 200, 200) == (59, 72, 101, 104)
    assert grow_box((10.2, 10.7, 20.1, 30.5), 0.0, 200, 200) == (10, 10, 21, 31)


def test_grow_box_clips_to_the_image() -> None:
    assert grow_box((2, 3, 90, 45), 0.5, 100, 50) == (0, 0, 100, 50)
    assert grow_box((-5, -5, 10, 10), 0.0, 100, 50) == (0, 0, 10, 10)


def test_horizon_row() -> None:
    assert horizon_row(480, 0.35) == 168
    assert horizon_row(100, 0.333) == 34  # rounded down the image: the band never shrinks
    assert horizon_row(480, None) is None
    assert horizon_row(480, 0.0) == 0
    assert horizon_row(480, 1.0) == 480


def test_config_is_validated() -> None:
    assert PrivacyConfig().classes == frozenset(PRIVACY_CLASSES)
    assert PrivacyConfig(classes=["person"]).classes == frozenset({"person"})  # type: ignore[arg-type]
    bad: dict[str, Any]
    for bad in (
        {"margin": -0.1},
        {"min_confidence": 1.5},
        {"horizon": 1.2},
        {"classes": frozenset()},
        {"coarse_pass": 16},
        {"coarse_min_confidence": 1.5},
    ):
        with pytest.raises(ValueError):
            PrivacyConfig(**bad)


@pytest.fixture
def known_detector(tmp_path: Path) -> Detector:
    """A 64 px model with fixed output; on a 128x128 image boxes are twice its numbers."""
    head = head_with(
        [
            (40, 44, 16, 12, PERSON, 0.9),  # -> source (64, 76, 96, 100)
            (16, 52, 8, 8, CAR, 0.3),  # -> source (24, 96, 40, 112)
            (52, 16, 8, 8, CAR, 0.05),  # under min_confidence: must not be blurred
        ],
        nc=len(NAMES),
    )
    return Detector.from_path(build_constant_head_model(tmp_path / "m.onnx", head, 64, names=NAMES))


def test_anonymize_blurs_the_reported_boxes_and_the_horizon_band_only(known_detector: Detector) -> None:
    image = checkerboard(128, 128)
    out, report = anonymize(image, known_detector, PrivacyConfig(horizon=0.25))

    assert isinstance(report, AnonymizationReport)
    assert (report.width, report.height, report.horizon_row) == (128, 128, 32)
    assert [(b.class_name, b.box) for b in report.boxes] == [
        ("person", (59, 72, 101, 104)),
        ("car", (21, 93, 43, 115)),
    ]
    assert report.boxes[0].confidence == pytest.approx(0.9)
    for b in report.boxes:
        assert_destroyed(image, out, b.box)
    assert_destroyed(image, out, (0, 0, 128, 32))
    untouched = ~mask_of(image.shape, [b.box for b in report.boxes] + [(0, 0, 128, 32)])
    assert np.array_equal(out[untouched], image[untouched])
    assert report.to_dict()["boxes"][0] == {
        "class_name": "person",
        "confidence": report.boxes[0].confidence,
        "box": [59, 72, 101, 104],
    }


def test_anonymize_honours_classes_and_can_turn_the_horizon_off(known_detector: Detector) -> None:
    image = checkerboard(128, 128)
    out, report = anonymize(image, known_detector, PrivacyConfig(horizon=None, classes=frozenset({"car"})))
    assert [b.class_name for b in report.boxes] == ["car"] and report.horizon_row is None
    untouched = ~mask_of(image.shape, [report.boxes[0].box])
    assert np.array_equal(out[untouched], image[untouched])


def test_anonymize_refuses_a_model_without_the_classes_to_blur(tmp_path: Path) -> None:
    damage = Detector.from_path(build_constant_head_model(tmp_path / "d.onnx", head_with([]), 64))
    with pytest.raises(ModelError, match="privacy model"):
        anonymize(checkerboard(64, 64), damage)


def jpeg_segments(data: bytes) -> list[int]:
    """Marker bytes of the JPEG segments before the image data (APP1 = 0xE1 holds EXIF and XMP)."""
    assert data[:2] == b"\xff\xd8"
    markers, pos = [], 2
    while pos < len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        markers.append(marker)
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return markers


def test_encode_jpeg_writes_no_exif_even_when_the_source_had_gps(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x010F] = "DashCam Inc."  # Make
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0)}  # GPSInfo
    source = io.BytesIO()
    Image.fromarray(checkerboard(48, 64)).save(source, "JPEG", exif=exif)
    assert Image.open(io.BytesIO(source.getvalue())).getexif(), "the control must carry EXIF"

    data = encode_jpeg(checkerboard(48, 64))
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "JPEG" and img.size == (64, 48)
        assert not img.getexif()
        assert "exif" not in img.info and "xmp" not in img.info
    assert 0xE1 not in jpeg_segments(data)
    with pytest.raises(ValueError):
        encode_jpeg(checkerboard(8, 8), quality=0)


def test_real_privacy_model_gives_a_valid_report() -> None:
    if not PRIVACY_MODEL_PATH.is_file():
        pytest.fail(
            f"{PRIVACY_MODEL_PATH} is missing: build it with `python -m training privacy-model "
            "--weights yolov5n-coco-v6.1-fp16.pt` (see weights/PRIVACY_MODEL.md)"
        )
    detector = load_privacy_detector()
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(110, 25, (360, 480, 3)), 0, 255).astype(np.uint8)  # asphalt-like noise
    image[:120] = (200, 170, 140)  # a sky
    out, report = anonymize(image, detector)
    assert (report.width, report.height, report.horizon_row) == (480, 360, 126)
    for b in report.boxes:
        assert b.class_name in PRIVACY_CLASSES and PrivacyConfig().min_confidence <= b.confidence <= 1.0
        x1, y1, x2, y2 = b.box
        assert 0 <= x1 < x2 <= 480 and 0 <= y1 < y2 <= 360
    untouched = ~mask_of(image.shape, [b.box for b in report.boxes] + [(0, 0, 480, 126)])
    assert np.array_equal(out[untouched], image[untouched])
    assert_destroyed(image, out, (0, 120, 480, 126))  # the asphalt noise inside the band


def test_coarse_pass_adds_the_boxes_of_a_second_smaller_input_on_a_dynamic_model(tmp_path: Path) -> None:
    # The head's box is in input pixels: at 64 px a 128 px image is seen at half size, at 32 px at a
    # quarter, so the same head box lands twice as far out in the image on the coarse pass.
    head = head_with([(20, 20, 8, 8, PERSON, 0.9)], nc=len(NAMES))
    dynamic = Detector.from_path(
        build_constant_head_model(tmp_path / "d.onnx", head, 64, names=NAMES, dynamic=True)
    )
    image = checkerboard(128, 128)
    config = PrivacyConfig(horizon=None, margin=0.0, coarse_pass=32)
    out, report = anonymize(image, dynamic, config)
    assert [b.box for b in report.boxes] == [(32, 32, 48, 48), (64, 64, 96, 96)]
    for b in report.boxes:
        assert_destroyed(image, out, b.box)
    _, one = anonymize(image, dynamic, replace(config, coarse_pass=None))
    assert [b.box for b in one.boxes] == [(32, 32, 48, 48)]
    _, same = anonymize(image, dynamic, replace(config, coarse_pass=64))  # not smaller: no second pass
    assert same.boxes == one.boxes
    _, same = anonymize(image, dynamic, replace(config, coarse_min_confidence=0.95))  # its own threshold
    assert same.boxes == one.boxes
    # A model with a fixed input cannot run at another size: one pass, as before.
    fixed = Detector.from_path(build_constant_head_model(tmp_path / "f.onnx", head, 64, names=NAMES))
    _, fixed_report = anonymize(image, fixed, config)
    assert [b.box for b in fixed_report.boxes] == [(32, 32, 48, 48)]
    with pytest.raises(ModelError, match="fixed at 64 px"):
        fixed.predict(image, imgsz=32)
    with pytest.raises(ModelError, match="below the model's stride"):
        dynamic.predict(image, imgsz=16)
