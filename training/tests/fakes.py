"""A tiny random-weight stand-in for the classic YOLOv5n v6.1 checkpoint (same tensor names).

No test needs the shared COCO checkpoint: yolov5nu layers 0..23 + a classic 3-anchor x 85-channel head
go through the same code as the real one.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from training.privacy import yolov5nu_layers

# What YOLOv5 v6.1 stores in model.24.anchors for its P5 models: the pixel anchors / stride.
V61_ANCHORS_GRID = [
    [[1.25, 1.625], [2.0, 3.75], [4.125, 2.875]],
    [[1.875, 3.8125], [3.875, 2.8125], [3.6875, 7.4375]],
    [[3.625, 2.8125], [4.875, 6.1875], [11.65625, 10.1875]],
]


class _FakeDetect(nn.Module):
    """What the checkpoint's ``model.24`` holds: three 1x1 convs and ``anchors`` in grid units."""

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        self.m = nn.ModuleList(nn.Conv2d(c, 3 * 85, 1) for c in channels)
        self.register_buffer("anchors", torch.tensor(V61_ANCHORS_GRID))


class _FakeYolov5(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.model = nn.ModuleList([*yolov5nu_layers(), _FakeDetect([64, 128, 256])])


def write_tiny_checkpoint(path: Path) -> Path:
    """A random-weight stand-in for the classic checkpoint, pickled (fp16) as YOLOv5 saves it."""
    torch.manual_seed(1)
    model = _FakeYolov5()
    for name, tensor in model.state_dict().items():
        if name.endswith(("running_mean", "running_var")):  # non-trivial BN statistics
            tensor.copy_(torch.rand_like(tensor) * 0.5 + (0.75 if name.endswith("var") else -0.25))
    torch.save({"model": model.half(), "epoch": -1}, path)
    return path
