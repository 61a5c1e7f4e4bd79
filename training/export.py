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
from collections.abc import Iterator, Sequence
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
    same arithmetic as ReduceMax, Sub, Exp, Mul, ReduceSum, Div takes 0.2 ms; outputs agree to float
    rounding (training/tests/test_export.py) and the ONNX file keeps ultralytics' output layout.
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
    """The checkpoint as ONNX with a dynamic batch, height and width: ``detector`` letterboxes each frame
    only to the next multiple of 32 (a 16:9 frame at 416 runs at 416x256, not 416x416; on a square input
    the outputs are bit-identical to a fixed-size export's)."""
    configure_offline()
    from ultralytics import YOLO

    with _dfl_along_bins():
        exported = Path(YOLO(str(checkpoint)).export(format="onnx", imgsz=imgsz, simplify=True, dynamic=True))
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
    """onnxruntime CalibrationDataReader over letterboxed real images (``set_range``: one chunk of them)."""

    def __init__(self, paths: list[Path], imgsz: int, input_name: str) -> None:
        self._paths, self._imgsz, self._input_name = paths, imgsz, input_name
        self.set_range(0, len(paths))

    def __len__(self) -> int:
        return len(self._paths)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._iter: Iterator[dict[str, np.ndarray]] = (
            {self._input_name: to_tensor([letterbox(read_image(p), self._imgsz)[0]])}
            for p in self._paths[start_index:end_index]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iter, None)


def nodes_kept_in_float(
    model_path: Path, first_layer: bool = True, per_level_head: bool = False
) -> list[str]:
    """Nodes the int8 model computes in float.

    - Everything after the last Conv in topological order: the head's box decoding and the
      concatenation of box pixels with class scores (they cannot share one int8 scale).
    - With ``per_level_head``, also every other node from which no Conv can be reached: a head that
      decodes each level right after that level's convolution (the privacy model's classic YOLOv5
      head) has the decoding of the first levels before the last Conv in topological order.
    - With ``first_layer``, the first convolution and its activation: its input has 3 channels, so
      int8 buys no speed there (ONNX Runtime's int8 kernel is slower than fp32 for it on this CPU) and
      it is the layer most sensitive to rounding.
    """
    import onnx

    graph = onnx.load(str(model_path)).graph
    convs = [i for i, node in enumerate(graph.node) if node.op_type == "Conv"]
    keep = [node.name for node in graph.node[convs[-1] + 1 :]]
    if per_level_head:
        kept = set(keep)
        keep = [n.name for n in reversed(_nodes_without_conv_after(graph)) if n.name not in kept] + keep
    if first_layer:
        first = graph.node[convs[0]]
        # ultralytics names nodes by module path: "/model.0/conv/Conv", "/model.0/act/Relu", ...
        prefix = first.name.split("/conv/")[0] + "/" if "/conv/" in first.name else None
        keep += [n.name for n in graph.node if n.name == first.name or (prefix and n.name.startswith(prefix))]
    return keep


def _nodes_without_conv_after(graph: Any) -> list[Any]:
    """Non-Conv nodes from which no Conv is reachable, in reverse topological order."""
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    leads_to_conv: set[str] = set()
    found = []
    for node in reversed(graph.node):  # readers come after their producers in an ONNX graph
        nxt = [r for out in node.output for r in readers.get(out, [])]
        if node.op_type == "Conv" or any(r.op_type == "Conv" or r.name in leads_to_conv for r in nxt):
            leads_to_conv.add(node.name)
        else:
            found.append(node)
    return found


CALIBRATION_METHODS = ("minmax", "percentile", "entropy")


