"""Service benchmarks on real PostGIS, real API and real worker processes.

    python bench/service.py throughput [--images 48] [--workers 1,2] [--models fp32,int8] [--photos generated,real]
    python bench/service.py read [--sites 200000] [--observations 1000000] [--requests 60]
    python bench/service.py profile [--images 300] [--workers 1,2] [--models fp32,int8]
        [--sizes 1280x720,1920x1080] [--real DIR]

throughput: images per second from upload to stored sites: a timer starts when the first batch is
sent and stops when the last frame is associated (``located_s``: when the last one was detected and
located), for each (workers, model, photos) triple. Photos
(``--photos generated,real``): generated road-like 1280x720 images, and the real samples (``samples/``:
RDD2022 road photos and two street photos with people) upscaled to 1280x720 and to 1920x1080.
profile: where each millisecond of a frame goes (ROADWATCH_PROFILE_DIR, ``service/db/profiling.py``):
per stage of the API's upload handling and of the worker's job, median and p95 ms per frame, the SQL
time and round trips within each, the job queue's overhead between jobs; the CPU time each process
(API, workers, PostgreSQL) spent per frame against the wall time; and the ratio of the worker's cost to
the compute floor of its two models. Photos: half real (``--real``, default ``samples/``; e.g.
``data/rdd-cm/images/val``), upscaled, half generated, one drive.
read: GET /api/v1/sites latency (p50/p95) with the given number of generated sites and observations,
for a few typical queries. Results: a table on stdout and bench/results/service-*.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    log_problems,
    scratch_database,
    start_service,
    summary_ms,
    table,
    write_result,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


def credentials(url: str) -> tuple[str, str, str]:
    from service.db.engine import make_engine, make_sessionmaker, transaction
    from service.db.users import add_user
    from service.db.vehicles import add_vehicle

    with transaction(make_sessionmaker(make_engine(url))) as session:
        _, token = add_vehicle(session, f"bench-{time.time_ns()}")
        user = f"bench{time.time_ns()}"
        add_user(session, user, "benchmark-password", "viewer")
    return token, user, "benchmark-password"


# Frames not yet through the whole pipeline: queued, or done but not yet associated (a drive segment is
# associated once all its frames are located, after the last one's detection).
UNFINISHED = (
    "SELECT count(*) FROM frame f WHERE f.status = 'queued' OR (f.status = 'done' "
    "AND NOT EXISTS (SELECT 1 FROM drive_frame d WHERE d.frame_id = f.id))"
)
PHOTO_MODES = {"generated": [(1280, 720)], "real": [(1280, 720), (1920, 1080)]}


def real_photos(n: int, size: tuple[int, int], t0: datetime) -> list[bytes]:
    """``n`` sample photos (cycled) upscaled to ``size``, with EXIF GPS 11 m apart heading north."""
    import cv2

    from geotag import Fix, with_exif

    files = sorted((ROOT / "samples").rglob("*.jpg"))
    out = []
    for i in range(n):
        image = cv2.imread(str(files[i % len(files)]))
        ok, jpeg = cv2.imencode(".jpg", cv2.resize(image, size, interpolation=cv2.INTER_CUBIC))
        assert ok
        when = t0 + timedelta(seconds=i)
        out.append(with_exif(jpeg.tobytes(), when, Fix(52.0 + i * 1e-4, 13.0, when, 0.0)))
    return out


def photo_set(kind: str, n: int, size: tuple[int, int]) -> list[bytes]:
    from tests.fixtures import T0, gps_jpeg

    if kind == "real":
        return real_photos(n, size, T0)
    return [
        gps_jpeg(52.0 + i * 1e-4, 13.0, T0 + timedelta(seconds=i), heading=0.0, seed=i, size=size)
        for i in range(n)
    ]


def model_files() -> dict[str, Path]:
    """The default damage model's files by precision (fp32, int8), from weights/manifest.json."""
    manifest = json.loads((ROOT / "weights/manifest.json").read_text())
    default = next(m for m in manifest["models"] if m["name"] == manifest["default"])
    return {
        m["precision"]: ROOT / "weights" / m["file"]
        for m in manifest["models"]
        if m["version"] == default["version"]
    }


