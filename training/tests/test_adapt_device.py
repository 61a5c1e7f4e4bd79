"""`python -m training adapt --device` reaches ultralytics' train (no model is trained: fakes stand in)."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

import training.adapt
from training.adapt import AdaptOptions, fine_tune
from training.cli import main


def _fake_adapt(seen: dict[str, Any]) -> Any:
    def fake(
        corrections: Path, base_data: list[Path], checkpoint: Path | None, options: AdaptOptions, **kw: Any
    ) -> dict[str, Any]:
        seen["options"] = options
        return {
            "promoted": False,
            "holdout": {"images": 1},
            "old": {"name": "old", "map50": 0.0},
            "new": {"name": "new", "map50": 0.0},
        }

    return fake


@pytest.mark.parametrize(
    ("argv", "device"), [([], "cpu"), (["--device", "0"], "0"), (["--device", "cuda:1"], "cuda:1")]
)
def test_cli_passes_device(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, argv: list[str], device: str
) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(training.adapt, "adapt", _fake_adapt(seen))
    assert main(["adapt", "--corrections", str(tmp_path), "--epochs", "1", *argv]) == 0
    assert seen["options"].device == device


def test_fine_tune_gives_device_to_ultralytics(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []

    class FakeYOLO:
        def __init__(self, path: str) -> None:
            self.path = path

        def train(self, **kwargs: Any) -> None:
            calls.append(kwargs)
            weights = Path(kwargs["project"]) / kwargs["name"] / "weights"
            weights.mkdir(parents=True)
            (weights / "last.pt").write_bytes(b"")

    monkeypatch.setitem(sys.modules, "ultralytics", types.SimpleNamespace(YOLO=FakeYOLO))
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "cfg"))
    last = fine_tune(
        tmp_path / "start.pt",
        tmp_path / "data",
        tmp_path / "runs" / "t",
        64,
        AdaptOptions(epochs=1, device="0"),
    )
    assert last == tmp_path / "runs" / "t" / "weights" / "last.pt"
    assert calls[0]["device"] == "0"
    assert calls[0]["amp"] is False  # ultralytics' AMP check on a GPU would download a model
    assert AdaptOptions().device == "cpu"
