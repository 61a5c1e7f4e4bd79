"""Every route of the app, from its own route table, against no credentials, a vehicle token and each staff
role (issue 18). ``MINIMUM`` says who may use each route; a new route without an entry fails the test."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from service.tests.conftest import PASSWORD
from service.tests.web_seed import csrf_of, login

LEVELS = ("public", "vehicle", "viewer", "reviewer", "admin")
# "secret": a shared secret of its own (the Label Studio webhook, Open311 api_key): nobody here.
# "open": anyone may call it and gets its own answer (the login form).
MINIMUM: dict[tuple[str, str], str] = {
    ("GET", "/openapi.json"): "public",
    ("GET", "/docs"): "public",
    ("GET", "/docs/oauth2-redirect"): "public",
    ("GET", "/redoc"): "public",
    ("GET", "/health"): "public",
    ("GET", "/static"): "public",
    ("POST", "/api/v1/batches"): "vehicle",
    ("POST", "/api/v1/frames/missing"): "vehicle",
    ("GET", "/api/v1/sites"): "viewer",
    ("GET", "/api/v1/sites.csv"): "viewer",
    ("GET", "/api/v1/sites.geojson"): "viewer",
    ("GET", "/api/v1/sites.gpkg"): "viewer",
    ("GET", "/api/v1/road-sections.gpkg"): "viewer",
    ("GET", "/api/v1/sites/{site_id}"): "viewer",
    ("GET", "/api/v1/frames/{frame_id}/image"): "viewer",
    ("GET", "/api/v1/transparency"): "viewer",
    ("GET", "/api/v1/sites/{site_id}/decisions"): "viewer",
    ("POST", "/api/v1/sites/{site_id}/decisions"): "reviewer",
    ("GET", "/api/v1/work-orders"): "viewer",
    ("POST", "/api/v1/work-orders"): "reviewer",
    ("GET", "/api/v1/work-orders/{order_id}"): "viewer",
    ("PATCH", "/api/v1/work-orders/{order_id}"): "reviewer",
    ("POST", "/api/v1/work-orders/{order_id}/sites"): "reviewer",
    ("DELETE", "/api/v1/work-orders/{order_id}/sites/{site_id}"): "reviewer",
    ("GET", "/api/v1/work-orders/{order_id}/sites.csv"): "viewer",
    ("GET", "/api/v1/work-orders/{order_id}/sites.geojson"): "viewer",
    ("GET", "/api/v1/work-orders/{order_id}/sites.gpkg"): "viewer",
    ("GET", "/api/v1/sections"): "viewer",
    ("GET", "/api/v1/sections.csv"): "viewer",
    ("GET", "/api/v1/sections.geojson"): "viewer",
    ("GET", "/api/v1/sections/summary"): "viewer",
    ("GET", "/api/v1/sections/{section_id}"): "viewer",
    ("GET", "/api/v1/coverage/summary"): "viewer",
    ("GET", "/api/v1/coverage"): "viewer",
    ("GET", "/api/v1/sites/{site_id}/timeline"): "viewer",
    ("GET", "/api/v1/verification"): "viewer",
    ("POST", "/api/v1/labelstudio/webhook"): "secret",
    ("GET", "/api/v1/sites/{site_id}/citizen-reports"): "reviewer",  # contact details of citizens
    ("GET", "/tiles/sites/{z}/{x}/{y}.pbf"): "viewer",
    ("GET", "/tiles/sections/{z}/{x}/{y}.pbf"): "viewer",
    ("GET", "/login"): "public",
    ("POST", "/login"): "open",  # anyone; wrong or no credentials are its own answer (401, 403)
    ("POST", "/logout"): "public",
    ("GET", "/admin/users"): "admin",
    ("POST", "/admin/users"): "admin",
    ("POST", "/admin/users/{user_id}"): "admin",
    ("GET", "/account/password"): "viewer",
    ("POST", "/account/password"): "viewer",
    ("POST", "/admin/users/{user_id}/password"): "admin",
    ("GET", "/admin/vehicles"): "admin",
    ("POST", "/admin/vehicles"): "admin",
    ("POST", "/admin/vehicles/{vehicle_id}"): "admin",
    ("POST", "/admin/vehicles/{vehicle_id}/token"): "admin",
    ("GET", "/admin/frames"): "admin",
    ("POST", "/admin/frames/{frame_id}/retry"): "admin",
    ("GET", "/"): "viewer",  # the start page: the list, else the login form
    ("GET", "/sites"): "viewer",
    ("GET", "/sites/map.geojson"): "viewer",
    ("GET", "/sites/export.csv"): "viewer",
    ("GET", "/sites/export.geojson"): "viewer",
    ("GET", "/sites/{site_id}"): "viewer",
    ("POST", "/sites/{site_id}/decide"): "reviewer",
    ("GET", "/orders"): "viewer",
    ("POST", "/orders"): "reviewer",
    ("GET", "/orders/{order_id}"): "viewer",
    ("GET", "/orders/{order_id}/print"): "viewer",
    ("GET", "/orders/{order_id}/sites.csv"): "viewer",
    ("GET", "/orders/{order_id}/sites.geojson"): "viewer",
    ("POST", "/orders/{order_id}"): "reviewer",
    ("POST", "/sites/{site}/order"): "reviewer",
    ("POST", "/orders/{order_id}/sites/{site_id}/remove"): "reviewer",
    ("GET", "/streets"): "viewer",
    ("GET", "/streets/map.geojson"): "viewer",
    ("GET", "/streets/report"): "viewer",
    ("GET", "/streets/{section_id}"): "viewer",
    ("GET", "/verification"): "viewer",
    ("GET", "/about"): "viewer",
}
# Routes that follow other standards' rules, with their own tests: OGC API Features and Open311 GeoReport.
PREFIX_RULES: dict[str, str] = {"/ogc/": "viewer", "/open311/": "public"}
MINIMUM[("POST", "/open311/v2/requests.{fmt}")] = "secret"  # a citizen report needs the service's api_key


def app_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every route in the app's own table (HEAD answered with GET)."""
    out = set()
    for context in iter_route_contexts(app.routes):
        methods = getattr(context, "methods", None) or {"GET"}
        for method in methods:
            if method != "HEAD":
                out.add((method, context.path))
    return sorted(out, key=lambda mp: (mp[1], mp[0]))


