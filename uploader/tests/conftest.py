"""The service's fixtures (real PostGIS: `settings`, `app`, `client`, `vehicle_token`, `staff`); the
session database is created per conftest, so uploader tests never share one with service/tests."""

from __future__ import annotations

from service.tests.conftest import app, clean_db, client, database_url, settings, staff, vehicle_token

__all__ = ["app", "clean_db", "client", "database_url", "settings", "staff", "vehicle_token"]
