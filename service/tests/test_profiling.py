"""The per-frame profile (``service/db/profiling.py``) and the batch queueing it showed was costly."""

from __future__ import annotations

import json
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from service.db.profiling import Profiler
from service.worker.jobs import defer_frames, make_app


def test_stages_are_exclusive_and_count_sql_round_trips(clean_db: str, tmp_path: Path) -> None:
    profiler = Profiler(tmp_path)
    engine = create_engine(clean_db)
    profiler.watch(engine)
    with profiler.frame("worker", frame=7), profiler.stage("outer"):
        time.sleep(0.02)
        with profiler.stage("inner"), engine.begin() as conn:  # checkout, 2 statements, commit
            conn.execute(text("SELECT 1"))
            conn.execute(text("SELECT pg_sleep(0.01)"))
        sum(range(200_000))  # CPU in the outer stage
    engine.dispose()
    (line,) = [
        json.loads(x) for x in (tmp_path / next(p.name for p in tmp_path.iterdir())).read_text().splitlines()
    ]
    assert line["kind"] == "worker" and line["frame"] == 7
    assert line["stages"]["outer"] >= 20 and line["stages"]["inner"] >= 10
    assert line["stages"]["outer"] < 20 + line["stages"]["inner"]  # the inner time is not counted twice
    assert line["db_n"] == {"inner": 3} and line["db_ms"]["inner"] >= 10  # the commit is a round trip
    assert line["checkouts"] == 1
    assert line["cpu"]["outer"] < line["stages"]["outer"]  # sleeping costs no CPU
    assert line["end"] > line["start"]


def test_off_it_writes_nothing_and_returns_the_model_itself(tmp_path: Path) -> None:
    profiler = Profiler(None)
    model = object()
    with profiler.frame("worker") as record, profiler.stage("x"):
        assert record is None
    assert profiler.timed(model, "privacy model") is model


def test_a_batch_is_queued_in_one_go_and_a_waiting_frame_is_skipped(settings) -> None:  # type: ignore[no-untyped-def]
    app = make_app(settings)
    with app.open():
        assert defer_frames(app, []) == 0
        assert defer_frames(app, [1, 2, 3]) == 3
        assert defer_frames(app, [3, 4]) == 1  # 3 waits already: the batch falls back to one by one
    engine = create_engine(settings.database_url)
    with engine.connect() as conn:
        frames = sorted(
            conn.execute(text("SELECT (args->>'frame_id')::int FROM procrastinate_jobs")).scalars()
        )
    engine.dispose()
    assert frames == [1, 2, 3, 4]
