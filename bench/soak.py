"""Loopback soak of the API (issue 18): concurrent vehicle uploaders for a bounded time against a real API
process on real PostGIS, with a share of hostile requests; counts errors and samples the API's memory.

    python bench/soak.py [--uploaders 20] [--duration-s 120] [--batch 4] [--workers 0]
        [--size 320x240] [--interval-s 0]

The memory run of issue 17: ``--workers 2 --size 1280x720 --duration-s 600 --interval-s 3`` (20 vehicles
each sending a batch of 4 dashcam-sized photos every 3 s, about 27 photos per second, while 2 workers
process them): the workers' memory is sampled too, and the frames processed and failed are counted.

Each uploader is its own vehicle: it asks ``/frames/missing``, sends a batch of fresh generated photos,
sends one of them again (``duplicate``), and every few rounds one hostile request (no token: 401; a
declared 16 GB body: 413; metadata nested 100,000 deep: 422; a health check). An error is any exception
or an answer other than the expected one. The API's resident memory (VmRSS) is sampled every 5 s.
Results: a table on stdout (per 15 s: requests, errors, memory) and bench/results/soak.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import scratch_database, start_service, table, write_result  # noqa: E402
from bench.service import free_port, wait_http  # noqa: E402
from tests.fixtures import T0  # noqa: E402


def vehicles(url: str, n: int) -> list[str]:
    from service.db.engine import make_engine, make_sessionmaker, transaction
    from service.db.vehicles import add_vehicle

    with transaction(make_sessionmaker(make_engine(url))) as session:
        return [add_vehicle(session, f"soak-{i}-{time.time_ns()}")[1] for i in range(n)]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class PhotoSource:
    """Unique photos of one size, cheap enough that 20 uploaders do not starve the server of CPU: a small
    size is generated per photo; a dashcam size takes one of 16 pre-encoded road images and writes its
    own EXIF (time, position) into it, so every photo's bytes differ."""

    def __init__(self, size: tuple[int, int]) -> None:
        from tests.fixtures import gps_jpeg

        self.size = size
        self.pool = (
            [gps_jpeg(None, None, None, seed=k, size=size) for k in range(16)] if size[0] > 640 else []
        )

    def __call__(self, lat: float, when: Any, seed: int) -> bytes:
        from geotag import Fix, with_exif
        from tests.fixtures import gps_jpeg

        if not self.pool:
            return gps_jpeg(lat, 13.0, when, heading=0.0, seed=seed, size=self.size)
        return with_exif(self.pool[seed % len(self.pool)], when, Fix(lat, 13.0, when, 0.0))


