"""The admin's vehicles page over HTTP: settings, privacy band, tokens shown once, revoking, roles."""

from __future__ import annotations

import re

from sqlalchemy import select

from service.db.tables import Vehicle
from service.tests.web_seed import csrf_of, login


def _token_on(html: str) -> str:
    match = re.search(r'<code id="new-token">(rwv_[^<]+)</code>', html)
    assert match, "no token shown"
    return match.group(1)


def _uploads(client, token: str) -> int:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"}
    return client.post("/api/v1/frames/missing", json={"sha256": []}, headers=headers).status_code


def _vehicle(app, name: str) -> Vehicle:  # type: ignore[no-untyped-def]
    with app.state.sessions() as session:
        vehicle = session.scalar(select(Vehicle).where(Vehicle.name == name))
        assert vehicle is not None
        return vehicle


def test_admin_adds_and_configures_a_vehicle(app, client, staff, vehicle_token) -> None:  # type: ignore[no-untyped-def]
    login(client, *staff["admin"])
    listing = client.get("/admin/vehicles")
    assert listing.status_code == 200 and "truck-1" in listing.text and vehicle_token not in listing.text
    token = csrf_of(listing.text)
    form = {
        "csrf_token": token,
        "name": "Kehrmaschine 3",
        "height_m": "2,1",
        "pitch_deg": "12",
        "hfov_deg": "90",
        "privacy_horizon": "",
    }
    added = client.post("/admin/vehicles", data=form)
    assert added.status_code == 200 and "<td>Kehrmaschine 3</td>" in added.text  # listed at once
    new = _token_on(added.text)
    assert _uploads(client, new) == 200
    vehicle = _vehicle(app, "Kehrmaschine 3")
    assert (vehicle.camera_height_m, vehicle.camera_pitch_deg, vehicle.privacy_horizon) == (2.1, 12.0, None)
    assert new not in client.get("/admin/vehicles").text  # shown once, never again

    # Settings: a privacy band for this camera; unticking Active revokes the token at once.
    url = f"/admin/vehicles/{vehicle.id}"
    settings = {
        "csrf_token": token,
        "height_m": "2.1",
        "pitch_deg": "12",
        "hfov_deg": "90",
        "privacy_horizon": "0.2",
    }
    r = client.post(url, data={**settings, "active": "1"}, follow_redirects=False)
    assert r.status_code == 303 and _vehicle(app, "Kehrmaschine 3").privacy_horizon == 0.2
    assert client.post(url, data=settings, follow_redirects=False).status_code == 303
    assert _vehicle(app, "Kehrmaschine 3").active is False and _uploads(client, new) == 401
    # A new token: the vehicle may upload again, with the new token only.
    renewed = client.post(f"{url}/token", data={"csrf_token": token})
    fresh = _token_on(renewed.text)
    assert _uploads(client, fresh) == 200 and _uploads(client, new) == 401


def test_bad_vehicle_settings_are_refused_and_change_nothing(app, client, staff, vehicle_token) -> None:  # type: ignore[no-untyped-def]
    login(client, *staff["admin"])
    token = csrf_of(client.get("/admin/vehicles").text)
    vehicle = _vehicle(app, "truck-1")
    url = f"/admin/vehicles/{vehicle.id}"
    good = {
        "csrf_token": token,
        "height_m": "1.4",
        "pitch_deg": "10",
        "hfov_deg": "100",
        "privacy_horizon": "",
        "active": "1",
    }
    for field, bad in (
        ("pitch_deg", "95"),
        ("height_m", "zwei"),
        ("privacy_horizon", "1.5"),
        ("hfov_deg", ""),
    ):
        page = client.post(url, data={**good, field: bad})
        assert page.status_code == 200 and "Nicht gespeichert" in page.text, (field, bad)
    after = _vehicle(app, "truck-1")
    assert (after.camera_pitch_deg, after.camera_height_m, after.privacy_horizon) == (10.0, 1.4, None)
    for name in ("", "truck-1", "x" * 201, "nul\x00name"):  # empty, taken, too long, NUL
        refused = client.post("/admin/vehicles", data={**good, "name": name})
        assert refused.status_code == 200 and "Nicht gespeichert" in refused.text, repr(name)
    with app.state.sessions() as session:
        assert session.scalars(select(Vehicle.name)).all() == ["truck-1"]
    assert client.post(f"{url}/token", data={}).status_code == 403  # no CSRF token
    assert client.post("/admin/vehicles/999999", data=good).status_code == 404
    assert _uploads(client, vehicle_token) == 200  # nothing above touched the token


def test_only_admins_manage_vehicles(app, client, staff, vehicle_token) -> None:  # type: ignore[no-untyped-def]
    login(client, *staff["reviewer"])
    assert client.get("/admin/vehicles").status_code == 403
    sites = client.get("/sites").text
    assert "/admin/vehicles" not in sites  # not in the reviewer's navigation
    token = csrf_of(sites)
    vehicle = _vehicle(app, "truck-1")
    settings = {
        "csrf_token": token,
        "height_m": "3",
        "pitch_deg": "20",
        "hfov_deg": "90",
        "privacy_horizon": "0",
    }
    assert client.post(f"/admin/vehicles/{vehicle.id}", data=settings).status_code == 403
    assert client.post(f"/admin/vehicles/{vehicle.id}/token", data={"csrf_token": token}).status_code == 403
    assert client.post("/admin/vehicles", data={**settings, "name": "mine"}).status_code == 403
    assert _vehicle(app, "truck-1").camera_height_m == 1.4 and _uploads(client, vehicle_token) == 200
