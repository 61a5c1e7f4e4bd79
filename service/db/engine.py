"""Engine and sessions. Repository functions elsewhere take the session as their first argument."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from service.db.profiling import PROFILER


def make_engine(url: str, pool_size: int = 5) -> Engine:
    engine = create_engine(url, pool_size=pool_size, max_overflow=10, pool_pre_ping=True)
    PROFILER.watch(engine)  # off unless ROADWATCH_PROFILE_DIR is set
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits on success and rolls back on any error."""
    with factory() as session, session.begin():
        yield session
