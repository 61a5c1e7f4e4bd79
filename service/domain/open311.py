"""Open311 GeoReport v2 (citizen reports in), the pure part: the services offered, a report's fields checked
once, the public status of a request from its site's status, and the spec's XML.

A report's service decides which sites it may join (``attach_classes``) and the class of a site it creates
(``new_site_class``): a pothole joins potholes, a crack joins any crack, other road damage joins any site.
Requests are ``open`` while their site needs someone and ``closed`` once staff repaired or rejected it;
``status_notes`` is a fixed public text per site status (never a reviewer's own words, which may be
internal).

A citizen's photo (``media``) is checked cheaply first (size, JPEG or PNG by its first bytes, pixel count
from the header before decoding), then anonymized exactly as a vehicle's photo is
(:func:`service.domain.anonymize.anonymize`, then :func:`~service.domain.anonymize.encode_jpeg`: no
metadata); only that copy is ever stored.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from detector import Detector, ImageError, decode_image
from service.domain.anonymize import AnonymizationReport, PrivacyConfig, anonymize, encode_jpeg
from service.domain.classes import CLASSES, CRACKS, POTHOLE
from service.domain.params import parse_timestamp
from service.domain.statuses import SiteStatus
from service.errors import InvalidInput, ServiceError

ATTACH_RADIUS_M = 15.0  # a citizen's phone position is good to a few metres; a site is one defect
MAX_DESCRIPTION = 4000  # characters
MAX_MEDIA_URL = 2000
MAX_ADDRESS = 500
CONTACT_LIMITS = {
    "email": 254,
    "first_name": 200,
    "last_name": 200,
    "phone": 50,
    "device_id": 200,
    "account_id": 200,
}
MAX_REQUESTS = 1000  # per GET requests answer


@dataclass(frozen=True)
class Service:
    code: str
    name: str
    description: str
    attach_classes: tuple[str, ...]
    new_site_class: str


SERVICES: dict[str, Service] = {
    s.code: s
    for s in (
        Service("pothole", "Pothole", "A hole in the road surface.", (POTHOLE,), POTHOLE),
        Service(
            "crack", "Crack", "Cracks in the road surface (lengthwise, across or crazed).", CRACKS, CRACKS[0]
        ),
        Service("other", "Other road damage", "Other damage to the road surface.", CLASSES, CRACKS[0]),
    )
}


def service_list() -> list[dict[str, Any]]:
    """The answer of ``GET services``: every service with the spec's fields."""
    return [
        {
            "service_code": s.code,
            "service_name": s.name,
            "description": s.description,
            "metadata": False,
            "type": "realtime",
            "keywords": "road, damage",
            "group": "Roads",
        }
        for s in SERVICES.values()
    ]


@dataclass(frozen=True)
class ReportIn:
    """A checked ``POST requests``: the service, where (lat/lon, or an address to look up), what, who."""

    service: Service
    lat: float | None
    lon: float | None
    address_string: str | None
    description: str | None
    media_url: str | None
    contact: dict[str, str]


def _text(form: Mapping[str, str], name: str, limit: int) -> str | None:
    raw = form.get(name)
    if raw is None or not raw.strip():
        return None
    value = raw.strip()
    if "\x00" in value:
        raise InvalidInput(f"{name} must not contain NUL characters")
    if len(value) > limit:
        raise InvalidInput(f"{name} must be at most {limit} characters, got {len(value)}")
    return value


def _coordinate(form: Mapping[str, str], name: str, bound: float) -> float | None:
    raw = form.get(name)
    if raw is None or not raw.strip():
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a number, got {raw!r}") from None
    if not -bound <= value <= bound:  # also refuses nan and inf
        raise InvalidInput(f"{name} must be in -{bound:g}..{bound:g}, got {raw!r}")
    return value


EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def parse_report(form: Mapping[str, str]) -> ReportIn:
    """The fields of ``POST requests`` (form-encoded, as the spec sends them) checked; InvalidInput says
    which one is wrong."""
    code = _text(form, "service_code", 30)
    if code is None:
        raise InvalidInput("service_code is required")
    service = SERVICES.get(code)
    if service is None:
        raise InvalidInput(f"service_code must be one of {', '.join(SERVICES)}, got {code!r}")
    lat = _coordinate(form, "lat", 90.0)
    lon = _coordinate(form, "long", 180.0)
    address = _text(form, "address_string", MAX_ADDRESS)
    if (lat is None) != (lon is None):
        raise InvalidInput("lat and long must be given together")
    if lat is None and address is None:
        raise InvalidInput("a location is required: lat and long, or address_string")
    media = _text(form, "media_url", MAX_MEDIA_URL)
    if media is not None and not re.match(r"^https?://[^\s]+$", media):
        raise InvalidInput(f"media_url must be an http(s) URL, got {media[:80]!r}")
    contact = {
        name: v for name, limit in CONTACT_LIMITS.items() if (v := _text(form, name, limit)) is not None
    }
    if "email" in contact and not EMAIL.match(contact["email"]):
        raise InvalidInput(f"email must be an e-mail address, got {contact['email'][:80]!r}")
    return ReportIn(
        service=service,
        lat=lat,
        lon=lon,
        address_string=address,
        description=_text(form, "description", MAX_DESCRIPTION),
        media_url=media,
        contact=contact,
    )


