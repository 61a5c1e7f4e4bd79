"""Ship a trained checkpoint: export fp32 + int8, evaluate both through our ONNX path, record the
metrics in the manifest, write the model card's plots, and keep a stripped checkpoint for adapting.

    python -m training release --weights runs/NAME/weights/best.pt --version v1 --data data/rdd-cm \\
        --extra-data data/rf --calib data/rdd-cm/images/train
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from detector.manifest import MANIFEST_NAME, WEIGHTS_DIR
from training.evaluate import evaluate, summary_table, write_report
from training.export import export_release

log = logging.getLogger(__name__)
KEEP = (
    "map50",
    "map50_95",
    "f1",
    "f1_threshold",
    "precision_at_f1",
    "recall_at_f1",
    "ms_per_image",
    "images",
)


def _compact(metrics: dict[str, Any]) -> dict[str, Any]:
    out = {k: round(metrics[k], 4) if isinstance(metrics[k], float) else metrics[k] for k in KEEP}
    out["ap50"] = {k: round(v["ap50"], 4) for k, v in metrics["per_class"].items()}
    out["ap50_95"] = {k: round(v["ap50_95"], 4) for k, v in metrics["per_class"].items()}
    return out


def strip_checkpoint(checkpoint: Path, out: Path) -> Path:
    """The EMA weights in half precision without optimizer state (what adapting starts from)."""
    from training.offline import configure_offline

    configure_offline()
    from ultralytics.utils.torch_utils import strip_optimizer

    shutil.copyfile(checkpoint, out)
    strip_optimizer(str(out))
    return out


def release(
    checkpoint: Path,
    version: str,
    data: Path,
    calib: Path,
    extra_data: Path | None = None,
    name: str = "roadwatch-yolov5nu",
    imgsz: int = 416,
    data_version: str = "",
    weights_dir: Path = WEIGHTS_DIR,
    default_precision: str = "fp32",
    calib_count: int = 200,
    calib_method: str = "minmax",
) -> dict[str, Any]:
    entries = export_release(
        checkpoint,
        name,
        version,
        imgsz,
        calib,
        data_version or data.name,
        weights_dir=weights_dir,
        default_precision=default_precision,
        calib_count=calib_count,
        calib_method=calib_method,
    )
    card_dir = weights_dir / "model-card"
    report: dict[str, Any] = {}
    for entry in entries:
        path = weights_dir / entry["file"]
        metrics = evaluate(path, data, "val", threads=2)
        print(f"\n{entry['name']} on {data} (val):\n{summary_table(metrics)}")
        entry["metrics"] = {"val": _compact(metrics)}
        if entry["precision"] == "fp32":
            write_report(metrics, card_dir / f"{version}-val")
            if extra_data is not None:
                other = evaluate(path, extra_data, "val", threads=2)
                print(f"\n{entry['name']} on {extra_data} (val):\n{summary_table(other)}")
                entry["metrics"]["other_roads"] = {"data": extra_data.name, **_compact(other)}
                write_report(other, card_dir / f"{version}-{extra_data.name}-val")
        report[entry["precision"]] = entry["metrics"]
    manifest_path = weights_dir / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    by_name = {e["name"]: e for e in entries}
    manifest["models"] = [by_name.get(m["name"], m) for m in manifest["models"]]
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    strip_checkpoint(checkpoint, weights_dir / f"{name}-{version}.pt")
    return report
