"""The int8 privacy model: each level's in-graph decoding stays in float, calibration photos show people or
vehicles and never an excluded (audit) frame, and `python -m training privacy-int8` builds a file the
detector runs, byte for byte the same twice. Real models: the shipped fp32 privacy model, sample photos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from detector import Detector
from detector.manifest import WEIGHTS_DIR, sha256_file
from training.cli import main
from training.export import nodes_kept_in_float
from training.privacy import street_photos

FP32 = WEIGHTS_DIR / "privacy-persons-vehicles.onnx"
SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "ultralytics"


def two_level_head(path: Path) -> Path:
    """images -> stem Conv -> (level 0: Conv -> Sigmoid) and (Conv -> level 1: Conv -> Sigmoid) -> Concat.

    Level 0 decodes before level 1's convolution in node order, as the privacy model's classic head does.
    """
    w = numpy_helper.from_array(np.ones((2, 2, 1, 1), np.float32), "w")
    w3 = numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "w3")
    nodes = [
        helper.make_node("Conv", ["images", "w3"], ["stem"], name="stem/Conv"),
        helper.make_node("Conv", ["stem", "w"], ["l0"], name="level0/Conv"),
        helper.make_node("Sigmoid", ["l0"], ["s0"], name="level0/Sigmoid"),
        helper.make_node("Conv", ["stem", "w"], ["mid"], name="neck/Conv"),
        helper.make_node("Relu", ["mid"], ["mid_act"], name="neck/Relu"),
        helper.make_node("Conv", ["mid_act", "w"], ["l1"], name="level1/Conv"),
        helper.make_node("Sigmoid", ["l1"], ["s1"], name="level1/Sigmoid"),
        helper.make_node("Concat", ["s0", "s1"], ["out"], axis=1, name="head/Concat"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 4, 4])],
        [w, w3],
    )
    onnx.save(helper.make_model(graph), str(path))
    return path


def test_per_level_head_keeps_every_level_decoding_in_float(tmp_path: Path) -> None:
    model = two_level_head(tmp_path / "m.onnx")
    assert set(nodes_kept_in_float(model, first_layer=False)) == {"level1/Sigmoid", "head/Concat"}
    kept = set(nodes_kept_in_float(model, first_layer=False, per_level_head=True))
    assert kept == {"level0/Sigmoid", "level1/Sigmoid", "head/Concat"}  # the Relu feeds a Conv: int8


def write_photo(path: Path, source: Path | None) -> Path:
    if source is None:
        import cv2

        cv2.imwrite(str(path), np.full((480, 640, 3), 120, np.uint8))  # a grey frame: nobody there
    else:
        shutil.copyfile(source, path)
    return path


@pytest.fixture
def street(tmp_path: Path) -> Path:
    folder = tmp_path / "street"
    (folder / "sub").mkdir(parents=True)
    write_photo(folder / "bus.jpg", SAMPLES / "bus.jpg")
    write_photo(folder / "sub" / "zidane.jpg", SAMPLES / "zidane.jpg")
    write_photo(folder / "grey.png", None)
    return folder


def test_calibration_photos_show_people_and_skip_excluded_frames(street: Path) -> None:
    assert street_photos([street], set(), 2, FP32) == [street / "bus.jpg", street / "sub" / "zidane.jpg"]
    assert street_photos([street], {"zidane.jpg"}, 1, FP32) == [street / "bus.jpg"]
    with pytest.raises(ValueError, match="only 1 of 2 photos"):
        street_photos([street], {"zidane.jpg"}, 2, FP32)


def test_cli_builds_a_reproducible_int8_privacy_model(
    street: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = tmp_path / "audit.json"
    labels.write_text(json.dumps({"zidane.jpg": []}))
    outs = []
    for name in ("a.onnx", "b.onnx"):
        argv = ["privacy-int8", "--fp32", str(FP32), "--out", str(tmp_path / name), "--calib", str(street)]
        assert main([*argv, "--exclude", str(labels), "--calib-count", "1"]) == 0
        outs.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    assert outs[0]["calibration"] == {"method": "minmax", "chunk": None, "photos": ["bus.jpg"]}
    assert sha256_file(tmp_path / "a.onnx") == sha256_file(tmp_path / "b.onnx") == outs[0]["sha256"]

    det = Detector.from_path(tmp_path / "a.onnx")
    assert det.uint8_input and det.names == Detector.from_path(FP32).names and det.imgsz == 640
    graph = onnx.load(str(tmp_path / "a.onnx")).graph
    producers = {out: node.op_type for node in graph.node for out in node.output}
    head_sigmoids = [n for n in graph.node if n.op_type == "Sigmoid" and n.name.startswith("/model.24/")]
    assert len(head_sigmoids) == 3  # one per level, all decoding in float: none reads a dequantized tensor
    assert all(producers[n.input[0]] != "DequantizeLinear" for n in head_sigmoids)
    assert sum(n.op_type == "QLinearConv" or n.op_type == "DequantizeLinear" for n in graph.node) > 50


def test_calibrating_in_chunks_gives_the_same_min_max_model(
    street: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["privacy-int8", "--fp32", str(FP32), "--calib", str(street), "--calib-count", "2"]
    assert main([*base, "--out", str(tmp_path / "whole.onnx")]) == 0
    assert main([*base, "--out", str(tmp_path / "chunks.onnx"), "--calib-chunk", "1"]) == 0
    assert sha256_file(tmp_path / "whole.onnx") == sha256_file(tmp_path / "chunks.onnx")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main([*base, "--out", str(tmp_path / "x.onnx"), "--calib-chunk", "3"])
    assert exit_.value.code == 2 and "--calib-chunk must divide" in capsys.readouterr().err
