"""The privacy audit's label files (bench/privacy_audit.py): the fixed first set and the frames added
later load together, a frame labelled twice is refused, and each set gets its own recall row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.privacy_audit import DEFAULT_LABELS, Outcome, load_labels, recall_row, subsets


def write(path: Path, frames: dict[str, list[dict[str, object]]]) -> Path:
    path.write_text(json.dumps(frames))
    return path


def obj(cls: str, box: list[int], legible: bool = False) -> dict[str, object]:
    return {"class": cls, "box": box, "face_or_plate_legible": legible}


def test_two_files_load_with_their_set_names(tmp_path: Path) -> None:
    first = write(tmp_path / "set-1.json", {"a.jpg": [obj("person", [0, 0, 10, 20])]})
    second = write(tmp_path / "set-2.json", {"b.jpg": [obj("vehicle", [5, 5, 50, 40], True)]})
    labels = load_labels([first, second])
    assert [(lab.frame, lab.cls, lab.part) for lab in labels] == [
        ("a.jpg", "person", "set-1"),
        ("b.jpg", "vehicle", "set-2"),
    ]
    assert labels[1].legible and labels[1].box == (5, 5, 50, 40)


def test_a_frame_labelled_in_two_files_is_refused(tmp_path: Path) -> None:
    first = write(tmp_path / "set-1.json", {"a.jpg": [obj("person", [0, 0, 10, 20])]})
    second = write(tmp_path / "set-2.json", {"a.jpg": [obj("vehicle", [5, 5, 50, 40])]})
    with pytest.raises(ValueError, match="labelled in"):
        load_labels([first, second])


@pytest.mark.parametrize("bad", [obj("dog", [0, 0, 5, 5]), obj("person", [10, 0, 5, 5])])
def test_wrong_class_or_box_is_refused(tmp_path: Path, bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"a\.jpg"):
        load_labels(write(tmp_path / "x.json", {"a.jpg": [bad]}))


def test_each_set_is_reported_on_its_own(tmp_path: Path) -> None:
    first = write(tmp_path / "set-1.json", {"a.jpg": [obj("person", [0, 0, 10, 20])]})
    second = write(
        tmp_path / "set-2.json",
        {"b.jpg": [obj("vehicle", [5, 5, 50, 40])], "c.jpg": [obj("person", [1, 1, 9, 9])]},
    )
    labels = load_labels([first, second])
    covered = {"a.jpg": 1.0, "b.jpg": 0.5, "c.jpg": 0.9}
    outcomes = [Outcome(lab, covered[lab.frame], covered[lab.frame], 0.0, 20.0, False) for lab in labels]
    rows = {
        name: recall_row(name, group, 0.8)
        for name, group in subsets(outcomes, 0.8, dict.fromkeys(covered, "src"))
    }
    assert rows["set-1 (1 frames)"]["protected_model"] == 1
    assert rows["set-2 (2 frames)"]["n"] == 2 and rows["set-2 (2 frames)"]["protected_model"] == 1
    assert rows["all objects"]["n"] == 3


def test_the_shipped_label_files_load() -> None:
    labels = load_labels([p for p in DEFAULT_LABELS if p.is_file()])
    assert len({lab.frame for lab in labels if lab.part == "privacy_audit_labels"}) == 103
