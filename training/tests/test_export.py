"""Export: the faster box decoding computes what ultralytics' own export computes; int8 keeps the right
layers in float; a ReLU definition builds a ReLU model (and does not leak into the next build)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from detector import Detector
from detector.errors import ModelError
from tests.fixtures import road_like
from training.export import export_fp32, nodes_kept_in_float, quantize_int8, stem_as_space_to_depth
from training.offline import configure_offline
from training.train import build_start_model, model_definition

SIZE = 96


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.fixture(scope="module")
def relu_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("relu")
    config = {"name": "t", "model": "yolov5nu.yaml", "activation": "relu"}
    return build_start_model(config, nc=4, out=tmp / "start.pt")


def test_model_definition_sets_the_activation_every_time() -> None:
    assert model_definition({"name": "t", "model": "yolov5nu.yaml", "activation": "relu"})["activation"] == (
        "nn.ReLU()"
    )
    # No key means the architecture's own SiLU, written out so that an earlier ReLU build cannot leak in.
    assert model_definition({"name": "t", "model": "yolov5nu.yaml"})["activation"] == "nn.SiLU()"
    with pytest.raises(ValueError, match="activation must be one of"):
        model_definition({"name": "t", "model": "yolov5nu.yaml", "activation": "gelu"})


def test_fast_box_decoding_matches_ultralytics_export(relu_checkpoint: Path, tmp_path: Path) -> None:
    configure_offline()
    from ultralytics import YOLO

    ours = export_fp32(relu_checkpoint, SIZE, tmp_path / "ours.onnx")
    theirs = Path(YOLO(str(relu_checkpoint)).export(format="onnx", imgsz=SIZE, simplify=True, dynamic=False))
    ops = [node.op_type for node in onnx.load(str(ours)).graph.node]
    assert "Softmax" not in ops and "Exp" in ops
    assert "Relu" in ops and ops.count("Sigmoid") == 1  # ReLU everywhere; one Sigmoid for class scores
    assert "Softmax" in [node.op_type for node in onnx.load(str(theirs)).graph.node]
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.random((1, 3, SIZE, SIZE), dtype=np.float32)
        a, b = _run(ours, x), _run(theirs, x)
        assert a.shape == b.shape == (1, 8, (SIZE // 8) ** 2 + (SIZE // 16) ** 2 + (SIZE // 32) ** 2)
        np.testing.assert_allclose(a[:, :4], b[:, :4], atol=1e-3)  # box pixels (0..96)
        np.testing.assert_allclose(a[:, 4:], b[:, 4:], atol=1e-6)  # class scores


@pytest.fixture(scope="module")
def relu_fp32(relu_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny ReLU model in fp32 and a folder of calibration images."""
    tmp = tmp_path_factory.mktemp("fp32")
    calib = tmp / "calib"
    calib.mkdir()
    for i in range(4):
        cv2.imwrite(str(calib / f"{i}.jpg"), road_like(128, 128, i))
    return export_fp32(relu_checkpoint, SIZE, tmp / "m-fp32.onnx"), calib


def test_stem_as_space_to_depth_computes_the_same(relu_fp32: tuple[Path, Path], tmp_path: Path) -> None:
    fp32, _ = relu_fp32
    model = onnx.load(str(fp32))
    assert stem_as_space_to_depth(model) == "images_blocks"
    ops = [n.op_type for n in model.graph.node]
    assert ops[:2] == ["SpaceToDepth", "Conv"]
    onnx.save(model, str(tmp_path / "s2d.onnx"))
    x = np.random.default_rng(1).random((1, 3, SIZE, SIZE), dtype=np.float32)
    a, b = _run(fp32, x), _run(tmp_path / "s2d.onnx", x)
    np.testing.assert_allclose(a[:, :4], b[:, :4], atol=1e-3)
    np.testing.assert_allclose(a[:, 4:], b[:, 4:], atol=1e-5)
    assert stem_as_space_to_depth(model) is None  # the new stem (3x3, stride 1) does not qualify again


