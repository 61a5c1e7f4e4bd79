"""The edit count of bench/preannotation.py: what an annotator does to turn proposals into the truth."""

from __future__ import annotations

from bench.preannotation import edits


def test_edits_count_kept_fixed_deleted_and_added_boxes() -> None:
    truth = [(0, (0.0, 0.0, 10.0, 10.0)), (1, (20.0, 0.0, 30.0, 10.0)), (2, (50.0, 0.0, 60.0, 10.0))]
    proposed = [
        (0, (0.0, 0.0, 10.0, 9.0)),  # the first box, right class: kept
        (2, (20.0, 0.0, 30.0, 10.0)),  # the second box, wrong class: relabelled (fixed)
        (3, (80.0, 0.0, 90.0, 10.0)),  # nothing there: deleted
    ]  # the third true box: added
    assert edits(truth, proposed) == {"kept": 1, "fixed": 1, "deleted": 1, "added": 1}
    # A box shifted by half its width (IoU 1/3): moved, one edit, not a delete and an add.
    assert edits(truth[:1], [(0, (5.0, 0.0, 15.0, 10.0))]) == {
        "kept": 0,
        "fixed": 1,
        "deleted": 0,
        "added": 0,
    }
    # From nothing every true box is drawn; one proposal matches at most one true box.
    assert edits(truth, []) == {"kept": 0, "fixed": 0, "deleted": 0, "added": 3}
    assert edits(truth[:1], [(0, (0.0, 0.0, 10.0, 10.0))] * 2) == {
        "kept": 1,
        "fixed": 0,
        "deleted": 1,
        "added": 0,
    }
