"""Fixtures for service tests: a real PostGIS database (project-local cluster), app, users, vehicles.

``ROADWATCH_TEST_DATABASE_URL`` points at the cluster's maintenance database (scripts/test.sh sets it);
each test session creates its own database there and drops it afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from service.settings import Settings

TABLES = "observation, decision, damage_site, frame, upload_batch, vehicle, staff_user, road_section, road_import, road_importance_override, model_version"


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    from service.db.migrate import create_database, drop_database

    admin = os.environ.get("ROADWATCH_TEST_DATABASE_URL")
    if not admin:
        pytest.fail("ROADWATCH_TEST_DATABASE_URL is not set: run the tests with `make test`")
    name = f"roadwatch_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"  # one per conftest that uses it
    yield create_database(admin, name)
    drop_database(admin, name)


@pytest.fixture
def clean_db(database_url: str) -> Iterator[str]:
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            text(f"TRUNCATE {TABLES}, procrastinate_jobs, procrastinate_workers RESTART IDENTITY CASCADE")
        )
    engine.dispose()
    yield database_url


@pytest.fixture
def settings(clean_db: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=clean_db,
        data_dir=tmp_path / "var",
        heartbeat_interval_s=0.5,
        stalled_after_s=3.0,
        max_images_per_batch=10,
        max_pixels=30_000_000,
        session_https_only=False,  # TestClient speaks plain HTTP to "testserver"
    )


@pytest.fixture
def app(settings: Settings):  # type: ignore[no-untyped-def]
    from service.app import create_app

    return create_app(settings)


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def vehicle_token(app) -> str:  # type: ignore[no-untyped-def]
    from service.db.engine import transaction
    from service.db.vehicles import add_vehicle

    with transaction(app.state.sessions) as session:
        _, token = add_vehicle(session, "truck-1")
    return token


PASSWORD = "correct horse battery"


@pytest.fixture
def staff(app) -> dict[str, tuple[str, str]]:  # type: ignore[no-untyped-def]
    """Basic-auth pairs per role."""
    from service.db.engine import transaction
    from service.db.users import add_user

    with transaction(app.state.sessions) as session:
        for role in ("viewer", "reviewer", "admin"):
            add_user(session, role, PASSWORD, role)
    return {role: (role, PASSWORD) for role in ("viewer", "reviewer", "admin")}
