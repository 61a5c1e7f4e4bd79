"""Sessions that end (issue 18): logout, deactivation and a password change end every session of the user
at once; own password change, admin reset, the password rules, the audit log, the Secure cookie."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from service.db.tables import AuditEvent, User
from service.tests.conftest import PASSWORD
from service.tests.web_seed import csrf_of, login

COOKIE = "roadwatch_session"


def second_client(app: Any, cookie: str) -> TestClient:
    """Another browser holding a copy of ``cookie`` (saved before the change)."""
    other = TestClient(app)
    other.cookies.set(COOKIE, cookie)
    return other


def signed_in(client: TestClient) -> bool:
    r = client.get("/sites", follow_redirects=False)
    return r.status_code == 200


def actions(app: Any) -> list[str]:
    with app.state.sessions() as s:
        return list(s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def test_logout_ends_every_session_of_the_user(client, app, staff) -> None:  # type: ignore[no-untyped-def]
    login(client, "viewer", PASSWORD)
    saved = client.cookies[COOKIE]
    other = second_client(app, saved)
    assert signed_in(other)
    page = client.get("/sites")
    r = client.post("/logout", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303
    assert not signed_in(other)  # the copy saved before logout no longer works
    assert not signed_in(second_client(app, saved))
    # The JSON API refuses it too (it falls back to asking for Basic credentials).
    assert second_client(app, saved).get("/api/v1/sites").status_code == 401
    assert actions(app) == ["logout"]
    login(client, "viewer", PASSWORD)  # a fresh login works again
    assert signed_in(client)


def test_deactivation_ends_sessions_at_once(client, app, staff) -> None:  # type: ignore[no-untyped-def]
    login(client, "viewer", PASSWORD)
    viewer = second_client(app, client.cookies[COOKIE])
    client.cookies.clear()
    login(client, "admin", PASSWORD)
    with app.state.sessions() as s:
        viewer_id = s.scalar(select(User.id).where(User.username == "viewer"))
    page = client.get("/admin/users")
    r = client.post(
        f"/admin/users/{viewer_id}",
        data={"role": "viewer", "active": "", "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert not signed_in(viewer)
    assert actions(app) == ["deactivated"]


def test_own_password_change_ends_the_other_sessions(client, app, staff) -> None:  # type: ignore[no-untyped-def]
    client.cookies.set("lang", "en")
    login(client, "reviewer", PASSWORD)
    other = second_client(app, client.cookies[COOKIE])
    assert client.get("/api/v1/sites", auth=("reviewer", PASSWORD)).status_code == 200  # cached Basic login
    page = client.get("/account/password")
    token = csrf_of(page.text)
    form = {"current": PASSWORD, "new": "another fine passphrase", "repeat": "another fine passphrase"}
    wrong = client.post("/account/password", data={**form, "current": "nope", "csrf_token": token})
    assert wrong.status_code == 422 and "current password is wrong" in wrong.text
    mismatch = client.post("/account/password", data={**form, "repeat": "different", "csrf_token": token})
    assert mismatch.status_code == 422
    weak = {"current": PASSWORD, "new": "my-reviewer-pw", "repeat": "my-reviewer-pw", "csrf_token": token}
    r = client.post("/account/password", data=weak)
    assert r.status_code == 422 and "must not be or contain the user name" in r.text
    short = {"current": PASSWORD, "new": "short", "repeat": "short", "csrf_token": token}
    assert "at least 10 characters" in client.post("/account/password", data=short).text
    r = client.post("/account/password", data={**form, "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    assert signed_in(client)  # this session continues
    assert not signed_in(other)  # every other one ended
    api = TestClient(app)
    assert api.get("/api/v1/sites", auth=("reviewer", PASSWORD)).status_code == 401  # not from the cache
    assert api.get("/api/v1/sites", auth=("reviewer", "another fine passphrase")).status_code == 200
    assert actions(app) == ["password_changed"]


def test_admin_resets_a_password_shown_once(client, app, staff) -> None:  # type: ignore[no-untyped-def]
    import re

    login(client, "viewer", PASSWORD)
    viewer = second_client(app, client.cookies[COOKIE])
    client.cookies.clear()
    login(client, "admin", PASSWORD)
    with app.state.sessions() as s:
        viewer_id, admin_id = (
            s.scalar(select(User.id).where(User.username == n)) for n in ("viewer", "admin")
        )
    token = csrf_of(client.get("/admin/users").text)
    r = client.post(f"/admin/users/{viewer_id}/password", data={"csrf_token": token})
    assert r.status_code == 200
    match = re.search(r"<code>([^<]+)</code>", r.text)
    assert match, r.text
    password = match.group(1)
    assert len(password) >= 10 and password not in client.get("/admin/users").text  # shown once
    assert not signed_in(viewer)
    fresh = TestClient(app)
    assert fresh.get("/api/v1/sites", auth=("viewer", password)).status_code == 200
    assert fresh.get("/api/v1/sites", auth=("viewer", PASSWORD)).status_code == 401
    own = client.post(f"/admin/users/{admin_id}/password", data={"csrf_token": token})
    assert own.status_code == 409
    with app.state.sessions() as s:
        events = s.scalars(select(AuditEvent)).all()
    assert [(e.action, e.actor_id, e.target_user_id) for e in events] == [
        ("password_reset", admin_id, viewer_id)
    ]
    # A viewer cannot reset anyone's password.
    client.cookies.clear()
    login(client, "viewer", password)
    token = csrf_of(client.get("/sites").text)
    r = client.post(f"/admin/users/{admin_id}/password", data={"csrf_token": token})
    assert r.status_code == 403


def test_password_rules() -> None:
    import pytest

    from service.db.users import check_password
    from service.errors import InvalidInput

    check_password("anna", "correct horse battery")
    for username, password in [("anna", "short"), ("anna", "Anna-is-great!"), ("annabelle", "annabelle")]:
        with pytest.raises(InvalidInput):
            check_password(username, password)
    check_password("al", "al-has-a-long-password")  # names under 3 characters are only checked for equality


def _cookie_header(app: Any, base_url: str) -> str:
    with TestClient(app, base_url=base_url) as client:
        page = client.get("/login")
        assert COOKIE in page.headers.get("set-cookie", ""), page.headers
        return page.headers["set-cookie"]


def test_session_cookie_is_secure_unless_served_on_loopback(settings) -> None:  # type: ignore[no-untyped-def]
    from service.app import create_app

    auto = create_app(settings.model_copy(update={"session_https_only": None}))
    assert "secure" in _cookie_header(auto, "http://roadwatch.example").lower()
    assert "secure" in _cookie_header(auto, "https://127.0.0.1").lower()
    assert "secure" not in _cookie_header(auto, "http://127.0.0.1:8000").lower()
    assert "secure" not in _cookie_header(auto, "http://localhost:8000").lower()
    forced = create_app(settings.model_copy(update={"session_https_only": True}))
    assert "secure" in _cookie_header(forced, "http://127.0.0.1:8000").lower()
    off = create_app(settings.model_copy(update={"session_https_only": False}))
    assert "secure" not in _cookie_header(off, "http://roadwatch.example").lower()
