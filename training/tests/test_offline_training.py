"""Training a tiny model from scratch and exporting it works with the network unreachable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from datasets.tests.test_build import make_rdd
from detector import Detector

ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter: every socket connection or name lookup is recorded and refused.
SCRIPT = r"""
import json, socket, sys
attempts = []
def refuse(*args, **kwargs):
    attempts.append(repr(args)[:200])
    raise OSError("network unreachable (test)")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
from pathlib import Path
from training.train import train
from training.export import export_fp32
run = train(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
onnx = export_fp32(run / "weights" / "best.pt", 64, Path(sys.argv[3]) / "tiny.onnx")
print(json.dumps({"attempts": attempts, "run": str(run), "onnx": str(onnx)}))
"""


def test_tiny_training_and_export_need_no_network(tmp_path: Path) -> None:
    frames = {i: [("D00", 5, 5, 40, 25), ("D40", 30, 30, 60, 60)] for i in range(12)}
    rdd = make_rdd(tmp_path / "rdd", frames, size=64)
    from datasets.build import build_dataset

    build_dataset([rdd], tmp_path / "ds", val_start=9, progress=False)
    env = {"PATH": "/usr/bin:/bin", "YOLO_CONFIG_DIR": str(tmp_path / "yolo-config"), "HOME": str(tmp_path)}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            str(tmp_path / "ds"),
            str(ROOT / "training/configs/tiny-test.yaml"),
            str(tmp_path / "runs"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["attempts"] == [], f"training tried to reach the network: {out['attempts']}"
    assert (Path(out["run"]) / "results.csv").exists()
    assert (tmp_path / "yolo-config" / "Ultralytics" / "Arial.ttf").exists()  # the font came from disk
    det = Detector.from_path(out["onnx"])
    assert det.names == {0: "D00", 1: "D10", 2: "D20", 3: "D40"} and det.imgsz == 64
