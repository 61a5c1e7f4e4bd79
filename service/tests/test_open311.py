"""Open311 GeoReport v2: the pure rules, the endpoint over HTTP (attach or create, status follows the site,
errors in the spec's format with nothing stored, privacy), and the published client ``georeport`` against
the running service."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from geoalchemy2 import WKTElement
from sqlalchemy import create_engine, func, select, text

from service.db.engine import transaction
from service.db.open311 import CitizenReport, CitizenReportContact, add_client
from service.db.road_tables import RoadSection
from service.db.tables import DamageSite, point
from service.domain.open311 import parse_report, request_status, statuses_for, street_of, to_xml
from service.errors import InvalidInput

ROOT = Path(__file__).resolve().parents[2]
SEEN = datetime(2026, 5, 4, 10, 30, tzinfo=UTC)
CONTACT = {
    "email": "erika@example.org",
    "first_name": "Erika",
    "last_name": "Mustermann",
    "phone": "+49 30 1234",
}


# -- pure rules -----------------------------------------------------------------------------------------


def test_parse_report_checks_every_field() -> None:
    report = parse_report({"service_code": "pothole", "lat": "52.5", "long": "13.4", "description": " deep "})
    assert report.service.code == "pothole" and report.lat == 52.5 and report.description == "deep"
    assert parse_report({"service_code": "crack", "address_string": "Hauptstraße 12"}).lat is None
    for form, words in [
        ({"lat": "52.5", "long": "13.4"}, "service_code is required"),
        ({"service_code": "graffiti", "lat": "52.5", "long": "13.4"}, "service_code must be one of"),
        ({"service_code": "pothole"}, "a location is required"),
        ({"service_code": "pothole", "lat": "52.5"}, "together"),
        ({"service_code": "pothole", "lat": "95", "long": "13.4"}, "lat must be in -90..90"),
        ({"service_code": "pothole", "lat": "nan", "long": "13.4"}, "lat must be in"),
        ({"service_code": "pothole", "lat": "x", "long": "13.4"}, "lat must be a number"),
        ({"service_code": "pothole", "lat": "1", "long": "1", "description": "x" * 4001}, "at most 4000"),
        ({"service_code": "pothole", "lat": "1", "long": "1", "media_url": "file:///etc/passwd"}, "http(s)"),
        ({"service_code": "pothole", "lat": "1", "long": "1", "email": "nobody"}, "e-mail"),
        ({"service_code": "pothole", "lat": "1", "long": "1", "description": "a\x00b"}, "NUL"),
    ]:
        with pytest.raises(InvalidInput, match=words.replace("(", r"\(").replace(")", r"\)")):
            parse_report(form)


def test_street_status_and_xml() -> None:
    assert street_of("Hauptstraße 12, 10115 Berlin") == "Hauptstraße"
    assert street_of("Unter den Linden 5a") == "Unter den Linden"
    assert street_of("Karl-Marx-Allee") == "Karl-Marx-Allee"
    assert request_status("open") == ("open", "Received; waiting for review.")
    assert request_status("scheduled")[0] == "open" and request_status("repaired") == ("closed", "Repaired.")
    assert request_status("rejected")[0] == "closed"
    assert set(statuses_for("closed") or ()) == {"repaired", "rejected"}
    with pytest.raises(InvalidInput):
        statuses_for("pending")
    root = ET.fromstring(to_xml("service_requests", "request", [{"a": 1, "b": None, "c": True}]))
    assert root.tag == "service_requests" and root[0].tag == "request"
    assert [(c.tag, c.text) for c in root[0]] == [("a", "1"), ("b", None), ("c", "true")]


# -- over HTTP ------------------------------------------------------------------------------------------


@pytest.fixture
def api_key(app) -> str:  # type: ignore[no-untyped-def]
    with transaction(app.state.sessions) as s:
        _, key = add_client(s, f"portal-{uuid.uuid4().hex[:8]}")
    return key


@pytest.fixture
def pothole(app) -> DamageSite:  # type: ignore[no-untyped-def]
    with transaction(app.state.sessions) as s:
        site = DamageSite(
            class_name="D40",
            position=point(52.5, 13.4),
            priority=70.0,
            status="confirmed",
            first_seen=SEEN,
            last_seen=SEEN,
            sightings=3,
            n_observations=3,
            ranking_version="t",
        )
        s.add(site)
    return site


def counts(app) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    with app.state.sessions() as s:
        return (
            s.scalar(select(func.count()).select_from(CitizenReport)),
            s.scalar(select(func.count()).select_from(CitizenReportContact)),
            s.scalar(select(func.count()).select_from(DamageSite)),
        )


def post(client, key: str | None, fmt: str = "json", **fields: str):  # type: ignore[no-untyped-def]
    data = {**({"api_key": key} if key else {}), **fields}
    return client.post(f"/open311/v2/requests.{fmt}", data=data)


def test_services_json_and_xml(client) -> None:  # type: ignore[no-untyped-def]
    services = client.get("/open311/v2/services.json").json()
    assert [s["service_code"] for s in services] == ["pothole", "crack", "other"]
    assert services[0]["service_name"] == "Pothole" and services[0]["metadata"] is False
    xml = client.get("/open311/v2/services.xml")
    assert xml.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(xml.content)
    assert root.tag == "services" and [s.findtext("service_code") for s in root] == [
        "pothole",
        "crack",
        "other",
    ]
    assert client.get("/open311/v2/services.csv").status_code == 404


def test_report_attaches_to_a_nearby_site_and_follows_it(client, app, staff, api_key, pothole) -> None:  # type: ignore[no-untyped-def]
    # 5 m north of the pothole: attaches; a crack report there does not (another class family).
    r = post(
        client, api_key, service_code="pothole", lat="52.500045", long="13.4", description="tief", **CONTACT
    )
    assert r.status_code == 201, r.text
    (created,) = r.json()
    rid = created["service_request_id"]
    assert set(created) == {"service_request_id", "service_notice", "account_id"}
    with app.state.sessions() as s:
        site = s.get(DamageSite, pothole.id)
        assert site.citizen_reports == 1 and not site.citizen_reported
    (req,) = client.get(f"/open311/v2/requests/{rid}.json").json()
    assert req["status"] == "open" and req["status_notes"] == "Confirmed by the road maintenance staff."
    assert req["service_code"] == "pothole" and req["description"] == "tief"
    assert req["lat"] == pytest.approx(52.500045) and req["long"] == pytest.approx(13.4)
    # The site shows the count; staff (reviewer) see the contact details, viewers do not.
    props = client.get(f"/api/v1/sites/{pothole.public_id}", auth=staff["viewer"]).json()["properties"]
    assert props["citizen_reports"] == 1 and props["citizen_reported"] is False
    url = f"/api/v1/sites/{pothole.public_id}/citizen-reports"
    assert client.get(url, auth=staff["viewer"]).status_code == 403
    (full,) = client.get(url, auth=staff["reviewer"]).json()
    assert full["contact"]["email"] == "erika@example.org" and full["service_request_id"] == rid

    # The request's status follows the site: repaired -> closed with the public note (not the reason).
    d = client.post(
        f"/api/v1/sites/{pothole.public_id}/decisions",
        json={"action": "repair", "reason": "Kolonne 3, intern"},
        auth=staff["reviewer"],
    )
    assert d.status_code == 201, d.text
    (req,) = client.get(f"/open311/v2/requests/{rid}.json").json()
    assert (
        req["status"] == "closed" and req["status_notes"] == "Repaired." and "Kolonne" not in json.dumps(req)
    )
    closed = client.get("/open311/v2/requests.json?status=closed").json()
    assert [q["service_request_id"] for q in closed] == [rid]
    assert client.get("/open311/v2/requests.json?status=open").json() == []


def test_report_far_from_sites_creates_a_citizen_site(client, app, staff, api_key, pothole) -> None:  # type: ignore[no-untyped-def]
    crack = post(client, api_key, service_code="crack", lat="52.500045", long="13.4")  # near, other family
    far = post(client, api_key, fmt="xml", service_code="pothole", lat="52.51", long="13.41", **CONTACT)
    assert crack.status_code == far.status_code == 201
    assert ET.fromstring(far.content).tag == "service_requests"
    with app.state.sessions() as s:
        new = s.scalars(select(DamageSite).where(DamageSite.citizen_reported).order_by(DamageSite.id)).all()
        assert [(n.class_name, n.status, n.citizen_reports) for n in new] == [
            ("D00", "open", 1),
            ("D40", "open", 1),
        ]
        assert all(n.priority > 0 and n.ranking_version for n in new)
    # In the review queue (open sites), not as the model's proposal.
    listed = client.get("/api/v1/sites?status=open", auth=staff["viewer"]).json()["features"]
    assert len(listed) == 2 and all(f["properties"]["citizen_reported"] for f in listed)
    assert not any(f["properties"]["proposed_by_model"] for f in listed)
    # Contact details never appear in public answers, exports or the OGC collection.
    leaks = [
        client.get("/open311/v2/requests.json").text,
        client.get("/open311/v2/requests.xml").text,
        client.get("/api/v1/sites.csv", auth=staff["viewer"]).text,
        client.get("/api/v1/sites.geojson", auth=staff["viewer"]).text,
        client.get("/api/v1/sites", auth=staff["viewer"]).text,
        client.get("/ogc/collections/damage_sites/items?limit=100", auth=staff["viewer"]).text,
    ]
    for body in leaks:
        for value in CONTACT.values():
            assert value not in body
    assert len(client.get("/open311/v2/requests.json").json()) == 2
    # The staff site page counts the reports and says where the site came from (German by default).
    from service.tests.web_seed import login

    login(client, *staff["viewer"])
    page = client.get(f"/sites/{new[1].public_id}").text
    assert "Von Bürgern gemeldet</dt><dd>1 (aus einer Bürgermeldung angelegt)" in page
    assert CONTACT["email"] not in page


def test_address_string_on_the_road_network(client, app, api_key) -> None:  # type: ignore[no-untyped-def]
    with transaction(app.state.sessions) as s:
        s.add(
            RoadSection(
                id="w1:0", way_id="w1", ordinal=0, name="Hauptstraße", importance=0.5,
                importance_source="t", length_m=68.0,
                geom=WKTElement("LINESTRING(13.40 52.5, 13.401 52.5)", srid=4326),
            )
        )  # fmt: skip
    r = post(client, api_key, service_code="other", address_string="Hauptstraße 12, Berlin")
    assert r.status_code == 201, r.text
    (req,) = client.get(f"/open311/v2/requests/{r.json()[0]['service_request_id']}.json").json()
    assert req["lat"] == pytest.approx(52.5) and req["long"] == pytest.approx(13.4005)
    assert req["address"] == "Hauptstraße 12, Berlin"
    unknown = post(client, api_key, service_code="other", address_string="Nirgendweg 1")
    assert unknown.status_code == 400 and "Nirgendweg" in unknown.json()[0]["description"]


def test_bad_input_is_a_spec_error_and_stores_nothing(client, app, api_key, pothole) -> None:  # type: ignore[no-untyped-def]
    before = counts(app)
    cases = [
        (None, {"service_code": "pothole", "lat": "52.5", "long": "13.4"}, 403, "api_key is required"),
        ("rw311_wrong", {"service_code": "pothole", "lat": "52.5", "long": "13.4"}, 403, "not valid"),
        (api_key, {"service_code": "pothole", **CONTACT}, 400, "location is required"),
        (api_key, {"service_code": "pothole", "lat": "abc", "long": "13.4"}, 400, "lat must be a number"),
        (api_key, {"service_code": "pothole", "lat": "52.5", "long": "200"}, 400, "long must be in"),
        (api_key, {"service_code": "graffiti", "lat": "52.5", "long": "13.4"}, 400, "service_code"),
        (api_key, {"service_code": "pothole", "lat": "52.5", "long": "13.4", "description": "x" * 5000}, 400, "4000"),
    ]  # fmt: skip
    for key, fields, code, words in cases:
        r = post(client, key, **fields)
        assert r.status_code == code, (fields, r.text)
        (err,) = r.json()
        assert err["code"] == code and words in err["description"], err
        x = post(client, key, fmt="xml", **fields)
        root = ET.fromstring(x.content)
        assert x.status_code == code and root.tag == "errors" and root[0].findtext("code") == str(code)
    upload = client.post(
        "/open311/v2/requests.json",
        data={"api_key": api_key, "service_code": "pothole", "lat": "52.5", "long": "13.4"},
        files={"media": ("a.jpg", b"\xff\xd8", "image/jpeg")},
    )
    assert upload.status_code == 400 and "media must be a JPEG or PNG" in upload.json()[0]["description"]
    assert counts(app) == before
    missing = client.get("/open311/v2/requests/999999.json")
    assert missing.status_code == 404 and missing.json()[0]["code"] == 404
    assert client.get("/open311/v2/requests/abc.xml").status_code == 404
    bad_date = client.get("/open311/v2/requests.json?start_date=yesterday")
    assert bad_date.status_code == 400 and "start_date" in bad_date.json()[0]["description"]
    assert client.get("/open311/v2/requests.json?service_request_id=1;DROP").status_code == 400


def test_requests_window_and_ids(client, app, api_key) -> None:  # type: ignore[no-untyped-def]
    ids = [
        post(client, api_key, service_code="crack", lat=f"52.{i}", long="13.4").json()[0] for i in range(3)
    ]
    rids = [i["service_request_id"] for i in ids]
    with transaction(app.state.sessions) as s:  # the first one is old: outside the default 90 days
        s.execute(
            text("UPDATE citizen_report SET requested_at = '2025-01-01Z' WHERE id = :i"), {"i": int(rids[0])}
        )
    recent = [q["service_request_id"] for q in client.get("/open311/v2/requests.json").json()]
    assert recent == [rids[2], rids[1]]
    old = client.get(
        "/open311/v2/requests.json?start_date=2024-12-01T00:00:00Z&end_date=2025-02-01T00:00:00Z"
    )
    assert [q["service_request_id"] for q in old.json()] == [rids[0]]
    by_id = client.get(f"/open311/v2/requests.json?service_request_id={rids[0]},{rids[2]}").json()
    assert {q["service_request_id"] for q in by_id} == {rids[0], rids[2]}


def test_retention_deletes_contact_details(client, app, api_key) -> None:  # type: ignore[no-untyped-def]
    from service.worker.retention import enforce_retention

    old, new = (
        post(client, api_key, service_code="pothole", lat=f"52.{i}", long="13.4", **CONTACT) for i in (1, 2)
    )
    old_id, new_id = int(old.json()[0]["service_request_id"]), int(new.json()[0]["service_request_id"])
    with transaction(app.state.sessions) as s:
        s.execute(
            text("UPDATE citizen_report SET requested_at = now() - interval '400 days' WHERE id = :i"),
            {"i": old_id},
        )
    enforce_retention(app.state.sessions, app.state.store, 365)
    with app.state.sessions() as s:
        assert s.scalars(select(CitizenReportContact.report_id)).all() == [new_id]
        assert s.scalar(select(func.count()).select_from(CitizenReport)) == 2  # the reports stay


# -- the published client against the running service ---------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(settings) -> Iterator[str]:  # type: ignore[no-untyped-def]
    port = free_port()
    env = {**os.environ, "DATABASE_URL": settings.database_url, "ROADWATCH_DATA_DIR": str(settings.data_dir)}
    cmd = [sys.executable, "-m", "service", "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 40
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/open311/v2"
    finally:
        proc.kill()
        proc.wait(10)


def test_georeport_client_against_the_service(server, settings) -> None:  # type: ignore[no-untyped-def]
    import requests
    from georeport import GeoReport

    # The key comes from the CLI (printed once; only its hash is stored).
    env = {**os.environ, "DATABASE_URL": settings.database_url}
    out = subprocess.run(
        [sys.executable, "-m", "service", "open311", "key", "add", "maengelmelder"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    key = json.loads(out.stdout)["api_key"]
    engine = create_engine(settings.database_url)
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT key_hash FROM open311_client WHERE name = 'maengelmelder'")
        ).scalar()
    engine.dispose()
    assert stored and key not in stored and len(stored) == 64

    client = GeoReport(server, api_key=key)
    assert [s["service_code"] for s in client.get_service_list()] == ["pothole", "crack", "other"]
    xml_client = GeoReport(server, api_key=key, output_format="xml")
    assert [s["service_code"] for s in xml_client.get_service_list()] == ["pothole", "crack", "other"]

    # georeport 0.3.1 has no POST method: the request is posted as the spec defines it (form-encoded).
    posted = requests.post(
        f"{client.root_address}/requests.json",
        data={"api_key": client.api_key, "service_code": "pothole", "lat": "52.52", "long": "13.405",
              "description": "Schlagloch vor der Schule", **CONTACT},
        timeout=30,
    )  # fmt: skip
    assert posted.status_code == 201, posted.text
    rid = posted.json()[0]["service_request_id"]

    one = client.get_service_request(rid)
    assert one["service_request_id"] == rid and one["status"] == "open"
    assert one["description"] == "Schlagloch vor der Schule" and "email" not in one
    listed = client.get_service_requests(status="open")
    assert [r["service_request_id"] for r in listed] == [rid]
    assert client.get_service_requests(status="closed") == []
    xml_one = xml_client.get_service_request(rid)
    assert xml_one["service_request_id"] == rid and xml_one["service_code"] == "pothole"
    wrong = requests.post(
        f"{client.root_address}/requests.json",
        data={"api_key": "wrong", "service_code": "pothole", "lat": "52.52", "long": "13.405"},
        timeout=30,
    )
    assert wrong.status_code == 403 and wrong.json()[0]["code"] == 403
