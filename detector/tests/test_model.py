from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest

from detector import Detection, Detector, ModelError
from detector.tests.conftest import build_constant_head_model, head_with


def test_reads_names_and_imgsz_from_metadata(constant_model: Callable[..., Path]) -> None:
    det = Detector.from_path(constant_model([], imgsz=64))
    assert det.names == {0: "D00", 1: "D10", 2: "D20", 3: "D40"}
    assert det.imgsz == 64


def test_boxes_map_back_to_source_pixels(constant_model: Callable[..., Path]) -> None:
    # 64x64 input; a 128x64 source image is scaled by 0.5 and padded 16 px top and bottom.
    det = Detector.from_path(constant_model([(32, 32, 20, 10, 3, 0.9), (10, 20, 4, 4, 1, 0.5)]))
    found = det.predict(np.zeros((64, 128, 3), np.uint8), conf=0.25)
    assert [d.class_name for d in found] == ["D40", "D10"]
    assert found[0].confidence == pytest.approx(0.9)
    np.testing.assert_allclose(found[0].box, (44, 22, 84, 42), atol=1e-4)
    np.testing.assert_allclose(found[1].box, (16, 4, 24, 12), atol=1e-4)


def test_batch_matches_single_calls_and_threads(constant_model: Callable[..., Path]) -> None:
    det = Detector.from_path(constant_model([(32, 32, 20, 10, 0, 0.8)]))
    images = [np.zeros((h, w, 3), np.uint8) for w, h in [(1920, 1080), (1080, 1920), (64, 64)]]
    batch = det.predict_batch(images)
    single = [det.predict(img) for img in images]
    assert batch == single
    with ThreadPoolExecutor(4) as pool:  # per-call state only: concurrent calls agree
        concurrent = list(pool.map(det.predict, images * 4))
    assert concurrent == single * 4
    assert batch[0][0].box != batch[1][0].box  # different letterboxes gave different mappings


def test_missing_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        Detector.from_path(tmp_path / "nope.onnx")


def test_garbage_file_is_a_model_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"not onnx at all")
    with pytest.raises(ModelError, match="not a loadable ONNX"):
        Detector.from_path(path)


def test_non_detection_task_is_refused(tmp_path: Path) -> None:
    path = build_constant_head_model(tmp_path / "m.onnx", head_with([]), 64, task="segment")
    with pytest.raises(ModelError, match="detection model"):
        Detector.from_path(path)


def test_missing_metadata_is_refused(tmp_path: Path) -> None:
    path = build_constant_head_model(tmp_path / "m.onnx", head_with([]), 64)
    model = onnx.load(str(path))
    del model.metadata_props[:]
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match="not an ultralytics YOLO export"):
        Detector.from_path(path)


def test_names_must_be_a_literal_not_code(tmp_path: Path) -> None:
    path = build_constant_head_model(tmp_path / "m.onnx", head_with([]), 64)
    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == "names":
            prop.value = "__import__('os').system('echo pwned')"
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match="not a literal dict"):
        Detector.from_path(path)


def test_head_width_must_match_class_count(tmp_path: Path) -> None:
    path = build_constant_head_model(tmp_path / "m.onnx", head_with([]), 64, names={0: "a", 1: "b"})
    with pytest.raises(ModelError, match="expected output"):
        Detector.from_path(path)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"class_id": -1, "class_name": "x", "confidence": 0.5, "box": (0, 0, 1, 1)},
        {"class_id": 0, "class_name": "x", "confidence": 1.5, "box": (0, 0, 1, 1)},
        {"class_id": 0, "class_name": "x", "confidence": 0.5, "box": (5, 0, 1, 1)},
        {"class_id": 0, "class_name": "x", "confidence": 0.5, "box": (0, 0, float("nan"), 1)},
    ],
)
def test_detection_is_validated(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="must"):
        Detection(**kwargs)


def test_boxes_wholly_in_the_padding_are_dropped(constant_model: Callable[..., Path]) -> None:
    # A 128x64 source is padded 16 px above and below in the 64 px input: a box in rows 3..7 shows
    # nothing of the image.
    det = Detector.from_path(constant_model([(32, 5, 4, 4, 0, 0.9), (32, 32, 4, 4, 1, 0.8)]))
    found = det.predict(np.zeros((64, 128, 3), np.uint8))
    assert [d.class_id for d in found] == [1]
