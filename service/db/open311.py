"""Open311 in PostGIS (migration 0010): client API keys, citizen reports and their contact details, the
report's site (attached to one nearby or created), and the requests as the spec answers them.

A report joins the nearest associable site its service allows within ``ATTACH_RADIUS_M``; else it creates a
site in status ``open`` flagged ``citizen_reported`` (the review queue shows it like a proposal). Contact
details live in their own table and are read only by ``reports_for_site`` (staff); nothing public reads it.
API keys are 256-bit random strings shown once; only their sha256 is stored.

A report's photo (migration 0016) is stored only anonymized, in the image store of the frames' copies
(content-addressed: ``media_key`` is its sha256); public answers point at it (``media_url``:
``/open311/v2/media/{id}.jpg``), staff see it on the site page (``DamageSite.citizen_report_rows``, read only).
Retention deletes it with the contact details (:func:`delete_old_media`).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from geoalchemy2 import Geometry
from geoalchemy2.shape import to_shape
from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    delete,
    func,
    select,
    text,
)
from sqlalchemy.orm import Mapped, Session, backref, mapped_column, relationship

from service.db.road_tables import RoadSection
from service.db.sites import nearby_sites, new_site, rescore
from service.db.store import ImageStore
from service.db.tables import Base, DamageSite, Frame, point
from service.domain.classes import COMPATIBLE
from service.domain.open311 import (
    ATTACH_RADIUS_M,
    MAX_REQUESTS,
    SERVICES,
    Photo,
    ReportIn,
    media_path,
    parse_request_id,
    request_status,
    street_of,
)
from service.domain.ranking import RankingConfig
from service.errors import Forbidden, Gone, InvalidInput, NotFound

KEY_PREFIX = "rw311_"
DEFAULT_PERIOD = timedelta(days=90)  # the spec's default window for GET requests


class Open311Client(Base):
    """A client of the Open311 endpoint (a citizen portal) and the sha256 of its API key."""

    __tablename__ = "open311_client"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class CitizenReport(Base):
    """One service request: what, where, the site it joined or created."""

    __tablename__ = "citizen_report"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("open311_client.id"))
    service_code: Mapped[str] = mapped_column(String(30))
    description: Mapped[str | None] = mapped_column(Text)
    address_string: Mapped[str | None] = mapped_column(String(500))
    media_url: Mapped[str | None] = mapped_column(String(2000))
    position: Mapped[Any] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    site_id: Mapped[int] = mapped_column(ForeignKey("damage_site.id"))
    created_site: Mapped[bool] = mapped_column(Boolean)
    requested_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # The anonymized photo in the image store (never the citizen's original); cleared by retention.
    media_key: Mapped[str | None] = mapped_column(String(64))
    media_width: Mapped[int | None] = mapped_column(Integer)
    media_height: Mapped[int | None] = mapped_column(Integer)
    media_deleted_at: Mapped[datetime | None] = mapped_column()
    # Read only, for the staff site page (``site.citizen_report_rows`` in site.html), oldest first.
    site: Mapped[DamageSite] = relationship(
        DamageSite,
        viewonly=True,
        backref=backref("citizen_report_rows", viewonly=True, order_by=lambda: CitizenReport.id),
    )
    __table_args__ = (
        Index("ix_citizen_report_site", "site_id"),
        Index("ix_citizen_report_requested", "requested_at"),
        Index("ix_citizen_report_media_key", "media_key", postgresql_where=text("media_key IS NOT NULL")),
    )


class CitizenReportContact(Base):
    """The reporter's contact details: personal data, for staff only."""

    __tablename__ = "citizen_report_contact"
    report_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("citizen_report.id", ondelete="CASCADE"), primary_key=True
    )
    email: Mapped[str | None] = mapped_column(String(254))
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(50))
    device_id: Mapped[str | None] = mapped_column(String(200))
    account_id: Mapped[str | None] = mapped_column(String(200))


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def add_client(session: Session, name: str) -> tuple[Open311Client, str]:
    """A new client and its API key (the only time the key is visible)."""
    if not name or len(name) > 200 or "\x00" in name:
        raise InvalidInput("the client name needs 1 to 200 characters and no NUL")
    if session.scalar(select(Open311Client).where(Open311Client.name == name)):
        raise InvalidInput(f"an Open311 client named {name!r} exists already")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    client = Open311Client(name=name, key_hash=key_hash(key))
    session.add(client)
    session.flush()
    return client, key


def list_clients(session: Session) -> Sequence[Open311Client]:
    return session.scalars(select(Open311Client).order_by(Open311Client.name)).all()


def revoke_client(session: Session, name: str) -> Open311Client:
    client = session.scalar(select(Open311Client).where(Open311Client.name == name))
    if client is None:
        raise NotFound(f"no Open311 client {name!r}")
    client.active = False
    return client


