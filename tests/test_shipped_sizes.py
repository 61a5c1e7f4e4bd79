"""The shipped models take each frame at its own aspect ratio (issue 17): a 16:9 dashcam frame is
letterboxed to the stride, not to a square (the same pixels with less padding)."""

from __future__ import annotations

import pytest

from detector import Detector
from detector.manifest import WEIGHTS_DIR, load_manifest
from detector.preprocess import letterbox
from tests.fixtures import road_like

PRIVACY = ["privacy-persons-vehicles.onnx", "privacy-persons-vehicles-int8.onnx"]
DAMAGE = [m["file"] for m in load_manifest(WEIGHTS_DIR)["models"] if m["version"] == "v2"]


@pytest.mark.parametrize("name", PRIVACY + DAMAGE)
def test_a_16_9_frame_runs_at_its_own_aspect_ratio(name: str) -> None:
    detector = Detector.from_path(WEIGHTS_DIR / name)
    assert detector.stride == 32  # dynamic height and width
    frame = road_like(1920, 1080, 3)
    tensor, _ = letterbox(frame, detector.imgsz, detector.stride)
    expected = {640: (384, 640), 416: (256, 416)}[detector.imgsz]
    assert tensor.shape[:2] == expected
    # The model computes at that size: one prediction per anchor and cell of each level (strides 8, 16, 32).
    from detector.preprocess import to_tensor, to_uint8_tensor

    blob = (to_uint8_tensor if detector.uint8_input else to_tensor)([tensor])
    out = detector.session.run(None, {detector.input_name: blob})[0]
    h, w = expected
    cells = sum((h // s) * (w // s) for s in (8, 16, 32))
    anchors = 3 if name in PRIVACY else 1  # the privacy model's classic head: 3 anchors per cell
    assert out.shape == (1, 4 + len(detector.names), anchors * cells)
    assert detector.predict(frame) is not None  # and the whole path runs
