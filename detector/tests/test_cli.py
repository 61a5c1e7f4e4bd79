from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "detector", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_predict_prints_one_json_line_per_image(tmp_path: Path, constant_model: Callable[..., Path]) -> None:
    model = constant_model([(32, 32, 20, 10, 3, 0.9)])
    images = tmp_path / "imgs"
    (images / "sub").mkdir(parents=True)
    cv2.imwrite(str(images / "a.jpg"), np.full((64, 128, 3), 90, np.uint8))
    cv2.imwrite(str(images / "sub" / "b.png"), np.full((50, 50, 3), 90, np.uint8))
    (images / "notes.txt").write_text("ignored: not an image suffix")
    (images / "broken.jpeg").write_bytes(b"\xff\xd8\xff garbage")
    result = _run("predict", str(images), "--weights", str(model), "--conf", "0.5")
    assert result.returncode == 1, result.stderr  # one image failed
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["image"]).name for r in lines] == ["a.jpg", "broken.jpeg", "b.png"]
    ok = lines[0]
    assert set(ok) == {"image", "width", "height", "detections"}
    assert (ok["width"], ok["height"]) == (128, 64)
    assert ok["detections"] == [
        {"class_id": 3, "class_name": "D40", "confidence": 0.9, "box": [44.0, 22.0, 84.0, 42.0]}
    ]
    assert set(lines[1]) == {"image", "error"}
    assert "broken.jpeg" in result.stderr


def test_all_good_images_exit_zero(tmp_path: Path, constant_model: Callable[..., Path]) -> None:
    model = constant_model([])
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((32, 32, 3), np.uint8))
    result = _run("predict", str(tmp_path / "a.jpg"), "--weights", str(model))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["detections"] == []


def test_usage_errors_exit_two(tmp_path: Path, constant_model: Callable[..., Path]) -> None:
    assert _run("predict").returncode == 2
    assert (
        _run("predict", str(tmp_path / "missing.jpg"), "--weights", str(constant_model([]))).returncode == 2
    )
    assert _run("predict", str(tmp_path), "--weights", str(tmp_path / "none.onnx")).returncode == 2
    assert _run("predict", str(tmp_path), "--weights", str(constant_model([])), "--conf", "3").returncode == 2
