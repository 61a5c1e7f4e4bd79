"""ONNX Runtime inference of YOLO road-damage models; never imports torch or ultralytics.

Errors (one small tree, all subclasses of :class:`DetectorError`):

- :class:`ModelError`: the model file is missing, not ONNX, or not an ultralytics YOLO detector.
- :class:`ImageError`: an image cannot be decoded or exceeds the pixel limit.
"""

from detector.errors import DetectorError, ImageError, ModelError
from detector.model import Detector
from detector.preprocess import check_image, decode_image, read_image
from detector.records import Detection

__all__ = [
    "Detection",
    "Detector",
    "DetectorError",
    "ImageError",
    "ModelError",
    "check_image",
    "decode_image",
    "read_image",
]
