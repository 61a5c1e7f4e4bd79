"""Fine-tuning the privacy model: labels, augmentation, YOLOv5's target assignment and loss, end to end."""

from __future__ import annotations

import json
import random
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import onnx
import pytest
import torch

from detector import Detector
from training.cli import main
from training.privacy import PRIVACY_NAMES, build_privacy_model
from training.privacy_finetune import (
    FinetuneOptions,
    YoloV5Loss,
    augment,
    bbox_ciou,
    find_photos,
    make_samples,
    raw_levels,
    read_labels,
    sample_negatives,
)
from training.seed import load_yolov5_state_dict


def write_labels(path: Path, labels: object) -> Path:
    path.write_text(json.dumps(labels))
    return path


def test_read_labels_gives_class_indices_and_refuses_bad_entries(tmp_path: Path) -> None:
    good = write_labels(
        tmp_path / "a.json",
        {
            "x.jpg": [
                {"class": "person", "box": [1, 2, 5, 9]},
                {"class": "vehicle", "box": [0, 0, 4, 4], "note": "car"},
            ]
        },
    )
    assert read_labels([good]) == {"x.jpg": [(0, (1.0, 2.0, 5.0, 9.0)), (1, (0.0, 0.0, 4.0, 4.0))]}
    for bad, message in (
        ({"y.jpg": [{"class": "dog", "box": [0, 0, 1, 1]}]}, "class 'dog'"),
        ({"y.jpg": [{"class": "person", "box": [5, 0, 1, 1]}]}, "x2>x1"),
        ({"y.jpg": [{"class": "person", "box": [0, 0, 1]}]}, "is not"),
        ({"y.jpg": {"class": "person"}}, "list of objects"),
        (["y.jpg"], "an object"),
    ):
        with pytest.raises(ValueError, match=message):
            read_labels([write_labels(tmp_path / "bad.json", bad)])
    with pytest.raises(ValueError, match="another file"):
        read_labels([good, good])


def test_samples_need_every_labelled_photo_and_refuse_a_labelled_negative(tmp_path: Path) -> None:
    labels = {"x.jpg": [(0, (1.0, 2.0, 5.0, 9.0))]}
    with pytest.raises(ValueError, match="not found"):
        make_samples(labels, {})
    with pytest.raises(ValueError, match="negative photos are labelled"):
        make_samples(labels, {"x.jpg": tmp_path / "x.jpg"}, [tmp_path / "other" / "x.jpg"])
    samples = make_samples(labels, {"x.jpg": tmp_path / "x.jpg"}, [tmp_path / "n.jpg"])
    assert [(s.path.name, s.boxes) for s in samples] == [("x.jpg", ((0, 1.0, 2.0, 5.0, 9.0),)), ("n.jpg", ())]
    with pytest.raises(ValueError, match="not a folder"):
        find_photos([tmp_path / "missing"])


def white_box_bounds(image: npt.NDArray[np.uint8]) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(image[:, :, 0] > 200)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@pytest.mark.parametrize("seed", range(6))
def test_augmented_boxes_follow_the_pixels_through_zoom_shift_and_mirror(seed: int) -> None:
    image = np.full((96, 128, 3), 60, np.uint8)
    image[30:70, 40:90] = 255  # the object
    boxes = np.array([[1, 40, 30, 90, 70]], np.float32)
    options = FinetuneOptions(scale=(0.9, 1.1), flip=0.5)
    out, moved = augment(image, boxes, 128, random.Random(seed), options)
    assert out.shape == (128, 128, 3) and moved.shape == (1, 5) and moved[0, 0] == 1
    x1, y1, x2, y2 = white_box_bounds(out)
    assert np.allclose(moved[0, 1:], [x1, y1, x2, y2], atol=2.0)


