from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from datasets import SourceError
from datasets.cli import main
from datasets.pack import pack_dataset


def make_built(root: Path, sizes: dict[str, tuple[int, int]]) -> Path:
    """A built dataset: data.yaml, images/{train,val}, labels/{train,val}; ``sizes``: stem -> (w, h)."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
    for i, (stem, (w, h)) in enumerate(sizes.items()):
        split = "val" if i == 0 else "train"
        image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        cv2.imwrite(str(root / "images" / split / f"{stem}.png"), image)
        (root / "labels" / split / f"{stem}.txt").write_text(f"{i % 4} 0.5 0.5 0.25 0.125\n")
    meta = {"path": str(root), "train": "images/train", "val": "images/val", "names": {0: "D00", 1: "D10"}}
    (root / "data.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return root


def test_pack_resizes_to_the_training_size_and_keeps_labels(tmp_path: Path) -> None:
    src = make_built(tmp_path / "src", {"a": (640, 480), "b": (200, 100), "c": (480, 960)})
    stats = pack_dataset(src, tmp_path / "out", max_side=416, quality=80)
    out = tmp_path / "out"
    assert (stats.images, stats.resized) == (3, 2)
    assert stats.bytes_after < stats.bytes_before
    shapes = {p.stem: cv2.imread(str(p)).shape[:2] for p in out.glob("images/*/*.jpg")}
    assert shapes == {"a": (312, 416), "b": (100, 200), "c": (416, 208)}  # never enlarged
    for split, stem in (("val", "a"), ("train", "b"), ("train", "c")):
        label = f"labels/{split}/{stem}.txt"
        assert (out / label).read_text() == (src / label).read_text()
    meta = yaml.safe_load((out / "data.yaml").read_text())
    assert meta["names"] == {0: "D00", 1: "D10"} and meta["path"] == str(out.resolve())
    record = json.loads((out / "packed.json").read_text())
    assert record["images"] == 3 and record["max_side"] == 416 and record["quality"] == 80


def test_pack_refuses_what_it_cannot_pack_and_leaves_nothing_half_done(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not a built dataset"):
        pack_dataset(tmp_path, tmp_path / "out")
    src = make_built(tmp_path / "src", {"a": (64, 64), "b": (64, 64)})
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    with pytest.raises(SourceError, match="not empty"):
        pack_dataset(src, busy)
    assert (busy / "keep.txt").read_text() == "x"
    (src / "images" / "train" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(SourceError, match=r"broken\.jpg: not a readable image"):
        pack_dataset(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (src / "data.yaml").write_text(yaml.safe_dump({"train": "../elsewhere", "names": ["D00"]}))
    with pytest.raises(SourceError, match="not a folder inside"):
        pack_dataset(src, tmp_path / "out2")


def test_pack_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_built(tmp_path / "src", {"a": (500, 500)})
    assert main(["pack", str(src), "--out", str(tmp_path / "out"), "--quality", "70"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 1
    assert main(["pack", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 1
    assert "no data.yaml" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["pack", str(src), "--out", str(tmp_path / "o"), "--quality", "0"])
    assert usage.value.code == 2
