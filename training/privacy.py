"""The privacy model: a person/vehicle detector for blurring, from the classic YOLOv5n v6.1 COCO checkpoint.

The checkpoint's backbone and neck (``model.0`` .. ``model.23``) have the structure and tensor names of
ultralytics' ``yolov5nu.yaml`` layers 0..23, so those layers are built by ultralytics and filled with
the checkpoint's tensors. Its head (``model.24``) is the classic anchor-based Detect, which ultralytics
no longer has: :class:`ClassicHead` re-implements it, decoding boxes in the graph exactly as YOLOv5
v6.1 does, and writes them in the ultralytics export layout ``(1, 4 + nc, N)`` (cx, cy, w, h in input
pixels, then per-class scores = objectness * class probability) so that ``detector.Detector`` runs the
exported file unchanged. Only the six COCO classes we must blur are kept.

The checkpoint is read with :func:`training.seed.load_yolov5_state_dict`, never by unpickling its classes.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from training.seed import load_yolov5_state_dict

COCO_KEEP = (0, 1, 2, 3, 5, 7)  # person, bicycle, car, motorcycle, bus, truck
PRIVACY_NAMES = {0: "person", 1: "bicycle", 2: "car", 3: "motorcycle", 4: "bus", 5: "truck"}
STRIDES = (8.0, 16.0, 32.0)
FEATURE_LAYERS = (17, 20, 23)  # P3, P4, P5 outputs of the neck, as in yolov5nu.yaml
HEAD = "model.24."
LICENSE = (
    "AGPL-3.0-or-later: derived from the YOLOv5n v6.1 COCO checkpoint by Ultralytics (AGPL-3.0); "
    "COCO annotations CC BY 4.0"
)


def make_grid(ny: int, nx: int) -> torch.Tensor:
    """Cell offsets ``(2, ny, nx)``: row 0 the column index x, row 1 the row index y."""
    ys, xs = torch.meshgrid(
        torch.arange(ny, dtype=torch.float32), torch.arange(nx, dtype=torch.float32), indexing="ij"
    )
    return torch.stack((xs, ys))


def anchors_to_pixels(anchors: torch.Tensor, strides: Sequence[float]) -> torch.Tensor:
    """YOLOv5 stores ``model.24.anchors`` ``(nl, na, 2)`` in grid cells (pixels / stride): back to pixels."""
    if anchors.ndim != 3 or anchors.shape[0] != len(strides) or anchors.shape[2] != 2:
        raise ValueError(f"expected anchors (levels={len(strides)}, na, 2), got {tuple(anchors.shape)}")
    return anchors * torch.tensor(strides, dtype=anchors.dtype).view(-1, 1, 1)


def decode_level(raw: torch.Tensor, anchors_px: torch.Tensor, stride: float) -> torch.Tensor:
    """One level's raw conv output ``(B, na*(5+nc), ny, nx)`` -> ``(B, 4+nc, na*ny*nx)``.

    YOLOv5 v6.1 decoding: ``y = sigmoid(raw)``; ``xy = (2y - 0.5 + grid) * stride``;
    ``wh = (2y)^2 * anchor``; score = objectness * class probability. Columns are ordered
    anchor-major, then row, then column.
    """
    batch, channels = raw.shape[0], raw.shape[1]
    # Sizes read from the tensor (not Python ints): the export has a dynamic height and width, so the
    # grid is computed in the graph from each input's feature-map size.
    ny, nx, na = raw.shape[2], raw.shape[3], int(anchors_px.shape[0])
    if channels % na or channels // na < 6:
        raise ValueError(f"{channels} channels is not {na} anchors x (5 + nc)")
    y = raw.view(batch, na, channels // na, ny, nx).sigmoid()
    grid = make_grid(ny, nx).to(raw.dtype)
    xy = (y[:, :, 0:2] * 2 - 0.5 + grid) * stride
    wh = (y[:, :, 2:4] * 2) ** 2 * anchors_px.view(1, na, 2, 1, 1).to(raw.dtype)
    scores = y[:, :, 4:5] * y[:, :, 5:]
    out = torch.cat((xy, wh, scores), dim=2)  # (B, na, 4+nc, ny, nx)
    return out.transpose(1, 2).reshape(batch, channels // na - 1, na * ny * nx)


def head_channels(na: int, nc_source: int, keep: Sequence[int]) -> list[int]:
    """Output channels of a classic head conv to keep: per anchor its 5 box/objectness rows + ``keep``."""
    if any(not 0 <= c < nc_source for c in keep):
        raise ValueError(f"class ids {list(keep)} out of range for {nc_source} classes")
    no = 5 + nc_source
    return [a * no + k for a in range(na) for k in (*range(5), *(5 + c for c in keep))]


class ClassicHead(nn.Module):
    """YOLOv5's anchor-based Detect (1x1 conv per level), decoding in the graph to ``(B, 4+nc, N)``."""

    def __init__(
        self, channels: Sequence[int], nc: int, anchors_px: torch.Tensor, strides: Sequence[float] = STRIDES
    ) -> None:
        super().__init__()
        if len(channels) != len(strides) or anchors_px.shape[0] != len(strides):
            raise ValueError("channels, strides and anchor levels must have the same length")
        self.na, self.nc, self.strides = int(anchors_px.shape[1]), nc, tuple(float(s) for s in strides)
        self.m = nn.ModuleList(nn.Conv2d(c, self.na * (5 + nc), 1) for c in channels)
        self.register_buffer("anchors_px", anchors_px.clone().float())

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        anchors: torch.Tensor = self.anchors_px  # type: ignore[assignment]
        levels = [
            decode_level(conv(x), anchors[i], self.strides[i])
            for i, (conv, x) in enumerate(zip(self.m, features, strict=True))
        ]
        return torch.cat(levels, dim=2)


