"""The ONNX Runtime detector. ``__init__`` is trivial; load with :meth:`Detector.from_path`."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from detector.errors import ModelError
from detector.postprocess import decode, nms, to_source
from detector.preprocess import letterbox, to_tensor, to_uint8_tensor
from detector.records import Detection


def _parse_names(raw: str) -> dict[int, str]:
    try:
        value = ast.literal_eval(raw)  # a Python dict literal; literal_eval never runs code
    except (ValueError, SyntaxError) as exc:
        raise ModelError(f"metadata 'names' is not a literal dict: {raw[:80]!r}") from exc
    if isinstance(value, list):
        value = dict(enumerate(value))
    if not isinstance(value, dict) or not value:
        raise ModelError(f"metadata 'names' must be a non-empty dict, got {type(value).__name__}")
    return {int(k): str(v) for k, v in value.items()}


def _parse_imgsz(raw: str) -> int:
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError) as exc:
        raise ModelError(f"metadata 'imgsz' is not a literal: {raw!r}") from exc
    sizes = value if isinstance(value, list | tuple) else [value]
    if not sizes or len(set(sizes)) != 1 or not isinstance(sizes[0], int):
        raise ModelError(f"expected a square input size, got imgsz={raw}")
    return int(sizes[0])


STRIDE = 32  # the largest stride of the YOLO heads: input sides must be multiples of it


class Detector:
    """A YOLO detection model exported to ONNX by ultralytics, run with ONNX Runtime."""

    def __init__(self, session: ort.InferenceSession, names: dict[int, str], imgsz: int) -> None:
        self.session = session
        self.names = names
        self.imgsz = imgsz
        self.input_name = session.get_inputs()[0].name
        # Float models take pixel / 255; our int8 exports take the uint8 pixels themselves.
        self.uint8_input = session.get_inputs()[0].type == "tensor(uint8)"
        batch_dim, *_, height_dim, width_dim = session.get_inputs()[0].shape
        self.fixed_batch = batch_dim if isinstance(batch_dim, int) else None
        # A model exported with dynamic height and width takes each frame letterboxed only to the next
        # multiple of its stride (32), not to a square: the grey padding costs nothing then.
        self.stride = None if isinstance(height_dim, int) and isinstance(width_dim, int) else STRIDE

    @classmethod
    def from_path(cls, path: Path | str, threads: int | None = None) -> Detector:
        """Load a model; reads class names and input size from the export's metadata.

        ``threads``: intra-op threads (None: 1; several processes with one thread each give more
        throughput than one process with many). The caller decides (the service from its settings).
        """
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads or 1)
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"{path}: not a loadable ONNX model: {exc}") from exc
        meta = session.get_modelmeta().custom_metadata_map
        task = meta.get("task", "detect")
        if task != "detect":
            raise ModelError(f"{path}: expected a YOLO detection model, got task={task!r}")
        if "names" not in meta or "imgsz" not in meta:
            raise ModelError(f"{path}: no 'names'/'imgsz' metadata: not an ultralytics YOLO export")
        if meta.get("end2end", "False") == "True":
            raise ModelError(f"{path}: end-to-end (NMS in graph) exports are not supported")
        names, imgsz = _parse_names(meta["names"]), _parse_imgsz(meta["imgsz"])
        shape = session.get_outputs()[0].shape
        if len(shape) != 3 or (isinstance(shape[1], int) and shape[1] != 4 + len(names)):
            raise ModelError(
                f"{path}: expected output (batch, {4 + len(names)}, N) for {len(names)} classes, got {shape}"
            )
        return cls(session, names, imgsz)

    def predict(
        self,
        image: np.ndarray[Any, Any],
        conf: float = 0.25,
        iou: float = 0.45,
        max_det: int = 300,
        multi_label: bool = False,
        imgsz: int | None = None,
    ) -> list[Detection]:
        """Detections of one BGR image, boxes in its pixels, highest confidence first.

        ``imgsz``: the longer side of the model's input for this call (default: the export's); only a
        model with a dynamic input size (:attr:`dynamic_size`) runs at another size."""
        return self.predict_batch([image], conf, iou, max_det, multi_label, imgsz)[0]

    @property
    def dynamic_size(self) -> bool:
        """Whether the export takes any input height and width (then each frame is padded only to the stride)."""
        return self.stride is not None

    def predict_batch(
        self,
        images: Sequence[np.ndarray[Any, Any]],
        conf: float = 0.25,
        iou: float = 0.45,
        max_det: int = 300,
        multi_label: bool = False,
        imgsz: int | None = None,
    ) -> list[list[Detection]]:
        """Detections of several images; one inference call per batch the model accepts."""
        size = self.imgsz if imgsz is None else imgsz
        if size != self.imgsz and not self.dynamic_size:
            raise ModelError(f"this model's input is fixed at {self.imgsz} px: it cannot run at {size} px")
        if size < STRIDE:
            raise ModelError(f"input size {size} px is below the model's stride {STRIDE}")
        prepared = [letterbox(img, size, self.stride) for img in images]
        # Frames of different shapes cannot share a batch on a dynamic-size model: one call each then.
        same = len({p[0].shape for p in prepared}) <= 1
        step = self.fixed_batch or (max(len(prepared), 1) if same else 1)
        results: list[list[Detection]] = []
        for start in range(0, len(prepared), step):
            chunk = prepared[start : start + step]
            tensor = (to_uint8_tensor if self.uint8_input else to_tensor)([p[0] for p in chunk])
            heads = self.session.run(None, {self.input_name: tensor})[0]
            for head, (_, lb) in zip(heads, chunk, strict=True):
                boxes, scores, classes = decode(head, conf, multi_label)
                keep = nms(boxes, scores, classes, iou, max_det)
                src = to_source(boxes[keep], lb)
                results.append(
                    [
                        Detection(
                            int(c),
                            self.names.get(int(c), str(c)),
                            float(s),
                            (float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                        )
                        for b, s, c in zip(src, scores[keep], classes[keep], strict=True)
                        if b[2] > b[0] and b[3] > b[1]  # wholly in the padding: nothing of the image
                    ]
                )
        return results
