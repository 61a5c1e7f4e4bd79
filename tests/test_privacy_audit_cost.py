"""The privacy audit's cost side and views (bench/privacy_audit.py): the data sets' own damage boxes of an
audit frame, read from both layouts the audit frames come from, how much of them the blur destroys, and
the boxes a mirrored pass, the edge rule and tiles give."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.privacy_audit import damage_boxes, damage_cover, damage_summary, view_boxes
from detector import Detector
from detector.tests.conftest import build_constant_head_model, head_with
from service.domain.anonymize import PRIVACY_CLASSES

VOC = """<annotation><size><width>200</width><height>100</height></size>
<object><name>D40</name><bndbox><xmin>20</xmin><ymin>50</ymin><xmax>60</xmax><ymax>90</ymax></bndbox></object>
<object><name>Repair</name><bndbox><xmin>100</xmin><ymin>10</ymin><xmax>150</xmax><ymax>40</ymax></bndbox></object>
</annotation>"""


def test_rdd_voc_boxes_in_pixels_without_repairs(tmp_path: Path) -> None:
    images, xmls = tmp_path / "train" / "images", tmp_path / "train" / "annotations" / "xmls"
    images.mkdir(parents=True)
    xmls.mkdir(parents=True)
    Image.new("RGB", (200, 100)).save(images / "China_MotorBike_000001.jpg")
    (xmls / "China_MotorBike_000001.xml").write_text(VOC)
    assert damage_boxes(images / "China_MotorBike_000001.jpg") == [(20, 50, 60, 90)]


def test_yolo_export_boxes_and_frames_without_labels(tmp_path: Path) -> None:
    root = tmp_path / "roboflow"
    (root / "valid" / "images").mkdir(parents=True)
    (root / "valid" / "labels").mkdir(parents=True)
    (root / "data.yaml").write_text(
        "names: ['Retak-Buaya', 'Retak-Memanjang', 'Retak-Melintang', 'Lubang']\n"
    )
    for name in ("a", "b", "c"):
        Image.new("RGB", (100, 50)).save(root / "valid" / "images" / f"{name}.jpg")
    (root / "valid" / "labels" / "a.txt").write_text("3 0.5 0.5 0.2 0.4\n")  # a pothole, centred
    (root / "valid" / "labels" / "b.txt").write_text("")  # corrected: no damage
    assert damage_boxes(root / "valid" / "images" / "a.jpg") == [(40, 15, 60, 35)]
    assert damage_boxes(root / "valid" / "images" / "b.jpg") == []
    assert damage_boxes(root / "valid" / "images" / "c.jpg") is None  # unknown: not counted


def test_cover_and_summary_count_a_box_hidden_from_half_destroyed() -> None:
    model = np.zeros((100, 100), bool)
    band = np.zeros_like(model)
    model[0:10, 0:100] = True  # a person box along the top
    band[0:30] = True  # the band over the top 30 rows
    covers = [damage_cover(box, model, band) for box in [(0, 0, 10, 20), (0, 20, 10, 40), (0, 60, 10, 80)]]
    assert covers[0] == pytest.approx((0.5, 1.0, 1.0))
    assert covers[1] == pytest.approx((0.0, 0.5, 0.5))
    assert covers[2] == (0.0, 0.0, 0.0)
    summary = damage_summary(covers, frames=3)
    assert (summary["boxes"], summary["hidden_model"], summary["hidden_band"], summary["hidden_all"]) == (
        3,
        1,
        2,
        2,
    )
    assert summary["mean_destroyed_all"] == pytest.approx(0.5)
    assert damage_summary([], frames=0)["mean_destroyed_model"] is None


def test_views_mirror_back_the_flipped_pass_and_grow_edge_boxes_inward(tmp_path: Path) -> None:
    names = dict(enumerate(PRIVACY_CLASSES))
    person = PRIVACY_CLASSES.index("person")
    # One person left of centre, one touching the left border; a 64 px model on a 128 px image: x2.
    head = head_with([(20, 32, 8, 16, person, 0.9), (4, 32, 8, 16, person, 0.8)], nc=len(names))
    detector = Detector.from_path(build_constant_head_model(tmp_path / "m.onnx", head, 64, names=names))
    image = np.zeros((128, 128, 3), np.uint8)
    base = sorted(view_boxes(detector, image, "base", 0.5, 0.0))
    assert base == [(0, 48, 16, 80), (32, 48, 48, 80)]
    flipped = sorted(view_boxes(detector, image, "flip", 0.5, 0.0))
    assert flipped == sorted([*base, (112, 48, 128, 80), (80, 48, 96, 80)])  # mirrored back
    edge = sorted(view_boxes(detector, image, "edge", 0.5, 0.0))
    assert edge == [(0, 48, 24, 80), (32, 48, 48, 80)]  # only the cut one grows, inward by half
    # 2x2 tiles of 77 px (60 % of 128) at offsets 0 and 51, each seen at the model's 64 px: the two
    # constant detections of every tile, scaled by 77/64 and shifted back by the tile's offset, plus base.
    tiles = sorted(view_boxes(detector, image, "tiles", 0.5, 0.0))
    in_first_tile = [(0, 28, 10, 49), (19, 28, 29, 49)]
    shifted = [
        (x1 + dx, y1 + dy, x2 + dx, y2 + dy)
        for dx in (0, 51)
        for dy in (0, 51)
        for x1, y1, x2, y2 in in_first_tile
    ]
    assert tiles == sorted([*base, *shifted])
    with pytest.raises(ValueError, match="unknown view"):
        view_boxes(detector, image, "zoom", 0.5, 0.0)