class PrivacyYolo(nn.Module):
    """Ultralytics layers 0..23 (``model.0`` .. ``model.23``) + :class:`ClassicHead` as ``model.24``."""

    def __init__(self, layers: Sequence[nn.Module], head: ClassicHead) -> None:
        super().__init__()
        self.model = nn.ModuleList([*layers, head])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x: Any = images
        outputs: list[Any] = []
        for layer in list(self.model)[:-1]:
            # Ultralytics' routing: -1 is the previous layer's output, other ints index earlier ones.
            source: Any = layer.f
            if source != -1:
                x = (
                    outputs[source]
                    if isinstance(source, int)
                    else [x if j == -1 else outputs[j] for j in source]
                )
            x = layer(x)
            outputs.append(x)
        return self.model[-1]([outputs[i] for i in FEATURE_LAYERS])


def yolov5nu_layers() -> list[nn.Module]:
    """Ultralytics' ``yolov5nu.yaml`` layers 0..23 (random weights), with their routing attributes."""
    from training.offline import configure_offline

    configure_offline()
    from ultralytics.nn.tasks import DetectionModel

    layers = cast(nn.Sequential, DetectionModel("yolov5nu.yaml", nc=80, verbose=False).model)
    return list(layers)[: FEATURE_LAYERS[-1] + 1]


def load_backbone(state: dict[str, torch.Tensor], model: PrivacyYolo) -> int:
    """Copy every backbone/neck tensor from ``state``; refuse if any is missing or mis-shaped."""
    target = {k: v for k, v in model.state_dict().items() if not k.startswith(HEAD)}
    bad = [k for k, v in target.items() if k not in state or state[k].shape != v.shape]
    if bad:
        raise ValueError(
            f"{len(bad)} backbone tensors missing or mis-shaped in the checkpoint, e.g. {bad[:3]}"
        )
    result = model.load_state_dict({k: state[k] for k in target}, strict=False)
    assert not result.unexpected_keys and all(k.startswith(HEAD) for k in result.missing_keys)
    return len(target)


def load_head(state: dict[str, torch.Tensor], head: ClassicHead, keep: Sequence[int]) -> int:
    """Copy the classic head's convs, keeping only the rows of the ``keep`` classes; returns tensors used."""
    na = head.na
    for i, conv in enumerate(cast(list[nn.Conv2d], list(head.m))):
        weight, bias = state[f"{HEAD}m.{i}.weight"], state[f"{HEAD}m.{i}.bias"]
        nc_source = weight.shape[0] // na - 5
        rows = head_channels(na, nc_source, keep)
        with torch.no_grad():
            conv.weight.copy_(weight[rows])
            cast(torch.Tensor, conv.bias).copy_(bias[rows])
    return 2 * len(head.m)


def build_privacy_model(
    state: dict[str, torch.Tensor], keep: Sequence[int] = COCO_KEEP
) -> tuple[PrivacyYolo, dict[str, int]]:
    """The model in eval mode, and how many checkpoint tensors went into it (backbone, head)."""
    if f"{HEAD}anchors" not in state:
        found = sorted(k for k in state if k.startswith(HEAD))
        raise ValueError(f"no {HEAD}anchors in the checkpoint (head tensors: {found})")
    anchors_px = anchors_to_pixels(state[f"{HEAD}anchors"], STRIDES)
    layers = yolov5nu_layers()
    channels = [int(state[f"{HEAD}m.{i}.weight"].shape[1]) for i in range(len(STRIDES))]
    head = ClassicHead(channels, len(keep), anchors_px)
    model = PrivacyYolo(layers, head)
    counts = {"backbone": load_backbone(state, model), "head": load_head(state, head, keep) + 1}
    return model.eval(), counts


