"""How many photos must a city correct? The adaptation learning curve, unattended and resumable.

    python bench/adaptation.py [--rf data/rf] [--base data/rdd-cm] [--sizes 200,849,25,100,400,50]
        [--seeds 0,1] [--epochs 5] [--base-limit 200] [--device cpu] [--variant NAME]

Stand-in for a new city: the Roboflow road-crack set (never in v2's training), built with
``python -m datasets build --out data/rf ../shared/data/roboflow-road-crack``. For each corrections size
and seed a corrections folder as ``python -m service labelstudio pull`` writes it is made of a seeded
random subset of its ``train/`` photos (nested: a seed's 50 photos contain its 25), with all its ``valid/``
photos as the held-out part, never trained on. Each run fine-tunes the shipped v2 checkpoint with
``training.adapt``'s own steps (merge with base data, fine-tune, export, evaluate through our ONNX path),
in a scratch folder: nothing in ``weights/`` is read-write. Measured per run: held-out mAP50 and pothole
(D40) AP50, retention on the base domain (RDD validation block, ``--val-start 1300``), CPU minutes.

Resume: every finished run writes ``<out>/<tag>/result.json``; a restarted script skips those, continues a
run whose training stopped half-way from its last epoch (ultralytics' ``resume``) and redoes the rest.
After every run the numbers so far go to ``bench/results/adaptation[-VARIANT].json`` (per run, and per
size: mean, min, max) and the plot to ``weights/model-card/adaptation-curve[-VARIANT].png``.
Run it in the background, niced: ``nohup nice -n 19 .venv/bin/python bench/adaptation.py > LOG 2>&1 &``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS, machine, spread, table
from datasets.classes import CANONICAL_CLASSES

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SIZES = (200, 849, 25, 100, 400, 50)  # run order: the most telling points first
POTHOLE = "D40"
log = logging.getLogger("adaptation")


@dataclass(frozen=True)
class Recipe:
    """What one adaptation run does besides its data (the options of ``python -m training adapt``)."""

    epochs: int = 5
    base_limit: int = 200
    batch: int = 8
    lr0: float = 0.001
    freeze: int | None = None
    imgsz: int = 416
    oversample_pothole: int = 1  # each corrected photo with a pothole box appears this many times


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})


def select_subset(names: Sequence[str], size: int, seed: int) -> list[str]:
    """``size`` of ``names``, chosen by ``seed``; nested: a seed's smaller subset lies inside its larger one."""
    if size > len(names):
        raise ValueError(f"asked for {size} photos of {len(names)}")
    ordered = sorted(names)
    order = np.random.default_rng(seed).permutation(len(ordered))
    return sorted(ordered[i] for i in order[:size])


STRATEGIES = ("random", "uncertain", "balanced")
STORE_CONF = 0.25  # the service keeps detections from this confidence on (ROADWATCH_DETECT_CONF)
PROPOSAL_CONF = 0.05  # ``balanced`` also looks at the model's weaker proposals


def select_uncertain(detections: dict[str, list[tuple[str, float]]], size: int) -> list[str]:
    """``labelstudio push --strategy uncertain``: frames with a stored detection, least certain one first.

    As the service's query: the lowest confidence among a frame's detections at or above ``STORE_CONF``
    orders the frames; frames without such a detection are never chosen (ties: by name)."""
    least = {
        name: min(c for _, c in dets if c >= STORE_CONF)
        for name, dets in detections.items()
        if any(c >= STORE_CONF for _, c in dets)
    }
    return sorted(sorted(least, key=lambda n: (least[n], n))[:size])


def select_balanced(detections: dict[str, list[tuple[str, float]]], size: int, seed: int) -> list[str]:
    """Half the budget class by class, half exploration.

    First half: round-robin over the classes the model proposes (at or above ``PROPOSAL_CONF``), rarest
    class first; per class the frame whose proposal of that class is nearest 0.5 (least decided). Second
    half: a seeded random choice among the frames left, so the photos where the model sees nothing (its
    blind spots on new roads) get their share."""
    best: dict[str, dict[str, float]] = {}
    for name, dets in detections.items():
        for cls, conf in dets:
            if conf >= PROPOSAL_CONF:
                margin = abs(conf - 0.5)
                best.setdefault(cls, {})
                best[cls][name] = min(margin, best[cls].get(name, 1.0))
    queues = {cls: sorted(frames, key=lambda n: (frames[n], n)) for cls, frames in best.items()}
    order = sorted(queues, key=lambda cls: (len(queues[cls]), cls))
    chosen: list[str] = []
    taken: set[str] = set()
    while len(chosen) < size // 2 and any(queues.values()):
        for cls in order:
            queue = queues[cls]
            while queue and queue[0] in taken:
                queue.pop(0)
            if queue and len(chosen) < size // 2:
                taken.add(queue[0])
                chosen.append(queue.pop(0))
    rest = sorted(set(detections) - taken)
    pick = np.random.default_rng(seed).permutation(len(rest))[: size - len(chosen)]
    return sorted(chosen + [rest[i] for i in pick])


