from __future__ import annotations

import numpy as np
import pytest

from training.metrics import Evaluation, average_precision, iou_matrix, match


def test_iou_matrix() -> None:
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 50 / 150, 0.0]])


def test_match_uses_each_ground_truth_once_and_needs_same_class() -> None:
    gt = np.array([[0, 0, 10, 10]], float)
    preds = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], float)
    correct = match(preds, np.array([0, 0, 1]), gt, np.array([0]))
    assert correct[:, 0].tolist() == [True, False, False]


def test_match_threshold_columns() -> None:
    gt = np.array([[0, 0, 10, 10]], float)
    pred = np.array([[0, 0, 10, 8]], float)  # IoU 0.8
    correct = match(pred, np.array([0]), gt, np.array([0]))
    assert correct[0].tolist() == [t <= 0.8 for t in np.linspace(0.5, 0.95, 10)]


def test_average_precision_perfect_and_half() -> None:
    assert average_precision(np.array([1.0]), np.array([1.0])) == pytest.approx(0.995)  # as ultralytics
    # Recall stops at 0.5: the envelope falls linearly to 0 at recall 1 (the 101-point convention).
    assert average_precision(np.array([0.5]), np.array([1.0])) == pytest.approx(0.7475, abs=0.01)


def test_evaluation_on_hand_built_images() -> None:
    ev = Evaluation(["a", "b"])
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)
    # Image 1: both found, right classes. Image 2: class b missed, one false alarm.
    ev.add(gt.copy(), np.array([0.9, 0.8]), np.array([0, 1]), gt, np.array([0, 1]))
    ev.add(
        np.array([[0, 0, 10, 10], [50, 50, 60, 60]], float),
        np.array([0.7, 0.6]),
        np.array([0, 1]),
        gt,
        np.array([0, 1]),
    )
    m = ev.compute()
    assert m["per_class"]["a"]["ap50"] == pytest.approx(0.995)
    assert m["per_class"]["b"]["ap50"] == pytest.approx(0.6225, abs=0.005)  # 1 of 2 found
    assert m["map50"] == pytest.approx((0.995 + 0.6225) / 2, abs=0.005)
    assert 0 < m["f1"] <= 1
    confusion = np.array(m["confusion"])
    assert confusion[0, 0] == 2 and confusion[1, 1] == 1  # correct class pairs
    assert confusion[2, 1] == 1 and confusion[1, 2] == 1  # one missed b, one false alarm as b


def test_match_lets_the_more_confident_prediction_claim_first() -> None:
    # COCO order: the first (more confident) prediction takes the box even though the second fits better.
    gt = np.array([[0, 0, 10, 10]], float)
    preds = np.array([[0, 0, 10, 6], [0, 0, 10, 9]], float)  # IoU 0.6, then 0.9
    correct = match(preds, np.array([0, 0]), gt, np.array([0]))
    assert correct[0, 0] and not correct[1, 0]  # at IoU 0.5 the first one wins
    assert not correct[0, 8] and correct[1, 8]  # at IoU 0.9 only the second qualifies
