"""A built wheel carries every file the packages read at run time (templates, static files, locales,
migrations, training configs), not only the Python modules. (Weights and var/ are looked up beside
the source tree, WEIGHTS_DIR and PROJECT_ROOT: the service runs from a checkout.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("detector", "datasets", "training", "service", "uploader")
SKIP_DIRS = {"tests", "__pycache__", "runs"}  # tests, caches and training logs are not run-time data


def _runtime_files() -> set[str]:
    found = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*"):
            rel = path.relative_to(ROOT)
            if path.is_file() and not SKIP_DIRS & set(rel.parts) and path.suffix not in {".pyc"}:
                found.add(rel.as_posix())
    return found


def test_wheel_contains_every_runtime_file(tmp_path: Path) -> None:
    # Built from a copy of the sources: no build/ folder left in (or reused from) the checkout.
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    for name in ("README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, source)
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__", "runs")
        )
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run(
        [*command, "-w", str(tmp_path), "."], cwd=source, check=True, capture_output=True, timeout=300
    )
    (wheel,) = tmp_path.glob("*.whl")
    inside = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(_runtime_files() - inside)
    assert not missing, f"not in the wheel (declare them in pyproject's package-data): {missing}"
    assert {"service/web/templates/base.html", "service/migrations/versions/0001_initial_schema.py"} <= inside
