"""Local adaptation end to end on a tiny model and generated photos: merge, fine-tune, evaluate on the
held-out photos, promote only when the held-out score rises.

The outcomes are certain by construction, not by luck: the current default model is a hand-built ONNX
whose output is fixed. Against one that detects nothing (held-out mAP50 exactly 0) the fine-tuned model,
started from a checkpoint that already finds the damage, scores higher and is promoted; against an oracle
that outputs exactly the true box (a perfect detector: the highest mAP50 the metric gives, 0.995 with its
101-point interpolation) nothing can score higher, and the new model is listed but not promoted.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from detector import Detector
from detector.manifest import load_manifest, sha256_file
from detector.tests.conftest import build_constant_head_model, head_with
from training.adapt import AdaptError, AdaptOptions, adapt, check_corrections

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ["D00", "D10", "D20", "D40"]
SIZE = 64
BOX = (16, 20, 48, 44)  # x1, y1, x2, y2 of the pothole in every photo
LINE = "3 0.500000 0.500000 0.500000 0.375000"

pytestmark = pytest.mark.slow


def make_corrections(root: Path, n_train: int = 16, n_valid: int = 4, seed: int = 0) -> Path:
    """A corrections folder as `labelstudio pull` writes it: a dark pothole on grey asphalt."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("valid", n_valid)):
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir(parents=True)
        for i in range(n):
            pixels = rng.normal(150, 10, (SIZE, SIZE, 3)).clip(0, 255).astype(np.uint8)
            x1, y1, x2, y2 = BOX
            pixels[y1:y2, x1:x2] = 30
            Image.fromarray(pixels).save(root / split / "images" / f"{split}{i:02d}.jpg")
            (root / split / "labels" / f"{split}{i:02d}.txt").write_text(LINE + "\n")
    (root / "data.yaml").write_text(yaml.safe_dump({"names": CLASSES, "nc": 4}))
    return root


