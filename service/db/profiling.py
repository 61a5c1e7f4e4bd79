"""Where each millisecond of a frame goes: stage timings and database round trips, for
``bench/service.py profile``.

Off unless ``ROADWATCH_PROFILE_DIR`` names a folder: then each process appends one JSON line per frame job
(worker) and per uploaded image (API) to ``<dir>/<role>-<pid>.jsonl``. A line holds the wall milliseconds of
each stage and the CPU milliseconds of the thread that ran it (``cpu``: what the stage costs whatever else
runs on the machine; ONNX Runtime with one intra-op thread runs in the calling thread), the milliseconds and round trips spent in SQL within each stage (``db_ms``, ``db_n``), the
connection checkouts (each one a ping, ``pool_pre_ping``), and the job's start and end
(``time.perf_counter``, to derive the queue's overhead between jobs). Off, a stage costs one attribute
test.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Engine, event

PROFILE_DIR_ENV = "ROADWATCH_PROFILE_DIR"
P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class Record:
    """One frame's (or one upload's) timings while it is being handled."""

    kind: str
    started: float = field(default_factory=time.perf_counter)
    stages: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # this thread's CPU ms per stage
    db_ms: dict[str, float] = field(default_factory=dict)
    db_n: dict[str, int] = field(default_factory=dict)
    checkouts: int = 0
    stage: str = "other"
    mark: float = field(default_factory=time.perf_counter)  # when the current stage last resumed
    cpu_mark: float = field(default_factory=time.thread_time)

    def switch(self, name: str) -> str:
        """Charge the time since the last switch to the current stage, make ``name`` current; returns
        the stage that was current (stages are exclusive: an inner stage pauses the outer one)."""
        now, cpu = time.perf_counter(), time.thread_time()
        self.stages[self.stage] = self.stages.get(self.stage, 0.0) + 1000 * (now - self.mark)
        self.cpu[self.stage] = self.cpu.get(self.stage, 0.0) + 1000 * (cpu - self.cpu_mark)
        outer, self.stage, self.mark, self.cpu_mark = self.stage, name, now, cpu
        return outer


class Profiler:
    """Per-thread records (the API ingests images in a thread pool), written as JSON lines."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._local = threading.local()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.folder is not None

    def _record(self) -> Record | None:
        return getattr(self._local, "record", None)

    @contextmanager
    def frame(self, kind: str, **fields: Any) -> Iterator[Record | None]:
        """Profile what runs inside as one line of ``kind`` (nothing when off)."""
        if self.folder is None:
            yield None
            return
        record = Record(kind)
        outer = self._record()
        self._local.record = record
        try:
            yield record
        finally:
            self._local.record = outer
            self._write(record, fields)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time what runs inside as stage ``name`` of the current record: exclusive (a stage inside
        another pauses it), added up when repeated; time outside every stage counts as ``other``."""
        record = self._record() if self.folder is not None else None
        if record is None:
            yield
            return
        outer = record.switch(name)
        try:
            yield
        finally:
            record.switch(outer)

    def timed(self, model: Any, name: str) -> Any:
        """``model`` whose ``predict`` runs as stage ``name`` (``model`` itself when off)."""
        return model if self.folder is None else _Timed(model, name, self)

    def _write(self, record: Record, fields: dict[str, Any]) -> None:
        assert self.folder is not None
        record.switch(record.stage)
        line = {
            "kind": record.kind,
            "pid": os.getpid(),
            "start": record.started,
            "end": time.perf_counter(),
            "stages": record.stages,
            "cpu": record.cpu,
            "db_ms": record.db_ms,
            "db_n": record.db_n,
            "checkouts": record.checkouts,
            **fields,
        }
        path = self.folder / f"{record.kind}-{os.getpid()}.jsonl"
        with self._lock, path.open("a") as out:
            out.write(json.dumps(line) + "\n")

    def watch(self, engine: Engine) -> None:
        """Count the engine's statements and connection checkouts into the current record."""
        if self.folder is None:
            return

        @event.listens_for(engine, "before_cursor_execute")
        def _before(conn: Any, cursor: Any, statement: Any, params: Any, context: Any, many: Any) -> None:
            conn.info["profile_t0"] = time.perf_counter()

        @event.listens_for(engine, "after_cursor_execute")
        def _after(conn: Any, cursor: Any, statement: Any, params: Any, context: Any, many: Any) -> None:
            record = self._record()
            if record is None:
                return
            ms = 1000 * (time.perf_counter() - conn.info.pop("profile_t0", time.perf_counter()))
            record.db_ms[record.stage] = record.db_ms.get(record.stage, 0.0) + ms
            record.db_n[record.stage] = record.db_n.get(record.stage, 0) + 1

        @event.listens_for(engine, "commit")
        def _commit(conn: Any) -> None:  # a round trip; its time stays in the stage's own
            record = self._record()
            if record is not None:
                record.db_n[record.stage] = record.db_n.get(record.stage, 0) + 1

        @event.listens_for(engine, "checkout")
        def _checkout(dbapi_connection: Any, connection_record: Any, connection_proxy: Any) -> None:
            record = self._record()
            if record is not None:
                record.checkouts += 1


class _Timed:
    def __init__(self, model: Any, name: str, profiler: Profiler) -> None:
        self._model, self._name, self._profiler = model, name, profiler

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._model, attr)

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        with self._profiler.stage(self._name):
            return self._model.predict(*args, **kwargs)


def _from_env() -> Profiler:
    folder = os.environ.get(PROFILE_DIR_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
    return Profiler(Path(folder) if folder else None)


PROFILER = _from_env()
frame = PROFILER.frame
stage = PROFILER.stage


def profiled(kind: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: each call of the function is one line of ``kind``."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            if not PROFILER.enabled:
                return fn(*args, **kwargs)
            with PROFILER.frame(kind):
                return fn(*args, **kwargs)

        return inner

    return wrap
