"""The JSON API (``/api/v1``): thin routes over the functions of ``service.db`` and ``service.worker``.

Vehicles upload (``upload``); staff read sites, frames and the transparency record (``sites``), decide and
manage work orders (``decisions``); Label Studio calls ``labelstudio_webhook``.
"""

from __future__ import annotations

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    """The API's routers, in include order."""
    from service.api import (
        coverage,
        decisions,
        frames,
        health,
        history,
        labelstudio_webhook,
        ogc,
        open311,
        sections,
        sites,
        tiles,
        upload,
        work_orders,
    )

    return [
        health.router,
        upload.router,
        sites.router,
        frames.router,
        decisions.router,
        work_orders.router,
        sections.router,
        coverage.router,
        history.router,
        labelstudio_webhook.router,
        ogc.router,
        open311.router,
        open311.staff_router,
        tiles.router,
    ]
