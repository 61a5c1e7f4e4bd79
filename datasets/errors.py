"""Error tree of the datasets package (documented in ``datasets/__init__.py``)."""

from __future__ import annotations

from pathlib import Path


class DatasetError(Exception):
    """Base of every error this package raises on purpose."""


class LabelFormatError(DatasetError):
    """A label file cannot be parsed. Names the file and, where known, the line."""

    def __init__(self, path: Path | str, message: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {message}")


class SourceError(DatasetError):
    """A source folder has no layout we recognise."""
