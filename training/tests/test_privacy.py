"""The privacy model: classic YOLOv5 head decoding, class selection, and the export path end to end.

No test needs the shared COCO checkpoint: a tiny stand-in with random weights and the same tensor
names (yolov5nu layers 0..23 + a classic 3-anchor x 85-channel head) goes through the same code.
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from detector import Detector
from training.cli import main
from training.privacy import (
    COCO_KEEP,
    PRIVACY_NAMES,
    STRIDES,
    anchors_to_pixels,
    build_privacy_model,
    decode_level,
    head_channels,
    make_grid,
)
from training.seed import load_yolov5_state_dict
from training.tests.fakes import V61_ANCHORS_GRID

V61_ANCHORS_PX = [
    [[10, 13], [16, 30], [33, 23]],
    [[30, 61], [62, 45], [59, 119]],
    [[116, 90], [156, 198], [373, 326]],
]


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_grid_holds_column_then_row_index() -> None:
    grid = make_grid(2, 3)
    assert grid.shape == (2, 2, 3)
    assert grid[0].tolist() == [[0, 1, 2], [0, 1, 2]]
    assert grid[1].tolist() == [[0, 0, 0], [1, 1, 1]]


def test_checkpoint_anchors_are_grid_units_times_stride() -> None:
    pixels = anchors_to_pixels(torch.tensor(V61_ANCHORS_GRID), STRIDES)
    assert pixels.tolist() == V61_ANCHORS_PX
    with pytest.raises(ValueError, match="expected anchors"):
        anchors_to_pixels(torch.ones(2, 3, 2), STRIDES)


def test_zero_logits_give_cell_centres_anchor_sizes_and_quarter_scores() -> None:
    # sigmoid(0) = 0.5: xy = (1 - 0.5 + grid) * stride, wh = 1^2 * anchor, score = 0.5 * 0.5.
    anchors = torch.tensor([[10.0, 13.0], [16.0, 30.0]])
    out = decode_level(torch.zeros(1, 2 * (5 + 2), 2, 3), anchors, 8.0)
    assert out.shape == (1, 4 + 2, 2 * 2 * 3)
    # Column order: anchor, then row, then column.
    expected_cx = [4.0, 12.0, 20.0] * 2 * 2
    expected_cy = ([4.0] * 3 + [12.0] * 3) * 2
    torch.testing.assert_close(out[0, 0], torch.tensor(expected_cx))
    torch.testing.assert_close(out[0, 1], torch.tensor(expected_cy))
    torch.testing.assert_close(out[0, 2], torch.tensor([10.0] * 6 + [16.0] * 6))
    torch.testing.assert_close(out[0, 3], torch.tensor([13.0] * 6 + [30.0] * 6))
    torch.testing.assert_close(out[0, 4:], torch.full((2, 12), 0.25))


def test_hand_set_logits_decode_to_the_expected_box_and_score() -> None:
    anchors = torch.tensor([[10.0, 13.0], [30.0, 61.0]])
    raw = torch.zeros(1, 2 * (5 + 3), 4, 4)
    a, row, col, no = 1, 2, 3, 5 + 3  # anchor 1 in cell (x=3, y=2), stride 16
    raw[0, a * no + 0, row, col] = logit(0.75)  # 2 * 0.75 - 0.5 = 1.0 -> cx = (3 + 1) * 16
    raw[0, a * no + 1, row, col] = logit(0.25)  # 2 * 0.25 - 0.5 = 0.0 -> cy = (2 + 0) * 16
    raw[0, a * no + 2, row, col] = logit(0.25)  # (2 * 0.25)^2 = 0.25 -> w = 0.25 * 30
    raw[0, a * no + 3, row, col] = logit(0.75)  # (2 * 0.75)^2 = 2.25 -> h = 2.25 * 61
    raw[0, a * no + 4, row, col] = logit(0.8)  # objectness
    raw[0, a * no + 5 + 2, row, col] = logit(0.5)  # class 2 probability
    raw[0, a * no + 5 + 0, row, col] = -30.0  # class 0 probability ~ 0
    out = decode_level(raw, anchors, 16.0)
    column = out[0, :, a * 16 + row * 4 + col]
    torch.testing.assert_close(column[:4], torch.tensor([64.0, 32.0, 7.5, 137.25]))
    torch.testing.assert_close(column[4:], torch.tensor([0.0, 0.8 * 0.5, 0.8 * 0.5]), atol=1e-6, rtol=0)


def yolov5_v61_reference(raw: torch.Tensor, anchors_px: torch.Tensor, stride: float) -> torch.Tensor:
    """YOLOv5 v6.1 ``Detect.forward`` (inference branch), transcribed; returns (B, na*ny*nx, 5+nc)."""
    bs, _, ny, nx = raw.shape
    na = anchors_px.shape[0]
    x = raw.view(bs, na, -1, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
    yv, xv = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
    grid = torch.stack((xv, yv), 2).expand((1, na, ny, nx, 2)).float()
    anchor_grid = anchors_px.view((1, na, 1, 1, 2)).expand((1, na, ny, nx, 2))
    y = x.sigmoid()
    y[..., 0:2] = (y[..., 0:2] * 2 - 0.5 + grid) * stride
    y[..., 2:4] = (y[..., 2:4] * 2) ** 2 * anchor_grid
    return y.view(bs, -1, y.shape[-1])


def test_decoding_matches_the_yolov5_reference_with_obj_times_cls_scores() -> None:
    torch.manual_seed(0)
    anchors = torch.tensor(V61_ANCHORS_PX[1], dtype=torch.float32)
    raw = torch.randn(2, 3 * (5 + 4), 5, 7) * 3
    ours = decode_level(raw, anchors, 16.0)
    ref = yolov5_v61_reference(raw, anchors, 16.0)
    torch.testing.assert_close(ours[:, :4].transpose(1, 2), ref[..., :4])
    torch.testing.assert_close(ours[:, 4:].transpose(1, 2), ref[..., 4:5] * ref[..., 5:])


def test_head_channels_keep_box_objectness_and_chosen_classes_of_every_anchor() -> None:
    rows = head_channels(3, 80, COCO_KEEP)
    per_anchor = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12]
    assert rows == [a * 85 + r for a in range(3) for r in per_anchor]
    with pytest.raises(ValueError, match="out of range"):
        head_channels(3, 4, (0, 7))


def test_model_takes_every_backbone_tensor_and_the_chosen_head_rows(tiny_checkpoint: Path) -> None:
    state = load_yolov5_state_dict(tiny_checkpoint)
    model, counts = build_privacy_model(state)
    assert counts == {"backbone": len(state) - 7, "head": 7}
    ours = model.state_dict()
    for name in (k for k in ours if not k.startswith("model.24.")):
        # check_dtype: the loader gives every tensor as float, num_batches_tracked included
        torch.testing.assert_close(ours[name], state[name], check_dtype=False, msg=name)
    rows = head_channels(3, 80, COCO_KEEP)
    torch.testing.assert_close(ours["model.24.m.2.weight"], state["model.24.m.2.weight"][rows])
    torch.testing.assert_close(ours["model.24.m.0.bias"], state["model.24.m.0.bias"][rows])
    assert ours["model.24.anchors_px"].tolist() == V61_ANCHORS_PX

    del state["model.7.conv.weight"]
    with pytest.raises(ValueError, match="backbone tensors missing"):
        build_privacy_model(state)


def test_export_end_to_end_runs_in_our_detector(
    tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "privacy.onnx"
    assert main(["privacy-model", "--weights", str(tiny_checkpoint), "--out", str(out), "--imgsz", "64"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["tensors"] == {"backbone": 342, "head": 7, "checkpoint_total": 349}

    proto = onnx.load(str(out))
    assert proto.opset_import[0].version == 17
    assert [i.name for i in proto.graph.input] == ["images"]
    assert [o.name for o in proto.graph.output] == ["output0"]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["task"] == "detect" and meta["imgsz"] == "[64, 64]" and meta["stride"] == "32"
    assert ast.literal_eval(meta["names"]) == PRIVACY_NAMES
    assert "AGPL-3.0" in meta["license"] and tiny_checkpoint.name in meta["source"]

    detector = Detector.from_path(out)
    assert detector.names == PRIVACY_NAMES and detector.imgsz == 64
    image = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    head = detector.session.run(None, {"images": image})[0]
    cells = sum((64 // int(s)) ** 2 for s in STRIDES)
    assert head.shape == (1, 4 + 6, 3 * cells)

    model, _ = build_privacy_model(load_yolov5_state_dict(tiny_checkpoint))
    with torch.no_grad():
        expected = model(torch.from_numpy(image)).numpy()
    np.testing.assert_allclose(head, expected, rtol=1e-3, atol=1e-3)
    assert head[0, 4:].min() >= 0.0 and head[0, 4:].max() <= 1.0
    detector.predict(np.zeros((48, 80, 3), np.uint8), conf=0.0)  # letterbox + decode + NMS run
