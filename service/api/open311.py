"""Open311 GeoReport v2 at ``/open311/v2`` (citizen reports in): ``services``, ``POST requests`` (API key per
client), ``GET requests`` and ``requests/{id}``, each as ``.json`` or ``.xml``; errors in the spec's format
(``[{"code": 400, "description": ...}]``, ``<errors><error>``). Public answers never carry contact details.

Staff read a site's reports with the contact details at ``GET /api/v1/sites/{id}/citizen-reports``
(reviewer role).

A citizen's photo comes as the multipart file ``media`` of ``POST requests``. It is checked (size, JPEG or
PNG by content, pixel count before decoding), anonymized with the privacy model exactly as vehicle photos
are (``service.domain.anonymize``, the worker's privacy settings) and only that copy is stored, in the
image store of the frames' copies; public answers point ``media_url`` at ``GET media/{id}.jpg``. This runs
in the request, in a worker thread: about 0.05 s for a 1 MP photo and 0.2 to 0.5 s for a 12 MP one on one
CPU core, so the portal gets its answer (and any refusal) at once and nothing waits in a queue half-stored.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.datastructures import UploadFile

from detector import Detector
from service.access.deps import ReviewerDep, SessionDep
from service.db.engine import transaction
from service.db.open311 import (
    client_for_key,
    discard_photo,
    find_requests,
    get_request,
    media_key_of,
    reports_for_site,
    submit_report,
)
from service.db.sites import get_site
from service.domain.anonymize import load_privacy_detector
from service.domain.open311 import (
    SERVICES,
    Photo,
    PhotoNotAnonymized,
    anonymize_photo,
    check_media,
    errors,
    parse_report,
    parse_request_id,
    parse_w3c,
    service_list,
    statuses_for,
    to_xml,
)
from service.domain.params import parse_choices
from service.errors import Forbidden, Gone, InvalidInput, NotFound
from service.worker.context import privacy_config, ranking_config

FORMATS = ("json", "xml")
ERROR_CODES: dict[type[Exception], int] = {  # first match wins: Gone is a NotFound
    InvalidInput: 400,
    Forbidden: 403,
    Gone: 410,
    NotFound: 404,
    PhotoNotAnonymized: 500,
}
MEDIA_FIELD = "media"  # the file field of the citizen portals (and of the GeoReport v2 extensions)
_privacy_lock = threading.Lock()
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
            except (InvalidInput, Forbidden, NotFound, PhotoNotAnonymized) as exc:
                code = next(c for cls, c in ERROR_CODES.items() if isinstance(exc, cls))
                return answer(_format(request), "errors", errors(code, str(exc)), status_code=code)

        return handle


router = APIRouter(prefix="/open311/v2", tags=["Open311 GeoReport v2"], route_class=Open311Route)
staff_router = APIRouter(prefix="/api/v1", tags=["read"])


@router.get("/services.{fmt}", summary="The services citizens can report (pothole, crack, other road damage)")
def services(fmt: str) -> Response:
    return answer(fmt, "services", service_list())


async def _form(request: Request, max_media_bytes: int) -> tuple[dict[str, str], bytes | None]:
    """The POST's fields (form-encoded as the spec sends them, or multipart) and the bytes of the photo
    (the file field ``media``; read no further than ``max_media_bytes`` + 1). Other files are refused."""
    form = await request.form()
    fields: dict[str, str] = {}
    media: bytes | None = None
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name != MEDIA_FIELD:
                    raise InvalidInput(f"{name}: the only file accepted is the photo, as {MEDIA_FIELD}")
                if media is not None:
                    raise InvalidInput(f"{MEDIA_FIELD}: send one photo per request")
                data = await value.read(max_media_bytes + 1)
                if data or value.filename:  # an HTML form's file input left empty sends neither
                    media = data
            else:
                fields[name] = value
    finally:
        await form.close()  # the spooled temporary files go now, whatever the answer
    return fields, media


def privacy_detector(app: Any) -> Detector:
    """The privacy model, loaded once per process on the first photo (the web app needs it for nothing
    else; workers load their own)."""
    with _privacy_lock:
        detector = getattr(app.state, "open311_privacy", None)
        if detector is None:
            settings = app.state.settings
            detector = load_privacy_detector(settings.privacy_model_file(), settings.threads)
            app.state.open311_privacy = detector
        return detector


def base_url(request: Request) -> str:
    """The service's address as the client reached it (for ``media_url``), without a trailing slash."""
    return str(request.base_url).rstrip("/")


