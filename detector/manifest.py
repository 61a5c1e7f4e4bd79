"""The weights manifest: which shipped model is the default, with its checksum and metrics."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from detector.errors import ModelError

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
MANIFEST_NAME = "manifest.json"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_manifest(weights_dir: Path = WEIGHTS_DIR) -> dict[str, Any]:
    """The manifest as a dict; raises ModelError when there is none."""
    path = weights_dir / MANIFEST_NAME
    if not path.is_file():
        raise ModelError(f"no model manifest at {path}: pass --weights FILE")
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: invalid JSON: {exc}") from exc
    if "default" not in manifest or "models" not in manifest:
        raise ModelError(f"{path}: expected keys 'default' and 'models'")
    return manifest


def model_entry(name: str | None = None, weights_dir: Path = WEIGHTS_DIR) -> dict[str, Any]:
    """The manifest entry of a model (default: the manifest's default)."""
    manifest = load_manifest(weights_dir)
    wanted = name or manifest["default"]
    entries: list[dict[str, Any]] = manifest["models"]
    for entry in entries:
        if entry["name"] == wanted:
            return entry
    raise ModelError(f"model {wanted!r} is not listed in {weights_dir / MANIFEST_NAME}")


def default_model_path(weights_dir: Path = WEIGHTS_DIR, verify: bool = True) -> Path:
    """Path of the default model, its sha256 checked against the manifest."""
    entry = model_entry(None, weights_dir)
    path = weights_dir / str(entry["file"])
    if not path.is_file():
        raise ModelError(f"default model {path} listed in the manifest is missing")
    if verify and entry.get("sha256") and sha256_file(path) != entry["sha256"]:
        raise ModelError(f"{path}: sha256 differs from the manifest: file changed or corrupt")
    return path