def throughput(args: argparse.Namespace) -> None:
    files = model_files()
    rows = []
    modes = [(kind, size) for kind in args.photos.split(",") for size in PHOTO_MODES[kind]]
    for precision, workers, (kind, size) in (
        (p, int(w), m) for p in args.models.split(",") for w in args.workers.split(",") for m in modes
    ):
        url = scratch_database("roadwatch_bench_tp")
        token, _, _ = credentials(url)
        port = free_port()
        data_dir = tempfile.mkdtemp(prefix="rw-bench-")
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "ROADWATCH_DATA_DIR": data_dir,
            "ROADWATCH_MODEL_PATH": str(files[precision]),
            "ROADWATCH_THREADS": "1",
        }
        logs = [Path(data_dir) / "api.log"] + [Path(data_dir) / f"worker-{i}.log" for i in range(workers)]
        procs = [start_service(["serve", "--port", str(port)], env, logs[0])]
        procs += [start_service(["worker"], env, log) for log in logs[1:]]
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(base + "/health")
            images = photo_set(kind, args.images, size)
            time.sleep(3)  # workers loaded their model
            began = time.perf_counter()
            with httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120
            ) as client:
                for k in range(0, len(images), 8):
                    parts = [
                        ("images", (f"{k + j}.jpg", images[k + j], "image/jpeg"))
                        for j in range(min(8, len(images) - k))
                    ]
                    assert client.post("/api/v1/batches", files=parts).status_code == 202
            from sqlalchemy import create_engine, text

            engine = create_engine(url)
            located = None  # seconds until the last frame was detected and located (association follows)
            while True:
                with engine.connect() as conn:
                    queued = conn.execute(text("SELECT count(*) FROM frame WHERE status = 'queued'")).scalar()
                    left = conn.execute(text(UNFINISHED)).scalar()
                if queued == 0 and located is None:
                    located = time.perf_counter() - began
                if left == 0:
                    break
                time.sleep(0.2)
            elapsed = time.perf_counter() - began
            with engine.connect() as conn:
                sites = conn.execute(text("SELECT count(*) FROM damage_site")).scalar()
            engine.dispose()
            rows.append(
                {
                    "model": precision,
                    "workers": workers,
                    "photos": kind,
                    "size": f"{size[0]}x{size[1]}",
                    "images": len(images),
                    "located_s": located,
                    "seconds": elapsed,
                    "images_per_s": len(images) / elapsed,
                    "sites": sites,
                    "log_problems": log_problems(logs),
                    "logs": data_dir,
                }
            )
            print(table(rows[-1:], list(rows[-1])), flush=True)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(20)
    columns = [
        "model",
        "workers",
        "photos",
        "size",
        "images",
        "located_s",
        "seconds",
        "images_per_s",
        "sites",
        "log_problems",
    ]
    print(table(rows, columns))
    print(f"written to {write_result('service-throughput', {'rows': rows})}")


