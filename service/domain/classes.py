"""The damage classes, one list for the API, decisions, Label Studio and exports.

The order is the class id of every dataset we build and of the shipped model (``datasets.classes``).
"""

from __future__ import annotations

from datasets.classes import CANONICAL_CLASSES, DESCRIPTIONS

CLASSES: tuple[str, ...] = CANONICAL_CLASSES
POTHOLE = "D40"
CRACKS: tuple[str, ...] = ("D00", "D10", "D20")

# Cracks are often labelled one way in one frame and another way in the next (a longitudinal crack
# branching into alligator cracking); potholes are distinct.
COMPATIBLE: dict[str, tuple[str, ...]] = {name: (CRACKS if name in CRACKS else (name,)) for name in CLASSES}


def describe(name: str) -> str:
    """'pothole' for 'D40'."""
    return DESCRIPTIONS.get(name, name)


def check_class(name: object) -> str:
    """``name`` if it is one of the classes, else ValueError with the allowed ones."""
    if name not in CLASSES:
        raise ValueError(f"class must be one of {', '.join(CLASSES)}, got {name!r}")
    return str(name)
