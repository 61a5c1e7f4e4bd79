"""Which photos should a city correct? The push strategies compared on the same pool and budgets.

    python bench/active_learning.py [--sizes 50,100,200] [--seeds 0,1,2] [--markdown]

Reads what ``bench/adaptation.py`` wrote for each strategy (``bench/results/adaptation.json`` for
``random``, ``adaptation-uncertain.json`` and ``adaptation-balanced.json`` for the others, all with the
same recipe), keeps the budgets and seeds asked, and compares them: per strategy and budget the held-out
mAP50 and pothole AP50 (mean, min-max over seeds), retention on the base domain, and the difference to
``random`` paired by seed (a seed fixes the training order and base sample in every strategy; in
``random`` also the photos). A strategy "beats random" at a budget only when its worst seed is above
random's mean. The comparison goes to ``bench/results/active_learning.json`` and a plot to
``weights/model-card/active-learning.png``.

Making the runs (hours on 2 CPU cores; resumable):

    python bench/adaptation.py --sizes 50,100,200 --seeds 0,1,2
    python bench/adaptation.py --sizes 50,100,200 --seeds 0,1,2 --strategy uncertain --variant uncertain
    python bench/adaptation.py --sizes 50,100,200 --seeds 0,1,2 --strategy balanced --variant balanced
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS, machine, spread, table

ROOT = Path(__file__).resolve().parent.parent
STRATEGY_FILES = {
    "random": "adaptation.json",
    "uncertain": "adaptation-uncertain.json",
    "balanced": "adaptation-balanced.json",
}
MEASURES = {
    "holdout_map50": lambda r: r["holdout"]["map50"],
    "holdout_pothole_ap50": lambda r: r["holdout"]["pothole_ap50"],
    "base_map50": lambda r: r["base"]["map50"],
}


def load_runs(results: Path, strategy: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The adapted runs of one strategy and the recipe they share."""
    path = results / STRATEGY_FILES[strategy]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: run bench/adaptation.py for strategy {strategy} first")
    payload = json.loads(path.read_text())
    runs = [r for r in payload["runs"] if r["size"] > 0 and r.get("strategy", "random") == strategy]
    return runs, payload["recipe"]


def compare(
    runs: dict[str, list[dict[str, Any]]], sizes: list[int], seeds: list[int]
) -> list[dict[str, Any]]:
    """Per strategy and budget: each measure over the seeds, and the seed-paired difference to random."""
    index = {(s, r["size"], r["seed"]): r for s, rows in runs.items() for r in rows}
    out = []
    for size in sizes:
        for strategy in runs:
            group = [index[(strategy, size, seed)] for seed in seeds if (strategy, size, seed) in index]
            if not group:
                continue
            entry: dict[str, Any] = {"strategy": strategy, "size": size, "seeds": [r["seed"] for r in group]}
            for name, get in MEASURES.items():
                entry[name] = spread([float(get(r)) for r in group])
                paired = [
                    float(get(r)) - float(get(index[("random", size, r["seed"])]))
                    for r in group
                    if ("random", size, r["seed"]) in index
                ]
                if strategy != "random" and paired:
                    entry[name]["vs_random"] = round(statistics.fmean(paired), 4)
            reference = [index[("random", size, seed)] for seed in seeds if ("random", size, seed) in index]
            if strategy != "random" and reference:
                random_mean = statistics.fmean(float(r["holdout"]["map50"]) for r in reference)
                entry["beats_random"] = entry["holdout_map50"]["min"] > random_mean
            out.append(entry)
    return out


def verdict(rows: list[dict[str, Any]]) -> str:
    """The strategy that beats random at every budget, else ``random``."""
    strategies = {r["strategy"] for r in rows} - {"random"}
    winners = [
        s for s in sorted(strategies) if all(r.get("beats_random") for r in rows if r["strategy"] == s)
    ]
    return winners[0] if winners else "random"


def _cell(m: dict[str, float], seeds: int) -> str:
    text = f"{m['mean']:.3f}" if seeds == 1 else f"{m['mean']:.3f} ({m['min']:.3f}-{m['max']:.3f})"
    if "vs_random" in m:
        text += f" [{m['vs_random']:+.3f}]"
    return text


