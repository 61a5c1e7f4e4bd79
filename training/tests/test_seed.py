"""The restricted unpickler: tensors come through, pickled code never runs."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from training.seed import load_yolov5_state_dict, transfer


class Sneaky:
    """Unpickling this with the standard unpickler would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


class Conv(torch.nn.Module):
    def __init__(self, c1: int, c2: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(c1, c2, 3, bias=False)
        self.bn = torch.nn.BatchNorm2d(c2)


class Model(torch.nn.Module):
    """Named like YOLOv5's ``Model``: a Sequential ``model`` of Conv/BN blocks and a head."""

    def __init__(self, head_out: int = 255) -> None:
        super().__init__()
        self.model = torch.nn.Sequential(Conv(3, 16), Conv(16, 32), torch.nn.Conv2d(32, head_out, 1))


def yolov5_like() -> torch.nn.Module:
    return Model().half()


def test_tensors_load_and_code_does_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "yolov5.pt"
    model = yolov5_like()
    torch.save({"model": model, "epoch": -1, "payload": Sneaky(marker)}, ckpt)
    tensors = load_yolov5_state_dict(ckpt)
    assert not marker.exists(), "the checkpoint's pickled code ran"
    assert tensors["model.0.conv.weight"].shape == (16, 3, 3, 3)
    assert tensors["model.1.bn.running_mean"].dtype == torch.float32
    torch.testing.assert_close(tensors["model.1.conv.weight"], model.model[1].conv.weight.float())
    # The control: the standard unpickler does run it, so the check above means something.
    torch.load(ckpt, weights_only=False)
    assert marker.exists()


def test_transfer_copies_matching_names_and_shapes_only(tmp_path: Path) -> None:
    ckpt = tmp_path / "yolov5.pt"
    torch.save({"model": yolov5_like()}, ckpt)
    source = load_yolov5_state_dict(ckpt)

    target = Model(head_out=9)  # a different head: must start fresh
    head_before = target.model[2].weight.clone()
    copied, total = transfer(source, target)
    assert total == len(target.state_dict())
    assert copied == total - 2  # everything but the head's weight and bias
    torch.testing.assert_close(target.model[0].conv.weight, source["model.0.conv.weight"])
    torch.testing.assert_close(target.model[2].weight, head_before)