def choose(
    strategy: str, names: Sequence[str], size: int, seed: int,
    detections: dict[str, list[tuple[str, float]]] | None = None,
) -> list[str]:  # fmt: skip
    """The photos a strategy sends for correction from the pool ``names``."""
    if strategy == "random":
        return select_subset(names, size, seed)
    if detections is None or set(detections) != set(names):
        raise ValueError(f"{strategy}: needs the model's detections on every pool photo")
    if size > len(names):
        raise ValueError(f"asked for {size} photos of {len(names)}")
    if strategy == "uncertain":
        chosen = select_uncertain(detections, size)
        if len(chosen) < size:
            raise ValueError(f"uncertain: only {len(chosen)} pool photos have a detection, {size} asked")
        return chosen
    if strategy == "balanced":
        return select_balanced(detections, size, seed)
    raise ValueError(f"unknown strategy {strategy!r} (one of {', '.join(STRATEGIES)})")


def pool_detections(rf: Path, cache: Path, threads: int = 2) -> dict[str, list[tuple[str, float]]]:
    """The shipped default model's detections (class, confidence) at ``PROPOSAL_CONF`` on every pool photo."""
    if cache.is_file():
        return {k: [(c, float(x)) for c, x in v] for k, v in json.loads(cache.read_text()).items()}
    from detector.manifest import default_model_path
    from detector.model import Detector
    from detector.preprocess import read_image

    detector = Detector.from_path(default_model_path(), threads=threads)
    out = {
        p.name: [
            (d.class_name, round(d.confidence, 4)) for d in detector.predict(read_image(p), PROPOSAL_CONF)
        ]
        for p in image_files(rf / "images" / "train")
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(out) + "\n")
    return out


def run_tag(size: int, seed: int, variant: str = "") -> str:
    return f"n{size:04d}-s{seed}" + (f"-{variant}" if variant else "")


def plan(sizes: Iterable[int], seeds: Iterable[int]) -> list[tuple[int, int]]:
    """(size, seed) in run order: every size once with the first seed, then again with the next, ..."""
    sizes = list(dict.fromkeys(sizes))
    return [(size, seed) for seed in dict.fromkeys(seeds) for size in sizes]


def pending(runs: list[tuple[int, int]], out: Path, variant: str = "") -> list[tuple[int, int]]:
    """The runs without a result file (a restarted script skips the others)."""
    return [(n, s) for n, s in runs if not (out / run_tag(n, s, variant) / "result.json").is_file()]


def make_corrections(
    rf: Path,
    out: Path,
    size: int,
    seed: int,
    oversample_pothole: int = 1,
    chosen: Sequence[str] | None = None,
) -> dict[str, int]:
    """A corrections folder (``labelstudio pull`` layout) of ``size`` of ``rf``'s train photos + all val ones.

    The photos: ``chosen`` (a strategy's choice), else a seeded random subset (``select_subset``).
    Photos and labels are symlinks into the built dataset ``rf``; ``valid/`` is its whole val split.
    """
    from training.adapt import POTHOLE_CLASS, oversample

    if out.exists():
        shutil.rmtree(out)
    pool = {p.name: p for p in image_files(rf / "images" / "train")}
    chosen = sorted(chosen) if chosen is not None else select_subset(list(pool), size, seed)
    if len(chosen) != size or not set(chosen) <= set(pool):
        raise ValueError(f"chosen: {len(chosen)} photos, not {size} of the pool")
    (out / "train" / "images").mkdir(parents=True)
    (out / "train" / "labels").mkdir(parents=True)
    for name in chosen:
        image = pool[name]
        label = rf / "labels" / "train" / f"{image.stem}.txt"
        os.symlink(image.resolve(), out / "train" / "images" / image.name)
        target = out / "train" / "labels" / f"{image.stem}.txt"
        if label.is_file():
            os.symlink(label.resolve(), target)
        else:
            target.write_text("")
    copies = len(chosen) + (
        oversample(out / "train" / "images", out / "train" / "labels", POTHOLE_CLASS, oversample_pothole)
        if oversample_pothole > 1
        else 0
    )
    (out / "valid").mkdir()
    os.symlink((rf / "images" / "val").resolve(), out / "valid" / "images")
    os.symlink((rf / "labels" / "val").resolve(), out / "valid" / "labels")
    (out / "data.yaml").write_text(
        yaml.safe_dump({"names": list(CANONICAL_CLASSES), "nc": len(CANONICAL_CLASSES)})
    )
    return {"photos": len(chosen), "train_images": copies}


