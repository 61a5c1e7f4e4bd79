"""The canonical damage classes and the name maps of the public sets we read."""

from __future__ import annotations

# Order is the class id in every dataset we build and in the shipped model.
CANONICAL_CLASSES: tuple[str, ...] = ("D00", "D10", "D20", "D40")
DESCRIPTIONS: dict[str, str] = {
    "D00": "longitudinal crack",
    "D10": "transverse crack",
    "D20": "alligator crack",
    "D40": "pothole",
    "Repair": "repaired patch",
}
# RDD's repaired patches: not damage, kept only on request (``--keep-repair``).
REPAIR_CLASS = "Repair"

# Known aliases -> canonical name. Keys are compared case-insensitively.
ALIASES: dict[str, str] = {
    # Roboflow "Road crack detection and classification" (Indonesian names).
    "retak-buaya": "D20",
    "retak-memanjang": "D00",
    "retak-melintang": "D10",
    "lubang": "D40",
    # Plain English names, as annotators tend to type them.
    "longitudinal crack": "D00",
    "transverse crack": "D10",
    "alligator crack": "D20",
    "pothole": "D40",
}


def class_names(keep_repair: bool = False) -> tuple[str, ...]:
    """The class list of a built dataset: the canonical four, plus ``Repair`` when kept."""
    return CANONICAL_CLASSES + ((REPAIR_CLASS,) if keep_repair else ())


def canonical_name(name: str, extra: dict[str, str] | None = None) -> str | None:
    """Map a source's class name to a canonical one, or ``None`` when it is unknown."""
    stripped = name.strip()
    if stripped in CANONICAL_CLASSES or stripped == REPAIR_CLASS:
        return stripped
    if extra:
        for key, value in extra.items():
            if key.lower() == stripped.lower():
                return value
    return ALIASES.get(stripped.lower())
