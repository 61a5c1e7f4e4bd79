"""The central records of the package: a labelled box and a sample (image + boxes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Box:
    """One labelled box in normalised image coordinates (0..1, top-left origin)."""

    name: str
    x1: float
    y1: float
    x2: float
    y2: float

    def __post_init__(self) -> None:
        for value in (self.x1, self.y1, self.x2, self.y2):
            if not -0.01 <= value <= 1.01:
                raise ValueError(f"box coordinate out of range: expected 0..1, got {value}")
        if self.x2 <= self.x1 or self.y2 <= self.y1:
            raise ValueError(
                f"empty box: expected x2 > x1 and y2 > y1, got "
                f"({self.x1:.4f}, {self.y1:.4f}, {self.x2:.4f}, {self.y2:.4f})"
            )

    def clipped(self) -> Box:
        """The same box clipped to the image."""
        return Box(
            self.name,
            min(max(self.x1, 0.0), 1.0),
            min(max(self.y1, 0.0), 1.0),
            min(max(self.x2, 0.0), 1.0),
            min(max(self.y2, 0.0), 1.0),
        )

    def yolo_line(self, class_id: int) -> str:
        """``class cx cy w h``, normalised, as ultralytics reads it."""
        b = self.clipped()
        return (
            f"{class_id} {(b.x1 + b.x2) / 2:.6f} {(b.y1 + b.y2) / 2:.6f} {b.x2 - b.x1:.6f} {b.y2 - b.y1:.6f}"
        )


@dataclass
class Sample:
    """One image with its boxes, as read from a source, before class mapping."""

    image: Path
    key: str  # unique output stem, e.g. "rdd_China_MotorBike_000123"
    split: str  # "train" or "val"
    width: int
    height: int
    boxes: list[Box] = field(default_factory=list)
