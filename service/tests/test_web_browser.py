"""End to end in headless Chromium (Debian's, driven by Playwright) against the running service and PostGIS:
log in, ranked list and map, a site, confirm, reject with a reason, work order, CSV export, the wrong
role; axe-core on every page. Screenshots: see browser.SCREENSHOTS."""

from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path
from typing import Any

import pytest

from service.tests.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SCREENSHOTS,
    axe_violations,
    describe,
    running_service,
)
from service.tests.web_seed import seed_sites

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}")


@pytest.fixture
def service_url(app, staff, settings):  # type: ignore[no-untyped-def]
    app.state.seeded = seed_sites(app)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with running_service(settings.database_url, settings.data_dir) as url:
        yield url


def check_axe(page: Any, where: str, report: dict[str, int]) -> None:
    violations = axe_violations(page)
    report[where] = len(violations)
    assert not violations, f"axe-core on {where}:\n{describe(violations)}"


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def test_staff_workflow_in_chromium(service_url: str, app, staff, tmp_path) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    sites = app.state.seeded
    axe_report: dict[str, int] = {}
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        # bypass_csp: axe is injected as an inline script, which the pages' CSP (rightly) forbids.
        context = browser.new_context(
            viewport={"width": 1280, "height": 800}, accept_downloads=True, bypass_csp=True, locale="de-DE"
        )
        context.set_default_timeout(10_000)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        # Not logged in: the login form, in German.
        page.goto(service_url + "/sites")
        assert "/login" in page.url
        assert page.locator("h1").inner_text() == "Anmelden"
        check_axe(page, "login", axe_report)
        shot(page, "01-login")

        # Keyboard: the first Tab reaches the skip link, which leads to the main content.
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip-link"

        page.get_by_label("Benutzername").fill(staff["reviewer"][0])
        page.get_by_label("Passwort").fill(staff["reviewer"][1])
        page.get_by_role("button", name="Anmelden").click()
        page.wait_for_url("**/sites")

        # The ranked list (default: what still needs someone), and the map with all of it.
        rows = page.locator("table.sites-table tbody tr")
        open_like = [s for s in sites if s.status in ("open", "confirmed", "scheduled")]
        assert rows.count() == len(open_like)
        assert rows.nth(0).get_attribute("data-site") == str(open_like[0].public_id)
        assert rows.nth(0).locator("td").nth(1).inner_text() == "1"
        page.wait_for_selector("#map[data-loaded]")
        assert page.get_attribute("#map", "data-loaded") == str(len(open_like))
        check_axe(page, "list", axe_report)
        page.evaluate("document.getElementById('list-heading').scrollIntoView()")
        shot(page, "02-list")
        page.evaluate("window.scrollTo(0, 0)")

        # Draw an area on the map: the filter gets its bounding box.
        page.get_by_role("button", name="Gebiet zeichnen").click()
        page.locator("#map").scroll_into_view_if_needed()
        box = page.locator("#map").bounding_box()
        # In the top right corner: fitBounds pads the sites, so no marker is there.
        page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + 15)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] - 15, box["y"] + box["height"] * 0.1, steps=5)
        page.mouse.up()
        assert len(page.input_value("#bbox").split(",")) == 4
        page.get_by_role("button", name="Gebiet entfernen").click()

        # Open the most urgent site the model proposed, see its photo with boxes, confirm it.
        first, second = [s for s in open_like if s.status == "open"][:2]
        page.locator(f'tr[data-site="{first.public_id}"] td').nth(3).get_by_role("link").click()
        page.wait_for_url(f"**/sites/{first.public_id}")
        assert page.locator(".status-open").first.is_visible()
        image = page.locator(".photo img").first
        image.wait_for()
        assert page.evaluate("(img) => img.complete && img.naturalWidth", image.element_handle()) == 640
        check_axe(page, "site", axe_report)
        page.get_by_role("button", name="Bestätigen").click()
        assert page.locator(".flash").inner_text() == "Schadstelle bestätigt."
        assert page.locator("h1 + p .status").inner_text() == "Bestätigt"
        shot(page, "03-site")

        # Reject the second one as a false detection, with a reason.
        page.goto(f"{service_url}/sites/{second.public_id}")
        page.get_by_label("Begründung für das Verwerfen (Pflichtfeld)").fill("Schatten eines Baums")
        page.get_by_role("button", name="Als Fehlerkennung verwerfen").click()
        assert page.locator(".flash").inner_text() == "Schadstelle als Fehlerkennung verworfen."
        assert "Schatten eines Baums" in page.locator(".history").inner_text()

        # A work order from two selected sites in the list, with a crew.
        page.goto(service_url + "/sites")
        chosen = [s for s in open_like if s.status in ("open", "confirmed") and s not in (first, second)][:2]
        for site in chosen:
            page.locator(f'tr[data-site="{site.public_id}"] input[type=checkbox]').check()
        page.get_by_label("Titel").fill("Schlaglöcher Innenstadt")
        page.get_by_label("Kolonne").fill("Kolonne Nord")
        page.get_by_role("button", name="Arbeitsauftrag anlegen").click()
        page.wait_for_url("**/orders/*")
        assert page.locator("table.sites-table tbody tr").count() == 2
        assert "Zugewiesen" in page.locator("h1 + p").inner_text()
        page.wait_for_selector(".site-marker.numbered")
        check_axe(page, "work order", axe_report)
        shot(page, "04-work-order")

        # Export its sites as CSV.
        with page.expect_download() as download:
            page.locator("#export-csv").click()
        text = Path(download.value.path()).read_text(encoding="utf-8")
        rows_csv = list(csv.DictReader(io.StringIO(text)))
        assert {r["id"] for r in rows_csv} == {str(s.public_id) for s in chosen}
        assert {r["status"] for r in rows_csv} == {"scheduled"} and rows_csv[0]["crew"] == "Kolonne Nord"

        # The print view: map, list and photos.
        page.get_by_role("link", name="Druckansicht").click()
        page.wait_for_selector(".print-photos img")
        check_axe(page, "print", axe_report)
        shot(page, "05-print")

        # The transparency page, in English.
        page.goto(service_url + "/about")
        page.get_by_role("link", name="English").click()
        assert page.locator("h1").inner_text() == "About the model"
        assert "roadwatch-yolov5nu-v0-fp32" in page.locator("main").inner_text()
        check_axe(page, "about (en)", axe_report)
        shot(page, "06-about")
        page.get_by_role("link", name="Deutsch").click()

        # The wrong role: a viewer cannot reach the accounts page, nor decide.
        page.get_by_role("button", name="Abmelden").click()
        page.get_by_label("Benutzername").fill(staff["viewer"][0])
        page.get_by_label("Passwort").fill(staff["viewer"][1])
        page.get_by_role("button", name="Anmelden").click()
        page.wait_for_url("**/sites")
        response = page.goto(service_url + "/admin/users")
        assert response is not None and response.status == 403
        assert page.locator("h1").inner_text() == "Zugriff verweigert"
        check_axe(page, "forbidden", axe_report)
        page.goto(f"{service_url}/sites/{second.public_id}")
        assert page.get_by_role("button", name="Bestätigen").count() == 0

        # The admin's pages: accounts, and vehicles with a new token shown once.
        page.get_by_role("button", name="Abmelden").click()
        page.get_by_label("Benutzername").fill(staff["admin"][0])
        page.get_by_label("Passwort").fill(staff["admin"][1])
        page.get_by_role("button", name="Anmelden").click()
        page.wait_for_url("**/sites")
        page.get_by_role("link", name="Konten").click()
        check_axe(page, "accounts", axe_report)
        page.get_by_role("link", name="Fahrzeuge").click()
        check_axe(page, "vehicles", axe_report)
        shot(page, "07-vehicles")
        page.get_by_label("Name", exact=True).fill("Kehrmaschine 3")
        page.get_by_role("button", name="Fahrzeug und Token anlegen").click()
        assert page.locator("#new-token").inner_text().startswith("rwv_")
        check_axe(page, "vehicles, token shown", axe_report)

        assert not errors, errors
        context.close()
        browser.close()
    print(f"axe-core violations per page: {axe_report}; {time.monotonic() - started:.1f} s")
    assert time.monotonic() - started < 90
