"""Detection metrics as ultralytics and COCO define them, in numpy: AP50, mAP50-95, F1, confusion.

Matching: predictions in descending confidence each claim the best unclaimed ground-truth box of
their class, per IoU threshold (COCO). AP: area under the precision envelope sampled at
101 recall points. Pure functions, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4), xyxy."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).prod(axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def match(
    pred_boxes: np.ndarray, pred_cls: np.ndarray, gt_boxes: np.ndarray, gt_cls: np.ndarray
) -> np.ndarray:
    """True-positive matrix (n_pred, n_thresholds): is each prediction correct at each IoU threshold.

    Predictions must come in descending confidence. As in COCO (and ultralytics 8.4), each prediction
    in turn claims the unclaimed ground-truth box of its class with the highest IoU, per threshold.
    """
    correct = np.zeros((len(pred_boxes), len(IOU_THRESHOLDS)), dtype=bool)
    if len(pred_boxes) == 0 or len(gt_boxes) == 0:
        return correct
    iou = iou_matrix(gt_boxes, pred_boxes) * (gt_cls[:, None] == pred_cls[None, :])
    claimed = np.zeros((len(gt_boxes), len(IOU_THRESHOLDS)), dtype=bool)
    columns = np.arange(len(IOU_THRESHOLDS))
    for j in np.flatnonzero((iou >= IOU_THRESHOLDS.min()).any(axis=0)):
        available = np.where(claimed, 0.0, iou[:, j, None])
        best = available.argmax(axis=0)
        correct[j] = available[best, columns] >= IOU_THRESHOLDS
        claimed[best, columns] |= correct[j]
    return correct


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """COCO 101-point interpolated AP from a recall/precision curve (recall ascending)."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([1.0], precision, [0.0]))
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
    x = np.linspace(0, 1, 101)
    return float(np.trapezoid(np.interp(x, mrec, mpre), x))


@dataclass
class Evaluation:
    """Accumulates predictions and ground truth image by image, then computes the metrics."""

    names: list[str]
    _correct: list[np.ndarray] = field(default_factory=list)
    _conf: list[np.ndarray] = field(default_factory=list)
    _pred_cls: list[np.ndarray] = field(default_factory=list)
    _gt_cls: list[np.ndarray] = field(default_factory=list)
    confusion: np.ndarray | None = None  # (nc + 1) x (nc + 1): rows predicted, cols true; last = background

    def add(
        self,
        pred_boxes: np.ndarray,
        pred_conf: np.ndarray,
        pred_cls: np.ndarray,
        gt_boxes: np.ndarray,
        gt_cls: np.ndarray,
        confusion_conf: float = 0.25,
    ) -> None:
        order = np.argsort(-pred_conf, kind="stable")
        pred_boxes, pred_conf, pred_cls = pred_boxes[order], pred_conf[order], pred_cls[order]
        self._correct.append(match(pred_boxes, pred_cls, gt_boxes, gt_cls))
        self._conf.append(pred_conf)
        self._pred_cls.append(pred_cls)
        self._gt_cls.append(gt_cls)
        self._update_confusion(
            pred_boxes[pred_conf >= confusion_conf], pred_cls[pred_conf >= confusion_conf], gt_boxes, gt_cls
        )

    def _update_confusion(
        self, boxes: np.ndarray, cls: np.ndarray, gt_boxes: np.ndarray, gt_cls: np.ndarray
    ) -> None:
        nc = len(self.names)
        if self.confusion is None:
            self.confusion = np.zeros((nc + 1, nc + 1), dtype=np.int64)
        iou = iou_matrix(gt_boxes, boxes)
        gi, pi = np.nonzero(iou > 0.45)
        pairs: list[tuple[int, int]] = []
        if len(gi):
            order = np.argsort(-iou[gi, pi])
            used_g, used_p = set(), set()
            for g, p in zip(gi[order], pi[order], strict=True):
                if g not in used_g and p not in used_p:
                    pairs.append((int(g), int(p)))
                    used_g.add(g)
                    used_p.add(p)
        matched_g = {g for g, _ in pairs}
        matched_p = {p for _, p in pairs}
        for g, p in pairs:
            self.confusion[int(cls[p]), int(gt_cls[g])] += 1
        for g in range(len(gt_cls)):
            if g not in matched_g:
                self.confusion[nc, int(gt_cls[g])] += 1  # missed: predicted background
        for p in range(len(cls)):
            if p not in matched_p:
                self.confusion[int(cls[p]), nc] += 1  # false alarm on background

    def compute(self) -> dict[str, object]:
        correct = np.concatenate(self._correct) if self._correct else np.zeros((0, 10), bool)
        conf = np.concatenate(self._conf) if self._conf else np.zeros(0)
        pred_cls = np.concatenate(self._pred_cls) if self._pred_cls else np.zeros(0, int)
        gt_cls = np.concatenate(self._gt_cls) if self._gt_cls else np.zeros(0, int)
        order = np.argsort(-conf, kind="stable")
        correct, conf, pred_cls = correct[order], conf[order], pred_cls[order]
        grid = np.linspace(0, 1, 1000)
        per_class: dict[str, dict[str, float]] = {}
        ap = np.zeros((len(self.names), len(IOU_THRESHOLDS)))
        p_curve = np.zeros((len(self.names), len(grid)))
        r_curve = np.zeros((len(self.names), len(grid)))
        pr_curves: dict[str, tuple[list[float], list[float]]] = {}
        for c, name in enumerate(self.names):
            sel = pred_cls == c
            n_gt = int((gt_cls == c).sum())
            if n_gt == 0:
                continue
            tp = np.cumsum(correct[sel], axis=0)
            fp = np.cumsum(~correct[sel], axis=0)
            recall = tp / n_gt
            precision = tp / np.maximum(tp + fp, 1e-9)
            for t in range(len(IOU_THRESHOLDS)):
                ap[c, t] = average_precision(recall[:, t], precision[:, t]) if sel.any() else 0.0
            if sel.any():  # curves against the confidence threshold (conf descending -> flip for interp)
                r_curve[c] = np.interp(-grid, -conf[sel], recall[:, 0], left=0)
                p_curve[c] = np.interp(-grid, -conf[sel], precision[:, 0], left=1)
                pr_curves[name] = (recall[:, 0].tolist()[::10], precision[:, 0].tolist()[::10])
            per_class[name] = {"instances": n_gt, "ap50": float(ap[c, 0]), "ap50_95": float(ap[c].mean())}
        present = [c for c, n in enumerate(self.names) if n in per_class]
        f1 = 2 * p_curve * r_curve / np.maximum(p_curve + r_curve, 1e-9)
        mean_f1 = f1[present].mean(axis=0) if present else np.zeros_like(grid)
        best = int(mean_f1.argmax())
        return {
            "names": list(self.names),
            "map50": float(ap[present, 0].mean()) if present else 0.0,
            "map50_95": float(ap[present].mean()) if present else 0.0,
            "f1": float(mean_f1[best]),
            "f1_threshold": float(grid[best]),
            "precision_at_f1": float(p_curve[present, best].mean()) if present else 0.0,
            "recall_at_f1": float(r_curve[present, best].mean()) if present else 0.0,
            "per_class": per_class,
            "pr_curves": pr_curves,
            "confusion": self.confusion.tolist() if self.confusion is not None else [],
        }