def minimum(method: str, path: str) -> str | None:
    if (method, path) in MINIMUM:
        return MINIMUM[(method, path)]
    for prefix, level in PREFIX_RULES.items():
        if path.startswith(prefix):
            return level
    return None


def concrete(path: str) -> str:
    """A path with its parameters filled in: ids that do not exist (nothing is changed), formats as JSON."""
    if path == "/static":
        return "/static/app.css"
    path = re.sub(r"\{fmt\}", "json", path)
    path = re.sub(r"\{(z|x|y)\}", "0", path)
    path = re.sub(r"\{(collectionId)\}", "damage_sites", path)
    path = re.sub(r"\{(site_id|site)\}", "00000000-0000-0000-0000-000000000000", path)
    return re.sub(r"\{[^}]+\}", "999999", path)


def test_every_route_has_a_rule(app) -> None:  # type: ignore[no-untyped-def]
    missing = [f"{m} {p}" for m, p in app_routes(app) if minimum(m, p) is None]
    assert not missing, f"routes without an access rule in MINIMUM: {missing}"
    stale = [f"{m} {p}" for m, p in MINIMUM if (m, p) not in set(app_routes(app))]
    assert not stale, f"rules for routes that no longer exist: {stale}"


def _login(app: Any, role: str) -> tuple[TestClient, str]:
    client = TestClient(app)
    login(client, role, PASSWORD)
    return client, csrf_of(client.get("/account/password").text)


def _call(client: TestClient, method: str, path: str, csrf: str | None, headers: dict[str, str]) -> Any:
    url = concrete(path)
    if method == "GET":
        return client.get(url, headers=headers, follow_redirects=False)
    if path.startswith("/api/") or path.startswith("/ogc/") or path.startswith("/open311/"):
        hdrs = {**headers, **({"X-CSRF-Token": csrf} if csrf else {})}
        return client.request(method, url, json={}, headers=hdrs, follow_redirects=False)
    return client.request(
        method, url, data={"csrf_token": csrf or ""}, headers=headers, follow_redirects=False
    )


def _refused(response: Any) -> bool:
    """401/403, or a page's redirect to the login form."""
    if response.status_code in (401, 403):
        return True
    return response.status_code == 303 and response.headers.get("location", "").startswith("/login")


@pytest.mark.parametrize("who", LEVELS)
def test_each_route_admits_exactly_its_roles(app, staff, vehicle_token, who) -> None:  # type: ignore[no-untyped-def]
    routes = app_routes(app)
    csrf: str | None = None
    headers: dict[str, str] = {}
    if who in ("viewer", "reviewer", "admin"):
        client, csrf = _login(app, who)
    else:
        client = TestClient(app)
        if who == "vehicle":
            headers = {"Authorization": f"Bearer {vehicle_token}"}
    wrong = []
    with client:
        for method, path in routes:
            if (method, path) == ("POST", "/logout"):
                continue  # ends the session: checked below on its own
            need = minimum(method, path)
            assert need is not None
            response = _call(client, method, path, csrf, headers)
            assert response.status_code < 500, f"{method} {path} as {who}: {response.status_code}"
            allowed = need == "public" or (
                need != "secret"
                and (
                    need == who
                    or (need in LEVELS[2:] and who in LEVELS[2:] and LEVELS.index(who) >= LEVELS.index(need))
                )
            )
            if need == "open":
                continue
            if need == "secret":
                if response.status_code < 400:
                    wrong.append(f"{method} {path}: {response.status_code} without the webhook secret")
            elif allowed == _refused(response):
                wrong.append(f"{method} {path} as {who}: {response.status_code} (needs {need})")
    assert not wrong, "\n".join(wrong)


def test_logout_is_open_and_ends_the_session(app, staff) -> None:  # type: ignore[no-untyped-def]
    client, csrf = _login(app, "viewer")
    with client:
        assert client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
        assert _refused(client.get("/sites", follow_redirects=False))
