"""The staff maps in headless Chromium (Debian's, driven by Playwright) against the running service and PostGIS:
the sites list's map switches to vector tiles above ``ROADWATCH_MAP_TILES_ABOVE`` sites (same filters as the
list, colours by priority band, click-through to the site) and keeps the clustered GeoJSON map below it; the
streets map switches between grade and coverage colours (age of the last usable pass, never surveyed apart),
and its GeoJSON and the streets list filter "not surveyed since"."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import pytest

from service.db.coverage import recount_passes
from service.db.engine import transaction
from service.db.grades import SectionGrade
from service.db.road_tables import FrameQuality, FrameRoad, RoadSection
from service.db.tables import DamageSite, Frame, ModelVersion, UploadBatch, point
from service.db.vehicles import add_vehicle
from service.tests.browser import CHROMIUM, CHROMIUM_ARGS, axe_violations, describe, running_service

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}")

BASE = (51.9617, 7.6282)  # Münster, Prinzipalmarkt
NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
THRESHOLD = 50
# The CSS colours of the priority bands (app.css: --high, --medium, --low).
BANDS = {"high": (0xA4, 0x16, 0x1A), "medium": (0x8A, 0x4B, 0x00), "low": (0x1D, 0x5E, 0x8C)}


def many_sites(app: Any, n: int = 200) -> dict[str, int]:
    """``n`` open sites on a 14 x 15 grid of about 20 m (120 D20, 40 D40, 40 D00), priorities 0..99; returns
    the count per class."""
    counts: dict[str, int] = {}
    with transaction(app.state.sessions) as s:
        model = ModelVersion(name="roadwatch-yolov5nu-v0-fp32@aab417621d4c", sha256="b" * 64, file="x.onnx")
        s.add(model)
        s.flush()
        for i in range(n):
            cls = ("D20", "D20", "D20", "D40", "D00")[i % 5]
            counts[cls] = counts.get(cls, 0) + 1
            lat, lon = BASE[0] + (i // 14) * 0.00018, BASE[1] + (i % 14) * 0.0003
            s.add(
                DamageSite(
                    class_name=cls,
                    class_votes={cls: 0.8},
                    position=point(lat, lon),
                    max_confidence=0.8,
                    size_m=0.5,
                    sightings=1,
                    n_observations=1,
                    priority=float(i * 37 % 100),
                    status="open",
                    first_seen=NOW - timedelta(days=30),
                    last_seen=NOW - timedelta(days=i % 20),
                    model_version_id=model.id,
                )
            )
    return counts


@pytest.fixture
def tiled_service(app, staff, settings, monkeypatch) -> Iterator[str]:  # type: ignore[no-untyped-def]
    app.state.counts = many_sites(app)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("ROADWATCH_MAP_TILES_ABOVE", str(THRESHOLD))  # the subprocess reads it
    with running_service(settings.database_url, settings.data_dir) as url:
        yield url


def band_pixel(page: Any) -> dict[str, Any] | None:
    """A point drawn in a band colour on the map's canvas tiles: its page position and band (None if none)."""
    hits = colour_pixels(page, BANDS)
    return hits[0] if hits else None


def colour_pixels(page: Any, colours: dict[str, tuple[int, int, int]]) -> list[dict[str, Any]]:
    """The first point drawn in each of ``colours`` on the map's canvas tiles (inside the map, opaque), in the
    order found: its page position and colour name (``band``)."""
    return page.evaluate(
        """(bands) => {
            const hits = [], found = new Set();
            for (const c of document.querySelectorAll('#map canvas')) {
                const r = c.getBoundingClientRect();
                if (!c.width || r.width === 0) { continue; }
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                for (let y = 10; y < c.height - 10; y++) {
                    for (let x = 10; x < c.width - 10; x++) {
                        const k = (y * c.width + x) * 4;
                        if (d[k + 3] < 200) { continue; }
                        for (const [band, rgb] of Object.entries(bands)) {
                            if (found.has(band)) { continue; }
                            if (Math.abs(d[k] - rgb[0]) + Math.abs(d[k + 1] - rgb[1]) + Math.abs(d[k + 2] - rgb[2]) > 12) {
                                continue;
                            }
                            const px = r.left + (x + 3) * r.width / c.width, py = r.top + (y + 3) * r.height / c.height;
                            const m = document.getElementById('map').getBoundingClientRect();
                            if (px < m.left + 20 || px > m.right - 20 || py < m.top + 20 || py > m.bottom - 20) { continue; }
                            hits.push({x: px, y: py, band: band});
                            found.add(band);
                        }
                    }
                }
            }
            return hits;
        }""",
        colours,
    )