def summary_rows(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [
        {
            "photos": str(r["size"]),
            "strategy": r["strategy"],
            "seeds": str(len(r["seeds"])),
            "held-out mAP50": _cell(r["holdout_map50"], len(r["seeds"])),
            "pothole AP50": _cell(r["holdout_pothole_ap50"], len(r["seeds"])),
            "RDD val mAP50": _cell(r["base_map50"], len(r["seeds"])),
            "beats random": {True: "yes", False: "no"}.get(r.get("beats_random"), "-"),  # type: ignore[arg-type]
        }
        for r in rows
    ]


def markdown(rows: list[dict[str, Any]]) -> str:
    cells = summary_rows(rows)
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
    return "\n".join(lines + ["| " + " | ".join(c.values()) + " |" for c in cells])


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Held-out mAP50 and pothole AP50 per budget, one line per strategy (bars: min-max over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4), dpi=100)
    colors = {"random": "tab:gray", "uncertain": "tab:red", "balanced": "tab:purple"}
    for ax, key, label in (
        (axes[0], "holdout_map50", "held-out mAP50 (Roboflow valid)"),
        (axes[1], "holdout_pothole_ap50", "held-out pothole AP50"),
    ):
        for i, strategy in enumerate(sorted({r["strategy"] for r in rows})):
            points = sorted((r for r in rows if r["strategy"] == strategy), key=lambda r: r["size"])
            x = [r["size"] * (0.96 + 0.04 * i) for r in points]
            mean = [r[key]["mean"] for r in points]
            low = [r[key]["mean"] - r[key]["min"] for r in points]
            high = [r[key]["max"] - r[key]["mean"] for r in points]
            ax.errorbar(x, mean, yerr=[low, high], label=strategy, marker="o", capsize=3,
                        color=colors.get(strategy))  # fmt: skip
        ax.set_xscale("log")
        ax.minorticks_off()
        sizes = sorted({r["size"] for r in rows})
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.set(xlabel="corrected photos (log scale)", title=label, ylim=(0, None))
        ax.legend(fontsize=8)
    fig.suptitle("Which photos to correct: push strategies on the Roboflow pool (849)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def parse_ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=parse_ints, default=[50, 100, 200])
    p.add_argument("--seeds", type=parse_ints, default=[0, 1, 2])
    p.add_argument("--strategies", default=",".join(STRATEGY_FILES), help="comma-separated")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--plot", type=Path, default=ROOT / "weights" / "model-card" / "active-learning.png")
    p.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    args = p.parse_args(argv)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if "random" not in strategies:
        p.error("--strategies: random is the reference and must be among them")
    unknown = set(strategies) - set(STRATEGY_FILES)
    if unknown:
        p.error(f"--strategies: unknown {', '.join(sorted(unknown))} (known: {', '.join(STRATEGY_FILES)})")
    runs: dict[str, list[dict[str, Any]]] = {}
    recipes: dict[str, Any] = {}
    for strategy in strategies:
        try:
            runs[strategy], recipes[strategy] = load_runs(args.results, strategy)
        except FileNotFoundError as exc:
            p.error(str(exc))
    if len({json.dumps(r, sort_keys=True) for r in recipes.values()}) > 1:
        p.error(f"the strategies' runs used different recipes, not comparable: {recipes}")
    rows = compare(runs, args.sizes, args.seeds)
    best = verdict(rows)
    payload = {
        "machine": machine(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "what": "v2 adapted on N photos of the Roboflow train pool (849) chosen by each push strategy; "
        "held out: Roboflow valid (226); base domain: RDD China_MotorBike 001300-001581 (282)",
        "recipe": recipes["random"],
        "rule": "beats random at a budget: its lowest seed above random's mean held-out mAP50",
        "best": best,
        "comparison": rows,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "active_learning.json").write_text(json.dumps(payload, indent=2) + "\n")
    plot(rows, args.plot)
    cells = summary_rows(rows)
    print(table(cells, list(cells[0])))  # type: ignore[arg-type]
    print(f"best: {best}  ([+x]: mean difference to random, paired by seed)")
    if args.markdown:
        print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
