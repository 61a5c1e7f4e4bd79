"""The staff maps in headless Chromium (Debian's, driven by Playwright) against the running service and PostGIS:
the sites list's map switches to vector tiles above ``ROADWATCH_MAP_TILES_ABOVE`` sites (same filters as the
list, colours by priority band, click-through to the site) and keeps the clustered GeoJSON map below it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from service.db.engine import transaction
from service.db.tables import DamageSite, ModelVersion, point
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
    return page.evaluate(
        """(bands) => {
            for (const c of document.querySelectorAll('#map canvas')) {
                const r = c.getBoundingClientRect();
                if (!c.width || r.width === 0) { continue; }
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                for (let y = 10; y < c.height - 10; y++) {
                    for (let x = 10; x < c.width - 10; x++) {
                        const k = (y * c.width + x) * 4;
                        if (d[k + 3] < 200) { continue; }
                        for (const [band, rgb] of Object.entries(bands)) {
                            if (Math.abs(d[k] - rgb[0]) + Math.abs(d[k + 1] - rgb[1]) + Math.abs(d[k + 2] - rgb[2]) > 12) {
                                continue;
                            }
                            const px = r.left + (x + 3) * r.width / c.width, py = r.top + (y + 3) * r.height / c.height;
                            const m = document.getElementById('map').getBoundingClientRect();
                            if (px < m.left + 20 || px > m.right - 20 || py < m.top + 20 || py > m.bottom - 20) { continue; }
                            return {x: px, y: py, band: band};
                        }
                    }
                }
            }
            return null;
        }""",
        BANDS,
    )


def test_sites_map_tiles_above_threshold_geojson_below(tiled_service: str, app, staff) -> None:  # type: ignore[no-untyped-def]
    counts = app.state.counts
    assert counts["D20"] > THRESHOLD > counts["D00"]
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(
            viewport={"width": 1280, "height": 900}, bypass_csp=False, locale="en-GB"
        )
        context.set_default_timeout(15_000)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)

        page.goto(tiled_service + "/login?lang=en")
        page.get_by_label("User name").fill(staff["viewer"][0])
        page.get_by_label("Password").fill(staff["viewer"][1])
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/sites")

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
        link.click()
        page.wait_for_url(f"**/sites/{site_id}")

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