def logged_in(browser: Any, base: str, user: tuple[str, str]) -> tuple[Any, Any, list[str], list[str]]:
    """A new page logged in as ``user``: (context, page, page errors and failed responses, requested URLs)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(base + "/login?lang=en")
    page.get_by_label("User name").fill(user[0])
    page.get_by_label("Password").fill(user[1])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/sites")
    return context, page, errors, requests


def test_sites_map_tiles_above_threshold_geojson_below(tiled_service: str, app, staff) -> None:  # type: ignore[no-untyped-def]
    counts = app.state.counts
    assert counts["D20"] > THRESHOLD > counts["D00"]
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context, page, errors, requests = logged_in(browser, tiled_service, staff["viewer"])

        # All 200 (open) sites: above the threshold, so tiles; the list itself pages as before.
        page.wait_for_selector("#map[data-loaded]")
        assert page.get_attribute("#map", "data-loaded") == "tiles"
        assert page.locator("table.sites-table tbody tr").count() == 50
        tiles = [u for u in requests if "/tiles/sites/" in u]
        assert tiles and all(".pbf?" in u and "status=open" in u for u in tiles), tiles
        assert not [u for u in requests if "map.geojson" in u]
        assert any("Leaflet.VectorGrid.bundled.min.js" in u for u in requests)
        assert int(page.get_attribute("#map", "data-tile-features") or 0) == 200
        assert "200 sites" in page.locator("#map-status").inner_text()

        # The list's filter goes to the tiles: 120 D20 sites drawn, not all 200.
        requests.clear()
        page.goto(tiled_service + "/sites?applied=1&class=D20&status=open")
        page.wait_for_selector("#map[data-loaded]")
        assert page.get_attribute("#map", "data-loaded") == "tiles"
        tiles = [u for u in requests if "/tiles/sites/" in u]
        assert tiles and all("class=D20" in u for u in tiles), tiles
        assert int(page.get_attribute("#map", "data-tile-features") or 0) == counts["D20"]
        zooms = {int(u.split("/tiles/sites/")[1].split("/")[0]) for u in tiles}
        assert min(zooms) >= 14, zooms  # the sites' extent is small: single sites with their id

        # Coloured by band; a click opens a popup with the site's page.
        hit = band_pixel(page)
        assert hit is not None, "no site drawn in a band colour"
        page.mouse.click(hit["x"], hit["y"])
        link = page.locator(".leaflet-popup-content a")
        link.wait_for()
        href = link.get_attribute("href") or ""
        assert href.startswith("/sites/")
        site_id = href.rsplit("/", 1)[1]
        with transaction(app.state.sessions) as s:
            site = s.query(DamageSite).filter(DamageSite.public_id == site_id).one()
            assert site.class_name == "D20"
            band = "high" if site.priority >= 70 else "medium" if site.priority >= 40 else "low"
            label = f"Alligator crack, Proposed by the model, priority {site.priority:.0f}"
        assert label in page.locator(".leaflet-popup-content").inner_text()
        assert band == hit["band"]
        # The link itself activated (a pointer click may land while the popup still pans into view).
        with page.expect_navigation(url=f"**/sites/{site_id}"):
            link.evaluate("a => a.click()")

        # Zoomed out: grouped tiles (below zoom 14), still requested with the filter.
        page.goto(tiled_service + "/sites?applied=1&class=D20&status=open")
        page.wait_for_selector("#map[data-loaded]")
        requests.clear()
        for _ in range(4):
            page.get_by_role("button", name="Zoom out").click()
            page.wait_for_timeout(400)
        page.wait_for_function("() => document.querySelectorAll('#map canvas').length > 0")
        tiles = [u for u in requests if "/tiles/sites/" in u]
        assert tiles and min(int(u.split("/tiles/sites/")[1].split("/")[0]) for u in tiles) < 14, tiles
        assert band_pixel(page) is not None

        # Below the threshold (40 D00 sites): the clustered GeoJSON map as before, no tiles.
        requests.clear()
        page.goto(tiled_service + "/sites?applied=1&class=D00&status=open")
        page.wait_for_selector("#map[data-loaded]")
        assert page.get_attribute("#map", "data-loaded") == str(counts["D00"])
        assert [u for u in requests if "/sites/map.geojson?" in u and "class=D00" in u]
        assert not [u for u in requests if "/tiles/" in u or "VectorGrid" in u]
        assert page.locator(".site-cluster, .site-marker").count() > 0

        assert not errors, errors
        context.close()

        # axe-core on the tiled list (injected inline: only with the pages' CSP bypassed).
        context = browser.new_context(
            viewport={"width": 1280, "height": 900}, bypass_csp=True, locale="en-GB"
        )
        page = context.new_page()
        page.goto(tiled_service + "/login?lang=en")
        page.get_by_label("User name").fill(staff["viewer"][0])
        page.get_by_label("Password").fill(staff["viewer"][1])
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/sites")
        page.wait_for_selector("#map[data-loaded='tiles']")
        violations = axe_violations(page)
        assert not violations, describe(violations)
        context.close()
        browser.close()


# The streets map's coverage colouring (issue 14): three sections, surveyed 10 days ago, 400 days ago, never.
SECTIONS = {"w9:0": 10, "w9:1": None, "w9:2": 400}  # section -> days since its usable pass


def sections_with_passes(app: Any) -> None:
    """The sections, and for each surveyed one a usable frame on it, recorded as the worker records it."""
    now = datetime.now(UTC)
    with transaction(app.state.sessions) as s:
        vehicle = add_vehicle(s, "coverage-truck")[0].id
        batch = UploadBatch(vehicle_id=vehicle)
        s.add(batch)
        s.flush()
        frames = []
        for i, (sid, days) in enumerate(SECTIONS.items()):
            lon = BASE[1] + i * 0.001
            s.add(
                RoadSection(
                    id=sid,
                    way_id="w9",
                    ordinal=i,
                    name="Prinzipalmarkt",
                    highway="residential",
                    oneway=False,
                    importance=0.3,
                    importance_source="test",
                    length_m=68.0,
                    geom=f"SRID=4326;LINESTRING({lon} {BASE[0]}, {lon + 0.001} {BASE[0]})",
                )
            )
            s.flush()
            if days is None:
                continue
            f = Frame(
                sha256=f"{sid}-cov".ljust(64, "0")[:64],
                vehicle_id=vehicle,
                batch_id=batch.id,
                filename="x.jpg",
                captured_at=now - timedelta(days=days),
                position=point(BASE[0], lon),
                location_source="exif",
                width=1280,
                height=720,
                status="done",
            )
            s.add(f)
            s.flush()
            s.add(FrameRoad(frame_id=f.id, section_id=sid, distance_m=1.0, seen_from_m=0, seen_to_m=20))
            s.add(FrameQuality(frame_id=f.id, usable=True, reasons=[], metrics={}, version="t"))
            frames.append(f.id)
        s.flush()
        recount_passes(s, [], frames)


def test_streets_map_geojson_carries_the_last_usable_pass_and_filters_not_surveyed_since(  # type: ignore[no-untyped-def]
    app, client, staff
) -> None:
    sections_with_passes(app)
    viewer = staff["viewer"]
    features = client.get("/streets/map.geojson", auth=viewer).json()["features"]
    props = {f["properties"]["id"]: f["properties"] for f in features}
    assert {k: p["age_class"] for k, p in props.items()} == {
        "w9:0": "0-3 months",
        "w9:1": "never",
        "w9:2": "over 12 months",
    }
    assert props["w9:1"]["last_usable_pass"] is None
    last = datetime.fromisoformat(props["w9:0"]["last_usable_pass"])
    assert timedelta(days=9) < datetime.now(UTC) - last < timedelta(days=11)
    # The same classes as the coverage API's layer.
    api = client.get("/api/v1/coverage", auth=viewer).json()["features"]
    assert {f["properties"]["id"]: f["properties"]["age_class"] for f in api} == {
        k: p["age_class"] for k, p in props.items()
    }
    # Not surveyed since 30 days ago: the old and the never surveyed section, in the map and in the list.
    since = (datetime.now(UTC) - timedelta(days=30)).date().isoformat()
    rows = client.get(f"/streets/map.geojson?not_surveyed_since={since}", auth=viewer).json()["features"]
    assert sorted(f["properties"]["id"] for f in rows) == ["w9:1", "w9:2"]
    html = client.get(f"/streets?not_surveyed_since={since}", auth=viewer).text
    assert 'data-section="w9:1"' in html and 'data-section="w9:2"' in html
    assert 'data-section="w9:0"' not in html
    assert f'name="not_surveyed_since" type="date" value="{since}"' in html
    assert client.get("/streets?not_surveyed_since=yesterday", auth=viewer).status_code in (400, 422)
    # Each street page lists its passes (issue 14): one here, 20 m seen clearly; none on the other.
    page = client.get("/streets/w9:0?lang=en", auth=viewer).text
    table = page[
        page.index('id="section-passes"') : page.index("</table>", page.index('id="section-passes"'))
    ]
    assert table.count("<tr>") == 2 and "<td>20.0 m</td>" in table  # header and one pass
    assert "No vehicle has driven this section yet." in client.get("/streets/w9:1?lang=en", auth=viewer).text


@pytest.fixture
def streets_service(app, staff, settings) -> Iterator[str]:  # type: ignore[no-untyped-def]
    sections_with_passes(app)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with running_service(settings.database_url, settings.data_dir) as url:
        yield url


def strokes(page: Any) -> dict[str, list[str | None]]:
    """Each section line's stroke colour and dash pattern as drawn (Leaflet's SVG paths)."""
    return page.evaluate(
        """(ids) => Object.fromEntries(ids.map((id) => {
            const p = document.querySelector('#map path.sec-' + id.replace(/[^A-Za-z0-9_-]/g, '_'));
            return [id, p ? [p.getAttribute('stroke'), p.getAttribute('stroke-dasharray')] : [null, null]];
        }))""",
        list(SECTIONS),
    )


def test_streets_map_switches_to_coverage_colours(streets_service: str, staff) -> None:  # type: ignore[no-untyped-def]
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
        context.set_default_timeout(15_000)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(streets_service + "/login?lang=en")
        page.get_by_label("User name").fill(staff["viewer"][0])
        page.get_by_label("Password").fill(staff["viewer"][1])
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/sites")
        page.goto(streets_service + "/streets")
        page.wait_for_selector("#map[data-loaded]")
        assert page.get_attribute("#map", "data-loaded") == "3"
        grade = strokes(page)
        assert {c for c, _ in grade.values()} == {"#888"}  # none graded yet: all "insufficient data"
        assert (
            page.locator("#legend-grade").is_visible() and not page.locator("#legend-coverage").is_visible()
        )

        page.get_by_role("radio", name="Last usable pass").check()
        page.wait_for_selector("#map[data-mode='coverage']")
        coverage = strokes(page)
        assert coverage["w9:0"] == ["#1b7837", None]  # under 3 months
        assert coverage["w9:2"] == ["#b2182b", None]  # over 12 months
        assert coverage["w9:1"][0] == "#6b6b6b" and coverage["w9:1"][1]  # never: grey, dashed
        assert len({c for c, _ in coverage.values()}) == 3
        legend = page.locator("#legend-coverage")
        assert legend.is_visible() and not page.locator("#legend-grade").is_visible()
        assert "never surveyed" in legend.inner_text() and "up to 3 months" in legend.inner_text()

        page.get_by_role("radio", name="Condition grade").check()
        page.wait_for_selector("#map[data-mode='grade']")
        assert strokes(page) == grade
        assert not errors, errors
        context.close()
        browser.close()


# The streets map as section tiles (issue 16): the line colours of app.js (GRADE_COLOURS, AGE_COLOURS).
SECTION_COLOURS = {
    "grade 3.5": (0xCC, 0x41, 0x25),
    "no grade": (0x88, 0x88, 0x88),
    "0-3 months": (0x1B, 0x78, 0x37),
    "over 12 months": (0xB2, 0x18, 0x2B),
    "never": (0x6B, 0x6B, 0x6B),
}


@pytest.fixture
def tiled_streets_service(app, staff, settings, monkeypatch) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The three sections, w9:0 graded 3.7; the streets map draws tiles above one section."""
    sections_with_passes(app)
    now = datetime.now(UTC)
    with transaction(app.state.sessions) as s:
        s.add(
            SectionGrade(
                section_id="w9:0", computed_at=now, checked_at=now, grade=3.7, status="graded",
                colour_class="3.5-4.0", config_version="t", surveyed_share=0.9, passes=1,
                last_pass=now - timedelta(days=10), inputs={}, current=True,
            )
        )  # fmt: skip
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("ROADWATCH_MAP_SECTION_TILES_ABOVE", "1")  # the subprocess reads it
    with running_service(settings.database_url, settings.data_dir) as url:
        yield url