@router.post(
    "/requests.{fmt}",
    summary="Report damage (api_key, service_code, lat/long or address_string; a photo as the file media)",
)
async def post_request(fmt: str, request: Request) -> Response:
    settings = request.app.state.settings
    fields, media = await _form(request, settings.open311_media_max_bytes)

    def check() -> Photo | None:
        with request.app.state.sessions() as session:
            client_for_key(session, fields.get("api_key"))  # a wrong key costs no decoding
        parse_report(fields)  # every field checked before the photo is decoded or anything is written
        if media is None:
            return None
        image = check_media(media, settings.open311_media_max_bytes, settings.max_pixels)
        config = replace(privacy_config(settings), horizon=settings.open311_media_horizon or None)
        return anonymize_photo(image, privacy_detector(request.app), config)

    def store(photo: Photo | None) -> list[dict[str, Any]]:
        try:
            with transaction(request.app.state.sessions) as session:
                client = client_for_key(session, fields.get("api_key"))
                report = parse_report(fields)
                row = submit_report(
                    session,
                    client,
                    report,
                    ranking_config(settings),
                    photo=photo,
                    store=request.app.state.store,
                )
                rid = row.id
        except BaseException:
            if photo is not None:  # the report was not stored: neither is its photo
                discard_photo(request.app.state.sessions, request.app.state.store, photo)
            raise
        return [{"service_request_id": str(rid), "service_notice": None, "account_id": None}]

    photo = await run_in_threadpool(check)
    return answer(fmt, "requests", await run_in_threadpool(store, photo), status_code=201)


@router.get("/requests.{fmt}", summary="Requests by id, or by service, time window (90 days) and status")
def list_requests(
    fmt: str,
    request: Request,
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
            rid = parse_request_id(raw.strip())
            if rid is None:
                raise InvalidInput(f"service_request_id must be numbers, got {raw.strip()!r}")
            ids.append(rid)
    rows = find_requests(
        session,
        ids=ids,
        service_codes=parse_choices(service_code, SERVICES, "service_code"),
        start=parse_w3c(start_date, "start_date"),
        end=parse_w3c(end_date, "end_date"),
        site_statuses=statuses_for(status),
        base_url=base_url(request),
    )
    return answer(fmt, "requests", rows)


@router.get("/requests/{request_id}.{fmt}", summary="One request and its status")
def one_request(request_id: str, fmt: str, request: Request, session: SessionDep) -> Response:
    return answer(fmt, "requests", [get_request(session, request_id, base_url(request))])


@router.get("/media/{request_id}.jpg", summary="A request's photo, anonymized (the media_url of its answers)")
def request_media(request_id: str, request: Request, session: SessionDep) -> Response:
    key = media_key_of(session, request_id)
    try:
        data = request.app.state.store.get(key)
    except FileNotFoundError as exc:
        raise Gone(f"the photo of service request {request_id} was deleted (retention)") from exc
    headers = {"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"}
    return Response(data, media_type="image/jpeg", headers=headers)


@staff_router.get(
    "/sites/{site_id}/citizen-reports", summary="A site's citizen reports with contact details (reviewer)"
)
def site_reports(site_id: str, session: SessionDep, user: ReviewerDep) -> list[dict[str, Any]]:
    return reports_for_site(session, get_site(session, site_id))
