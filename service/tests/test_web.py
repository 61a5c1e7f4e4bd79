"""Staff web app over HTTP (TestClient): login, CSRF, roles, pages, filters, exports, languages."""

from __future__ import annotations

import csv
import io
import json
import re
import stat
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from service.access.sessions import local_path, session_secret
from service.access.throttle import LoginThrottle
from service.db.tables import User
from service.db.users import authenticate
from service.settings import Settings
from service.tests.web_seed import csrf_of, login, seed_sites
from service.web.i18n import LANGUAGES, Translator, catalog


@pytest.fixture
def sites(app):  # type: ignore[no-untyped-def]
    return seed_sites(app)


def test_login_logout_and_cookie_flags(client, staff) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/sites?class=D40", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/sites%3Fclass%3DD40"
    page = client.get("/login")
    assert page.status_code == 200 and '<html lang="de">' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    token = csrf_of(page.text)
    form = {"username": "reviewer", "password": "correct horse battery", "next": "/sites"}
    assert client.post("/login", data=form, follow_redirects=False).status_code == 403  # no CSRF token
    wrong = client.post("/login", data={**form, "password": "nope", "csrf_token": token})
    assert wrong.status_code == 401 and "Benutzername oder Passwort ist falsch" in wrong.text
    ok = client.post("/login", data={**form, "csrf_token": token}, follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "/sites"
    sites_page = client.get("/sites")
    assert "Schadstellen nach Dringlichkeit" in sites_page.text
    new_token = csrf_of(sites_page.text)
    assert new_token != token  # the session (and its token) is new after login
    r = client.post("/logout", data={"csrf_token": new_token}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/sites", follow_redirects=False).status_code == 303


def test_login_throttle_counts_failures_per_name_within_the_window() -> None:
    now = [1000.0]
    throttle = LoginThrottle(max_failures=3, window_s=60, clock=lambda: now[0])
    for _ in range(2):
        assert throttle.begin("Reviewer ") == 0  # an attempt counts from its start
    assert throttle.retry_after("reviewer") == 0  # names compare trimmed and case-folded
    assert throttle.begin("reviewer") == 0
    assert throttle.begin("REVIEWER") == 60 and throttle.retry_after("admin") == 0
    now[0] += 59.5
    assert throttle.retry_after("reviewer") == 1
    now[0] += 1
    assert throttle.retry_after("reviewer") == 0  # the oldest failure left the window
    throttle.begin("reviewer")
    throttle.succeeded("reviewer")
    throttle.begin("reviewer")
    assert throttle.retry_after("reviewer") == 0  # success cleared the earlier ones


def test_login_throttle_memory_is_bounded_and_keeps_locked_names() -> None:
    now = [0.0]
    throttle = LoginThrottle(max_failures=2, window_s=60, clock=lambda: now[0])
    throttle.MAX_NAMES = 5
    throttle.begin("anna")
    throttle.begin("anna")  # locked, and the oldest name in the table
    for i in range(20):  # a flood of made-up names
        throttle.begin(f"guess{i}")
    assert len(throttle._failures) == 5
    assert throttle.retry_after("anna") == 60 and throttle.begin("anna") == 60


def test_repeated_failed_logins_lock_the_name(app, client, staff) -> None:  # type: ignore[no-untyped-def]
    now = [0.0]
    app.state.login_throttle = LoginThrottle(max_failures=3, window_s=600, clock=lambda: now[0])
    token = csrf_of(client.get("/login").text)
    form = {"username": "reviewer", "password": "wrong guess", "next": "/sites", "csrf_token": token}
    for _ in range(3):
        assert client.post("/login", data=form).status_code == 401
    right = {**form, "password": staff["reviewer"][1]}
    locked = client.post("/login", data=right)  # even the right password, while locked
    assert locked.status_code == 429 and locked.headers["retry-after"] == "600"
    assert "Zu viele Fehlversuche" in locked.text and "10 Min." in locked.text
    # HTTP Basic counts against the same name and is refused the same way.
    r = client.get("/api/v1/sites", auth=staff["reviewer"])
    assert r.status_code == 429 and r.headers["retry-after"] == "600"
    assert client.get("/api/v1/sites", auth=staff["viewer"]).status_code == 200  # other names unaffected
    for _ in range(3):
        assert client.get("/api/v1/sites", auth=("admin", "wrong guess")).status_code == 401
    assert client.get("/api/v1/sites", auth=staff["admin"]).status_code == 429
    # A client whose exact credentials were verified moments ago keeps working (nothing to guess there).
    for _ in range(3):
        assert client.get("/api/v1/sites", auth=("viewer", "wrong guess")).status_code == 401
    assert client.get("/api/v1/sites", auth=staff["viewer"]).status_code == 200
    now[0] += 601
    ok = client.post("/login", data=right, follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "/sites"


def test_open_redirects_are_refused() -> None:
    assert local_path("/orders/3") == "/orders/3"
    for bad in ("https://evil.example/", "//evil.example", "/\\evil", "", None):
        assert local_path(bad) == "/sites"


def test_roles_on_pages_and_api(client, staff, sites, vehicle_token) -> None:  # type: ignore[no-untyped-def]
    site = sites[0]
    bearer = {"Authorization": f"Bearer {vehicle_token}"}
    # Vehicle tokens read nothing: pages send them to the login, the API says 401.
    assert client.get("/sites", headers=bearer, follow_redirects=False).status_code == 303
    for url in ("/api/v1/work-orders", f"/api/v1/sites/{site.public_id}/decisions", "/sites/export.csv"):
        r = client.get(url, headers=bearer, follow_redirects=False)
        assert r.status_code in (401, 303), url
    assert (
        client.post(
            f"/api/v1/sites/{site.public_id}/decisions", json={"action": "confirm"}, headers=bearer
        ).status_code
        == 401
    )
    # Viewer reads but does not decide; reviewer decides but does not manage accounts.
    assert client.get("/admin/users", auth=staff["reviewer"]).status_code == 403
    assert client.get("/admin/users", auth=staff["admin"]).status_code == 200
    r = client.post(
        f"/api/v1/sites/{site.public_id}/decisions", json={"action": "confirm"}, auth=staff["viewer"]
    )
    assert r.status_code == 403
    login(client, *staff["viewer"])
    page = client.get(f"/sites/{site.public_id}")
    assert page.status_code == 200 and 'name="action"' not in page.text
    r = client.post(
        f"/sites/{site.public_id}/decide", data={"action": "confirm", "csrf_token": csrf_of(page.text)}
    )
    assert r.status_code == 403 and "Zugriff verweigert" in r.text
    # Sites are never deleted: there is no route for it.
    assert client.delete(f"/api/v1/sites/{site.public_id}", auth=staff["admin"]).status_code == 405


def test_decision_form_needs_csrf_and_records_everything(client, staff, sites) -> None:  # type: ignore[no-untyped-def]
    site = next(s for s in sites if s.status == "open")
    login(client, *staff["reviewer"])
    page = client.get(f"/sites/{site.public_id}")
    assert "Vorschlag des Modells" in page.text and "Über diese Schadstelle hat noch niemand" in page.text
    assert "/api/v1/frames/" in page.text and "boxes=true" in page.text
    r = client.post(f"/sites/{site.public_id}/decide", data={"action": "confirm", "csrf_token": "forged"})
    assert r.status_code == 403
    r = client.post(
        f"/sites/{site.public_id}/decide", data={"action": "confirm", "csrf_token": csrf_of(page.text)}
    )
    assert r.status_code == 200 and "Schadstelle bestätigt." in r.text
    (decision,) = client.get(f"/api/v1/sites/{site.public_id}/decisions", auth=staff["viewer"]).json()
    assert decision["user"] == "reviewer" and decision["action"] == "confirm"
    assert (decision["previous_status"], decision["new_status"]) == ("open", "confirmed")
    assert decision["model_version_id"] == site.model_version_id
    assert decision["ranking_version"] == site.ranking_version != ""


def test_list_filters_map_and_exports(client, staff, sites) -> None:  # type: ignore[no-untyped-def]
    login(client, *staff["viewer"])
    page = client.get("/sites").text
    listed = re.findall(r'data-site="([0-9a-f-]+)"', page)
    assert listed == [str(s.public_id) for s in sites if s.status in ("open", "confirmed", "scheduled")]
    everything = re.findall(r'data-site="([0-9a-f-]+)"', client.get("/sites?applied=1").text)
    assert everything == [str(s.public_id) for s in sites]  # nothing ticked: all statuses, ranked
    potholes = re.findall(
        r'data-site="([^"]+)"', client.get("/sites?applied=1&class=D40&priority_min=60").text
    )
    assert potholes == [str(s.public_id) for s in sites if s.class_name == "D40" and s.priority >= 60]
    recent = client.get("/sites?applied=1&seen_from=2026-11-14&seen_to=2026-11-20").text
    assert len(re.findall(r'data-site="', recent)) == sum(
        1 for s in sites if s.last_seen >= datetime(2026, 11, 13, 23, tzinfo=UTC)
    )
    bbox = "7.6275,51.9610,7.6288,51.9622"
    near = re.findall(r'data-site="([^"]+)"', client.get(f"/sites?applied=1&bbox={bbox}").text)
    assert near == [str(sites_by_offset(sites)[(0.0, 0.0)].public_id)]
    assert client.get("/sites?bbox=1,2,3").status_code == 422
    features = client.get("/sites/map.geojson?applied=1&status=rejected").json()["features"]
    assert [f["properties"]["status"] for f in features] == ["rejected"] and features[0]["properties"][
        "band"
    ] == "closed"
    rows = list(csv.DictReader(io.StringIO(client.get("/sites/export.csv?applied=1&class=D00").text)))
    assert {r["class"] for r in rows} == {"D00"} and len(rows) == 3
    gj = json.loads(client.get("/sites/export.geojson?status=open").text)
    assert {f["properties"]["status"] for f in gj["features"]} == {"open"}


def sites_by_offset(sites):  # type: ignore[no-untyped-def]
    from geoalchemy2.shape import to_shape

    from service.tests.web_seed import BASE

    return {
        (round(to_shape(s.position).y - BASE[0], 4), round(to_shape(s.position).x - BASE[1], 4)): s
        for s in sites
    }


def test_order_pages_forms_print_and_export(client, staff, sites) -> None:  # type: ignore[no-untyped-def]
    login(client, *staff["reviewer"])
    token = csrf_of(client.get("/sites").text)
    chosen = [str(s.public_id) for s in sites if s.status == "open"][:2]
    r = client.post("/orders", data={"csrf_token": token, "title": "Ring", "crew": "", "site": chosen})
    oid = int(r.url.path.rsplit("/", 1)[1])
    assert r.status_code == 200 and f"Arbeitsauftrag Nr. {oid} angelegt" in r.text
    assert f"/orders/{oid}/sites.csv" in r.text
    r = client.post(
        f"/orders/{oid}",
        data={"csrf_token": token, "title": "Ring", "crew": "Nord", "status": "in_progress", "notes": ""},
    )
    assert "In Arbeit" in r.text
    printed = client.get(f"/orders/{oid}/print").text
    assert printed.count('class="photo"') == 2 and "Erledigt (Datum, Kürzel)" in printed
    rows = list(csv.DictReader(io.StringIO(client.get(f"/orders/{oid}/sites.csv").text)))
    assert [r["id"] for r in rows] == chosen and rows[0]["order_status"] == "in_progress"
    third = next(s for s in sites if s.status == "confirmed")
    r = client.post(f"/sites/{third.public_id}/order", data={"csrf_token": token, "order": str(oid)})
    assert f"Schadstelle zu Arbeitsauftrag Nr. {oid} hinzugefügt" in r.text
    r = client.post(f"/orders/{oid}/sites/{chosen[0]}/remove", data={"csrf_token": token})
    assert "Schadstelle aus dem Arbeitsauftrag entfernt" in r.text
    assert f"Nr. {oid}" in client.get("/orders").text
    assert client.get("/orders/99").status_code == 404


def test_languages_and_formats(client, staff, sites) -> None:  # type: ignore[no-untyped-def]
    login(client, *staff["viewer"])
    de = client.get("/sites")
    assert "Schadstellen nach Dringlichkeit" in de.text and "Rang" in de.text
    en = client.get("/sites?lang=en")
    assert '<html lang="en">' in en.text and "Damage sites by priority" in en.text
    assert "lang=en" in en.headers["set-cookie"]
    assert '<html lang="en">' in client.get("/orders").text  # the cookie keeps the choice
    de_t, en_t = Translator("de"), Translator("en")
    assert de_t.number(1234.5) == "1.234,5" and en_t.number(1234.5) == "1,234.5"
    assert de_t.metres(0.8) == "0,8 m" and en_t.percent(0.91) == "91%"
    when = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)  # 10:30 in Berlin
    assert de_t.datetime(when) == "20.11.2026, 10:30:00" and en_t.date(when) == "Nov 20, 2026"


def test_catalogs_are_complete() -> None:
    keys = {lang: set(catalog(lang)) for lang in LANGUAGES}
    assert keys["de"] == keys["en"]
    templates = "\n".join(p.read_text() for p in (catalog_dir() / "templates").glob("*.html"))
    code = "\n".join(p.read_text() for p in catalog_dir().glob("*.py"))
    used = set(re.findall(r"""_\(["']([a-z_]+\.[a-z_.0-9]+)["']""", templates + code))
    used |= set(re.findall(r"""\bt\(["']([a-z_]+\.[a-z_.0-9]+)["']""", templates + code))
    used = {k for k in used if not k.endswith((".", "_"))}  # prefixes of computed keys: checked below
    assert used and used <= keys["de"], used - keys["de"]
    for prefix, values in {
        "class.": ("D00", "D10", "D20", "D40"),
        "status.": ("open", "confirmed", "rejected", "scheduled", "repaired"),
        "action.": ("confirm", "reject", "reclassify", "schedule", "unschedule", "repair"),
        "order_status.": ("new", "assigned", "in_progress", "done", "cancelled"),
        "term.": ("class", "size", "confidence", "sightings", "recency", "road"),
        "role.": ("viewer", "reviewer", "admin"),
        "order_event.": ("created", "site_added", "site_removed", "crew", "status"),
        "flash.decided.": ("confirm", "reject", "reclassify", "schedule", "unschedule", "repair"),
        "severity.": ("low", "medium", "high"),
        "band.": ("low", "medium", "high"),
        "legend.band.": ("low", "medium", "high", "closed"),
        "about.cannot_": tuple("123456"),
        "error.": ("forbidden", "not_found", "conflict", "invalid", "other"),
    }.items():
        assert {prefix + v for v in values} <= keys["de"], prefix
    # No words in the templates themselves: text between tags is only Jinja output or punctuation.
    bare = re.sub(r"\{% block body_class %\}.*?\{% endblock %\}", "", templates)  # a CSS class
    bare = re.sub(r"\{[{%#].*?[}%#]\}", "", bare, flags=re.S)
    words = {w for text in re.findall(r">([^<]+)<", bare) for w in re.findall(r"[A-Za-zÄÖÜäöüß]{2,}", text)}
    assert words <= {"Roadwatch"}, words


def catalog_dir():  # type: ignore[no-untyped-def]
    from service.web.render import WEB_DIR

    return WEB_DIR


def test_transparency_page(client, staff) -> None:  # type: ignore[no-untyped-def]
    from detector.manifest import load_manifest

    page = client.get("/about", auth=staff["viewer"]).text
    assert load_manifest()["default"] in page and "416 × 416 Pixel" in page
    assert "Was es nicht kann" in page and "Menschen entscheiden" in page
    assert "road-damage model" in page  # the model card, rendered
    # The transparency and processing record, with its JSON twin.
    assert "Transparenz- und Verarbeitungsverzeichnis" in page and 'href="/api/v1/transparency"' in page
    assert "Rechtsgrundlage" in page and "Art. 6(1)(e) GDPR" in page and "Bilder 365 Tage" in page
    assert client.get("/about", follow_redirects=False).status_code == 303


def test_admin_manages_accounts(client, staff, app) -> None:  # type: ignore[no-untyped-def]
    login(client, *staff["admin"])
    token = csrf_of(client.get("/admin/users").text)
    r = client.post(
        "/admin/users",
        data={"csrf_token": token, "username": "anna", "password": "lang genug 123", "role": "reviewer"},
    )
    assert "Konto anna angelegt" in r.text
    r = client.post(
        "/admin/users", data={"csrf_token": token, "username": "kurz", "password": "short", "role": "viewer"}
    )
    assert "at least 10 characters" in r.text
    with app.state.sessions() as session:
        anna = session.scalar(select(User).where(User.username == "anna"))
        me = session.scalar(select(User).where(User.username == "admin"))
    r = client.post(f"/admin/users/{anna.id}", data={"csrf_token": token, "role": "viewer", "active": ""})
    assert "Konto anna gespeichert" in r.text
    with app.state.sessions() as session:
        assert authenticate(session, "anna", "lang genug 123") is None  # deactivated
        assert session.scalar(select(User.role).where(User.username == "anna")) == "viewer"
    assert (
        client.post(f"/admin/users/{me.id}", data={"csrf_token": token, "role": "viewer"}).status_code == 409
    )


def test_session_secret_is_generated_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(database_url="postgresql+psycopg://x@/y", data_dir=tmp_path / "var")
    first = session_secret(settings)
    path = tmp_path / "var" / "session_secret"
    assert len(first) >= 40 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert session_secret(settings) == first
    configured = Settings(
        database_url="postgresql+psycopg://x@/y", data_dir=tmp_path / "v2", session_secret="s" * 40
    )
    assert session_secret(configured) == "s" * 40 and not (tmp_path / "v2" / "session_secret").exists()


def test_bad_input_on_pages_is_not_a_500(client, staff, sites) -> None:  # type: ignore[no-untyped-def]
    token = csrf_of(client.get("/login").text)
    form = {"username": "admin\x00", "password": "correct horse battery", "csrf_token": token}
    assert client.post("/login", data=form).status_code == 401  # NUL: no such user, no database error
    login(client, *staff["admin"])
    assert client.get("/sites?seen_to=9999-12-31").status_code == 200  # date.max + 1 day overflowed
    assert client.get(f"/sites?page_no={10**22}").status_code == 200
    assert client.get(f"/orders/{10**22}").status_code == 404
    token = csrf_of(client.get("/admin/users").text)
    r = client.post(f"/admin/users/{10**22}", data={"csrf_token": token, "role": "viewer"})
    assert r.status_code == 404
    r = client.post(
        "/admin/users",
        data={"csrf_token": token, "username": "an\x00na", "password": "lang genug 123", "role": "viewer"},
    )
    assert r.status_code == 200 and "no NUL" in r.text


def test_model_card_list_items_may_continue_on_indented_lines() -> None:
    from service.web.transparency import markdown

    html = str(markdown("- **one** item\n  goes on here\n- two\n\nafter"))
    assert html == "<ul>\n<li><strong>one</strong> item goes on here</li>\n<li>two</li>\n</ul>\n<p>after</p>"
