from __future__ import annotations

import numpy as np
import pytest

from detector.postprocess import decode, nms


def test_decode_picks_best_class_and_filters_by_conf() -> None:
    head = np.zeros((6, 3), np.float32)  # 2 classes, 3 anchors
    head[:4, 0] = (50, 50, 20, 10)
    head[4:, 0] = (0.2, 0.9)
    head[:4, 1] = (10, 10, 4, 4)
    head[4:, 1] = (0.1, 0.05)
    head[:4, 2] = (30, 30, 10, 10)
    head[4:, 2] = (0.6, 0.3)
    boxes, scores, classes = decode(head, conf=0.25)
    assert classes.tolist() == [1, 0]
    np.testing.assert_allclose(scores, [0.9, 0.6])
    np.testing.assert_allclose(boxes[0], [40, 45, 60, 55])


def test_decode_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError, match="expected a head"):
        decode(np.zeros((4, 10), np.float32), 0.25)


def test_nms_is_class_aware() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    classes = np.array([0, 0, 1, 0])
    keep = nms(boxes, scores, classes, iou=0.45)
    # Box 1 overlaps box 0 (same class) and goes; box 2 overlaps too but is another class.
    assert keep.tolist() == [0, 2, 3]


def test_nms_threshold_and_max_det() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 12]], np.float32)  # IoU = 10/12
    scores = np.array([0.9, 0.8], np.float32)
    classes = np.array([0, 0])
    assert nms(boxes, scores, classes, iou=0.9).tolist() == [0, 1]
    assert nms(boxes, scores, classes, iou=0.5).tolist() == [0]
    assert nms(boxes, scores, classes, iou=0.9, max_det=1).tolist() == [0]


def test_decode_multi_label_gives_one_box_per_class_above_conf() -> None:
    head = np.zeros((6, 2), np.float32)
    head[:4, 0] = (50, 50, 20, 10)
    head[4:, 0] = (0.6, 0.9)
    head[:4, 1] = (10, 10, 4, 4)
    head[4:, 1] = (0.1, 0.05)
    boxes, scores, classes = decode(head, conf=0.25, multi_label=True)
    assert sorted(zip(classes.tolist(), [round(float(s), 2) for s in scores], strict=True)) == [
        (0, 0.6),
        (1, 0.9),
    ]
    assert len(boxes) == 2