def client_for_key(session: Session, key: str | None) -> Open311Client:
    """The active client whose API key this is; Forbidden otherwise."""
    if not key:
        raise Forbidden("api_key is required")
    client = session.scalar(
        select(Open311Client).where(Open311Client.key_hash == key_hash(key), Open311Client.active)
    )
    if client is None:
        raise Forbidden("api_key is not valid")
    return client


def locate_address(session: Session, address: str) -> tuple[float, float]:
    """(lat, lon) of an address on the imported road network: the middle of the street's first section.

    There is no geocoder (the service makes no outside calls): an address off the network is refused.
    """
    street = street_of(address)
    found = session.execute(
        select(
            func.ST_Y(func.ST_LineInterpolatePoint(RoadSection.geom, 0.5)),
            func.ST_X(func.ST_LineInterpolatePoint(RoadSection.geom, 0.5)),
        )
        .where(func.lower(RoadSection.name) == street.lower())
        .order_by(RoadSection.id)
        .limit(1)
    ).first()
    if found is None:
        raise InvalidInput(f"address_string: no street {street!r} on the road network; send lat and long")
    return float(found[0]), float(found[1])


def nearest_site(session: Session, classes: Sequence[str], lat: float, lon: float) -> DamageSite | None:
    """The nearest associable site of one of ``classes`` within ``ATTACH_RADIUS_M``, or None."""
    groups = {COMPATIBLE[c][0] for c in classes}  # one search per family of compatible classes
    found = [
        (distance, site)
        for group in groups
        for site, distance in nearby_sites(session, group, lat, lon, ATTACH_RADIUS_M)
        if site.class_name in classes
    ]
    return min(found, key=lambda pair: pair[0])[1] if found else None


def submit_report(
    session: Session,
    client: Open311Client,
    report: ReportIn,
    ranking: RankingConfig,
    now: datetime | None = None,
    photo: Photo | None = None,
    store: ImageStore | None = None,
) -> CitizenReport:
    """Store a checked report: attached to the nearest site its service allows, or to a new site; with its
    anonymized ``photo`` written to ``store`` (last, so nothing is written when the report is refused; the
    caller deletes it with :func:`discard_photo` when the transaction does not commit)."""
    now = now or datetime.now(UTC)
    if report.lat is not None and report.lon is not None:
        lat, lon = report.lat, report.lon
    else:
        lat, lon = locate_address(session, report.address_string or "")
    site = nearest_site(session, report.service.attach_classes, lat, lon)
    created = site is None
    if site is None:
        site = new_site(
            report.service.new_site_class, lat, lon, now, now, citizen_reported=True, citizen_reports=0
        )
        session.add(site)
        session.flush()
    else:  # re-read under a row lock: a worker or staff may change it meanwhile
        session.refresh(site, with_for_update=True)
    site.citizen_reports += 1
    if created:
        rescore(site, ranking, now)
    row = CitizenReport(
        client_id=client.id,
        service_code=report.service.code,
        description=report.description,
        address_string=report.address_string,
        media_url=report.media_url,
        position=point(lat, lon),
        site_id=site.id,
        created_site=created,
        requested_at=now,
    )
    if photo is not None:
        if store is None:
            raise ValueError("a photo needs the image store")
        row.media_key = hashlib.sha256(photo.jpeg).hexdigest()
        row.media_width, row.media_height = photo.width, photo.height
    session.add(row)
    session.flush()
    if report.contact:
        session.add(CitizenReportContact(report_id=row.id, **report.contact))
    session.flush()
    if photo is not None and store is not None and row.media_key:
        store.put(row.media_key, photo.jpeg)
    return row


def key_in_use(session: Session, key: str) -> bool:
    """Whether a frame or a citizen report points at this file of the image store (content-addressed:
    the same bytes are one file)."""
    return bool(
        session.scalar(select(func.count()).where(Frame.image_key == key))
        or session.scalar(select(func.count()).where(CitizenReport.media_key == key))
    )


def discard_photo(sessions: Any, store: ImageStore, photo: Photo) -> None:
    """Delete a photo a refused or failed request wrote, unless something stored points at it."""
    key = hashlib.sha256(photo.jpeg).hexdigest()
    with sessions() as session:
        if not key_in_use(session, key):
            store.delete(key)


def media_key_of(session: Session, request_id: str) -> str:
    """The image store key of a request's anonymized photo; NotFound without one, Gone after retention."""
    rid = parse_request_id(request_id) or 0
    report = session.get(CitizenReport, rid) if rid > 0 else None
    if report is None:
        raise NotFound(f"no service request {request_id!r}")
    if report.media_deleted_at is not None:
        raise Gone(f"the photo of service request {request_id} was deleted after the retention period")
    if not report.media_key:
        raise NotFound(f"service request {request_id} has no photo")
    return report.media_key


