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
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from detector import Detector, read_image
from detector.manifest import MANIFEST_NAME, WEIGHTS_DIR, sha256_file
from detector.preprocess import letterbox, to_tensor
from training.offline import configure_offline

log = logging.getLogger(__name__)


@contextmanager
def _dfl_along_bins() -> Iterator[None]:
    """Export the head's box decoding (DFL) as max/exp/sum along the 16 bins, not Softmax + Conv.

    ultralytics writes it as Transpose + Softmax over axis 1 + a 1x1 Conv with weights 0..15; ONNX
    Runtime runs that Softmax over a non-last axis slowly (2 ms of 25 ms per image on this CPU). The
    same arithmetic as ReduceMax, Sub, Exp, Mul, ReduceSum, Div takes 0.2 ms; outputs agree to 4e-6
    (tests/test_export.py) and the ONNX file keeps ultralytics' output layout.
    """
    from ultralytics.nn.modules.block import DFL

    original = DFL.forward

    def forward(self: DFL, x: Any) -> Any:
        b, _, a = x.shape
        x = x.view(b, 4, self.c1, a)
        e = (x - x.amax(2, keepdim=True)).exp()
        bins = self.conv.weight.view(1, 1, self.c1, 1)  # 0, 1, ..., c1-1
        return (e * bins).sum(2) / e.sum(2)

    DFL.forward = forward  # type: ignore[method-assign]
    try:
        yield
    finally:
        DFL.forward = original  # type: ignore[method-assign]


def export_fp32(checkpoint: Path, imgsz: int, out: Path) -> Path:
    configure_offline()
    from ultralytics import YOLO

    with _dfl_along_bins():
        exported = Path(
            YOLO(str(checkpoint)).export(format="onnx", imgsz=imgsz, simplify=True, dynamic=False)
        )
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


def nodes_kept_in_float(model_path: Path, first_layer: bool = True) -> list[str]:
    """Nodes the int8 model computes in float.

    - Everything after the last Conv in topological order: the head's box decoding and the
      concatenation of box pixels with class scores (they cannot share one int8 scale).
    - With ``first_layer``, the first convolution and its activation: its input has 3 channels, so
      int8 buys no speed there (ONNX Runtime's int8 kernel is slower than fp32 for it on this CPU) and
      it is the layer most sensitive to rounding.
    """
    import onnx

    graph = onnx.load(str(model_path)).graph
    convs = [i for i, node in enumerate(graph.node) if node.op_type == "Conv"]
    keep = [node.name for node in graph.node[convs[-1] + 1 :]]
    if first_layer:
        first = graph.node[convs[0]]
        # ultralytics names nodes by module path: "/model.0/conv/Conv", "/model.0/act/Relu", ...
        prefix = first.name.split("/conv/")[0] + "/" if "/conv/" in first.name else None
        keep += [n.name for n in graph.node if n.name == first.name or (prefix and n.name.startswith(prefix))]
    return keep


CALIBRATION_METHODS = ("minmax", "percentile", "entropy")


def quantize_int8(
    fp32: Path,
    out: Path,
    calib_dir: Path,
    imgsz: int,
    count: int = 200,
    method: str = "minmax",
    first_layer_float: bool = True,
) -> Path:
    """Static QDQ int8 calibrated on ``count`` real images of ``calib_dir``.

    ``method``: how activation ranges are chosen from the calibration outputs: ``minmax`` (the full
    range seen), ``percentile`` (99.999th percentile, clips rare outliers) or ``entropy`` (KL divergence).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }
    if method not in methods:
        raise ValueError(f"calibration method must be one of {CALIBRATION_METHODS}, got {method!r}")
    prepared = out.with_suffix(".pre.onnx")
    # Static shapes: ONNX shape inference is enough (the symbolic one fails on opset-18 ReduceMax).
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    input_name = Detector.from_path(fp32).input_name
    quantize_static(
        str(prepared),
        str(out),
        _Reader(calibration_images(calib_dir, count), imgsz, input_name),  # type: ignore[arg-type]
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=methods[method],
        nodes_to_exclude=nodes_kept_in_float(prepared, first_layer_float),
        extra_options={"CalibPercentile": 99.999},
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
    calib_count: int = 200,
    calib_method: str = "minmax",
) -> list[dict[str, Any]]:
    """fp32 + int8 files in weights/, checked, with manifest entries; returns the entries."""
    fp32 = export_fp32(checkpoint, imgsz, weights_dir / f"{name}-{version}-fp32.onnx")
    int8 = quantize_int8(
        fp32, weights_dir / f"{name}-{version}-int8.onnx", calib_dir, imgsz, calib_count, calib_method
    )
    quantization = {
        "format": "QDQ static, per-channel; activations uint8, weights int8",
        "calibration": f"{calib_method}, {calib_count} training images",
        "float": "first convolution; box decoding after the last convolution",
    }
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
        if precision == "int8":
            entries[-1]["quantization"] = quantization
    update_manifest(entries, f"{name}-{version}-{default_precision}", weights_dir)
    return entries
