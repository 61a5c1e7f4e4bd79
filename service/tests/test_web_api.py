"""JSON API for decisions and work orders: roles, CSRF with a browser session, state rules, exports."""

from __future__ import annotations

import csv
import io
import json

import pytest

from service.tests.web_seed import csrf_of, login, seed_sites


@pytest.fixture
def sites(app):  # type: ignore[no-untyped-def]
    return seed_sites(app)


def test_decisions_api(client, staff, sites) -> None:  # type: ignore[no-untyped-def]
    a, b = [s for s in sites if s.status == "open"][:2]
    url = f"/api/v1/sites/{a.public_id}/decisions"
    rev = staff["reviewer"]
    r = client.post(url, json={"action": "reject"}, auth=rev)
    assert r.status_code == 422 and "reason" in r.json()["detail"]
    r = client.post(url, json={"action": "reject", "reason": "Schatten"}, auth=rev)
    assert r.status_code == 201
    assert r.json()["site"]["properties"]["status"] == "rejected"
    assert r.json()["site"]["properties"]["proposed_by_model"] is False
    assert client.post(url, json={"action": "repair"}, auth=rev).status_code == 409
    assert client.post(url, json={"action": "delete"}, auth=rev).status_code == 422
    # Changing the class is a decision: an open site becomes confirmed and keeps the staff's class.
    url_b = f"/api/v1/sites/{b.public_id}/decisions"
    new_class = "D00" if b.class_name != "D00" else "D10"
    r = client.post(url_b, json={"action": "reclassify", "class": new_class, "reason": "Längsriss"}, auth=rev)
    body = r.json()
    assert r.status_code == 201 and body["site"]["properties"]["class"] == new_class
    assert (
        body["decision"]["previous_class"] == b.class_name and body["decision"]["new_status"] == "confirmed"
    )
    assert client.post(url_b, json={"action": "reclassify", "class": "D99"}, auth=rev).status_code == 422
    history = client.get(url_b, auth=staff["viewer"]).json()
    assert [d["action"] for d in history] == ["reclassify"]


def test_api_writes_with_a_session_need_the_csrf_header(client, staff, sites) -> None:  # type: ignore[no-untyped-def]
    site = next(s for s in sites if s.status == "open")
    login(client, *staff["reviewer"])
    url = f"/api/v1/sites/{site.public_id}/decisions"
    assert client.post(url, json={"action": "confirm"}).status_code == 403
    # Basic credentials beside the cookie (a browser may add cached ones itself) do not lift the check.
    assert client.post(url, json={"action": "confirm"}, auth=staff["reviewer"]).status_code == 403
    token = csrf_of(client.get("/sites").text)
    assert client.post(url, json={"action": "confirm"}, headers={"X-CSRF-Token": token}).status_code == 201