def stem_as_space_to_depth(model: Any) -> str | None:
    """Rewrite the first convolution as SpaceToDepth(2) + a convolution with half the kernel, stride 1.

    YOLOv5's stem is a 6x6 stride-2 convolution over the 3 colour channels; the same arithmetic on
    2x2 pixel blocks (12 channels, 3x3 kernel) is what ONNX Runtime's int8 kernels run fast (1.2 ms
    instead of 3 ms at 416 px here). Applies to an even kernel and padding, stride 2, on the graph
    input; returns the SpaceToDepth output's name, or None (graph unchanged) when the stem differs.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    conv = next(node for node in graph.node if node.op_type == "Conv")
    attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
    weights = {init.name: init for init in graph.initializer}
    kernel, pads = list(attrs.get("kernel_shape", [])), list(attrs.get("pads", [0, 0, 0, 0]))
    if (
        conv.input[0] != graph.input[0].name
        or conv.input[1] not in weights
        or list(attrs.get("strides", [1, 1])) != [2, 2]
        or attrs.get("group", 1) != 1
        or list(attrs.get("dilations", [1, 1])) != [1, 1]
        or len(kernel) != 2
        or kernel[0] != kernel[1]
        or kernel[0] % 2
        or len(set(pads)) != 1
        or pads[0] % 2
    ):
        return None
    w = numpy_helper.to_array(weights[conv.input[1]])
    out_ch, in_ch = w.shape[:2]
    w2 = np.zeros((out_ch, 4 * in_ch, kernel[0] // 2, kernel[1] // 2), w.dtype)
    for by in (0, 1):
        for bx in (0, 1):  # SpaceToDepth puts pixel (by, bx) of each block in channels (2 by + bx) C + c
            w2[:, (2 * by + bx) * in_ch : (2 * by + bx + 1) * in_ch] = w[:, :, by::2, bx::2]
    graph.initializer.remove(weights[conv.input[1]])
    graph.initializer.append(numpy_helper.from_array(w2, conv.input[1]))
    blocks = f"{conv.input[0]}_blocks"
    stem = helper.make_node(
        "SpaceToDepth", [conv.input[0]], [blocks], blocksize=2, name=f"{conv.name}_blocks"
    )
    conv.input[0] = blocks
    del conv.attribute[:]
    half = [kernel[0] // 2, kernel[1] // 2]
    conv.attribute.extend(
        [
            helper.make_attribute("kernel_shape", half),
            helper.make_attribute("strides", [1, 1]),
            helper.make_attribute("pads", [pads[0] // 2] * 4),
            helper.make_attribute("dilations", [1, 1]),
            helper.make_attribute("group", 1),
        ]
    )
    graph.node.insert(list(graph.node).index(conv), stem)
    return blocks


def uint8_input(model: Any, quantized: str) -> None:
    """Let the int8 model take the image's uint8 pixels: drop the QuantizeLinear of ``quantized``.

    The detector's float input is pixel / 255; quantized with scale 1/255 and zero point 0 (fixed at
    calibration) it is exactly the uint8 pixel, so the model can read uint8 directly: no float
    conversion on the way in. Requires the data movement before ``quantized`` (SpaceToDepth) to
    accept uint8, which it does.
    """
    from onnx import TensorProto, numpy_helper

    graph = model.graph
    readers = [n for n in graph.node if graph.input[0].name in n.input]
    if [(n.op_type, list(n.output)) for n in readers] != [("SpaceToDepth", [quantized])]:
        raise ValueError(f"expected the input to feed one SpaceToDepth making {quantized!r}, got {readers}")
    inits = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    quant = next(n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] == quantized)
    scale, zero = inits[quant.input[1]], inits[quant.input[2]]
    if not (np.isclose(scale, 1 / 255, rtol=1e-6) and zero.dtype == np.uint8 and int(zero) == 0):
        raise ValueError(
            f"input quantization is scale {scale}, zero point {zero}: expected 1/255 and uint8 0"
        )
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == quant.output[0]:
                node.input[i] = quantized
    graph.node.remove(quant)
    graph.input[0].type.tensor_type.elem_type = TensorProto.UINT8
    for info in graph.value_info:  # shapes inferred for the float graph: the blocks are uint8 now
        if info.name == quantized:
            info.type.tensor_type.elem_type = TensorProto.UINT8


def quantize_int8(
    fp32: Path,
    out: Path,
    calib: Path | Sequence[Path],
    imgsz: int,
    count: int = 200,
    method: str = "minmax",
    first_layer_float: bool = False,
    uint8_pixels: bool = True,
    per_level_head: bool = False,
    chunk: int | None = None,
) -> Path:
    """Static QDQ int8 calibrated on real images: ``count`` of the folder ``calib`` (a seeded sample,
    :func:`calibration_images`), or exactly the images ``calib`` lists.

    ``method``: how activation ranges are chosen from the calibration outputs: ``minmax`` (the full
    range seen), ``percentile`` (99.999th percentile, clips rare outliers) or ``entropy`` (KL divergence).
    The stem becomes SpaceToDepth + convolution (:func:`stem_as_space_to_depth`) and, unless
    ``first_layer_float`` or not ``uint8_pixels``, the model takes uint8 pixels (:func:`uint8_input`).
    ``per_level_head``: see :func:`nodes_kept_in_float`. ``chunk``: calibrate ``chunk`` images at a time
    (it must divide their number). The histogram methods otherwise hold every intermediate tensor of every
    image at once (about 180 MB per 640 px image); in chunks the histograms are merged, their bins set by
    the first chunk's range (min/max ranges come out the same either way).
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }
    if method not in methods:
        raise ValueError(f"calibration method must be one of {CALIBRATION_METHODS}, got {method!r}")
    images = calibration_images(calib, count) if isinstance(calib, Path) else list(calib)
    if not images:
        raise ValueError("no calibration images")
    if chunk is not None and (chunk < 1 or len(images) % chunk):
        raise ValueError(f"chunk must divide the {len(images)} calibration images, got {chunk}")
    input_name = Detector.from_path(fp32).input_name
    model = onnx.load(str(fp32))
    blocks = stem_as_space_to_depth(model)
    stem, prepared = out.with_suffix(".stem.onnx"), out.with_suffix(".pre.onnx")
    onnx.save(model, str(stem))
    # ONNX shape inference is enough, also with dynamic sizes (the symbolic one fails on opset-18 ReduceMax).
    quant_pre_process(str(stem), str(prepared), skip_symbolic_shape=True)
    pixels = blocks if blocks and not first_layer_float else None
    overrides = (
        {pixels: [{"scale": np.array(1 / 255, np.float32), "zero_point": np.array(0, np.uint8)}]}
        if pixels
        else {}
    )
    try:
        quantize_static(
            str(prepared),
            str(out),
            _Reader(images, imgsz, input_name),  # type: ignore[arg-type]
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[method],
            nodes_to_exclude=nodes_kept_in_float(prepared, first_layer_float, per_level_head),
            extra_options={
                "CalibPercentile": 99.999,
                "TensorQuantOverrides": overrides,
                # min/max ranges merged every 8 images (the same ranges, bounded memory: at 640 px every
                # intermediate tensor of one image is ~180 MB); the histogram methods keep them all.
                "CalibMaxIntermediateOutputs": 8,
                # ONNX Runtime calls the calibrator once per chunk (_Reader.set_range), whatever the method.
                **({"CalibStridedMinMax": chunk} if chunk else {}),
            },
        )
    finally:
        stem.unlink(missing_ok=True)
        prepared.unlink(missing_ok=True)
    if pixels and uint8_pixels:
        quantized = onnx.load(str(out))
        uint8_input(quantized, pixels)
        onnx.save(quantized, str(out))
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
    """fp32 + int8 files in weights/, checked, with manifest entries; returns the entries.

    Both are written to a staging folder and loaded and run by ``detector`` there; only files that
    pass move into ``weights_dir`` (a failed export leaves the shipped files as they were).
    """
    import tempfile

    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=weights_dir))
    try:
        staged = _export_checked(
            checkpoint, name, version, imgsz, calib_dir, staging, calib_count, calib_method
        )
        entries = []
        for precision, (path, info) in staged.items():
            target = weights_dir / path.name
            shutil.move(path, target)
            entries.append(
                {
                    "name": f"{name}-{version}-{precision}",
                    "version": version,
                    "precision": precision,
                    "file": target.name,
                    "sha256": sha256_file(target),
                    "classes": info["classes"],
                    "imgsz": info["imgsz"],
                    "data_version": data_version,
                    "metrics": (metrics or {}).get(precision, {}),
                }
            )
            if precision == "int8":
                entries[-1]["quantization"] = {
                    "format": "QDQ static, per-channel; activations uint8, weights int8",
                    "calibration": f"{calib_method}, {calib_count} training images",
                    "float": "box decoding after the last convolution",
                    "input": "uint8 pixels (the stem runs as SpaceToDepth + int8 convolution)",
                }
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    update_manifest(entries, f"{name}-{version}-{default_precision}", weights_dir)
    return entries


def _export_checked(
    checkpoint: Path,
    name: str,
    version: str,
    imgsz: int,
    calib_dir: Path,
    folder: Path,
    calib_count: int,
    calib_method: str,
) -> dict[str, tuple[Path, dict[str, Any]]]:
    """fp32 and int8 files in ``folder``, each loaded and run on real images by our detector."""
    fp32 = export_fp32(checkpoint, imgsz, folder / f"{name}-{version}-fp32.onnx")
    # per_level_head: a dynamic-size export computes its anchor grid from the feature maps' shapes, and
    # those nodes are not all after the last Conv; quantised, they cost 3.6 points mAP50.
    int8 = quantize_int8(
        fp32,
        folder / f"{name}-{version}-int8.onnx",
        calib_dir,
        imgsz,
        calib_count,
        calib_method,
        per_level_head=True,
    )
    probe = calibration_images(calib_dir, 8, seed=1)
    return {"fp32": (fp32, check_model(fp32, probe)), "int8": (int8, check_model(int8, probe))}
