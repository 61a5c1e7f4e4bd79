"""Error tree of the detector package (documented in ``detector/__init__.py``)."""


class DetectorError(Exception):
    """Base of every error this package raises on purpose."""


class ModelError(DetectorError):
    """The ONNX file is missing, unreadable, or not a YOLO detector we can run."""


class ImageError(DetectorError):
    """The image cannot be decoded, or is larger than allowed."""