MEDIA_TYPES = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG"}  # first bytes of each type


class PhotoNotAnonymized(ServiceError):
    """The photo could not be anonymized (the privacy model failed): it must not be stored."""


@dataclass(frozen=True)
class Photo:
    """A citizen's photo, anonymized: JPEG bytes without metadata, its size, what was blurred."""

    jpeg: bytes
    width: int
    height: int
    report: AnonymizationReport


def check_media(data: bytes, max_bytes: int, max_pixels: int) -> np.ndarray[Any, Any]:
    """The uploaded photo decoded (BGR, EXIF orientation applied), or InvalidInput saying why not: empty,
    over ``max_bytes``, not JPEG or PNG by its content (whatever its name says), more than ``max_pixels``
    (read from the header, before decoding: decompression bombs), corrupt or truncated."""
    if not data:
        raise InvalidInput("media is an empty file")
    if len(data) > max_bytes:
        raise InvalidInput(f"media must be at most {max_bytes:,} bytes; this file is larger")
    if not any(data.startswith(magic) for magic in MEDIA_TYPES):
        raise InvalidInput("media must be a JPEG or PNG image (judged by its content, not its name)")
    try:
        return decode_image(data, max_pixels)
    except ImageError as exc:
        raise InvalidInput(f"media: {exc}") from exc


def anonymize_photo(image_bgr: np.ndarray[Any, Any], detector: Detector, config: PrivacyConfig) -> Photo:
    """The photo as vehicle photos are stored: persons and vehicles destroyed (the privacy model), the band
    ``config.horizon`` from the top too, re-encoded as JPEG without metadata (GPS, camera). Any failure is
    :class:`PhotoNotAnonymized`: nothing of the photo may be kept then."""
    try:
        blurred, report = anonymize(image_bgr, detector, config)
        jpeg = encode_jpeg(blurred)
    except Exception as exc:  # the model or OpenCV: whatever it is, the photo stays unstored
        raise PhotoNotAnonymized(
            f"media: the photo could not be anonymized ({exc}); nothing was stored"
        ) from exc
    return Photo(jpeg, report.width, report.height, report)


def parse_request_id(raw: str) -> int | None:
    """A service request id as the spec's answers give it (1 to 18 digits), else None."""
    return int(raw) if re.fullmatch(r"[0-9]{1,18}", raw) else None


def media_path(report_id: int) -> str:
    """Where the service serves a report's anonymized photo."""
    return f"/open311/v2/media/{report_id}.jpg"


def street_of(address: str) -> str:
    """The street of an address string: 'Hauptstraße 12, 10115 Berlin' -> 'Hauptstraße'."""
    first = address.split(",")[0].strip()
    return re.sub(r"\s+\d+\s*[a-zA-Z]?(\s*[-/]\s*\d+\s*[a-zA-Z]?)?$", "", first).strip()


CLOSED = (SiteStatus.REPAIRED, SiteStatus.REJECTED)
STATUS_NOTES = {
    SiteStatus.OPEN: "Received; waiting for review.",
    SiteStatus.CONFIRMED: "Confirmed by the road maintenance staff.",
    SiteStatus.SCHEDULED: "Repair scheduled.",
    SiteStatus.REPAIRED: "Repaired.",
    SiteStatus.REJECTED: "Checked by the road maintenance staff: no repair needed here.",
}


def request_status(site_status: str) -> tuple[str, str]:
    """The request's ``status`` (open or closed) and public ``status_notes`` for its site's status."""
    return ("closed" if site_status in CLOSED else "open"), STATUS_NOTES.get(SiteStatus(site_status), "")


def statuses_for(status: str | None) -> tuple[str, ...] | None:
    """Site statuses matching a ``status`` filter (``open``, ``closed`` or both comma-separated)."""
    if status is None or not status.strip():
        return None
    wanted = {s.strip() for s in status.split(",") if s.strip()}
    if not wanted <= {"open", "closed"}:
        raise InvalidInput(f"status must be open, closed or both, got {status!r}")
    return tuple(s.value for s in SiteStatus if ("closed" if s in CLOSED else "open") in wanted)


def parse_w3c(raw: str | None, name: str) -> datetime | None:
    """A W3C date-time with a zone (``2010-01-01T00:00:00Z``), or None when empty."""
    if raw is None or not raw.strip():
        return None
    try:
        return parse_timestamp(raw.strip())
    except ValueError:
        raise InvalidInput(
            f"{name} must be a date-time with a zone like 2010-01-01T00:00:00Z, got {raw!r}"
        ) from None


def to_xml(root: str, item: str, rows: Iterable[Mapping[str, Any]]) -> bytes:
    """The spec's XML: ``<root><item><field>value</field>...</item>...</root>``; None is an empty element."""
    top = ET.Element(root)
    for row in rows:
        element = ET.SubElement(top, item)
        for key, value in row.items():
            child = ET.SubElement(element, key)
            if isinstance(value, bool):
                child.text = "true" if value else "false"
            elif value is not None:
                child.text = str(value)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + bytes(
        ET.tostring(top, encoding="utf-8", xml_declaration=False)
    )


def errors(code: int, description: str) -> list[dict[str, Any]]:
    """The spec's error list (JSON ``[{"code": ..., "description": ...}]``, XML ``<errors><error>``)."""
    return [{"code": code, "description": description}]
