"""Open311 GeoReport v2 at ``/open311/v2`` (citizen reports in): ``services``, ``POST requests`` (API key per
client), ``GET requests`` and ``requests/{id}``, each as ``.json`` or ``.xml``; errors in the spec's format
(``[{"code": 400, "description": ...}]``, ``<errors><error>``). Public answers never carry contact details.

Staff read a site's reports with the contact details at ``GET /api/v1/sites/{id}/citizen-reports``
(reviewer role).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.datastructures import UploadFile

from service.access.deps import ReviewerDep, SessionDep
from service.db.engine import transaction
from service.db.open311 import client_for_key, find_requests, get_request, reports_for_site, submit_report
from service.db.sites import get_site
from service.domain.open311 import (
    SERVICES,
    errors,
    parse_report,
    parse_w3c,
    service_list,
    statuses_for,
    to_xml,
)
from service.domain.params import parse_choices
from service.errors import Forbidden, InvalidInput, NotFound
from service.worker.context import ranking_config

FORMATS = ("json", "xml")
ERROR_CODES: dict[type[Exception], int] = {InvalidInput: 400, Forbidden: 403, NotFound: 404}
ROOTS = {"services": ("services", "service"), "requests": ("service_requests", "request")}


def answer(fmt: str, kind: str, rows: list[dict[str, Any]], status_code: int = 200) -> Response:
    if fmt == "xml":
        root, item = ROOTS.get(kind, ("errors", "error"))
        return Response(
            to_xml(root, item, rows), status_code=status_code, media_type="text/xml; charset=utf-8"
        )
    return JSONResponse(rows, status_code=status_code)


def _format(request: Request) -> str:
    fmt = str(request.path_params.get("fmt", "json"))
    return fmt if fmt in FORMATS else "json"


class Open311Route(APIRoute):
    """The service's errors as the spec's error list, in the format the path asked for."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                if request.path_params.get("fmt", "json") not in FORMATS:
                    raise NotFound(f"format must be json or xml, got {request.path_params['fmt']!r}")
                return await handler(request)
            except (InvalidInput, Forbidden, NotFound) as exc:
                code = next(c for cls, c in ERROR_CODES.items() if isinstance(exc, cls))
                return answer(_format(request), "errors", errors(code, str(exc)), status_code=code)

        return handle


router = APIRouter(prefix="/open311/v2", tags=["Open311 GeoReport v2"], route_class=Open311Route)
staff_router = APIRouter(prefix="/api/v1", tags=["read"])


@router.get("/services.{fmt}", summary="The services citizens can report (pothole, crack, other road damage)")
def services(fmt: str) -> Response:
    return answer(fmt, "services", service_list())


async def _form(request: Request) -> dict[str, str]:
    """The POST's fields (form-encoded as the spec sends them, or multipart); uploads are refused."""
    form = await request.form()
    fields: dict[str, str] = {}
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            raise InvalidInput(f"{name}: file uploads are not accepted; send media_url")
        fields[name] = value
    return fields


@router.post("/requests.{fmt}", summary="Report damage (api_key, service_code, lat/long or address_string)")
async def post_request(fmt: str, request: Request) -> Response:
    fields = await _form(request)
    settings = request.app.state.settings

    def store() -> list[dict[str, Any]]:
        with transaction(request.app.state.sessions) as session:
            client = client_for_key(session, fields.get("api_key"))
            report = parse_report(fields)  # checked before anything is written
            row = submit_report(session, client, report, ranking_config(settings))
            return [{"service_request_id": str(row.id), "service_notice": None, "account_id": None}]

    return answer(fmt, "requests", await run_in_threadpool(store), status_code=201)


@router.get("/requests.{fmt}", summary="Requests by id, or by service, time window (90 days) and status")
def list_requests(
    fmt: str,
    session: SessionDep,
    service_request_id: str | None = None,
    service_code: str | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    status: str | None = None,
) -> Response:
    ids = []
    for raw in (service_request_id or "").split(","):
        if raw.strip():
            if not raw.strip().isdigit() or len(raw.strip()) > 18:
                raise InvalidInput(f"service_request_id must be numbers, got {raw.strip()!r}")
            ids.append(int(raw))
    rows = find_requests(
        session,
        ids=ids,
        service_codes=parse_choices(service_code, SERVICES, "service_code"),
        start=parse_w3c(start_date, "start_date"),
        end=parse_w3c(end_date, "end_date"),
        site_statuses=statuses_for(status),
    )
    return answer(fmt, "requests", rows)


@router.get("/requests/{request_id}.{fmt}", summary="One request and its status")
def one_request(request_id: str, fmt: str, session: SessionDep) -> Response:
    return answer(fmt, "requests", [get_request(session, request_id)])


@staff_router.get(
    "/sites/{site_id}/citizen-reports", summary="A site's citizen reports with contact details (reviewer)"
)
def site_reports(site_id: str, session: SessionDep, user: ReviewerDep) -> list[dict[str, Any]]:
    return reports_for_site(session, get_site(session, site_id))
