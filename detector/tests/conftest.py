"""Fixtures: hand-built ONNX graphs with a known head, and generated images."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

NAMES = {0: "D00", 1: "D10", 2: "D20", 3: "D40"}


def build_constant_head_model(
    path: Path,
    head: np.ndarray,
    imgsz: int,
    names: dict[int, str] | None = None,
    task: str = "detect",
    dynamic: bool = False,
) -> Path:
    """An ONNX model whose output is ``head`` (shape (1, 4+nc, N)) whatever the input.

    ``output = head + 0 * mean(images)`` keeps the input in the graph, as a real model does.
    ``dynamic``: the input's height and width are free (as the privacy model's export), ``imgsz`` is
    then only the metadata's default size; the head's boxes stay in input pixels whatever the size.
    """
    names = NAMES if names is None else names
    const = numpy_helper.from_array(head.astype(np.float32), "head")
    zero = numpy_helper.from_array(np.zeros((), np.float32), "zero")
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["head", "nothing"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "constant_head",
        [
            helper.make_tensor_value_info(
                "images", TensorProto.FLOAT, [1, 3, *(["h", "w"] if dynamic else [imgsz, imgsz])]
            )
        ],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(head.shape))],
        initializer=[const, zero],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in {
        "names": str(names),
        "imgsz": str([imgsz, imgsz]),
        "task": task,
        "stride": "32",
    }.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def head_with(
    boxes: list[tuple[float, float, float, float, int, float]], n: int = 64, nc: int = 4
) -> np.ndarray:
    """A head with the given (cx, cy, w, h, class, score) anchors and near-zero scores elsewhere."""
    head = np.zeros((1, 4 + nc, n), np.float32)
    head[0, :4, :] = 10.0  # harmless boxes, scores 0.001
    head[0, 4:, :] = 0.001
    for i, (cx, cy, w, h, cls, score) in enumerate(boxes):
        head[0, :4, i] = (cx, cy, w, h)
        head[0, 4 + cls, i] = score
    return head


@pytest.fixture
def constant_model(tmp_path: Path) -> Callable[..., Path]:
    def make(
        boxes: list[tuple[float, float, float, float, int, float]], imgsz: int = 64, **kw: object
    ) -> Path:
        return build_constant_head_model(tmp_path / "model.onnx", head_with(boxes), imgsz, **kw)  # type: ignore[arg-type]

    return make
