"""Work orders: sites handed to one road crew as a job.

Adding a site schedules it, removing it or cancelling the order returns it to "confirmed", and finishing
the order marks its scheduled sites repaired; each of those is a decision (``service.db.decisions``) of
the user who did it, with the order named in the reason. Every change is an event in the order's history.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.decisions import (
    DecisionConflict,
    DecisionInvalid,
    DecisionNotFound,
    clean_text,
    decide,
    lock_site,
)
from service.db.tables import DamageSite, User, WorkOrder, WorkOrderEvent, WorkOrderSite
from service.domain.statuses import (
    SITE_SCHEDULABLE,
    WORK_ORDER_ACTIVE,
    WORK_ORDER_TRANSITIONS,
    SiteStatus,
    WorkOrderStatus,
)
from service.errors import NotFound


def get_order(session: Session, order_id: int) -> WorkOrder:
    # Ids are PostgreSQL integers: a larger number would be a database error (500), not "no such order".
    order = session.get(WorkOrder, order_id) if 0 < order_id < 2**31 else None
    if order is None:
        raise NotFound(f"no work order {order_id}")
    return order


def order_history(session: Session, order: WorkOrder) -> list[dict[str, Any]]:
    """The order's events, oldest first, with the user's name."""
    rows = session.execute(
        select(WorkOrderEvent, User.username)
        .join(User, User.id == WorkOrderEvent.user_id)
        .where(WorkOrderEvent.work_order_id == order.id)
        .order_by(WorkOrderEvent.id)
    ).all()
    return [{"at": e.at.isoformat(), "user": name, "action": e.action, **e.detail} for e, name in rows]


def active_order_of(session: Session, site: DamageSite) -> WorkOrder | None:
    """The active work order that holds ``site``, if any."""
    return session.scalar(
        select(WorkOrder)
        .join(WorkOrderSite, WorkOrderSite.work_order_id == WorkOrder.id)
        .where(WorkOrderSite.site_id == site.id, WorkOrder.status.in_(WORK_ORDER_ACTIVE))
    )


def _event(session: Session, order: WorkOrder, user: User, action: str, **detail: object) -> None:
    session.add(WorkOrderEvent(work_order_id=order.id, user_id=user.id, action=action, detail=detail))


def create_work_order(
    session: Session,
    user: User,
    title: str,
    sites: Iterable[DamageSite],
    *,
    crew: str | None = None,
    notes: str | None = None,
) -> WorkOrder:
    """A new order with ``sites`` (scheduled by ``user``); "assigned" at once when a crew is given."""
    sites = list(sites)
    if not sites:
        raise DecisionInvalid("a work order needs at least one site")
    crew = clean_text(crew, "crew", 200)
    order = WorkOrder(
        title=clean_text(title, "title", 200, required=True),
        crew=crew,
        status=WorkOrderStatus.ASSIGNED if crew else WorkOrderStatus.NEW,
        notes=clean_text(notes, "notes", 5000),
        created_by_id=user.id,
    )
    session.add(order)
    session.flush()
    _event(session, order, user, "created", status=order.status, crew=crew)
    add_sites(session, order, user, sites)
    return order


def add_sites(session: Session, order: WorkOrder, user: User, sites: Iterable[DamageSite]) -> None:
    """Add sites to an active order and schedule them; a site can be in one active order only."""
    if order.status not in WORK_ORDER_ACTIVE:
        raise DecisionConflict(f"work order {order.id} is {order.status}: it takes no more sites")
    present = {link.site_id for link in order.sites}
    position = max((link.position for link in order.sites), default=0)
    for site in sites:
        if site.id in present:
            continue
        site = lock_site(session, site.id)  # two orders (or an order and a decision) at once
        if site.status not in SITE_SCHEDULABLE:
            raise DecisionConflict(
                f"site {site.public_id} is {site.status}: only {', '.join(SITE_SCHEDULABLE)} sites"
            )
        other = active_order_of(session, site)
        if other is not None:
            raise DecisionConflict(f"site {site.public_id} is in work order {other.id} already")
        position += 1
        session.add(WorkOrderSite(work_order_id=order.id, site_id=site.id, position=position))
        if site.status != SiteStatus.SCHEDULED:
            decide(session, site, user, "schedule", reason=f"work order {order.id}")
        _event(session, order, user, "site_added", site=str(site.public_id))
        present.add(site.id)
    session.flush()
    session.refresh(order)


def remove_site(session: Session, order: WorkOrder, user: User, site: DamageSite) -> None:
    """Take a site out of an active order; a scheduled site returns to confirmed."""
    if order.status not in WORK_ORDER_ACTIVE:
        raise DecisionConflict(f"work order {order.id} is {order.status}: its sites stay")
    link = session.get(WorkOrderSite, (order.id, site.id))
    if link is None:
        raise DecisionNotFound(f"site {site.public_id} is not in work order {order.id}")
    session.delete(link)
    if site.status == SiteStatus.SCHEDULED:
        decide(session, site, user, "unschedule", reason=f"removed from work order {order.id}")
    _event(session, order, user, "site_removed", site=str(site.public_id))
    session.flush()
    session.refresh(order)


def update_work_order(
    session: Session,
    order: WorkOrder,
    user: User,
    *,
    title: str | None = None,
    crew: str | None = None,
    status: str | None = None,
    notes: str | None = None,
) -> WorkOrder:
    """Change title, crew, notes or status (None leaves a field as it is; "" clears crew or notes)."""
    if order.status not in WORK_ORDER_ACTIVE:
        raise DecisionConflict(f"work order {order.id} is {order.status} and cannot change")
    if title is not None:
        order.title = clean_text(title, "title", 200, required=True)  # type: ignore[assignment]
    if notes is not None:
        order.notes = clean_text(notes, "notes", 5000)
    if crew is not None and clean_text(crew, "crew", 200) != order.crew:
        order.crew = clean_text(crew, "crew", 200)
        _event(session, order, user, "crew", crew=order.crew)
        if order.crew and order.status == WorkOrderStatus.NEW and status in (None, WorkOrderStatus.NEW):
            status = WorkOrderStatus.ASSIGNED
    if status is not None and status != order.status:
        if status not in WORK_ORDER_TRANSITIONS:
            raise DecisionInvalid(
                f"status must be one of {', '.join(WORK_ORDER_TRANSITIONS)}, got {status!r}"
            )
        if status not in WORK_ORDER_TRANSITIONS[order.status]:
            raise DecisionConflict(f"a work order that is {order.status} cannot become {status}")
        previous, order.status = order.status, status
        _event(session, order, user, "status", previous=previous, status=status)
        follow: dict[str, tuple[str, str]] = {
            WorkOrderStatus.DONE: ("repair", "work order {} done"),
            WorkOrderStatus.CANCELLED: ("unschedule", "work order {} cancelled"),
        }
        if status in follow:
            action, reason = follow[status]
            for link in order.sites:
                if link.site.status == SiteStatus.SCHEDULED:
                    decide(session, link.site, user, action, reason=reason.format(order.id))
    session.flush()
    return order


def order_sites(order: WorkOrder) -> list[DamageSite]:
    """The order's sites in their order."""
    return [link.site for link in order.sites]
