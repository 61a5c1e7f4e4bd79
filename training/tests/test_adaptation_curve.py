"""The learning-curve script's own logic (bench/adaptation.py), without data or training:
seeded nested subsets, run order, resume skipping, the corrections folder it builds, aggregation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from bench.adaptation import (
    aggregate,
    make_corrections,
    pending,
    plan,
    run_tag,
    select_subset,
    summary,
)
from training.adapt import check_corrections

NAMES = [f"img{i:03d}.jpg" for i in range(100)]


def test_subsets_are_seeded_nested_and_distinct_per_seed() -> None:
    small, large = select_subset(NAMES, 10, seed=3), select_subset(NAMES, 40, seed=3)
    assert len(small) == len(set(small)) == 10 and len(large) == 40
    assert set(small) <= set(large)
    assert select_subset(list(reversed(NAMES)), 10, seed=3) == small  # input order does not matter
    assert select_subset(NAMES, 10, seed=4) != small
    assert select_subset(NAMES, 100, seed=0) == sorted(NAMES)
    with pytest.raises(ValueError):
        select_subset(NAMES, 101, seed=0)


def test_plan_runs_every_size_once_per_seed_in_the_given_order() -> None:
    assert plan([200, 849, 25, 200], [0, 1]) == [(200, 0), (849, 0), (25, 0), (200, 1), (849, 1), (25, 1)]


def test_pending_skips_runs_with_a_result(tmp_path: Path) -> None:
    runs = plan([25, 50], [0, 1])
    (tmp_path / run_tag(50, 0)).mkdir()
    (tmp_path / run_tag(50, 0) / "result.json").write_text("{}")
    (tmp_path / run_tag(25, 1)).mkdir()  # started, never finished: still to do
    (tmp_path / run_tag(25, 0, "lr1e-4")).mkdir()
    (tmp_path / run_tag(25, 0, "lr1e-4") / "result.json").write_text("{}")  # another variant's
    assert pending(runs, tmp_path) == [(25, 0), (25, 1), (50, 1)]
    assert pending(runs, tmp_path, "lr1e-4") == [(50, 0), (25, 1), (50, 1)]
    assert run_tag(25, 1) == "n0025-s1" and run_tag(849, 0, "x") == "n0849-s0-x"


def _built(root: Path, n_train: int, n_val: int) -> Path:
    """A built dataset (``datasets build`` layout); every third train photo has a pothole (class 3)."""
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (8, 8)).save(root / "images" / split / f"{split}{i}.jpg")
            cls = 3 if i % 3 == 0 else 1
            (root / "labels" / split / f"{split}{i}.txt").write_text(f"{cls} 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text("names: {0: D00, 1: D10, 2: D20, 3: D40}\n")
    return root


def test_corrections_folder_is_what_adapt_reads(tmp_path: Path) -> None:
    rf = _built(tmp_path / "rf", 12, 4)
    info = make_corrections(rf, tmp_path / "c", 6, seed=0)
    assert info == {"photos": 6, "train_images": 6}
    counts = check_corrections(tmp_path / "c")
    assert counts == {"train_images": 6, "train_boxes": 6, "valid_images": 4, "valid_boxes": 4}
    chosen = sorted(p.name for p in (tmp_path / "c" / "train" / "images").iterdir())
    assert chosen == select_subset([f"train{i}.jpg" for i in range(12)], 6, 0)
    # rebuilt from scratch each time, and potholes can be repeated
    info = make_corrections(rf, tmp_path / "c", 12, seed=0, oversample_pothole=3)
    assert info == {"photos": 12, "train_images": 12 + 2 * 4}
    assert check_corrections(tmp_path / "c")["train_images"] == 20


def _row(size: int, seed: int, held: float, pothole: float, base: float, cpu: float) -> dict[str, object]:
    return {
        "tag": run_tag(size, seed),
        "size": size,
        "seed": seed,
        "holdout": {"map50": held, "pothole_ap50": pothole},
        "base": {"map50": base},
        "cpu_minutes": cpu,
        "wall_minutes": cpu / 2,
    }


def test_aggregate_gives_mean_min_max_per_size() -> None:
    rows = [
        _row(200, 0, 0.30, 0.1, 0.60, 8.0),
        _row(200, 1, 0.40, 0.3, 0.70, 10.0),
        _row(0, 0, 0.05, 0.0, 0.77, 0),
    ]
    agg = aggregate(rows)
    assert [a["size"] for a in agg] == [0, 200]
    a = agg[1]
    assert a["runs"] == 2 and a["seeds"] == [0, 1]
    assert a["holdout_map50"] == {"mean": 0.35, "min": 0.3, "max": 0.4}
    assert a["holdout_pothole_ap50"] == {"mean": 0.2, "min": 0.1, "max": 0.3}
    assert a["base_map50"]["mean"] == pytest.approx(0.65)
    assert a["cpu_minutes"] == {"mean": 9.0, "min": 8.0, "max": 10.0}
    text = summary(agg)
    assert "0.350 (0.300-0.400)" in text and "0 (v2)" in text
    json.dumps(agg)  # written as JSON


def test_markdown_table_has_one_row_per_size() -> None:
    from bench.adaptation import markdown

    text = markdown(aggregate([_row(0, 0, 0.05, 0.0, 0.77, 0), _row(25, 0, 0.1, 0.0, 0.7, 2.0)]))
    lines = text.splitlines()
    assert lines[0].startswith("| corrections | runs | held-out mAP50") and lines[1].startswith("|---|")
    assert (
        lines[2].startswith("| 0 (v2) | 1 | 0.050") and lines[3] == "| 25 | 1 | 0.100 | 0.000 | 0.700 | 2.0 |"
    )
    assert markdown([]) == "(no runs yet)"


DETECTIONS = {  # pool photo -> the model's (class, confidence) proposals
    "a.jpg": [("D00", 0.9), ("D20", 0.3)],
    "b.jpg": [("D00", 0.26)],
    "c.jpg": [("D40", 0.07)],
    "d.jpg": [],
    "e.jpg": [("D10", 0.5), ("D00", 0.12)],
    "f.jpg": [],
    "g.jpg": [("D00", 0.6)],
    "h.jpg": [("D40", 0.45), ("D00", 0.3)],
}


def test_uncertain_follows_the_service_rule_least_certain_stored_detection_first() -> None:
    from bench.adaptation import choose

    names = sorted(DETECTIONS)
    # Stored detections (>= 0.25) only: b 0.26, a 0.3, h 0.3, e 0.5, g 0.6; c, d, f never.
    assert choose("uncertain", names, 3, 0, DETECTIONS) == ["a.jpg", "b.jpg", "h.jpg"]
    assert choose("uncertain", names, 3, 5, DETECTIONS) == [
        "a.jpg",
        "b.jpg",
        "h.jpg",
    ]  # the seed: training only
    with pytest.raises(ValueError, match="only 5 pool photos"):
        choose("uncertain", names, 6, 0, DETECTIONS)
    with pytest.raises(ValueError, match="detections"):
        choose("uncertain", names, 2, 0, None)


def test_balanced_takes_half_class_by_class_rarest_first_and_explores_the_rest() -> None:
    from bench.adaptation import choose

    names = sorted(DETECTIONS)
    # Half of 4 by class: D10 (1 frame: e), then D20 (1 frame: a); the other 2 seeded among the rest.
    for seed in range(5):
        chosen = choose("balanced", names, 4, seed, DETECTIONS)
        assert len(chosen) == len(set(chosen)) == 4 and {"a.jpg", "e.jpg"} <= set(chosen)
    explored = {tuple(choose("balanced", names, 4, seed, DETECTIONS)) for seed in range(10)}
    assert len(explored) > 1  # the exploring half depends on the seed
    assert any({"d.jpg", "f.jpg"} & set(c) for c in explored)  # photos with no proposal can be chosen
    # 6 of 8: D10 e, D20 a, D40 h (0.45 nearer 0.5 than c's 0.07), then 3 explored.
    assert {"a.jpg", "e.jpg", "h.jpg"} <= set(choose("balanced", names, 6, 0, DETECTIONS))
    assert choose("random", names, 4, 1) == choose("random", names, 4, 1, DETECTIONS)
    with pytest.raises(ValueError, match="unknown strategy"):
        choose("clever", names, 4, 0, DETECTIONS)