def test_a_box_cut_off_by_the_crop_is_clipped_or_dropped() -> None:
    image = np.full((100, 100, 3), 60, np.uint8)
    boxes = np.array([[0, 0, 0, 100, 100], [0, 0, 0, 1, 1]], np.float32)
    _, moved = augment(image, boxes, 64, random.Random(0), FinetuneOptions(scale=(1.5, 1.5), flip=0.0))
    assert len(moved) == 1 and moved[0, 1:].min() >= 0 and moved[0, 1:].max() <= 64


def test_ciou_is_one_for_the_same_box_and_falls_with_distance() -> None:
    box = torch.tensor([[10.0, 10.0, 4.0, 6.0]])
    assert torch.allclose(bbox_ciou(box, box), torch.ones(1), atol=1e-5)
    shifted = torch.tensor([[11.0, 10.0, 4.0, 6.0]])
    far = torch.tensor([[30.0, 10.0, 4.0, 6.0]])
    near_iou = 3 * 6 / (2 * 24 - 3 * 6)
    assert bbox_ciou(box, shifted).item() < near_iou  # the centre distance is penalised
    assert bbox_ciou(box, far).item() < 0 < bbox_ciou(box, shifted).item()


def test_targets_go_to_matching_anchors_at_the_cell_and_its_two_nearest_neighbours(
    tiny_checkpoint: Path,
) -> None:
    model, _ = build_privacy_model(load_yolov5_state_dict(tiny_checkpoint))
    loss = YoloV5Loss(model.model[-1])  # type: ignore[arg-type]
    levels = [torch.zeros(1, 3, n, n, 11) for n in (8, 4, 2)]  # a 64 px input
    # A 16x24 px person centred at (21, 27): P3 (stride 8) cell (2.625, 3.375): right half of x and
    # upper half of y, so besides cell (2, 3) the neighbours (3, 3) and (2, 2) take it too.
    target = torch.tensor([[0, 0, 21 / 64, 27 / 64, 16 / 64, 24 / 64]])
    p3 = loss.targets(levels, target)[0]
    b, a, gj, gi, c, tbox, _ = p3
    cells = sorted(set(zip(gi.tolist(), gj.tolist(), strict=True)))
    assert cells == [(2, 2), (2, 3), (3, 3)]
    # anchors within 4x of 2x3 cells: (1.25, 1.625), (2, 3.75), (4.125, 2.875) all are
    assert sorted(set(a.tolist())) == [0, 1, 2] and set(c.tolist()) == {0} and set(b.tolist()) == {0}
    assert torch.allclose(tbox[:, 2:], torch.tensor([2.0, 3.0]).expand(len(tbox), 2))
    assert tbox[:, :2].min() >= -0.5 and tbox[:, :2].max() <= 1.5
    # P5 (stride 32): 0.5x0.75 cells is within 4x of the smallest anchor (3.625, 2.8125)? 7.25 > 4: none
    assert loss.targets(levels, target)[2][0].numel() == 0


def test_vehicle_boxes_train_the_best_vehicle_class_and_persons_the_person_class(
    tiny_checkpoint: Path,
) -> None:
    model, _ = build_privacy_model(load_yolov5_state_dict(tiny_checkpoint))
    loss = YoloV5Loss(model.model[-1])  # type: ignore[arg-type]
    images = torch.rand(1, 3, 64, 64)
    target = torch.tensor([[0, 1, 0.5, 0.5, 0.3, 0.3]])
    levels = [level.detach().requires_grad_(True) for level in raw_levels(model, images)]
    total, _ = loss(levels, target)
    total.backward()  # type: ignore[no-untyped-call]
    grads = [level.grad for level in levels]
    assert all(g is not None for g in grads)
    class_grads = torch.cat([g[..., 5:].reshape(-1, 6) for g in grads if g is not None])
    touched = class_grads.abs().sum(0) > 0
    assert touched[0]  # the person score is trained down
    # per assigned prediction exactly one vehicle score (its largest) gets a gradient
    rows = class_grads[class_grads.abs().sum(1) > 0]
    assert ((rows[:, 1:] != 0).sum(1) == 1).all()


