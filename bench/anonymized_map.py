"""Does anonymization hide damage? The damage model's accuracy on original vs anonymized images.

    python bench/anonymized_map.py --weights weights/X-fp32.onnx --data data/rdd-cm [--split val]
        [--camera PITCH,HFOV | --horizon H] [--privacy int8|fp32] [--conf C] [--coarse-pass N] [--coarse-conf T]

Each validation image is anonymized exactly as the worker does it (persons and vehicles pixelated
with a margin, the band above the horizon blurred) and evaluated through our ONNX path; the table
compares AP50 per class and mAP with the untouched images. Annotators and future training see the
anonymized images, so this is what blurring costs the model.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import table, write_result
from service.domain.anonymize import (
    COARSE_MIN_CONFIDENCE,
    COARSE_PASS,
    PRIVACY_MODEL_PATHS,
    PrivacyConfig,
    anonymize,
    band_for,
    load_privacy_detector,
    privacy_operating_point,
)
from service.domain.geo import Camera
from training.evaluate import evaluate


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", required=True, type=Path)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--split", default="val")
    parser.add_argument(
        "--horizon",
        type=lambda v: None if v == "none" else float(v),
        default=PrivacyConfig().horizon,
        help="fraction of the height blurred from the top, or none",
    )
    parser.add_argument(
        "--camera",
        help="PITCH,HFOV (degrees): the band of each image derived from this camera's horizon plus "
        "--horizon-margin, as the worker does by default (overrides --horizon)",
    )
    parser.add_argument("--horizon-margin", type=float, default=0.05)
    parser.add_argument(
        "--privacy",
        choices=sorted(PRIVACY_MODEL_PATHS),
        default="int8",
        help="privacy model file (service default)",
    )
    parser.add_argument("--conf", type=float, help="privacy threshold (default: the file's operating point)")
    parser.add_argument("--coarse-pass", type=int, default=COARSE_PASS, help="0: one pass")
    parser.add_argument(
        "--coarse-conf", type=float, default=COARSE_MIN_CONFIDENCE, help="the coarse pass's threshold"
    )
    args = parser.parse_args()
    privacy = load_privacy_detector(PRIVACY_MODEL_PATHS[args.privacy], threads=2)
    conf = args.conf if args.conf is not None else privacy_operating_point(args.privacy)
    camera = None
    if args.camera:
        pitch, hfov = (float(v) for v in args.camera.split(","))
        camera = Camera(pitch_deg=pitch, hfov_deg=hfov)
        args.horizon = f"camera-{pitch:g}-{hfov:g}"
    config = PrivacyConfig(
        horizon=None if camera else args.horizon,
        horizon_margin=args.horizon_margin if camera else None,
        min_confidence=conf,
        coarse_pass=args.coarse_pass or None,
        coarse_min_confidence=args.coarse_conf,
    )
    blurred_share: list[float] = []
    bands: list[float] = []

    def anonymized(image):  # type: ignore[no-untyped-def]
        height, width = image.shape[:2]
        band = band_for(config, None, camera, width, height) if camera else config.horizon
        if band is not None:
            bands.append(band)
        out, report = anonymize(image, privacy, replace(config, horizon=band))
        covered = np.zeros((report.height, report.width), bool)  # the union: passes overlap
        for x1, y1, x2, y2 in (b.box for b in report.boxes):
            covered[y1:y2, x1:x2] = True
        blurred_share.append(float(covered.mean()))
        return out

    runs = {
        "original": evaluate(args.weights, args.data, args.split, threads=2),
        "anonymized": evaluate(args.weights, args.data, args.split, threads=2, transform=anonymized),
    }
    rows = []
    for label, m in runs.items():
        row = {"images": label, "mAP50": m["map50"], "mAP50-95": m["map50_95"]}
        row.update({f"AP50 {k}": v["ap50"] for k, v in m["per_class"].items()})
        rows.append(row)
    print(table(rows, list(rows[0])))
    mean_share = sum(blurred_share) / max(len(blurred_share), 1)
    print(f"\nmean share of each image inside person/vehicle boxes: {mean_share:.1%}; horizon {args.horizon}")
    if bands:
        print(f"band blurred from the top: {min(bands):.3f}..{max(bands):.3f} of the height")
    default_point = args.privacy == "int8" and args.conf is None
    suffix = "" if default_point else f"-{args.privacy}-{conf:g}"
    if config.coarse_pass != COARSE_PASS:
        suffix += "-one-pass" if config.coarse_pass is None else f"-coarse-{config.coarse_pass}"
    if args.coarse_conf != COARSE_MIN_CONFIDENCE:
        suffix += f"-coarse-conf-{args.coarse_conf:g}"
    path = write_result(
        f"anonymized_map-horizon-{args.horizon}{suffix}",
        {
            "weights": args.weights.name,
            "privacy_model": PRIVACY_MODEL_PATHS[args.privacy].name,
            "privacy_min_confidence": conf,
            "coarse_pass": config.coarse_pass,
            "coarse_min_confidence": config.coarse_min_confidence,
            "split": args.split,
            "rows": rows,
            "horizon": args.horizon,
            "mean_box_share": mean_share,
            "band_range": [min(bands), max(bands)] if bands else None,
        },
    )
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
