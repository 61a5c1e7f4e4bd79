"""The service's fixtures (real PostGIS: `settings`, `app`, `client`, `vehicle_token`, `staff`), with a
database of our own so a whole-suite run never shares one with service/tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from service.tests.conftest import app, clean_db, client, settings, staff, vehicle_token

__all__ = ["app", "clean_db", "client", "database_url", "settings", "staff", "vehicle_token"]


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from service.migrate import upgrade

    admin = os.environ.get("ROADWATCH_TEST_DATABASE_URL")
    if not admin:
        pytest.fail("ROADWATCH_TEST_DATABASE_URL is not set: run the tests with `make test`")
    name = f"roadwatch_uploader_test_{os.getpid()}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()
