"""Property-based requests generated from /openapi.json (schemathesis, bounded examples): no operation
answers with a server error, with or without valid credentials (issue 18)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings

from service.tests.conftest import PASSWORD

MAX_EXAMPLES = 8  # per operation, each sent with and without credentials: about a minute on 2 cores
VEHICLE_PATHS = ("/api/v1/batches", "/api/v1/frames/missing")


def _checker(operation: Any, token: str, errors: list[str]) -> Callable[[], None]:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,  # the same examples every run: a failure reproduces
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        for headers in ({"Authorization": token}, {}):
            response = case.call(headers=headers)
            if response.status_code >= 500:
                who = "with credentials" if headers else "without credentials"
                errors.append(f"{case.method} {case.formatted_path} {who}: {response.status_code}")

    return check  # type: ignore[no-any-return]


def test_no_operation_answers_with_a_server_error(app, staff, vehicle_token) -> None:  # type: ignore[no-untyped-def]
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    basic = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    errors: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        token = f"Bearer {vehicle_token}" if operation.path in VEHICLE_PATHS else basic
        _checker(operation, token, errors)()
    assert operations > 30  # the whole API was exercised
    assert not errors, "\n".join(sorted(set(errors))[:30])
