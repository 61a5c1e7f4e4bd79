"""Dependency direction: service -> detector <- training -> datasets; inference never loads torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "ultralytics", "torchvision")


@pytest.mark.parametrize(
    "module", ["detector", "detector.cli", "datasets", "datasets.cli", "service.app", "service.cli.main"]
)
def test_import_does_not_load_torch(module: str) -> None:
    code = f"import sys, {module}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing {module} loaded {out.stdout.strip()}"


def test_detector_and_datasets_import_none_of_our_other_packages() -> None:
    for package, banned in {
        "detector": ("service", "training", "datasets"),
        "datasets": ("service", "training", "detector"),
    }.items():
        for path in (ROOT / package).rglob("*.py"):
            if "tests" in path.parts:
                continue
            text = path.read_text()
            for name in banned:
                assert f"from {name}" not in text and f"import {name}" not in text, f"{path} imports {name}"