def road_photo(path: Path, box: tuple[int, int, int, int] | None, seed: int) -> None:
    rng = np.random.default_rng(seed)
    image = rng.integers(80, 120, (64, 64, 3), dtype=np.uint8)
    if box:
        x1, y1, x2, y2 = box
        image[y1:y2, x1:x2] = (20, 20, 200)
    cv2.imwrite(str(path), image)


def test_finetune_end_to_end_lowers_the_loss_and_writes_a_model_our_detector_runs(
    tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos, empty = tmp_path / "photos", tmp_path / "empty"
    photos.mkdir()
    empty.mkdir()
    labels = {}
    for i in range(4):
        box = (8 + 4 * i, 10, 30 + 4 * i, 40)
        road_photo(photos / f"p{i}.png", box, i)
        labels[f"p{i}.png"] = [{"class": "vehicle" if i % 2 else "person", "box": list(box)}]
    road_photo(empty / "n0.png", None, 9)
    labels_path = write_labels(tmp_path / "labels.json", labels)
    out = tmp_path / "tuned.onnx"
    argv = ["privacy-finetune", "--weights", str(tiny_checkpoint), "--labels", str(labels_path)]
    argv += ["--images", str(photos), "--negatives", str(empty), "--out", str(out), "--epochs", "6"]
    argv += ["--batch", "5", "--lr0", "0.01", "--imgsz", "64"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["photos"] == 5 and report["labelled_photos"] == 4 and report["boxes"] == 4
    losses = [row["loss"] for row in report["history"]]
    assert len(losses) == 6 and losses[-1] < 0.8 * losses[0]
    detector = Detector.from_path(out)
    assert detector.names == PRIVACY_NAMES
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert "fine-tuned on 5 photos" in meta["source"] and json.loads(meta["finetune"])["epochs"] == 6

    with pytest.raises(SystemExit) as usage:
        main([*argv, "--epochs", "0"])
    assert usage.value.code == 2
    with pytest.raises(SystemExit):
        main(["privacy-finetune", "--weights", str(tiny_checkpoint), "--labels", str(labels_path),
              "--images", str(tmp_path / "nowhere"), "--out", str(out)])  # fmt: skip


def test_negatives_are_unlabelled_training_photos_in_a_seeded_order(tmp_path: Path) -> None:
    photos = {f"f{i}.jpg": tmp_path / ("train" if i < 8 else "valid") / f"f{i}.jpg" for i in range(10)}
    chosen = sample_negatives(photos, {"f0.jpg", "f1.jpg"}, 3, seed=4)
    assert chosen == sample_negatives(photos, {"f0.jpg", "f1.jpg"}, 3, seed=4) and len(chosen) == 3
    assert all(p.parent.name == "train" and p.name not in {"f0.jpg", "f1.jpg"} for p in chosen)
    assert chosen != sample_negatives(photos, {"f0.jpg", "f1.jpg"}, 3, seed=5)


def test_cross_validation_keeps_a_street_block_and_a_photo_s_copies_in_one_fold() -> None:
    from bench.privacy_finetune import BLOCK, fold_of, street_group

    assert street_group("China_MotorBike_000041.jpg") == street_group("China_MotorBike_000079.jpg")
    assert street_group("China_MotorBike_000039.jpg") != street_group("China_MotorBike_000040.jpg")
    assert fold_of("China_MotorBike_000000.jpg", 2) != fold_of(f"China_MotorBike_{BLOCK:06d}.jpg", 2)
    a, b = "img-19_jpg.rf.0a1b.jpg", "img-19_jpg.rf.ffee.jpg"
    assert street_group(a) == street_group(b) == "roboflow/img-19" and fold_of(a, 3) == fold_of(b, 3)
    assert street_group("114_jpg.rf.007c.jpg") == "roboflow/114"
    assert {fold_of(f"img-{i}_jpg.rf.x.jpg", 2) for i in range(20)} == {0, 1}