def public_request(report: CitizenReport, site: DamageSite, base_url: str = "") -> dict[str, Any]:
    """A request as the spec's GET answers show it: no contact details; ``media_url`` only for a photo the
    service anonymized (``base_url`` + ``/open311/v2/media/{id}.jpg``), never a URL the client sent (a
    photo nobody checked)."""
    p = to_shape(report.position)
    status, notes = request_status(site.status)
    return {
        "service_request_id": str(report.id),
        "status": status,
        "status_notes": notes,
        "service_name": SERVICES[report.service_code].name if report.service_code in SERVICES else None,
        "service_code": report.service_code,
        "description": report.description,
        "agency_responsible": None,
        "service_notice": None,
        "requested_datetime": report.requested_at.isoformat(),
        "updated_datetime": max(site.updated_at, report.requested_at).isoformat(),
        "expected_datetime": None,
        "address": report.address_string,
        "address_id": None,
        "zipcode": None,
        "lat": round(p.y, 7),
        "long": round(p.x, 7),
        "media_url": f"{base_url}{media_path(report.id)}" if report.media_key else None,
    }


def find_requests(
    session: Session,
    *,
    ids: Sequence[int] = (),
    service_codes: Sequence[str] = (),
    start: datetime | None = None,
    end: datetime | None = None,
    site_statuses: Sequence[str] | None = None,
    base_url: str = "",
) -> list[dict[str, Any]]:
    """Requests by id (that overrides the other filters, as the spec says), else by service, time window
    (by default the last 90 days) and status; newest first, at most ``MAX_REQUESTS``."""
    query = select(CitizenReport, DamageSite).join(DamageSite, DamageSite.id == CitizenReport.site_id)
    if ids:
        query = query.where(CitizenReport.id.in_(ids))
    else:
        if end is None:
            end = (start + DEFAULT_PERIOD) if start else datetime.now(UTC)
        start = start or end - DEFAULT_PERIOD
        if start > end:
            raise InvalidInput("start_date must not be after end_date")
        query = query.where(CitizenReport.requested_at >= start, CitizenReport.requested_at <= end)
        if service_codes:
            query = query.where(CitizenReport.service_code.in_(service_codes))
        if site_statuses is not None:
            query = query.where(DamageSite.status.in_(site_statuses))
    rows = session.execute(query.order_by(CitizenReport.id.desc()).limit(MAX_REQUESTS)).all()
    return [public_request(report, site, base_url) for report, site in rows]


def get_request(session: Session, request_id: str, base_url: str = "") -> dict[str, Any]:
    try:
        rid = int(request_id)
    except ValueError:
        raise NotFound(f"no service request {request_id!r}") from None
    found = find_requests(session, ids=[rid], base_url=base_url) if 0 < rid < 2**63 else []
    if not found:
        raise NotFound(f"no service request {request_id!r}")
    return found[0]


def reports_for_site(session: Session, site: DamageSite) -> list[dict[str, Any]]:
    """A site's citizen reports with their contact details: for staff only."""
    rows = session.execute(
        select(CitizenReport, CitizenReportContact, Open311Client.name)
        .outerjoin(CitizenReportContact, CitizenReportContact.report_id == CitizenReport.id)
        .join(Open311Client, Open311Client.id == CitizenReport.client_id)
        .where(CitizenReport.site_id == site.id)
        .order_by(CitizenReport.id)
    ).all()
    contact_fields = ("email", "first_name", "last_name", "phone", "device_id", "account_id")
    return [
        {
            "service_request_id": str(report.id),
            "service_code": report.service_code,
            "description": report.description,
            "address": report.address_string,
            "media_url": report.media_url,  # as the client sent it: not fetched, not checked
            "photo_url": media_path(report.id) if report.media_key else None,  # the anonymized photo
            "photo_deleted": report.media_deleted_at is not None,
            "requested_datetime": report.requested_at.isoformat(),
            "created_site": report.created_site,
            "client": client_name,
            "contact": {f: getattr(contact, f) for f in contact_fields} if contact else None,
        }
        for report, contact, client_name in rows
    ]


def delete_old_contacts(session: Session, cutoff: datetime) -> int:
    """Delete the contact details of reports made before ``cutoff`` (retention); the reports stay."""
    old = select(CitizenReport.id).where(CitizenReport.requested_at < cutoff)
    result = session.execute(delete(CitizenReportContact).where(CitizenReportContact.report_id.in_(old)))
    return int(getattr(result, "rowcount", 0) or 0)


def delete_old_media(session: Session, store: ImageStore, cutoff: datetime, batch: int = 500) -> int:
    """Delete the photos of reports made before ``cutoff`` (retention, with their contact details): the
    file (unless a younger report or a frame has the same bytes) and the key; the reports stay. Returns
    how many reports lost their photo."""
    now = datetime.now(UTC)
    reports = session.scalars(
        select(CitizenReport)
        .where(CitizenReport.media_key.is_not(None), CitizenReport.requested_at < cutoff)
        .order_by(CitizenReport.id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    ).all()
    for report in reports:
        key = report.media_key or ""
        report.media_key, report.media_deleted_at = None, now
        session.flush()
        if not key_in_use(session, key):
            store.delete(key)  # before the commit, as frames' images: a crash leaves the key, retried
    return len(reports)
