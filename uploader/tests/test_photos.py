"""Finding, locating and sampling photos, without a server (dry runs)."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path

import pytest

from geotag import interpolate, parse_track
from tests.fixtures import gps_jpeg
from uploader.journal import Journal
from uploader.photos import Scanner
from uploader.sync import Options, Uploader
from uploader.tests.helpers import drive, gpx, metres, nmea, write_photos


def dry_run(folder: Path, **options: object) -> tuple[Uploader, Journal]:
    journal = Journal(folder / ".j.sqlite", dry_run=True)
    uploader = Uploader(folder, journal, None, Options(dry_run=True, **options))  # type: ignore[arg-type]
    uploader.send_once(settle_s=0)
    return uploader, journal


def rows(journal: Journal) -> list[tuple[str, str, float | None, float | None, str]]:
    return list(
        journal.db.execute("SELECT path, state, lat, lon, source FROM photos ORDER BY captured_at, path")
    )


def test_distance_sampling_on_generated_track(tmp_path: Path) -> None:
    # 1 photo/s: 3 m/s, stopped (with 1 m of GPS jitter), 10 m/s, then crawling at 0.5 m/s.
    speeds = [3.0] * 15 + [0.0] * 10 + [10.0] * 8 + [0.5] * 12
    points = drive(len(speeds), speeds)
    for i in range(15, 25):  # a stopped vehicle's GPS wanders by up to a metre
        points[i].lon += (1.0 if i % 2 else -1.0) / 74_000
    write_photos(tmp_path, points)
    uploader, journal = dry_run(tmp_path, every_m=4.0)
    got = rows(journal)
    assert [r[0] for r in got] == sorted(r[0] for r in got)  # capture order
    kept = [(r[2], r[3]) for r in got if r[1] == "pending"]
    skipped = [r for r in got if r[1] == "skipped"]
    assert len(kept) + len(skipped) == len(points) == uploader.stats.found
    gaps = [metres(a, b) for a, b in itertools.pairwise(kept)]
    assert all(g >= 4.0 for g in gaps), gaps
    assert all(g < 4.0 + 10.0 for g in gaps)  # never more than one step beyond the spacing
    driven = metres(kept[0], (points[-1].lat, points[-1].lon))
    assert int(driven // 10.5) <= len(kept) - 1 <= int(driven // 4.0)
    stopped = {f"IMG_{i:04d}.jpg" for i in range(16, 25)}
    assert stopped <= {r[0] for r in skipped}, "the jitter of a stopped vehicle must not add photos"
    reasons = [r[0] for r in journal.db.execute("SELECT reason FROM photos WHERE state = 'skipped'")]
    assert all(r.startswith("sampled out: ") for r in reasons), reasons
    assert uploader.summary()["skipped"] == len(skipped) and uploader.summary()["would_send"] == len(kept)


@pytest.mark.parametrize("fmt", ["gpx", "nmea"])
def test_track_matching_with_clock_offset(tmp_path: Path, fmt: str) -> None:
    points = drive(20, [8.0] * 20, dt_s=2.0)
    offset = 37.0  # the camera clock is 37 s behind GPS time
    write_photos(tmp_path / "DCIM", points[3:17], exif_gps=False, camera_offset_s=offset)
    track_text = gpx(points) if fmt == "gpx" else nmea(points)
    (tmp_path / f"drive.{'gpx' if fmt == 'gpx' else 'nmea'}").write_text(track_text)
    _, journal = dry_run(tmp_path, clock_offset_s=offset)
    got = rows(journal)
    assert len(got) == 14 and {r[4] for r in got} == {"track"}
    track = parse_track(track_text.encode(), fmt)
    for (path, _, lat, lon, _), p in zip(got, points[3:17], strict=True):
        assert path.startswith("DCIM/")
        assert metres((lat, lon), (p.lat, p.lon)) < 0.5, path  # where the vehicle really was
        fix = interpolate(track, p.time - timedelta(seconds=offset), clock_offset_s=offset)
        assert fix is not None and metres((lat, lon), (fix.lat, fix.lon)) < 0.01
    stored = journal.pending()[0]
    assert stored.captured_at == points[3].time  # GPS time, not the camera's
    journal.close()
    # Without the offset the photos land 37 s (~150 m) too early on the road, or off the track.
    _, wrong = dry_run(tmp_path)
    for (_, _, lat, lon, source), p in zip(rows(wrong), points[3:17], strict=True):
        assert source == "none" or metres((lat, lon), (p.lat, p.lon)) > 100


def test_photos_without_position_are_kept_even_when_sampling(tmp_path: Path) -> None:
    points = drive(3, [0.0] * 3)
    write_photos(tmp_path, points, exif_gps=False)
    (tmp_path / "x.jpg").write_bytes(gps_jpeg(None, None, None, size=(64, 48)))  # no EXIF time either
    uploader, journal = dry_run(tmp_path, every_m=50.0)
    assert [r[1] for r in rows(journal)] == ["pending"] * 4
    assert {r[4] for r in rows(journal)} == {"none"} and uploader.stats.would_send == 4


def test_only_files_of_stable_size_are_taken(tmp_path: Path) -> None:
    data = gps_jpeg(1.0, 2.0, None, size=(64, 48))
    journal = Journal(tmp_path / ".j.sqlite", dry_run=True)
    scanner = Scanner(tmp_path)
    (tmp_path / "a.jpg").write_bytes(data[:1000])  # still being copied
    (tmp_path / ".hidden.jpg").write_bytes(data)
    (tmp_path / "notes.txt").write_text("not a photo")
    assert scanner.poll(journal) == ([], 1)
    with open(tmp_path / "a.jpg", "ab") as f:
        f.write(data[1000:])
    assert scanner.poll(journal) == ([], 1)  # grew since the last poll
    ready, unstable = scanner.poll(journal)
    assert [c.rel for c in ready] == ["a.jpg"] and unstable == 0
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert scanner.poll(journal)[1] == 1 and scanner.poll(journal)[1] == 1  # empty files wait


def test_same_bytes_under_two_names_are_one_photo(tmp_path: Path) -> None:
    paths = write_photos(tmp_path, drive(2))
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "again.jpg").write_bytes(paths[0].read_bytes())
    uploader, journal = dry_run(tmp_path)
    assert len(rows(journal)) == 2 and uploader.stats.would_send == 2
    assert journal.known_file("copy/again.jpg") is not None
