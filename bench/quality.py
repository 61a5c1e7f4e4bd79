"""Calibrate and measure the capture-quality gate (service/domain/quality.py) on real road photos.

Real photos: RDD2022 China_MotorBike and the Roboflow road-crack set (../shared/data). Each photo is also
degraded in five ways, at severities a reviewer could no longer judge cracks on (seeded):

- blur: Gaussian blur, sigma 0.6-1.2 % of the width (focus) or a 4-8 %-of-width motion streak (motion);
- dark: brightness x 0.08-0.2 with gamma 1.3 (night, tunnel);
- overexposed: brightness x 2.5-4 + 40, clipped (sun into the lens);
- covered: the view hidden by something close to the lens (a heavy blur of a darkened copy, 1 % noise);
- sky/bonnet: the camera tilted up, 60-75 % smooth sky on top and a bonnet at the bottom.

Calibration: on the calibration half (RDD frames before 001300 and Roboflow's train split) each threshold is
set at a low quantile of the clean photos' statistic (``--quantile``), so clean photos pass. Evaluation on
the other half (RDD from 001300, Roboflow valid): false rejects of clean photos (target < 2 %) and, per
degradation, the share flagged unusable (target > 90 %) and flagged with the right reason.

    .venv/bin/python bench/quality.py [--limit 300] [--quantile 0.01]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.domain.quality import WORK_WIDTH, Thresholds, assess, measure  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results" / "quality.json"
BRIGHT_FLOOR, FLAT_FLOOR, DARK_CAP = 0.3, 0.6, 50.0
EXPECTED = {
    "blur_focus": "blurred",
    "blur_motion": "blurred",
    "dark": "dark",
    "overexposed": "overexposed",
    "covered": "covered",
    "sky_bonnet": "covered",
}


def photos(split: str, limit: int) -> list[Path]:
    rdd = sorted((DATA / "rdd2022" / "China_MotorBike" / "train" / "images").glob("*.jpg"))
    number = lambda p: int(p.stem.rsplit("_", 1)[-1])  # noqa: E731
    if split == "calibration":
        a = [p for p in rdd if number(p) < 1300]
        b = sorted((DATA / "roboflow-road-crack" / "train" / "images").glob("*.jpg"))
    else:
        a = [p for p in rdd if number(p) >= 1300]
        b = sorted((DATA / "roboflow-road-crack" / "valid" / "images").glob("*.jpg"))
    half = limit // 2
    step_a = max(1, len(a) // half)
    step_b = max(1, len(b) // half)
    return a[::step_a][:half] + b[::step_b][:half]


def degrade(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    f = image.astype(np.float32)
    if kind == "blur_focus":
        return cv2.GaussianBlur(image, (0, 0), w * rng.uniform(0.006, 0.012))
    if kind == "blur_motion":
        n = max(3, int(w * rng.uniform(0.04, 0.08)))
        kernel = np.zeros((n, n), np.float32)
        kernel[n // 2, :] = 1.0
        rot = cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), rng.uniform(-30, 30), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (n, n))
        return cv2.filter2D(image, -1, kernel / kernel.sum())
    if kind == "dark":
        out = 255.0 * (f / 255.0) ** 1.3 * rng.uniform(0.08, 0.2)
        return np.clip(out + rng.normal(0, 1.5, f.shape), 0, 255).astype(np.uint8)
    if kind == "overexposed":
        return np.clip(f * rng.uniform(2.5, 4.0) + 40.0, 0, 255).astype(np.uint8)
    if kind == "covered":
        cover = cv2.GaussianBlur(image, (0, 0), w * 0.08) * rng.uniform(0.2, 0.6)
        return np.clip(cover + rng.normal(0, 0.01 * 255 / 4, f.shape), 0, 255).astype(np.uint8)
    if kind == "sky_bonnet":
        out = np.empty_like(image)
        sky_end, bonnet_start = int(h * rng.uniform(0.6, 0.75)), int(h * rng.uniform(0.8, 0.9))
        top = np.array(rng.uniform(180, 235, 3), np.float32)
        grad = np.linspace(0.0, 1.0, sky_end, dtype=np.float32)[:, None, None]
        out[:sky_end] = np.clip(top * (1 - 0.15 * grad), 0, 255).astype(np.uint8)
        out[sky_end:bonnet_start] = image[h - (bonnet_start - sky_end) :][: bonnet_start - sky_end]
        out[bonnet_start:] = np.array(rng.uniform(20, 90, 3), np.uint8)
        return out
    raise ValueError(kind)


def statistics(paths: list[Path], seed: int) -> dict[str, list[dict[str, float]]]:
    rng = np.random.default_rng(seed)
    out: dict[str, list[dict[str, float]]] = {"clean": [], **{k: [] for k in EXPECTED}}
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            continue
        h, w = image.shape[:2]  # degrade at the gate's working width (as fast, the same statistics)
        image = cv2.resize(image, (WORK_WIDTH, round(h * WORK_WIDTH / w)), interpolation=cv2.INTER_AREA)
        out["clean"].append(measure(image))
        for kind in EXPECTED:
            out[kind].append(measure(degrade(image, kind, rng)))
    return out


def calibrate(clean: list[dict[str, float]], q: float) -> Thresholds:
    def quantile(key: str, p: float) -> float:
        return float(np.quantile([m[key] for m in clean], p))

    return Thresholds(
        blur_min=quantile("sharpness", q),
        # At most 50: these sets are daylight photos; dusk photos with a mean of 50-75 still show cracks.
        dark_max_mean=min(quantile("mean", q), DARK_CAP),
        # Floors: these sets show little sky; a dashcam's view often has a third of it, bright or even.
        bright_min_share=max(quantile("bright_share", 1 - q) + 0.01, BRIGHT_FLOOR),
        flat_min_share=min(max(quantile("flat_share", 1 - q) + 0.01, FLAT_FLOOR), 1.0),
    )


def verdicts(stats: list[dict[str, float]], t: Thresholds) -> list[tuple[str, ...]]:
    from service.domain.quality import reasons

    return [reasons(m, t) for m in stats]  # the rule of assess(), on precomputed statistics


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=300, help="photos per half (half RDD, half Roboflow)")
    parser.add_argument("--quantile", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    cal = statistics(photos("calibration", args.limit), args.seed)
    t = calibrate(cal["clean"], args.quantile)
    ev = statistics(photos("evaluation", args.limit), args.seed + 1)
    image = cv2.imread(str(photos("evaluation", 2)[0]))
    timer = time.perf_counter()
    for _ in range(20):
        assess(image, t)
    ms = (time.perf_counter() - timer) / 20 * 1000
    rows = []
    for kind, stats in ev.items():
        flagged = verdicts(stats, t)
        unusable = sum(bool(r) for r in flagged) / len(flagged)
        right = sum(EXPECTED.get(kind, "") in r for r in flagged) / len(flagged) if kind != "clean" else None
        rows.append({"set": kind, "n": len(flagged), "unusable": unusable, "right_reason": right})
    result = {
        "thresholds": t.__dict__,
        "quantile": args.quantile,
        "photos_per_half": len(ev["clean"]),
        "ms_per_photo": ms,
        "rows": rows,
        "seconds": time.perf_counter() - start,
    }
    print(
        f"Capture-quality gate: thresholds calibrated on {len(cal['clean'])} photos, evaluated on "
        f"{len(ev['clean'])} others (half RDD2022 China_MotorBike, half Roboflow road-crack)"
    )
    print("  " + ", ".join(f"{k}={v:.4g}" for k, v in t.__dict__.items()) + f"  ({ms:.1f} ms/photo)")
    print(f"{'set':<14}{'photos':>8}{'unusable':>10}{'right reason':>14}   target")
    for r in rows:
        target = "< 2 % (false rejects)" if r["set"] == "clean" else "> 90 %"
        reason = "" if r["right_reason"] is None else f"{100 * r['right_reason']:.1f} %"
        print(f"{r['set']:<14}{r['n']:>8}{100 * r['unusable']:>9.1f} %{reason:>14}   {target}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
