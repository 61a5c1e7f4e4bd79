"""Make ultralytics work without any network: settings, font, no auto-install.

Must run before ultralytics is imported: it reads these variables at import time.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_DIR = PROJECT_ROOT / ".cache" / "ultralytics"


def configure_offline(config_dir: Path | None = None) -> Path:
    """Point ultralytics at a project folder with its fonts present; forbid downloads."""
    config_dir = Path(os.environ.get("YOLO_CONFIG_DIR") or config_dir or DEFAULT_CONFIG_DIR)
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    os.environ.setdefault("YOLO_VERBOSE", "true")
    fonts = config_dir / "Ultralytics"
    fonts.mkdir(parents=True, exist_ok=True)
    # Plots label boxes with Arial; ultralytics downloads it when missing. DejaVu ships with
    # matplotlib (an ultralytics dependency) and covers non-ASCII class names too.
    import matplotlib

    dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        if not (fonts / name).exists():
            shutil.copyfile(dejavu, fonts / name)
    return config_dir