def drawn(page: Any) -> set[str]:
    return {hit["band"] for hit in colour_pixels(page, SECTION_COLOURS)}


def test_streets_map_section_tiles_above_threshold(tiled_streets_service: str, staff) -> None:  # type: ignore[no-untyped-def]
    base = tiled_streets_service
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context, page, errors, requests = logged_in(browser, base, staff["viewer"])

        # Three sections, above the threshold of one: the section tiles, not the GeoJSON, in the grade colours.
        requests.clear()
        page.goto(base + "/streets")
        page.wait_for_selector("#map[data-drawn='grade']")
        assert page.get_attribute("#map", "data-loaded") == "tiles"
        tiles = [u for u in requests if "/tiles/sections/" in u]
        assert tiles and all(".pbf?" in u for u in tiles), tiles
        assert min(int(u.split("/tiles/sections/")[1].split("/")[0]) for u in tiles) >= 12
        assert not [u for u in requests if "map.geojson" in u]
        assert page.get_attribute("#map", "data-tile-features") == "3"
        assert "3 sections: the map shows them as tiles" in page.locator("#map-status").inner_text()
        assert drawn(page) == {"grade 3.5", "no grade"}
        assert (
            page.locator("#legend-grade").is_visible() and not page.locator("#legend-coverage").is_visible()
        )

        # A click on the graded section: a popup with its grade, last pass and the link to its page.
        page.locator("#map").scroll_into_view_if_needed()  # below the list
        hit = next(h for h in colour_pixels(page, SECTION_COLOURS) if h["band"] == "grade 3.5")
        page.mouse.click(hit["x"], hit["y"])
        link = page.locator(".leaflet-popup-content a")
        link.wait_for()
        assert unquote(link.get_attribute("href") or "") == "/streets/w9:0"
        popup = page.locator(".leaflet-popup-content").inner_text()
        assert "Prinzipalmarkt: 3.7" in popup and "last usable pass on" in popup, popup
        page.locator(".leaflet-popup-close-button").click()

        # Coverage colours: the age of each section's last usable pass, never surveyed grey; and back.
        page.get_by_role("radio", name="Last usable pass").check()
        page.wait_for_selector("#map[data-drawn='coverage']")
        assert drawn(page) == {"0-3 months", "over 12 months", "never"}
        assert (
            page.locator("#legend-coverage").is_visible() and not page.locator("#legend-grade").is_visible()
        )
        page.get_by_role("radio", name="Condition grade").check()
        page.wait_for_selector("#map[data-drawn='grade']")
        assert drawn(page) == {"grade 3.5", "no grade"}

        # The page's filters go to the tiles: not surveyed since 30 days ago leaves w9:1 and w9:2.
        since = (datetime.now(UTC) - timedelta(days=30)).date().isoformat()
        requests.clear()
        page.goto(base + f"/streets?not_surveyed_since={since}")
        page.wait_for_selector("#map[data-drawn='grade']")
        tiles = [u for u in requests if "/tiles/sections/" in u]
        assert tiles and all(f"not_surveyed_since={since}" in u for u in tiles), tiles
        assert page.get_attribute("#map", "data-tile-features") == "2"
        assert drawn(page) == {"no grade"}
        page.get_by_role("radio", name="Last usable pass").check()
        page.wait_for_selector("#map[data-drawn='coverage']")
        assert drawn(page) == {"over 12 months", "never"}

        # Below zoom 12 no tiles: a hint to zoom in.
        for _ in range(10):
            if page.get_attribute("#map", "data-zoom-hint") == "1":
                break
            page.get_by_role("button", name="Zoom out").click()
            page.wait_for_timeout(300)
        requests.clear()
        page.get_by_role("button", name="Zoom out").click()
        page.wait_for_timeout(500)
        assert "zoom in to see the sections" in page.locator("#map-status").inner_text()
        assert not [u for u in requests if "/tiles/sections/" in u]

        # One section (grade class 3.5-4.0), not above the threshold: the GeoJSON map as before.
        requests.clear()
        page.goto(base + "/streets?colour=3.5-4.0")
        page.wait_for_selector("#map[data-loaded]")
        assert page.get_attribute("#map", "data-loaded") == "1"
        assert [u for u in requests if "/streets/map.geojson?" in u and "colour=3.5-4.0" in u]
        assert not [u for u in requests if "/tiles/" in u or "VectorGrid" in u]
        assert page.locator("#map path.sec-w9_0").count() == 1
        assert not errors, errors
        context.close()
        browser.close()
