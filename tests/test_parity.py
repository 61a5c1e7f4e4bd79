"""Our ONNX path gives the boxes ultralytics' own predict gives, for the same exported model.

Uses the shipped model (weights/manifest.json): a randomly initialised net scores every anchor
alike, and ties make any two NMS implementations disagree on order, which tests nothing.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from detector import Detector
from detector.manifest import default_model_path
from detector.postprocess import box_iou
from tests.fixtures import road_like


def test_onnx_path_matches_ultralytics_predict(tmp_path: Path) -> None:
    from training.offline import configure_offline

    configure_offline()
    from ultralytics import YOLO

    model_path = default_model_path()
    ours = Detector.from_path(model_path)
    theirs = YOLO(str(model_path), task="detect")
    compared = 0
    for i, (w, h) in enumerate([(1920, 1080), (1080, 1920), (512, 512), (800, 600)]):
        path = tmp_path / f"road_{i}.png"  # PNG: both sides decode identical pixels
        cv2.imwrite(str(path), road_like(w, h, i))
        mine = ours.predict(cv2.imread(str(path)), conf=0.01, iou=0.45)
        ref = theirs.predict(str(path), imgsz=ours.imgsz, conf=0.01, iou=0.45, verbose=False)[0].boxes
        ref_boxes, ref_conf, ref_cls = ref.xyxy.numpy(), ref.conf.numpy(), ref.cls.numpy().astype(int)
        assert len(mine) == len(ref_boxes), path.name
        order = np.argsort(-ref_conf, kind="stable")  # both sorted by confidence: pair in order
        for det, j in zip(mine, order, strict=True):
            assert det.class_id == ref_cls[j]
            assert abs(det.confidence - float(ref_conf[j])) <= 0.01
            assert box_iou(np.array(det.box, np.float32), ref_boxes[j : j + 1])[0] >= 0.99
            compared += 1
    assert compared >= 3, "the shipped model found too little in the generated images to compare"
