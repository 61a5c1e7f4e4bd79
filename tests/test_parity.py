"""Our ONNX path gives the boxes ultralytics' own predict gives, for the same exported model.

Uses the shipped model (weights/manifest.json), its fp32 file (the int8 file takes uint8 pixels,
which ultralytics does not feed): a randomly initialised net scores every anchor alike, and ties make
any two NMS implementations disagree on order, which tests nothing. (The int8 file's accuracy is
measured on real validation images by ``python -m training release``; generated images are too far
from real roads to compare int8 with fp32 on.)
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from detector import Detector
from detector.manifest import WEIGHTS_DIR, load_manifest, model_entry
from detector.postprocess import box_iou
from tests.fixtures import road_like


def _shipped(precision: str) -> Path:
    version = model_entry()["version"]
    entry = next(
        m for m in load_manifest()["models"] if m["version"] == version and m["precision"] == precision
    )
    return WEIGHTS_DIR / entry["file"]


def test_onnx_path_matches_ultralytics_predict(tmp_path: Path) -> None:
    from training.offline import configure_offline

    configure_offline()
    from ultralytics import YOLO

    model_path = _shipped("fp32")
    ours = Detector.from_path(model_path)
    theirs = YOLO(str(model_path), task="detect")
    compared = 0
    for i, (w, h) in enumerate([(1920, 1080), (1080, 1920), (512, 512), (800, 600)]):
        path = tmp_path / f"road_{i}.png"  # PNG: both sides decode identical pixels
        cv2.imwrite(str(path), road_like(w, h, i))
        mine = ours.predict(cv2.imread(str(path)), conf=0.01, iou=0.45)
        ref = theirs.predict(str(path), imgsz=ours.imgsz, conf=0.01, iou=0.45, verbose=False)[0].boxes
        ref_boxes, ref_conf, ref_cls = ref.xyxy.numpy(), ref.conf.numpy(), ref.cls.numpy().astype(int)
        # ultralytics keeps boxes that lie wholly in the letterbox padding (zero area once clipped to
        # the image); ours drops them.
        real = (ref_boxes[:, 2] > ref_boxes[:, 0]) & (ref_boxes[:, 3] > ref_boxes[:, 1])
        ref_boxes, ref_conf, ref_cls = ref_boxes[real], ref_conf[real], ref_cls[real]
        assert len(mine) == len(ref_boxes), path.name
        # Pair each of ours with an unused reference box of the same class and IoU >= 0.99 (order
        # can differ where confidences tie), then compare confidences.
        unused = set(range(len(ref_boxes)))
        for det in mine:
            ious = box_iou(np.array(det.box, np.float32), ref_boxes)
            candidates = [j for j in unused if ref_cls[j] == det.class_id and ious[j] >= 0.99]
            assert candidates, f"{path.name}: no ultralytics box matches {det}"
            j = max(candidates, key=lambda k: (-abs(float(ref_conf[k]) - det.confidence), ious[k]))
            assert abs(det.confidence - float(ref_conf[j])) <= 0.01
            unused.discard(j)
            compared += 1
    assert compared >= 3, "the shipped model found too little in the generated images to compare"
