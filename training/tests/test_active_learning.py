"""The push-strategy comparison (bench/active_learning.py) on hand-made run rows: seed pairing, the
"beats random" rule, the verdict, and refusing strategies run with different recipes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.active_learning import compare, main, verdict

RECIPE = {"epochs": 5, "lr0": 0.001}


def run(strategy: str, size: int, seed: int, held_out: float, pothole: float = 0.1) -> dict[str, Any]:
    return {
        "size": size,
        "seed": seed,
        "strategy": strategy,
        "holdout": {"map50": held_out, "pothole_ap50": pothole},
        "base": {"map50": 0.6},
    }


def runs_of(table: dict[str, list[float]], size: int = 50) -> dict[str, list[dict[str, Any]]]:
    return {s: [run(s, size, seed, v) for seed, v in enumerate(values)] for s, values in table.items()}


def test_differences_are_paired_by_seed_and_a_winner_needs_its_worst_seed_above_random() -> None:
    runs = runs_of(
        {"random": [0.20, 0.30, 0.25], "uncertain": [0.31, 0.32, 0.33], "balanced": [0.40, 0.10, 0.40]}
    )
    rows = {r["strategy"]: r for r in compare(runs, [50], [0, 1, 2])}
    assert rows["uncertain"]["holdout_map50"]["vs_random"] == pytest.approx(
        (0.11 + 0.02 + 0.08) / 3, abs=1e-4
    )
    assert rows["uncertain"]["beats_random"] is True  # worst seed 0.31 > random's mean 0.25
    assert rows["balanced"]["beats_random"] is False  # a better mean (0.30), but one seed at 0.10
    assert "beats_random" not in rows["random"] and "vs_random" not in rows["random"]["holdout_map50"]
    assert verdict(list(rows.values())) == "uncertain"


def test_random_stays_the_verdict_unless_a_strategy_wins_at_every_budget() -> None:
    runs = runs_of({"random": [0.2, 0.2], "uncertain": [0.3, 0.3]}, size=50)
    more = runs_of({"random": [0.4, 0.4], "uncertain": [0.35, 0.45]}, size=100)
    for strategy, rows in more.items():
        runs[strategy] += rows
    rows = compare(runs, [50, 100], [0, 1])
    assert [r["beats_random"] for r in rows if r["strategy"] == "uncertain"] == [True, False]
    assert verdict(rows) == "random"
    assert [r["seeds"] for r in compare(runs, [50], [1])] == [[1], [1]]  # only the seeds asked


def write(results: Path, name: str, rows: list[dict[str, Any]], recipe: dict[str, Any]) -> None:
    (results / name).write_text(json.dumps({"recipe": recipe, "runs": [{"size": 0, "seed": None}, *rows]}))


def test_main_writes_the_comparison_and_refuses_mixed_recipes(tmp_path: Path, capsys: Any) -> None:
    runs = runs_of({"random": [0.2, 0.3], "uncertain": [0.1, 0.2]})
    write(tmp_path, "adaptation.json", runs["random"], RECIPE)
    write(tmp_path, "adaptation-uncertain.json", runs["uncertain"], RECIPE)
    argv = [
        "--results",
        str(tmp_path),
        "--plot",
        str(tmp_path / "al.png"),
        "--strategies",
        "random,uncertain",
    ]
    assert main([*argv, "--seeds", "0,1", "--sizes", "50"]) == 0
    payload = json.loads((tmp_path / "active_learning.json").read_text())
    assert payload["best"] == "random" and len(payload["comparison"]) == 2
    assert (tmp_path / "al.png").stat().st_size > 0
    assert "best: random" in capsys.readouterr().out
    write(tmp_path, "adaptation-uncertain.json", runs["uncertain"], {**RECIPE, "epochs": 10})
    with pytest.raises(SystemExit):
        main([*argv, "--seeds", "0,1"])
    assert "different recipes" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--results", str(tmp_path), "--strategies", "uncertain"])  # random is the reference
