"""Small helpers shared by the benchmarks: timing, tables, result files, machine description."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
PROBLEMS = ("ERROR", "Traceback", "deadlock", "WARNING")  # log lines worth a look after a run


def start_service(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``python -m service ARGS`` from the repository root, its output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "service", *args],
            cwd=RESULTS.parent.parent,
            env=env,
            stdout=out,
            stderr=out,
        )


def log_problems(logs: list[Path]) -> int:
    """Lines in the logs that name an error, a traceback, a deadlock or a warning."""
    return sum(
        any(word in line for word in PROBLEMS)
        for log in logs
        if log.is_file()
        for line in log.read_text(errors="replace").splitlines()
    )


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load1": os.getloadavg()[0],
    }


def time_calls(fn: Callable[[], object], repeat: int, warmup: int = 2) -> list[float]:
    """Seconds per call, ``repeat`` times after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def summary_ms(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {
        "median_ms": statistics.median(ms),
        "p95_ms": ms[min(len(ms) - 1, int(0.95 * len(ms)))],
        "mean_ms": statistics.fmean(ms),
    }


def spread(values: list[float], digits: int = 4) -> dict[str, float]:
    """Mean, min and max of a measure over seeds (or runs), rounded."""
    return {
        "mean": round(statistics.fmean(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def write_result(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"machine": machine(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **payload}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def scratch_database(name: str) -> str:
    """A fresh, migrated database ``name`` on the project-local cluster (started if needed)."""
    import subprocess

    from service.db.migrate import create_database

    root = Path(__file__).resolve().parent.parent
    subprocess.run(["scripts/devdb.sh", "start"], cwd=root, check=True, capture_output=True)
    admin = subprocess.run(
        ["scripts/devdb.sh", "url"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PGDATABASE": "postgres"},
    ).stdout.strip()
    return create_database(admin, name)