def weights_with_default(folder: Path, head: np.ndarray) -> Path:
    """A weights folder whose default model is a constant-output ONNX."""
    folder.mkdir(parents=True)
    model = build_constant_head_model(folder / "city-v0-fp32.onnx", head, SIZE)
    manifest = {
        "default": "city-v0-fp32",
        "models": [
            {
                "name": "city-v0-fp32",
                "version": "v0",
                "precision": "fp32",
                "file": model.name,
                "sha256": sha256_file(model),
                "classes": CLASSES,
                "imgsz": SIZE,
                "data_version": "generated",
                "metrics": {},
            }
        ],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Generated corrections and a tiny checkpoint that already finds their potholes (~40 s on 2 cores)."""
    from datasets.build import build_dataset
    from training.evaluate import evaluate
    from training.export import export_fp32
    from training.train import train

    tmp = tmp_path_factory.mktemp("adapt")
    corrections = make_corrections(tmp / "corrections")
    # The starting checkpoint learns from other photos of the same kind (not the held-out ones).
    build_dataset([make_corrections(tmp / "other", 16, 4, seed=1)], tmp / "start-data", progress=False)
    import torch

    torch.manual_seed(0)  # the start model's initial weights, whatever ran before in this process
    # From scratch, the tiny model finds the pothole after 40-60 epochs (measured: 0.0 at 30, 0.995 at 60
    # for 4 seeds); 80 leaves a margin.
    run = train(
        tmp / "start-data",
        ROOT / "training/configs/tiny-test.yaml",
        tmp / "runs",
        epochs=80,
        val=False,
        warmup_epochs=0,
        optimizer="SGD",
        lr0=0.05,
        mosaic=0.0,
    )
    checkpoint = run / "weights" / "last.pt"
    build_dataset([corrections], tmp / "check", progress=False)
    score = evaluate(export_fp32(checkpoint, SIZE, tmp / "start.onnx"), tmp / "check", "val", progress=False)
    assert score["map50"] > 0.5, (
        f"precondition: the tiny start model must find the potholes: {score['map50']}"
    )
    return {"corrections": corrections, "checkpoint": checkpoint, "tmp": tmp}


def test_promoted_when_the_held_out_score_rises(trained: dict[str, Path]) -> None:
    tmp = trained["tmp"] / "rises"
    weights = weights_with_default(tmp / "weights", np.zeros((1, 8, 84), np.float32))  # detects nothing
    report = adapt(
        trained["corrections"],
        checkpoint=trained["checkpoint"],
        options=AdaptOptions(epochs=1, lr0=1e-5, batch=4, progress=False),
        weights_dir=weights,
        runs_dir=tmp / "runs",
        version="v0-city1",
    )
    assert report["old"]["map50"] == 0.0 and report["new"]["map50"] > 0.5
    assert report["promoted"] is True
    manifest = load_manifest(weights)
    assert manifest["default"] == "city-v0-city1-fp32"
    listed = {m["name"]: m for m in manifest["models"]}
    assert set(listed) == {"city-v0-fp32", "city-v0-city1-fp32"}  # the old one stays listed
    new = listed["city-v0-city1-fp32"]
    assert new["metrics"]["holdout"]["map50"] == report["new"]["map50"]
    assert new["metrics"]["holdout_base_model"]["map50"] == 0.0
    assert new["base_model"] == "city-v0-fp32" and (weights / new["checkpoint"]).is_file()
    assert sha256_file(weights / new["file"]) == new["sha256"]
    assert Detector.from_path(weights / new["file"]).names == dict(enumerate(CLASSES))
    run = Path(report["run"])
    assert json.loads((run / "report.json").read_text())["promoted"] is True
    # The held-out photos were never trained on, nor used for validation during training.
    used = [p.name for p in (run / "data" / "images").rglob("*.jpg")]
    assert used and all("train" in name and "valid" not in name for name in used)
    assert report["training"]["train_images"] == 16 * 3  # every corrected photo has a pothole: x3 by default
    assert report["training"]["pothole_repeats"] == 16 * 2


def test_not_promoted_when_it_does_not_rise(
    trained: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from training.cli import main

    tmp = trained["tmp"] / "oracle"
    x1, y1, x2, y2 = BOX
    oracle = head_with([((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, 3, 0.99)], n=84)
    weights = weights_with_default(tmp / "weights", oracle)  # a perfect detector on the held-out photos
    code = main(
        [
            "adapt",
            "--corrections",
            str(trained["corrections"]),
            "--from",
            str(trained["checkpoint"]),
            "--epochs",
            "1",
            "--batch",
            "4",
            "--lr0",
            "1e-5",
            "--weights-dir",
            str(weights),
            "--runs",
            str(tmp / "runs"),
            "--version",
            "v0-city2",
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out.strip().splitlines()[-1])
    assert report["old"]["map50"] == pytest.approx(0.995) and report["promoted"] is False
    assert report["new"]["map50"] <= report["old"]["map50"]
    assert "not promoted" in captured.err
    manifest = load_manifest(weights)
    assert manifest["default"] == "city-v0-fp32"  # unchanged
    new = {m["name"]: m for m in manifest["models"]}["city-v0-city2-fp32"]  # but listed, with its metrics
    assert new["metrics"]["holdout"]["map50"] == report["new"]["map50"]


def test_refuses_what_cannot_be_compared(tmp_path: Path) -> None:
    corrections = make_corrections(tmp_path / "c", n_train=2, n_valid=1)
    (corrections / "valid" / "labels" / "valid00.txt").write_text("")
    with pytest.raises(AdaptError, match="no damage"):
        check_corrections(corrections)
    (corrections / "data.yaml").write_text(yaml.safe_dump({"names": ["crack", "pothole"]}))
    with pytest.raises(AdaptError, match="differ"):
        check_corrections(corrections)
    good = make_corrections(tmp_path / "g", n_train=2, n_valid=1)
    weights = weights_with_default(tmp_path / "w", np.zeros((1, 8, 84), np.float32))
    with pytest.raises(AdaptError, match="no PyTorch checkpoint"):
        adapt(good, weights_dir=weights, runs_dir=tmp_path / "runs")


def test_corrected_photos_with_a_pothole_are_repeated_base_photos_are_not(tmp_path: Path) -> None:
    from training.adapt import POTHOLE_CLASS, oversample

    images, labels = tmp_path / "images" / "train", tmp_path / "labels" / "train"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for stem, cls in (("city_a", POTHOLE_CLASS), ("city_b", 0), ("base0_c", POTHOLE_CLASS)):
        (images / f"{stem}.jpg").write_bytes(b"jpg")
        (labels / f"{stem}.txt").write_text(f"{cls} 0.5 0.5 0.1 0.1\n")
    assert oversample(images, labels, POTHOLE_CLASS, 3, skip_prefix="base") == 2
    assert sorted(p.name for p in images.iterdir()) == [
        "base0_c.jpg", "city_a.jpg", "city_a_rep1.jpg", "city_a_rep2.jpg", "city_b.jpg"
    ]  # fmt: skip
    assert (labels / "city_a_rep2.txt").read_text() == (labels / "city_a.txt").read_text()
    assert oversample(images, labels, POTHOLE_CLASS, 3, skip_prefix="base") == 0  # not repeated again