def cpu_seconds() -> float:
    usage = [resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def brief(metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        "map50": round(metrics["map50"], 4),
        "map50_95": round(metrics["map50_95"], 4),
        "pothole_ap50": round(metrics["per_class"][POTHOLE]["ap50"], 4),
        "ap50": {k: round(v["ap50"], 4) for k, v in metrics["per_class"].items()},
        "images": metrics["images"],
    }


def train_or_resume(checkpoint: Path, data: Path, run_dir: Path, imgsz: int, options: Any) -> Path:
    """``training.adapt.fine_tune``, or ultralytics' resume when an earlier attempt stopped half-way."""
    from training.adapt import fine_tune
    from training.offline import configure_offline

    last = run_dir / "weights" / "last.pt"
    if last.is_file():
        configure_offline()
        from ultralytics import YOLO  # type: ignore[attr-defined]

        try:
            log.info("resuming %s", last)
            YOLO(str(last.resolve())).train(resume=True, device=options.device, workers=options.workers)
            return last
        except Exception as exc:  # a checkpoint that cannot resume: train afresh
            log.warning("cannot resume %s (%s): training afresh", last, exc)
        shutil.rmtree(run_dir)
    return fine_tune(checkpoint, data, run_dir, imgsz, options)


def base_row(args: argparse.Namespace, holdout: Path) -> dict[str, Any]:
    """The shipped model before adaptation, measured the same way (cached like a run)."""
    from training.evaluate import evaluate

    path = args.out / "n0000-base" / "result.json"
    if path.is_file():
        return dict(json.loads(path.read_text()))
    onnx = ROOT / "weights" / "roadwatch-yolov5nu-v2-fp32.onnx"
    row = {
        "tag": "n0000-base",
        "size": 0,
        "seed": None,
        "model": onnx.name,
        "holdout": brief(evaluate(onnx, holdout, "val", threads=args.threads, progress=False)),
        "base": brief(evaluate(onnx, args.base, "val", threads=args.threads, progress=False)),
        "cpu_minutes": 0.0,
        "wall_minutes": 0.0,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(row, indent=2) + "\n")
    return row


def one_run(args: argparse.Namespace, recipe: Recipe, size: int, seed: int, holdout: Path) -> dict[str, Any]:
    from training.adapt import AdaptOptions, merge_training_data
    from training.evaluate import evaluate
    from training.export import export_fp32

    tag = run_tag(size, seed, args.variant)
    run = args.out / tag
    started = {"cpu": cpu_seconds(), "wall": time.time()}
    progress_file = run / "progress.json"  # CPU and wall seconds spent by earlier, interrupted attempts
    earlier = json.loads(progress_file.read_text()) if progress_file.is_file() else {"cpu": 0.0, "wall": 0.0}
    options = AdaptOptions(
        epochs=recipe.epochs,
        imgsz=recipe.imgsz,
        batch=recipe.batch,
        lr0=recipe.lr0,
        freeze=recipe.freeze,
        base_limit=recipe.base_limit,
        workers=args.workers,
        seed=seed,
        progress=False,
        device=args.device,
    )

    def spent() -> dict[str, float]:
        return {
            "cpu": earlier["cpu"] + cpu_seconds() - started["cpu"],
            "wall": earlier["wall"] + time.time() - started["wall"],
        }

    merged = run / "merged.json"
    if not (merged.is_file() and (run / "train" / "weights" / "last.pt").is_file()):
        run.mkdir(parents=True, exist_ok=True)
        names = [p.name for p in image_files(args.rf / "images" / "train")]
        detections = (
            None if args.strategy == "random" else pool_detections(args.rf, args.out / "pool-detections.json")
        )
        chosen = choose(args.strategy, names, size, seed, detections)
        counts = make_corrections(args.rf, run / "corrections", size, seed, recipe.oversample_pothole, chosen)
        (run / "chosen.json").write_text(json.dumps({"strategy": args.strategy, "photos": chosen}) + "\n")
        data = merge_training_data(run / "corrections", [args.base], run / "data", recipe.base_limit, seed)
        merged.write_text(json.dumps({"corrections": counts, "data": data}, indent=2) + "\n")
    info = json.loads(merged.read_text())
    trained_marker = run / "trained.json"
    if not trained_marker.is_file():
        log.info("%s: fine-tuning on %d training images", tag, info["data"]["train_images"])
        progress_file.write_text(json.dumps(spent()) + "\n")
        last = train_or_resume(args.checkpoint, run / "data", run / "train", recipe.imgsz, options)
        shutil.copyfile(last, run / "adapted.pt")
        trained_marker.write_text(json.dumps({"train_seconds": spent()}) + "\n")
    progress_file.write_text(json.dumps(spent()) + "\n")
    train_cost = spent()
    onnx = export_fp32(run / "adapted.pt", recipe.imgsz, run / "adapted-fp32.onnx")
    holdout_metrics = brief(evaluate(onnx, holdout, "val", threads=args.threads, progress=False))
    base_metrics = brief(evaluate(onnx, args.base, "val", threads=args.threads, progress=False))
    total = spent()
    row = {
        "tag": tag,
        "size": size,
        "seed": seed,
        "variant": args.variant,
        "strategy": args.strategy,
        "recipe": asdict(recipe),
        "device": args.device,
        "corrections": info["corrections"],
        "train_images": info["data"]["train_images"],
        "holdout": holdout_metrics,
        "base": base_metrics,
        "cpu_minutes": round(total["cpu"] / 60, 2),
        "train_cpu_minutes": round(train_cost["cpu"] / 60, 2),
        "wall_minutes": round(total["wall"] / 60, 2),
    }
    (run / "result.json").write_text(json.dumps(row, indent=2) + "\n")
    # Keep the small files, drop what is big and can be rebuilt (the JSON names the run's recipe).
    for big in ("data", "data-views", "corrections"):
        shutil.rmtree(run / big, ignore_errors=True)
    return row


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per corrections size: mean, min and max of each measure over the seeds."""
    measures: dict[str, Callable[[dict[str, Any]], Any]] = {
        "holdout_map50": lambda r: r["holdout"]["map50"],
        "holdout_pothole_ap50": lambda r: r["holdout"]["pothole_ap50"],
        "base_map50": lambda r: r["base"]["map50"],
        "cpu_minutes": lambda r: r["cpu_minutes"],
        "wall_minutes": lambda r: r["wall_minutes"],
    }
    out = []
    for size in sorted({r["size"] for r in rows}):
        group = [r for r in rows if r["size"] == size]
        entry: dict[str, Any] = {"size": size, "runs": len(group), "seeds": [r["seed"] for r in group]}
        for name, get in measures.items():
            entry[name] = spread([float(get(r)) for r in group])
        out.append(entry)
    return out


def _cell(a: dict[str, Any], key: str, digits: int = 3) -> str:
    """Mean, and the min-max range over seeds when there are several."""
    m = a[key]
    if a["runs"] == 1:
        return f"{m['mean']:.{digits}f}"
    return f"{m['mean']:.{digits}f} ({m['min']:.{digits}f}-{m['max']:.{digits}f})"


def summary_rows(aggregated: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [
        {
            "corrections": str(a["size"]) if a["size"] else "0 (v2)",
            "runs": str(a["runs"]),
            "held-out mAP50": _cell(a, "holdout_map50"),
            "pothole AP50": _cell(a, "holdout_pothole_ap50"),
            "RDD val mAP50": _cell(a, "base_map50"),
            "CPU min": _cell(a, "cpu_minutes", 1),
        }
        for a in aggregated
    ]


def summary(aggregated: list[dict[str, Any]]) -> str:
    rows = summary_rows(aggregated)
    return table(rows, list(rows[0])) if rows else "(no runs yet)"


def markdown(aggregated: list[dict[str, Any]]) -> str:
    """The summary as a Markdown table (for the model card)."""
    rows = summary_rows(aggregated)
    if not rows:
        return "(no runs yet)"
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(row.values()) + " |" for row in rows]
    return "\n".join(lines)


def plot(
    aggregated: list[dict[str, Any]],
    path: Path,
    title: str,
    others: dict[str, list[dict[str, Any]]] | None = None,
) -> None:
    """The curve (mean, min-max bars); ``others``: recipe variants' aggregates, drawn as hollow markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    adapted = [a for a in aggregated if a["size"] > 0]
    base = next((a for a in aggregated if a["size"] == 0), None)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    series = [
        ("holdout_map50", "held-out mAP50 (Roboflow valid, 226 photos)", "tab:blue", "o"),
        ("holdout_pothole_ap50", "held-out pothole AP50", "tab:orange", "s"),
        ("base_map50", "base domain mAP50 (RDD val block)", "tab:green", "^"),
    ]
    sizes = [a["size"] for a in adapted]
    for key, label, color, marker in series:
        if adapted:
            mean = np.array([a[key]["mean"] for a in adapted])
            low = mean - np.array([a[key]["min"] for a in adapted])
            high = np.array([a[key]["max"] for a in adapted]) - mean
            ax.errorbar(sizes, mean, yerr=[low, high], label=label, color=color, marker=marker, capsize=3)
        if base:
            ax.axhline(base[key]["mean"], color=color, linestyle=":", linewidth=1)
        for i, (variant, rows) in enumerate(sorted((others or {}).items())):
            points = [a for a in rows if a["size"] > 0]
            ax.plot(
                [a["size"] * (1.06 + 0.06 * i) for a in points],
                [a[key]["mean"] for a in points],
                marker=marker,
                markerfacecolor="none",
                color=color,
                linestyle="none",
                label=f"hollow: variant {variant}" if key == "holdout_map50" else None,
            )
    ax.plot([200], [0.45], marker="*", color="tab:blue", markersize=12, linestyle="none", label="targets")
    ax.plot([200], [0.30], marker="*", color="tab:orange", markersize=12, linestyle="none")
    ax.plot([849], [0.55], marker="*", color="tab:blue", markersize=12, linestyle="none")
    if base:  # the base domain may lose at most 3 points
        ax.plot([200], [base["base_map50"]["mean"] - 0.03], marker="*", color="tab:green", markersize=12)
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks([25, 50, 100, 200, 400, 849], ["25", "50", "100", "200", "400", "849"])
    ax.set(xlabel="corrected photos (log scale)", ylabel="AP50", ylim=(0, 1), title=title)
    ax.legend(loc="upper left", fontsize=8)
    ax.text(
        0.99, 0.01, "dotted: v2 before adapting; bars: min-max over seeds", transform=ax.transAxes,
        ha="right", va="bottom", fontsize=7,
    )  # fmt: skip
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def variants(out: Path) -> set[str]:
    return {json.loads(p.read_text()).get("variant", "") for p in out.glob("*/result.json")}


def collect(out: Path, variant: str) -> list[dict[str, Any]]:
    """Every finished run of this variant, plus the unadapted model's row."""
    rows = []
    for path in sorted(out.glob("*/result.json")):
        row = json.loads(path.read_text())
        if row["size"] == 0 or row.get("variant", "") == variant:
            rows.append(row)
    return rows


def report(args: argparse.Namespace, recipe: Recipe, planned: list[tuple[int, int]]) -> str:
    rows = collect(args.out, args.variant)
    aggregated = aggregate(rows)
    suffix = f"-{args.variant}" if args.variant else ""
    payload = {
        "machine": machine(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "what": "v2 fine-tuned on N corrected Roboflow train photos (+ base RDD train photos); "
        "held out: Roboflow valid (226); base domain: RDD China_MotorBike 001300-001581 (282)",
        "recipe": asdict(recipe),
        "device": args.device,
        "planned": [run_tag(n, s, args.variant) for n, s in planned],
        "finished": [r["tag"] for r in rows],
        "aggregated": aggregated,
        "runs": rows,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"adaptation{suffix}.json").write_text(json.dumps(payload, indent=2) + "\n")
    title = "Adapting v2 to the Roboflow roads" + (f" ({args.variant})" if args.variant else "")
    others = {}
    if not args.variant:  # the default recipe's plot shows the variants next to it
        for other in sorted(variants(args.out) - {""}):
            others[other] = aggregate([r for r in collect(args.out, other) if r["size"] > 0])
    plot(
        aggregated,
        args.plot or ROOT / "weights" / "model-card" / f"adaptation-curve{suffix}.png",
        title,
        others,
    )
    return summary(aggregated)


def parse_ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rf", type=Path, default=ROOT / "data" / "rf", help="built Roboflow dataset (new city)")
    p.add_argument("--base", type=Path, default=ROOT / "data" / "rdd-cm", help="built base dataset (RDD)")
    p.add_argument("--checkpoint", type=Path, default=ROOT / "weights" / "roadwatch-yolov5nu-v2.pt")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "adaptation", help="scratch folder (ignored)")
    p.add_argument("--sizes", type=parse_ints, default=list(DEFAULT_SIZES), help="in run order")
    p.add_argument("--seeds", type=parse_ints, default=[0, 1])
    p.add_argument("--variant", default="", help="name of a recipe variant (its own results file)")
    p.add_argument(
        "--strategy", choices=STRATEGIES, default="random",
        help="which pool photos are corrected (labelstudio push); not random: name a --variant",
    )  # fmt: skip
    p.add_argument("--epochs", type=int, default=Recipe.epochs)
    p.add_argument("--base-limit", type=int, default=Recipe.base_limit)
    p.add_argument("--batch", type=int, default=Recipe.batch)
    p.add_argument("--lr0", type=float, default=Recipe.lr0)
    p.add_argument("--freeze", type=int)
    p.add_argument("--imgsz", type=int, default=Recipe.imgsz)
    p.add_argument("--oversample-pothole", type=int, default=1, help="repeat corrected photos with potholes")
    p.add_argument("--device", default="cpu", help="ultralytics' device: cpu, 0 (first GPU)")
    p.add_argument("--workers", type=int, default=0, help="dataloader workers (0-2 on a shared machine)")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads for evaluation")
    p.add_argument("--results", type=Path, default=RESULTS, help="folder for adaptation[-VARIANT].json")
    p.add_argument("--plot", type=Path, help="default: weights/model-card/adaptation-curve[-VARIANT].png")
    p.add_argument("--report-only", action="store_true", help="only rewrite the table, JSON and plot")
    p.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    args = p.parse_args(argv)
    for folder in (args.rf, args.base):
        if not (folder / "data.yaml").is_file():
            p.error(f"{folder}: not a built dataset (python -m datasets build --out {folder} SOURCE)")
    if args.strategy != "random" and not args.variant:
        p.error("--strategy: give the runs a --variant name (random runs are the curve's own)")
    recipe = Recipe(
        epochs=args.epochs,
        base_limit=args.base_limit,
        batch=args.batch,
        lr0=args.lr0,
        freeze=args.freeze,
        imgsz=args.imgsz,
        oversample_pothole=args.oversample_pothole,
    )
    planned = plan(args.sizes, args.seeds)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        from training.adapt import holdout_dataset

        holdout = args.out / "holdout"
        if not (holdout / "data.yaml").is_file():
            # The held-out part of every corrections folder is the same: build it once.
            make_corrections(args.rf, args.out / "holdout-src", 1, 0)
            holdout_dataset(args.out / "holdout-src", holdout)
        base_row(args, holdout)
        todo = pending(planned, args.out, args.variant)
        log.info("%d of %d runs to do: %s", len(todo), len(planned), ", ".join(run_tag(*r) for r in todo))
        for size, seed in todo:
            row = one_run(args, recipe, size, seed, holdout)
            log.info(
                "%s done: held-out mAP50 %.3f, pothole AP50 %.3f, RDD val mAP50 %.3f, %.1f CPU min",
                row["tag"],
                row["holdout"]["map50"],
                row["holdout"]["pothole_ap50"],
                row["base"]["map50"],
                row["cpu_minutes"],
            )
            log.info("table so far:\n%s", report(args, recipe, planned))
    print(report(args, recipe, planned))
    if args.markdown:
        print(markdown(aggregate(collect(args.out, args.variant))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