def mixed_photos(n: int, size: tuple[int, int], real_dir: Path) -> list[bytes]:
    """One drive of ``n`` photos 11 m apart, 1 s apart: even ones real (``real_dir``, cycled, upscaled),
    odd ones generated."""
    import cv2

    from geotag import Fix, with_exif
    from tests.fixtures import T0, gps_jpeg

    files = sorted(real_dir.rglob("*.jpg"))
    out = []
    for i in range(n):
        when, lat = T0 + timedelta(seconds=i), 52.0 + i * 1e-4
        if i % 2 or not files:
            out.append(gps_jpeg(lat, 13.0, when, heading=0.0, seed=i, size=size))
            continue
        image = cv2.imread(str(files[(i // 2) % len(files)]))
        ok, jpeg = cv2.imencode(".jpg", cv2.resize(image, size, interpolation=cv2.INTER_CUBIC))
        assert ok
        out.append(with_exif(jpeg.tobytes(), when, Fix(lat, 13.0, when, 0.0)))
    return out


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (0 for one that is gone)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def postgres_pids() -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/comm"):
        try:
            if stat.read_text().strip() == "postgres":
                out.append(int(stat.parent.name))
        except OSError:
            continue
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _lines(folder: Path, kind: str) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for f in sorted(folder.glob(f"{kind}-*.jsonl"))
        for line in f.read_text().splitlines()
    ]


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


def stage_rows(lines: list[dict[str, Any]], side: str, per: float = 1.0) -> list[dict[str, Any]]:
    """Median, p95 and mean ms per stage over ``lines`` (each divided by ``per``), SQL ms and round trips."""
    names = list(dict.fromkeys(k for line in lines for k in line["stages"]))
    rows = []
    for name in names:
        ms = [line["stages"].get(name, 0.0) / per for line in lines]
        rows.append(
            {
                "side": side,
                "stage": name,
                "median_ms": statistics.median(ms),
                "p95_ms": _pct(ms, 0.95),
                "mean_ms": statistics.fmean(ms),
                "cpu_ms": statistics.fmean([line["cpu"].get(name, 0.0) / per for line in lines]),
                "sql_ms": statistics.fmean([line["db_ms"].get(name, 0.0) / per for line in lines]),
                "round_trips": statistics.fmean([line["db_n"].get(name, 0) / per for line in lines]),
            }
        )
    return rows


def queue_gaps_ms(lines: list[dict[str, Any]]) -> list[float]:
    """Per worker process, the time between the end of one job and the start of the next (fetching the
    next job, finishing the last): the job queue's overhead while it is busy."""
    gaps = []
    for pid in {line["pid"] for line in lines}:
        jobs = sorted((line["start"], line["end"]) for line in lines if line["pid"] == pid)
        gaps += [1000 * (b[0] - a[1]) for a, b in itertools.pairwise(jobs)]
    return gaps


def compute_floor_ms(damage: Path, privacy: Path) -> dict[str, float]:
    """Both models' GFLOPs on a 16:9 frame (damage 416x256, privacy 640x384: letterboxed to the stride)
    at the float32 matrix-multiply rate of one thread (as bench/detector.py)."""
    from bench.detector import matmul_gflops, model_gflops

    rate = matmul_gflops(1)
    g_damage, g_privacy = model_gflops(damage, (256, 416)), model_gflops(privacy, (384, 640))
    return {
        "damage_gflops": g_damage,
        "privacy_gflops": g_privacy,
        "matmul_gflops_per_s": rate,
        "floor_ms": 1000 * (g_damage + g_privacy) / rate,
    }


def profile(args: argparse.Namespace) -> None:
    files = model_files()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    runs, all_stages = [], []
    for size in sizes:
        images = mixed_photos(args.images, size, args.real)
        for precision in args.models.split(","):
            for workers in (int(w) for w in args.workers.split(",")):
                run, stages = _profile_run(args, images, size, files[precision], precision, workers)
                runs.append(run)
                all_stages += stages
                print(
                    table(
                        stages,
                        [
                            "stage",
                            "side",
                            "median_ms",
                            "p95_ms",
                            "mean_ms",
                            "cpu_ms",
                            "sql_ms",
                            "round_trips",
                        ],
                    )
                )
                print(table([run], list(run)), flush=True)
    floor = compute_floor_ms(files["fp32"], ROOT / "weights/privacy-persons-vehicles.onnx")
    for run in runs:
        run["cost_over_floor"] = run["cpu_ms_per_frame"] / floor["floor_ms"]
    columns = [
        "size",
        "model",
        "workers",
        "concurrency",
        "images",
        "seconds",
        "images_per_s",
        "wall_core_ms_per_frame",
        "api_cpu_ms",
        "worker_cpu_ms",
        "postgres_cpu_ms",
        "cpu_ms_per_frame",
        "stages_cpu_ms",
        "stages_sum_ms",
        "queue_gap_ms",
        "cost_over_floor",
        "worker_rss_mb",
        "api_rss_mb",
    ]
    print(table(runs, columns))
    print(
        f"compute floor: damage {floor['damage_gflops']:.2f} + privacy {floor['privacy_gflops']:.2f} GFLOPs "
        f"at {floor['matmul_gflops_per_s']:.1f} GFLOP/s (1 thread) = {floor['floor_ms']:.1f} ms per frame"
    )
    result = {
        "images": args.images,
        "real": str(args.real),
        "floor": floor,
        "runs": runs,
        "stages": all_stages,
    }
    print(f"written to {write_result('service-profile', result)}")


def _profile_run(
    args: argparse.Namespace,
    images: list[bytes],
    size: tuple[int, ...],
    model: Path,
    precision: str,
    workers: int,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from sqlalchemy import create_engine, text

    url = scratch_database("roadwatch_bench_profile")
    token, _, _ = credentials(url)
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="rw-bench-")
    folder = Path(tempfile.mkdtemp(prefix="rw-profile-"))
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "ROADWATCH_DATA_DIR": data_dir,
        "ROADWATCH_MODEL_PATH": str(model),
        "ROADWATCH_THREADS": "1",
        "ROADWATCH_PROFILE_DIR": str(folder),
    }
    logs = Path(data_dir)
    api = start_service(["serve", "--port", str(port)], env, logs / "api.log")
    procs = [api] + [
        start_service(["worker", "--concurrency", str(args.concurrency)], env, logs / f"worker-{i}.log")
        for i in range(workers)
    ]
    base = f"http://127.0.0.1:{port}"
    engine = create_engine(url)
    try:
        wait_http(base + "/health")
        time.sleep(3)  # workers loaded their models
        pids = [p.pid for p in procs]
        before = {pid: cpu_s([pid]) for pid in pids}
        pg_before = {pid: cpu_s([pid]) for pid in postgres_pids()}
        began = time.perf_counter()
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
            for k in range(0, len(images), 8):
                parts = [
                    ("images", (f"{k + j}.jpg", images[k + j], "image/jpeg"))
                    for j in range(min(8, len(images) - k))
                ]
                assert client.post("/api/v1/batches", files=parts).status_code == 202
        while True:
            with engine.connect() as conn:
                if conn.execute(text(UNFINISHED)).scalar() == 0:
                    break
            time.sleep(0.1)
        elapsed = time.perf_counter() - began
        cpu = {pid: cpu_s([pid]) - before[pid] for pid in pids}
        pg_now = postgres_pids()
        pg_cpu = sum(cpu_s([pid]) - pg_before.get(pid, 0.0) for pid in pg_now)
        rss = {pid: rss_mb(pid) for pid in pids}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(20)
        engine.dispose()
    n = len(images)
    uploads, jobs, queue = _lines(folder, "upload"), _lines(folder, "worker"), _lines(folder, "queue")
    stages = stage_rows(uploads, "api") + stage_rows(queue, "api", per=8.0) + stage_rows(jobs, "worker")
    gaps = queue_gaps_ms(jobs)
    stages.append(
        {
            "side": "worker",
            "stage": "job queue (between jobs)",
            "median_ms": statistics.median(gaps) if gaps else 0.0,
            "p95_ms": _pct(gaps, 0.95),
            "mean_ms": statistics.fmean(gaps) if gaps else 0.0,
            "cpu_ms": 0.0,
            "sql_ms": 0.0,
            "round_trips": 0.0,
        }
    )
    config = {
        "size": f"{size[0]}x{size[1]}",
        "model": precision,
        "workers": workers,
        "concurrency": args.concurrency,
    }
    for row in stages:
        row.update(config)
    run = {
        **config,
        "images": n,
        "seconds": elapsed,
        "images_per_s": n / elapsed,
        "wall_core_ms_per_frame": 1000 * elapsed * (os.cpu_count() or 1) / n,
        "api_cpu_ms": 1000 * cpu[api.pid] / n,
        "worker_cpu_ms": 1000 * sum(v for k, v in cpu.items() if k != api.pid) / n,
        "postgres_cpu_ms": 1000 * pg_cpu / n,
        "cpu_ms_per_frame": 1000 * (sum(cpu.values()) + pg_cpu) / n,
        "stages_sum_ms": sum(r["mean_ms"] for r in stages),
        "stages_cpu_ms": sum(r["cpu_ms"] for r in stages),
        "queue_gap_ms": statistics.median(gaps) if gaps else 0.0,
        "checkouts_per_frame": statistics.fmean([line["checkouts"] for line in jobs]) if jobs else 0.0,
        "worker_rss_mb": max(v for k, v in rss.items() if k != api.pid),
        "api_rss_mb": rss[api.pid],
        "jobs": len(jobs),
    }
    return run, stages


def populate(url: str, n_sites: int, n_obs: int) -> None:
    """Generated sites, frames and observations, loaded with COPY (fast)."""
    import psycopg

    rng = np.random.default_rng(0)
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    now = datetime.now(UTC)
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO vehicle (name, token_hash, camera_height_m, camera_pitch_deg, camera_hfov_deg, active) "
            "VALUES ('gen', repeat('0', 64), 1.4, 10, 100, true) RETURNING id"
        )
        vehicle = cur.fetchone()[0]
        cur.execute(
            "INSERT INTO upload_batch (id, vehicle_id, counts, meta) VALUES (gen_random_uuid(), %s, '{}', '{}') "
            "RETURNING id",
            (vehicle,),
        )
        batch = cur.fetchone()[0]
        # A city of about 30 x 20 km around Cologne.
        lat = 50.85 + rng.random(n_sites) * 0.18
        lon = 6.80 + rng.random(n_sites) * 0.42
        classes = rng.choice(["D00", "D10", "D20", "D40"], n_sites, p=[0.45, 0.25, 0.2, 0.1])
        statuses = rng.choice(
            ["open", "confirmed", "rejected", "scheduled", "repaired"], n_sites, p=[0.6, 0.2, 0.1, 0.05, 0.05]
        )
        prio = rng.random(n_sites) * 100
        with cur.copy(
            "COPY damage_site (public_id, class_name, class_votes, position, position_weight, severity, "
            "max_confidence, sightings, n_observations, priority, score_components, ranking_version, status, "
            "first_seen, last_seen) FROM STDIN"
        ) as copy:
            for i in range(n_sites):
                copy.write_row(
                    (
                        str(__import__("uuid").uuid4()),
                        classes[i],
                        "{}",
                        f"SRID=4326;POINT({lon[i]} {lat[i]})",
                        1.0,
                        "medium",
                        0.7,
                        5,
                        n_obs // n_sites,
                        float(prio[i]),
                        '{"components": {}}',
                        "bench",
                        statuses[i],
                        now,
                        now,
                    )
                )
        n_frames = n_obs // 10
        with cur.copy(
            "COPY frame (sha256, vehicle_id, batch_id, filename, captured_at, position, location_source, "
            "width, height, status, image_key) FROM STDIN"
        ) as copy:
            for i in range(n_frames):
                copy.write_row(
                    (
                        f"{i:064x}",
                        vehicle,
                        batch,
                        "gen.jpg",
                        now,
                        f"SRID=4326;POINT({lon[i % n_sites]} {lat[i % n_sites]})",
                        "exif",
                        1280,
                        720,
                        "done",
                        f"{i:064x}",
                    )
                )
        cur.execute("SELECT min(id) FROM damage_site")
        first_site = cur.fetchone()[0]
        cur.execute("SELECT min(id) FROM frame")
        first_frame = cur.fetchone()[0]
        with cur.copy(
            "COPY observation (frame_id, site_id, class_name, confidence, x1, y1, x2, y2, position) FROM STDIN"
        ) as copy:
            for i in range(n_obs):
                s = i % n_sites
                copy.write_row(
                    (
                        first_frame + i // 10,
                        first_site + s,
                        classes[s],
                        0.6,
                        100,
                        400,
                        300,
                        500,
                        f"SRID=4326;POINT({lon[s]} {lat[s]})",
                    )
                )
        cur.execute("ANALYZE")
        conn.commit()


def read_latency(args: argparse.Namespace) -> None:
    url = scratch_database("roadwatch_bench_read")
    began = time.perf_counter()
    populate(url, args.sites, args.observations)
    load_s = time.perf_counter() - began
    _, user, password = credentials(url)
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="rw-bench-")
    env = {**os.environ, "DATABASE_URL": url, "ROADWATCH_DATA_DIR": data_dir}
    server = start_service(["serve", "--port", str(port)], env, Path(data_dir) / "api.log")
    rows = []
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/health")
        queries = {
            "top 100, no filter": "/api/v1/sites?limit=100",
            "top 100 open potholes": "/api/v1/sites?status=open&class=D40&limit=100",
            "bbox 1 km2, top 100": "/api/v1/sites?bbox=6.95,50.93,6.964,50.939&limit=100",
            "bbox 1/4 city, top 100": "/api/v1/sites?bbox=6.8,50.85,7.01,50.94&limit=100",
            "page 50 (offset 5000)": "/api/v1/sites?limit=100&offset=5000",
        }
        with httpx.Client(base_url=base, auth=(user, password), timeout=60) as client:
            for label, path in queries.items():
                for _ in range(3):
                    client.get(path).raise_for_status()
                samples = []
                for _ in range(args.requests):
                    start_t = time.perf_counter()
                    r = client.get(path)
                    samples.append(time.perf_counter() - start_t)
                    r.raise_for_status()
                rows.append({"query": label, **summary_ms(samples), "features": len(r.json()["features"])})
    finally:
        server.terminate()
        server.wait(20)
    print(table(rows, ["query", "median_ms", "p95_ms", "features"]))
    print(f"{args.sites} sites, {args.observations} observations loaded in {load_s:.0f} s")
    print(
        f"written to {write_result('service-read', {'sites': args.sites, 'observations': args.observations, 'rows': rows})}"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("throughput")
    p.add_argument("--images", type=int, default=48)
    p.add_argument("--workers", default="1,2")
    p.add_argument("--models", default="fp32,int8")
    p.add_argument("--photos", default="generated,real", help="generated and/or real (samples/, upscaled)")
    p = sub.add_parser("profile")
    p.add_argument("--images", type=int, default=300)
    p.add_argument("--workers", default="1,2")
    p.add_argument("--models", default="fp32,int8")
    p.add_argument("--sizes", default="1280x720,1920x1080")
    p.add_argument("--real", type=Path, default=ROOT / "samples", help="real photos (cycled, upscaled)")
    p.add_argument("--concurrency", type=int, default=1, help="jobs at a time in each worker process")
    p = sub.add_parser("read")
    p.add_argument("--sites", type=int, default=200_000)
    p.add_argument("--observations", type=int, default=1_000_000)
    p.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()
    {"throughput": throughput, "read": read_latency, "profile": profile}[args.command](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