class Uploader(threading.Thread):
    def __init__(
        self,
        index: int,
        base: str,
        token: str,
        batch: int,
        stop: threading.Event,
        log: list[Any],
        photo: PhotoSource,
        interval_s: float = 0.0,
    ):
        super().__init__(daemon=True)
        self.index, self.base, self.token, self.batch, self.stop, self.log = (
            index,
            base,
            token,
            batch,
            stop,
            log,
        )
        self.photo, self.interval_s = photo, interval_s

    def record(self, kind: str, ok: bool, detail: str = "") -> None:
        self.log.append((time.monotonic(), kind, ok, detail))

    def photos(self, round_no: int) -> list[bytes]:
        return [
            self.photo(
                52.0 + self.index * 1e-3 + (round_no * self.batch + k) * 1e-5,
                T0 + timedelta(seconds=round_no * self.batch + k),
                (self.index * 100_000 + round_no * self.batch + k) % 2**31,
            )
            for k in range(self.batch)
        ]

    def expect(self, kind: str, response: httpx.Response, status: int) -> None:
        ok = response.status_code == status
        self.record(kind, ok, "" if ok else f"{response.status_code} {response.text[:120]}")

    def hostile(self, client: httpx.Client, round_no: int) -> None:
        auth = {"Authorization": f"Bearer {self.token}"}
        which = round_no % 4
        if which == 0:
            files = [("images", ("a.jpg", b"x" * 100, "image/jpeg"))]
            self.expect("no_token", client.post("/api/v1/batches", files=files), 401)
        elif which == 1:  # raw socket: clients refuse to declare a length they do not send
            self.record("oversized", *self.oversized())
        elif which == 2:
            deep = "[" * 100_000 + "]" * 100_000
            files = [("images", ("a.jpg", self.photos(10_000 + round_no)[0], "image/jpeg"))]
            r = client.post("/api/v1/batches", files=files, data={"metadata": deep}, headers=auth)
            self.expect("deep_metadata", r, 422)
        else:
            self.expect("health", client.get("/health"), 200)

    def oversized(self) -> tuple[bool, str]:
        """A 16 GB body declared (over the batch limit), none sent: the answer must be 413 at once."""
        import socket

        host, port = self.base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(
                (
                    f"POST /api/v1/batches HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {self.token}\r\n"
                    f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {16 << 30}\r\n\r\n"
                ).encode()
            )
            status_line = sock.makefile("rb").readline().decode("latin-1").strip()
        ok = status_line.split(" ")[1:2] == ["413"]
        return ok, "" if ok else status_line

    def run(self) -> None:
        import hashlib

        auth = {"Authorization": f"Bearer {self.token}"}
        round_no = 0
        with httpx.Client(base_url=self.base, timeout=60) as client:
            while not self.stop.is_set():
                try:
                    photos = self.photos(round_no)
                    hashes = [hashlib.sha256(p).hexdigest() for p in photos]
                    r = client.post("/api/v1/frames/missing", json={"sha256": hashes}, headers=auth)
                    self.expect("missing", r, 200)
                    files = [
                        ("images", (f"{round_no}-{k}.jpg", p, "image/jpeg")) for k, p in enumerate(photos)
                    ]
                    r = client.post("/api/v1/batches", files=files, headers=auth)
                    ok = r.status_code == 202 and all(i["status"] == "queued" for i in r.json()["images"])
                    self.record("batch", ok, "" if ok else f"{r.status_code} {r.text[:120]}")
                    again = client.post("/api/v1/batches", files=files[:1], headers=auth)
                    ok = again.status_code == 202 and again.json()["images"][0]["status"] == "duplicate"
                    self.record("duplicate", ok, "" if ok else f"{again.status_code} {again.text[:120]}")
                    if round_no % 3 == 2:
                        self.hostile(client, round_no)
                    if self.interval_s:
                        self.stop.wait(self.interval_s)
                except Exception as exc:  # a refused connection, a timeout: an error of the soak
                    self.record("exception", False, f"{type(exc).__name__}: {exc}"[:200])
                round_no += 1


MEMORY_COLUMNS = ("process", "start_mb", "after_warmup_mb", "max_mb", "end_mb", "growth_after_warmup_mb")


def memory_summary(series: list[tuple[float, float]], warmup_s: float) -> dict[str, float]:
    """Resident memory of one process: at start, after the warm-up, its peak, at the end, and the growth
    from the warm-up to the end (flat: close to 0)."""
    after = [m for t, m in series if t >= warmup_s] or [series[-1][1]]
    return {
        "start_mb": round(series[0][1], 1),
        "after_warmup_mb": round(after[0], 1),
        "max_mb": round(max(m for _, m in series), 1),
        "end_mb": round(series[-1][1], 1),
        "growth_after_warmup_mb": round(series[-1][1] - after[0], 1),
    }


