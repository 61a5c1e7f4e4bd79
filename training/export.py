"""Export a trained checkpoint to ONNX fp32 and int8, check both with ``detector``, update weights/.

int8: ONNX Runtime static QDQ quantisation, per-channel, activations QUInt8 and weights QInt8,
calibrated on real training images letterboxed exactly as the detector does. The nodes after the
last convolution (box decoding, concatenation of box pixels with class scores) stay in float: box
pixels and class scores cannot share one int8 scale.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from detector import Detector, read_image
from detector.manifest import MANIFEST_NAME, WEIGHTS_DIR, sha256_file
from detector.preprocess import letterbox, to_tensor
from training.offline import configure_offline

log = logging.getLogger(__name__)


def export_fp32(checkpoint: Path, imgsz: int, out: Path) -> Path:
    configure_offline()
    from ultralytics import YOLO

    exported = Path(YOLO(str(checkpoint)).export(format="onnx", imgsz=imgsz, simplify=True, dynamic=False))
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(exported, out)
    return out


def calibration_images(folder: Path, count: int, seed: int = 0) -> list[Path]:
    images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if not images:
        raise ValueError(f"no calibration images in {folder}")
    rng = np.random.default_rng(seed)
    return [images[i] for i in sorted(rng.choice(len(images), min(count, len(images)), replace=False))]


class _Reader:
    """onnxruntime CalibrationDataReader over letterboxed real images."""

    def __init__(self, paths: list[Path], imgsz: int, input_name: str) -> None:
        self._iter: Iterator[dict[str, np.ndarray]] = (
            {input_name: to_tensor([letterbox(read_image(p), imgsz)[0]])} for p in paths
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iter, None)


def _nodes_after_last_conv(model_path: Path) -> list[str]:
    import onnx

    graph = onnx.load(str(model_path)).graph
    last_conv = max(i for i, node in enumerate(graph.node) if node.op_type == "Conv")
    # Every node that is not a Conv and consumes (transitively) the head's outputs: simplest robust
    # rule for ultralytics' graph order is "everything after the last Conv in topological order".
    return [node.name for node in graph.node[last_conv + 1 :]]


def quantize_int8(fp32: Path, out: Path, calib_dir: Path, imgsz: int, count: int = 200) -> Path:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = out.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32), str(prepared))
    input_name = Detector.from_path(fp32).input_name
    quantize_static(
        str(prepared),
        str(out),
        _Reader(calibration_images(calib_dir, count), imgsz, input_name),  # type: ignore[arg-type]
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        nodes_to_exclude=_nodes_after_last_conv(prepared),
    )
    prepared.unlink(missing_ok=True)
    _copy_metadata(fp32, out)
    return out


def _copy_metadata(src: Path, dst: Path) -> None:
    import onnx

    source, target = onnx.load(str(src)), onnx.load(str(dst))
    del target.metadata_props[:]
    for prop in source.metadata_props:
        entry = target.metadata_props.add()
        entry.key, entry.value = prop.key, prop.value
    onnx.save(target, str(dst))


def check_model(path: Path, images: list[Path]) -> dict[str, Any]:
    """Load with our detector and run it: refuse to ship a file that does not work."""
    det = Detector.from_path(path)
    found = sum(len(det.predict(read_image(p))) for p in images)
    return {
        "classes": [det.names[i] for i in sorted(det.names)],
        "imgsz": det.imgsz,
        "detections_on_check": found,
    }


def update_manifest(entries: list[dict[str, Any]], default: str, weights_dir: Path = WEIGHTS_DIR) -> Path:
    """Add or replace entries by name, set the default; earlier versions stay listed."""
    path = weights_dir / MANIFEST_NAME
    manifest = json.loads(path.read_text()) if path.exists() else {"default": default, "models": []}
    names = {e["name"] for e in entries}
    manifest["models"] = [m for m in manifest["models"] if m["name"] not in names] + entries
    manifest["default"] = default
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def export_release(
    checkpoint: Path,
    name: str,
    version: str,
    imgsz: int,
    calib_dir: Path,
    data_version: str,
    metrics: dict[str, Any] | None = None,
    weights_dir: Path = WEIGHTS_DIR,
    default_precision: str = "fp32",
) -> list[dict[str, Any]]:
    """fp32 + int8 files in weights/, checked, with manifest entries; returns the entries."""
    fp32 = export_fp32(checkpoint, imgsz, weights_dir / f"{name}-{version}-fp32.onnx")
    int8 = quantize_int8(fp32, weights_dir / f"{name}-{version}-int8.onnx", calib_dir, imgsz)
    probe = calibration_images(calib_dir, 8, seed=1)
    entries = []
    for precision, path in (("fp32", fp32), ("int8", int8)):
        info = check_model(path, probe)
        entries.append(
            {
                "name": f"{name}-{version}-{precision}",
                "version": version,
                "precision": precision,
                "file": path.name,
                "sha256": sha256_file(path),
                "classes": info["classes"],
                "imgsz": info["imgsz"],
                "data_version": data_version,
                "metrics": (metrics or {}).get(precision, {}),
            }
        )
    update_manifest(entries, f"{name}-{version}-{default_precision}", weights_dir)
    return entries