def test_int8_takes_uint8_pixels_and_keeps_box_decoding_in_float(
    relu_fp32: tuple[Path, Path], tmp_path: Path
) -> None:
    fp32, calib = relu_fp32
    kept = nodes_kept_in_float(fp32, first_layer=False)
    graph = onnx.load(str(fp32)).graph
    assert "/model.24/dfl/Exp" in kept and graph.node[-1].name in kept
    assert not any(name.startswith("/model.0/") for name in kept)
    with_first = nodes_kept_in_float(fp32)
    assert len(with_first) == len(kept) + 2 and "/model.0/act/Relu" in with_first  # the conv and its ReLU

    int8 = quantize_int8(fp32, tmp_path / "m-int8.onnx", calib, SIZE, count=4)
    model = onnx.load(str(int8))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    # What reads the pixels (a dynamic-size graph also reads their shape, for the anchor grid):
    (first,) = [n for n in model.graph.node if "images" in n.input and n.op_type != "Shape"]
    assert first.op_type == "SpaceToDepth"
    # The uint8 blocks go straight to a DequantizeLinear with scale 1/255: pixel / 255, exactly.
    (dq,) = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == first.output[0]]
    scale = next(i for i in model.graph.initializer if i.name == dq.input[1])
    assert onnx.numpy_helper.to_array(scale) == np.float32(1 / 255)
    det, ref = Detector.from_path(int8), Detector.from_path(fp32)
    assert det.uint8_input and not ref.uint8_input
    assert det.imgsz == SIZE and det.names == ref.names  # metadata copied from the fp32 file
    # Taking uint8 pixels changes nothing: the same int8 model fed pixel / 255 gives the same output.
    float_in = quantize_int8(fp32, tmp_path / "fi-int8.onnx", calib, SIZE, count=4, uint8_pixels=False)
    assert not Detector.from_path(float_in).uint8_input
    for seed in range(3):
        x = np.random.default_rng(seed).integers(0, 256, (1, 3, SIZE, SIZE), dtype=np.uint8)
        np.testing.assert_array_equal(_run(int8, x), _run(float_in, x.astype(np.float32) / 255))

    kept_float = quantize_int8(fp32, tmp_path / "f-int8.onnx", calib, SIZE, count=4, first_layer_float=True)
    nodes = onnx.load(str(kept_float)).graph.node
    dequantized = {o for n in nodes if n.op_type == "DequantizeLinear" for o in n.output}
    stem = next(n for n in nodes if n.op_type == "Conv")
    assert stem.input[0] == "images_blocks" and stem.input[1] not in dequantized  # float image, weights
    assert not Detector.from_path(kept_float).uint8_input
    with pytest.raises(ValueError, match="calibration method"):
        quantize_int8(fp32, tmp_path / "x.onnx", calib, SIZE, count=4, method="magic")


def test_release_files_are_checked_before_they_reach_weights(
    relu_checkpoint: Path, relu_fp32: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from training import export

    _, calib = relu_fp32
    weights = tmp_path / "weights"
    weights.mkdir()
    entries = export.export_release(
        relu_checkpoint, "m", "v9", SIZE, calib, "data-x", weights_dir=weights, calib_count=4
    )
    assert sorted(p.name for p in weights.iterdir()) == ["m-v9-fp32.onnx", "m-v9-int8.onnx", "manifest.json"]
    manifest = json.loads((weights / "manifest.json").read_text())
    assert manifest["default"] == "m-v9-fp32" and [e["precision"] for e in entries] == ["fp32", "int8"]
    assert "quantization" in entries[1] and entries[1]["sha256"] == export.sha256_file(
        weights / "m-v9-int8.onnx"
    )

    def broken(path: Path, images: list[Path]) -> dict:
        raise ModelError(f"{path.name}: does not run")

    monkeypatch.setattr(export, "check_model", broken)
    before = {p.name: p.read_bytes() for p in weights.iterdir()}
    with pytest.raises(ModelError, match="does not run"):
        export.export_release(
            relu_checkpoint, "m", "v10", SIZE, calib, "data-x", weights_dir=weights, calib_count=4
        )
    assert {p.name: p.read_bytes() for p in weights.iterdir()} == before  # nothing new, no leftovers
