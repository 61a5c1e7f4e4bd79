"""Train a detector from a config file; seed it from the classic YOLOv5 checkpoint when asked."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import yaml

from training.offline import PROJECT_ROOT, configure_offline

log = logging.getLogger(__name__)
RUNS_DIR = PROJECT_ROOT / "runs"


def load_config(path: Path) -> dict[str, Any]:
    """Read a training config (see ``training/configs``); relative paths are project-relative."""
    config = yaml.safe_load(Path(path).read_text())
    if not isinstance(config, dict) or "model" not in config or "name" not in config:
        raise ValueError(f"{path}: expected a mapping with at least 'name' and 'model'")
    config.setdefault("train", {})
    return config


def _dataset_classes(data_dir: Path) -> list[str]:
    meta = yaml.safe_load((data_dir / "data.yaml").read_text())
    names = meta["names"]
    return [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)


# Activations a config may ask for instead of the architecture's own (SiLU for YOLOv5u/v8/11).
# ReLU merges into the convolution in both ONNX Runtime fp32 and int8 (no separate Sigmoid/Mul pass):
# what makes the int8 model twice as fast as fp32 on CPU (see weights/MODEL.md).
# Always written into the definition: ultralytics keeps the last built model's activation in a class
# attribute (Conv.default_act), so a definition without one would inherit ReLU from an earlier build.
ACTIVATIONS = {"silu": "nn.SiLU()", "relu": "nn.ReLU()"}


def model_definition(config: dict[str, Any]) -> dict[str, Any]:
    """The architecture dict for ``config["model"]`` (a packaged yaml), with its ``activation``."""
    from ultralytics.nn.tasks import yaml_model_load

    definition = yaml_model_load(config["model"])
    activation = config.get("activation", "silu")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    definition["activation"] = ACTIVATIONS[activation]  # stored in the checkpoint's model.yaml
    return definition


def build_start_model(config: dict[str, Any], nc: int, out: Path) -> Path:
    """Write the starting checkpoint (seeded or from scratch) as an ultralytics ``.pt``."""
    configure_offline()
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    from training.seed import load_yolov5_state_dict, transfer

    out.parent.mkdir(parents=True, exist_ok=True)
    model = YOLO(config["model"])  # a packaged *.yaml: built locally, nothing downloaded
    model.model = DetectionModel(model_definition(config), nc=nc, verbose=False)
    seed = config.get("seed_weights")
    if seed:
        seed_path = Path(seed) if Path(seed).is_absolute() else PROJECT_ROOT / seed
        copied, total = transfer(load_yolov5_state_dict(seed_path), model.model)
        log.info("seeded from %s: %d of %d tensors transferred", seed_path.name, copied, total)
        (out.parent / "seed.json").write_text(
            json.dumps({"seed": str(seed), "transferred": copied, "total": total}) + "\n"
        )
    model.save(str(out))
    return out


def train(data_dir: Path, config_path: Path, runs_dir: Path = RUNS_DIR, **overrides: Any) -> Path:
    """Train; returns the run folder (weights/best.pt, results.csv, plots)."""
    configure_offline()
    from ultralytics import YOLO

    config = load_config(config_path)
    data_dir = Path(data_dir).resolve()
    run_dir = runs_dir / config["name"]
    start = build_start_model(config, len(_dataset_classes(data_dir)), run_dir / "start" / "start.pt")
    args = {**config["train"], **overrides}
    began = time.time()
    model = YOLO(str(start))
    model.train(
        data=str(data_dir / "data.yaml"),
        project=str(runs_dir),
        name=config["name"],
        exist_ok=True,
        **args,
    )
    _record_cost(run_dir, time.time() - began)
    return run_dir


def resume(run_dir: Path) -> Path:
    """Continue an interrupted run from its ``weights/last.pt``."""
    configure_offline()
    from ultralytics import YOLO

    began = time.time()
    YOLO(str(run_dir / "weights" / "last.pt")).train(resume=True)
    _record_cost(run_dir, time.time() - began)
    return run_dir


def _record_cost(run_dir: Path, seconds: float) -> None:
    cost_file = run_dir / "cost.json"
    cost = json.loads(cost_file.read_text()) if cost_file.exists() else {"wall_seconds": []}
    cost["wall_seconds"].append(round(seconds, 1))
    cost_file.write_text(json.dumps(cost) + "\n")