def export_onnx(
    model: nn.Module, out: Path, imgsz: int, names: dict[int, str], extra: dict[str, str] | None = None
) -> Path:
    """ONNX opset 17, input ``images`` 1x3xHxW with H and W dynamic (any multiple of 32: a 16:9 frame
    runs at 640x384 instead of 640x640, ``detector`` letterboxes to the stride), output ``output0``,
    ultralytics-style metadata (``imgsz``: the longer side)."""
    import onnx

    out.parent.mkdir(parents=True, exist_ok=True)
    # The tracer warns about the shapes in decode_level and the exporter about being the TorchScript
    # one: both are intended (the shapes are traced as graph ops; no onnxscript dependency).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        torch.onnx.export(
            model.eval(),
            (torch.zeros(1, 3, imgsz, imgsz),),
            str(out),
            opset_version=17,
            input_names=["images"],
            output_names=["output0"],
            dynamic_axes={"images": {2: "height", 3: "width"}, "output0": {2: "anchors"}},
            dynamo=False,  # as ultralytics exports
        )
    proto = onnx.load(str(out))
    # No export date: the same checkpoint then gives a byte-identical file.
    metadata = {
        "description": "Roadwatch privacy model: persons and vehicles to blur (YOLOv5n v6.1 COCO, classic head)",
        "author": "Roadwatch",
        "license": LICENSE,
        "stride": str(int(max(STRIDES))),
        "task": "detect",
        "batch": "1",
        "imgsz": str([imgsz, imgsz]),
        "names": str(names),
        "channels": "3",
        "end2end": "False",
        **(extra or {}),
    }
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out))
    return out


def build_privacy_onnx(checkpoint: Path, out: Path, imgsz: int = 640) -> dict[str, Any]:
    """Checkpoint -> checked ONNX file; returns a summary (tensors transferred, anchors, size)."""
    import numpy as np

    from detector import Detector

    state = load_yolov5_state_dict(checkpoint)
    model, counts = build_privacy_model(state)
    sha = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    export_onnx(model, out, imgsz, PRIVACY_NAMES, {"source": f"{checkpoint.name} sha256:{sha}"})
    detector = Detector.from_path(out)  # refuse to ship a file our detector cannot run
    if detector.names != PRIVACY_NAMES or detector.imgsz != imgsz:
        raise ValueError(f"{out}: metadata read back as {detector.names}, imgsz {detector.imgsz}")
    detector.predict(np.full((imgsz, imgsz, 3), 114, np.uint8))
    head: ClassicHead = model.model[-1]  # type: ignore[assignment]
    return {
        "out": str(out),
        "bytes": out.stat().st_size,
        "tensors": {**counts, "checkpoint_total": len(state)},
        "anchors_px": head.anchors_px.round().int().tolist(),  # type: ignore[operator]
        "names": PRIVACY_NAMES,
        "imgsz": imgsz,
    }


CALIBRATION_MIN_CONFIDENCE = 0.3  # a calibration photo shows at least one person or vehicle this sure


def street_photos(
    folders: Sequence[Path],
    exclude: set[str],
    count: int,
    fp32: Path,
    seed: int = 0,
    min_confidence: float = CALIBRATION_MIN_CONFIDENCE,
) -> list[Path]:
    """``count`` photos under ``folders`` in which the fp32 privacy model sees a person or vehicle.

    Candidates are every image under the folders whose file name is not in ``exclude`` (the audit
    frames: calibrating on them would flatter the audit), taken in a seeded random order until
    ``count`` have a detection at ``min_confidence``; returned sorted. The same inputs give the same list.
    """
    import numpy as np

    from detector import Detector, read_image

    suffixes = {".jpg", ".jpeg", ".png"}
    candidates = sorted(
        p
        for folder in folders
        for p in folder.rglob("*")
        if p.suffix.lower() in suffixes and p.name not in exclude
    )
    if not candidates:
        raise ValueError(f"no candidate calibration photos under {[str(f) for f in folders]}")
    detector = Detector.from_path(fp32, threads=1)
    chosen: list[Path] = []
    for i in np.random.default_rng(seed).permutation(len(candidates)):
        if detector.predict(read_image(candidates[i]), conf=min_confidence):
            chosen.append(candidates[i])
            if len(chosen) == count:
                break
    if len(chosen) < count:
        raise ValueError(
            f"only {len(chosen)} of {len(candidates)} photos show a person or vehicle; wanted {count}"
        )
    return sorted(chosen)


def build_privacy_int8(
    fp32: Path,
    out: Path,
    folders: Sequence[Path],
    exclude: set[str],
    count: int = 100,
    method: str = "minmax",
    chunk: int | None = None,
) -> dict[str, Any]:
    """The int8 privacy model, quantised as the damage model is (:func:`training.export.quantize_int8`)
    with the in-graph decoding of every level kept in float, calibrated on :func:`street_photos`;
    checked with ``detector``. Returns a summary (calibration photos, sha256, size)."""
    import numpy as np

    from detector import Detector
    from detector.manifest import sha256_file
    from training.export import quantize_int8

    photos = street_photos(folders, exclude, count, fp32)
    source = Detector.from_path(fp32)
    quantize_int8(fp32, out, photos, source.imgsz, method=method, per_level_head=True, chunk=chunk)
    detector = Detector.from_path(out)  # refuse to ship a file our detector cannot run
    if detector.names != source.names or detector.imgsz != source.imgsz:
        raise ValueError(f"{out}: metadata read back as {detector.names}, imgsz {detector.imgsz}")
    detector.predict(np.full((detector.imgsz, detector.imgsz, 3), 114, np.uint8))
    return {
        "out": str(out),
        "bytes": out.stat().st_size,
        "sha256": sha256_file(out),
        "uint8_input": detector.uint8_input,
        "calibration": {"method": method, "chunk": chunk, "photos": [p.name for p in photos]},
    }
