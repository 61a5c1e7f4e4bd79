"""Export: the faster box decoding computes what ultralytics' own export computes; int8 keeps the right
layers in float; a ReLU definition builds a ReLU model (and does not leak into the next build)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from detector import Detector
from tests.fixtures import road_like
from training.export import export_fp32, nodes_kept_in_float, quantize_int8
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


def test_int8_keeps_first_layer_and_box_decoding_in_float(relu_checkpoint: Path, tmp_path: Path) -> None:
    fp32 = export_fp32(relu_checkpoint, SIZE, tmp_path / "m-fp32.onnx")
    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(4):
        cv2.imwrite(str(calib / f"{i}.jpg"), road_like(128, 128, i))
    kept = nodes_kept_in_float(fp32)
    graph = onnx.load(str(fp32)).graph
    first_conv = next(n for n in graph.node if n.op_type == "Conv")
    assert first_conv.name in kept and any(name.startswith("/model.0/act/") for name in kept)
    assert "/model.24/dfl/Exp" in kept and graph.node[-1].name in kept
    assert len(nodes_kept_in_float(fp32, first_layer=False)) == len(kept) - 2  # conv + its ReLU

    int8 = quantize_int8(fp32, tmp_path / "m-int8.onnx", calib, SIZE, count=4)
    nodes = onnx.load(str(int8)).graph.node
    # The first Conv still reads the float image with float weights (no DequantizeLinear feeds them).
    # (Its bias may be shared with other layers in an untrained model, and dequantized for them.)
    dequantized = {o for n in nodes if n.op_type == "DequantizeLinear" for o in n.output}
    first, second = [n for n in nodes if n.op_type == "Conv"][:2]
    assert first.input[0] == "images" and first.input[1] not in dequantized
    assert {second.input[0], second.input[1]} <= dequantized  # ...and the next one is int8
    det = Detector.from_path(int8)
    assert det.imgsz == SIZE and len(det.names) == 4  # metadata copied from the fp32 file
    with pytest.raises(ValueError, match="calibration method"):
        quantize_int8(fp32, tmp_path / "x.onnx", calib, SIZE, count=4, method="magic")
