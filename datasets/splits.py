"""Deterministic train/val splits by contiguous blocks (neighbouring frames are near-duplicates)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def block_split(
    numbers: Sequence[int], val_start: int | None = None, val_fraction: float = 0.18
) -> list[str]:
    """Split sequence data into one contiguous validation block at the end.

    With ``val_start``, frames numbered ``>= val_start`` are validation. Otherwise the last
    ``ceil(n * val_fraction)`` frames in number order are. Returns ``"train"``/``"val"`` per input,
    in input order. A random split would put near-identical neighbouring frames on both sides.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if val_start is None:
        ordered = sorted(numbers)
        n_val = math.ceil(len(ordered) * val_fraction)
        val_start = ordered[len(ordered) - n_val] if n_val else (max(ordered, default=0) + 1)
    return ["val" if n >= val_start else "train" for n in numbers]