def frame_counts(url: str) -> dict[str, int]:
    """Frames by status when the uploads stopped (queued: the workers' backlog)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT status::text, count(*) FROM frame GROUP BY 1")).all()
    engine.dispose()
    return {status: n for status, n in rows}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--uploaders", type=int, default=20)
    parser.add_argument("--duration-s", type=float, default=120.0)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument(
        "--workers", type=int, default=0, help="worker processes beside the API (0: API only)"
    )
    parser.add_argument("--size", default="320x240", help="photo size, e.g. 1280x720 (dashcam)")
    parser.add_argument("--interval-s", type=float, default=0.0, help="each uploader's pause between rounds")
    parser.add_argument("--warmup-s", type=float, default=60.0, help="memory growth is counted after this")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    photo = PhotoSource((width, height))

    url = scratch_database("roadwatch_bench_soak")
    tokens = vehicles(url, args.uploaders)
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="rw-soak-"))
    env = {**os.environ, "DATABASE_URL": url, "ROADWATCH_DATA_DIR": str(data_dir)}
    api = start_service(["serve", "--port", str(port)], env, data_dir / "api.log")
    workers = [start_service(["worker"], env, data_dir / f"worker-{i}.log") for i in range(args.workers)]
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/health")
        log: list[Any] = []
        stop = threading.Event()
        started = time.monotonic()
        procs = {"api": api, **{f"worker-{i}": w for i, w in enumerate(workers)}}
        samples = {name: [(0.0, rss_mb(p.pid))] for name, p in procs.items()}
        memory = samples["api"]
        threads = [
            Uploader(i, base, t, args.batch, stop, log, photo, args.interval_s) for i, t in enumerate(tokens)
        ]
        for thread in threads:
            thread.start()
        while time.monotonic() - started < args.duration_s:
            time.sleep(5)
            for name, p in procs.items():
                samples[name].append((time.monotonic() - started, rss_mb(p.pid)))
        stop.set()
        for thread in threads:
            thread.join(90)
        for name, p in procs.items():
            samples[name].append((time.monotonic() - started, rss_mb(p.pid)))
        frames = frame_counts(url)
    finally:
        for proc in [api, *workers]:
            proc.terminate()
        for proc in [api, *workers]:
            proc.wait(30)

    step = 15.0
    rows = []
    for k in range(int(args.duration_s // step) + 1):
        lo, hi = k * step, (k + 1) * step
        window = [e for e in log if lo <= e[0] - started < hi]
        mem = [m for t, m in memory if lo <= t < hi] or [memory[-1][1]]
        rows.append(
            {
                "from_s": int(lo),
                "requests": len(window),
                "errors": sum(1 for e in window if not e[2]),
                "rss_mb": round(max(mem), 1),
            }
        )
    kinds = Counter(e[1] for e in log)
    errors = [e for e in log if not e[2]]
    first_mb = memory[1][1] if len(memory) > 1 else memory[0][1]
    summary = {
        "uploaders": args.uploaders,
        "duration_s": args.duration_s,
        "batch": args.batch,
        "workers": args.workers,
        "requests": len(log),
        "by_kind": dict(kinds),
        "errors": len(errors),
        "errors_by_kind": dict(Counter(e[1] for e in errors)),
        "error_samples": sorted({f"{e[1]}: {e[3]}" for e in errors})[:10],
        "photos_sent": kinds["batch"] * args.batch,
        "rss_mb_start": round(memory[0][1], 1),
        "rss_mb_after_warmup": round(first_mb, 1),
        "rss_mb_max": round(max(m for _, m in memory), 1),
        "rss_mb_end": round(memory[-1][1], 1),
        "memory": [{"t_s": round(t, 1), "rss_mb": round(m, 1)} for t, m in memory],
        "per_15_s": rows,
        "size": args.size,
        "interval_s": args.interval_s,
        "frames": frames,
        "processes": {name: memory_summary(series, args.warmup_s) for name, series in samples.items()},
        "worker_memory": {
            name: [round(m, 1) for _, m in series] for name, series in samples.items() if name != "api"
        },
    }
    print(table(rows, ["from_s", "requests", "errors", "rss_mb"]))
    print(
        f"\n{len(log)} requests by {args.uploaders} uploaders in {args.duration_s:.0f} s, {len(errors)} errors; "
        f"API memory {summary['rss_mb_start']} MB at start, {summary['rss_mb_after_warmup']} MB after 5 s, "
        f"max {summary['rss_mb_max']} MB, {summary['rss_mb_end']} MB at the end"
    )
    print(table([{"process": k, **v} for k, v in summary["processes"].items()], list(MEMORY_COLUMNS)))
    print(f"frames: {frames}")
    for sample in summary["error_samples"]:
        print("  error:", sample)
    print("API log:", data_dir / "api.log")
    print(write_result("soak", summary))


if __name__ == "__main__":
    main()
