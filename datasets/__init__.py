"""Public road-damage datasets -> one YOLO dataset with the canonical classes.

Errors (one small tree, all subclasses of :class:`DatasetError`):

- :class:`LabelFormatError`: a label file (XML, YOLO line, JSON export) cannot be parsed; the message
  names the file and, where known, the line.
- :class:`SourceError`: a source folder has no layout we know.
"""

from datasets.classes import CANONICAL_CLASSES, REPAIR_CLASS
from datasets.errors import DatasetError, LabelFormatError, SourceError
from datasets.records import Box, Sample

__all__ = [
    "CANONICAL_CLASSES",
    "REPAIR_CLASS",
    "Box",
    "DatasetError",
    "LabelFormatError",
    "Sample",
    "SourceError",
]
