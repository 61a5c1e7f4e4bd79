"""The staff web app, served by the service itself: ranked list and map, site pages with photos and
decisions, work orders, accounts, vehicles, and the transparency page (pages and forms only: they
call the same db/ and worker/ functions as the JSON API in service/api). Jinja2 templates, plain
JavaScript and a vendored Leaflet under static/ (no build step, no CDN); words in locales/{de,en}.json.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

STATIC_DIR = Path(__file__).resolve().parent / "static"


def routers() -> list[APIRouter]:
    """The web app's routers, in include order."""
    from service.web import accounts, frames, orders, pages, streets, transparency, vehicles

    return [
        accounts.router,
        vehicles.router,
        frames.router,
        pages.router,
        orders.router,
        streets.router,
        transparency.router,
    ]
