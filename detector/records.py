"""The central record: one detection, validated at construction."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Detection:
    """One detected damage: class, confidence and box (x1, y1, x2, y2) in source pixels."""

    class_id: int
    class_name: str
    confidence: float
    box: tuple[float, float, float, float]

    def __post_init__(self) -> None:
        if self.class_id < 0:
            raise ValueError(f"class_id must be >= 0, got {self.class_id}")
        if not 0.0 <= self.confidence <= 1.0 or math.isnan(self.confidence):
            raise ValueError(f"confidence must be in [0, 1], got {self.confidence}")
        if len(self.box) != 4 or not all(math.isfinite(v) for v in self.box):
            raise ValueError(f"box must be 4 finite numbers, got {self.box}")
        x1, y1, x2, y2 = self.box
        if x2 < x1 or y2 < y1:
            raise ValueError(f"box must have x2 >= x1 and y2 >= y1, got {self.box}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the CLI and the service."""
        return {
            "class_id": self.class_id,
            "class_name": self.class_name,
            "confidence": round(self.confidence, 4),
            "box": [round(v, 1) for v in self.box],
        }