def test_work_orders_api(client, staff, sites) -> None:  # type: ignore[no-untyped-def]
    rev = staff["reviewer"]
    schedulable = [s for s in sites if s.status in ("open", "confirmed")]
    rejected = next(s for s in sites if s.status == "rejected")
    ids = [str(s.public_id) for s in schedulable[:2]]
    assert (
        client.post(
            "/api/v1/work-orders", json={"title": "x", "sites": ids}, auth=staff["viewer"]
        ).status_code
        == 403
    )
    bad = client.post(
        "/api/v1/work-orders", json={"title": "x", "sites": [str(rejected.public_id)]}, auth=rev
    )
    assert bad.status_code == 409
    assert client.post("/api/v1/work-orders", json={"title": " ", "sites": ids}, auth=rev).status_code == 422
    r = client.post("/api/v1/work-orders", json={"title": "Innenstadt", "sites": ids}, auth=rev)
    assert r.status_code == 201
    order = r.json()
    assert order["status"] == "new" and order["sites"] == ids and order["created_by"] == "reviewer"
    for sid in ids:
        (d,) = [
            x
            for x in client.get(f"/api/v1/sites/{sid}/decisions", auth=rev).json()
            if x["action"] == "schedule"
        ]
        assert d["new_status"] == "scheduled" and d["reason"] == f"work order {order['id']}"
    # A site is in one active order at a time.
    again = client.post("/api/v1/work-orders", json={"title": "y", "sites": ids[:1]}, auth=rev)
    assert again.status_code == 409
    oid = order["id"]
    # A title a spreadsheet would run as a formula is exported as text.
    formula = client.patch(f"/api/v1/work-orders/{oid}", json={"title": '=HYPERLINK("x")'}, auth=rev)
    assert formula.status_code == 200
    exported = next(
        csv.DictReader(io.StringIO(client.get(f"/api/v1/work-orders/{oid}/sites.csv", auth=rev).text))
    )
    assert exported["order_title"] == '\'=HYPERLINK("x")'
    r = client.patch(f"/api/v1/work-orders/{oid}", json={"crew": "Kolonne Süd"}, auth=rev)
    assert r.json()["status"] == "assigned" and r.json()["crew"] == "Kolonne Süd"
    assert client.patch(f"/api/v1/work-orders/{oid}", json={"status": "bogus"}, auth=rev).status_code == 422
    third = str(schedulable[2].public_id)
    assert (
        client.post(f"/api/v1/work-orders/{oid}/sites", json={"sites": [third]}, auth=rev).status_code == 200
    )
    assert client.delete(f"/api/v1/work-orders/{oid}/sites/{third}", auth=rev).status_code == 204
    third_site = client.get(f"/api/v1/sites/{third}", auth=rev).json()["properties"]
    assert third_site["status"] == "confirmed"  # unscheduled again
    rows = list(
        csv.DictReader(io.StringIO(client.get(f"/api/v1/work-orders/{oid}/sites.csv", auth=rev).text))
    )
    assert (
        [r["id"] for r in rows] == ids
        and rows[0]["crew"] == "Kolonne Süd"
        and rows[0]["order_position"] == "1"
    )
    gj = json.loads(client.get(f"/api/v1/work-orders/{oid}/sites.geojson", auth=rev).text)
    assert gj["work_order"]["order_id"] == oid and len(gj["features"]) == 2
    done = client.patch(f"/api/v1/work-orders/{oid}", json={"status": "done"}, auth=rev).json()
    assert [h["action"] for h in done["history"]] == [
        "created",
        "site_added",
        "site_added",
        "crew",
        "status",
        "site_added",
        "site_removed",
        "status",
    ]
    for sid in ids:
        assert client.get(f"/api/v1/sites/{sid}", auth=rev).json()["properties"]["status"] == "repaired"
    assert client.patch(f"/api/v1/work-orders/{oid}", json={"crew": "z"}, auth=rev).status_code == 409
    assert [o["id"] for o in client.get("/api/v1/work-orders?status=done", auth=staff["viewer"]).json()] == [
        oid
    ]


def test_bad_input_is_a_client_error_not_a_500(client, staff, sites) -> None:  # type: ignore[no-untyped-def]
    rev, big = staff["reviewer"], 10**22
    # NUL (PostgreSQL text cannot hold it) in a Basic user name: not logged in, not a database error.
    assert client.get("/api/v1/sites", auth=("rev\x00iewer", "x")).status_code == 401
    # Ids beyond the integer columns, offsets beyond bigint: 404 / 422, not a database error.
    assert client.get(f"/api/v1/frames/{big}/image", auth=rev).status_code == 404
    assert client.get(f"/api/v1/work-orders/{big}", auth=rev).status_code == 404
    assert client.get(f"/api/v1/sites?offset={big}", auth=rev).status_code == 422
    assert client.get("/api/v1/work-orders?status=new%00", auth=rev).status_code == 422
    site = next(s for s in sites if s.status == "open")
    r = client.post(
        f"/api/v1/sites/{site.public_id}/decisions", json={"action": "reject", "reason": "a\x00b"}, auth=rev
    )
    assert r.status_code == 422 and "NUL" in r.json()["detail"]
    r = client.post("/api/v1/work-orders", json={"title": "a\x00", "sites": [str(site.public_id)]}, auth=rev)
    assert r.status_code == 422 and "NUL" in r.json()["detail"]
