"""Does anonymization hide damage? The damage model's accuracy on original vs anonymized images.

    python bench/anonymized_map.py --weights weights/X-fp32.onnx --data data/rdd-cm [--split val]

Each validation image is anonymized exactly as the worker does it (persons and vehicles pixelated
with a margin, the band above the horizon blurred) and evaluated through our ONNX path; the table
compares AP50 per class and mAP with the untouched images. Annotators and future training see the
anonymized images, so this is what blurring costs the model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import table, write_result
from service.domain.anonymize import PrivacyConfig, anonymize, load_privacy_detector
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
    args = parser.parse_args()
    privacy = load_privacy_detector(threads=2)
    config = PrivacyConfig(horizon=args.horizon)
    blurred_share: list[float] = []

    def anonymized(image):  # type: ignore[no-untyped-def]
        out, report = anonymize(image, privacy, config)
        area = sum((b.box[2] - b.box[0]) * (b.box[3] - b.box[1]) for b in report.boxes)
        blurred_share.append(min(1.0, area / (report.width * report.height)))
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
    path = write_result(
        f"anonymized_map-horizon-{args.horizon}",
        {
            "weights": args.weights.name,
            "split": args.split,
            "rows": rows,
            "horizon": args.horizon,
            "mean_box_share": mean_share,
        },
    )
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
