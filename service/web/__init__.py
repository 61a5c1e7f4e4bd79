"""The staff web app, served by the service itself: ranked list and map, site pages with photos and
decisions, work orders, accounts, vehicles, and the transparency page. Jinja2 templates, plain
JavaScript and a vendored Leaflet under static/ (no build step, no CDN); words in locales/{de,en}.json.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

STATIC_DIR = Path(__file__).resolve().parent / "static"


def routers() -> list[APIRouter]:
    """The web app's routers and its JSON API for decisions and work orders, in include order."""
    from service.web import accounts, api, orders, pages, transparency, vehicles

    return [api.router, accounts.router, vehicles.router, pages.router, orders.router, transparency.router]
