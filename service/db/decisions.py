"""Staff decisions on damage sites, and work orders that hand sites to road crews.

Every change of a site's status or class goes through ``decide``, which stores a ``Decision`` with the
user, time, reason, previous and new state, and the model and ranking versions behind the proposal.
Sites are never deleted: a false detection is rejected (with a reason), and stays rejected, so the
model's next sighting of it is absorbed instead of proposed again (see sites.py).

A work order groups sites for one crew. Adding a site schedules it, removing it or cancelling the order
returns it to "confirmed", and finishing the order marks its scheduled sites repaired; each of those is
a decision of the user who did it, with the order named in the reason.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.tables import (
    SITE_STATUSES,
    DamageSite,
    Decision,
    User,
    WorkOrder,
    WorkOrderEvent,
    WorkOrderSite,
)

CLASSES = ("D00", "D10", "D20", "D40")
# action -> (statuses it applies to, resulting status; None keeps the status, but "open" becomes
# "confirmed": a person who sets the class has decided that the damage is there).
ACTIONS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "confirm": (("open", "rejected"), "confirmed"),
    "reject": (("open", "confirmed"), "rejected"),
    "reclassify": (("open", "confirmed", "scheduled"), None),
    "schedule": (("open", "confirmed"), "scheduled"),
    "unschedule": (("scheduled",), "confirmed"),
    "repair": (("open", "confirmed", "scheduled"), "repaired"),
}
REASON_REQUIRED = ("reject",)
MAX_REASON = 2000
WORK_ORDER_ACTIVE = ("new", "assigned", "in_progress")
WORK_ORDER_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("assigned", "in_progress", "done", "cancelled"),
    "assigned": ("new", "in_progress", "done", "cancelled"),
    "in_progress": ("assigned", "done", "cancelled"),
    "done": (),
    "cancelled": (),
}
SCHEDULABLE = ("open", "confirmed", "scheduled")


class DecisionError(ValueError):
    """A decision or work-order change that the current state does not allow (HTTP 409 / 422)."""

    def __init__(self, message: str, status_code: int = 409) -> None:
        super().__init__(message)
        self.status_code = status_code


def allowed_actions(site: DamageSite) -> list[str]:
    return [action for action, (sources, _) in ACTIONS.items() if site.status in sources]


def lock_site(session: Session, site_id: int) -> DamageSite:
    """The site, re-read and locked for update (workers rescore sites concurrently)."""
    site = session.scalar(
        select(DamageSite)
        .where(DamageSite.id == site_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if site is None:
        raise DecisionError(f"no site {site_id}", 404)
    return site


def decide(
    session: Session,
    site: DamageSite,
    user: User,
    action: str,
    *,
    reason: str | None = None,
    new_class: str | None = None,
) -> Decision:
    """Apply ``action`` to ``site`` (locked by the caller or here) and record the decision."""
    site = lock_site(session, site.id)
    if action not in ACTIONS:
        raise DecisionError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}", 422)
    reason = _clean(reason, "reason", MAX_REASON)
    if action in REASON_REQUIRED and not reason:
        raise DecisionError(f"{action} needs a reason", 422)
    sources, target = ACTIONS[action]
    if site.status not in sources:
        raise DecisionError(
            f"cannot {action} a site that is {site.status} (allowed from: {', '.join(sources)})"
        )
    previous_status, previous_class = site.status, site.class_name
    if action == "reclassify":
        if new_class not in CLASSES:
            raise DecisionError(f"class must be one of {', '.join(CLASSES)}, got {new_class!r}", 422)
        if new_class == site.class_name:
            raise DecisionError(f"the site is {new_class} already", 422)
        site.class_name = new_class
        target = "confirmed" if site.status == "open" else site.status
    assert target in SITE_STATUSES
    site.status = target
    decision = Decision(
        site_id=site.id,
        user_name=user.username,
        action=action,
        reason=reason,
        previous_status=previous_status,
        new_status=target,
        previous_class=previous_class,
        new_class=site.class_name,
        model_version_id=site.model_version_id,
        ranking_version=site.ranking_version,
    )
    session.add(decision)
    session.flush()
    return decision


def decisions_of(session: Session, site: DamageSite) -> list[Decision]:
    return list(session.scalars(select(Decision).where(Decision.site_id == site.id).order_by(Decision.id)))


def active_order_of(session: Session, site: DamageSite) -> WorkOrder | None:
    return session.scalar(
        select(WorkOrder)
        .join(WorkOrderSite, WorkOrderSite.work_order_id == WorkOrder.id)
        .where(WorkOrderSite.site_id == site.id, WorkOrder.status.in_(WORK_ORDER_ACTIVE))
    )


def _event(session: Session, order: WorkOrder, user: User, action: str, **detail: object) -> None:
    session.add(WorkOrderEvent(work_order_id=order.id, user_id=user.id, action=action, detail=detail))


def _clean(value: str | None, name: str, limit: int, required: bool = False) -> str | None:
    value = (value or "").strip() or None
    if required and not value:
        raise DecisionError(f"{name} is required", 422)
    if value and len(value) > limit:
        raise DecisionError(f"{name} must have at most {limit} characters", 422)
    if value and "\x00" in value:  # PostgreSQL text cannot hold NUL
        raise DecisionError(f"{name} must not contain NUL characters", 422)
    return value


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
        raise DecisionError("a work order needs at least one site", 422)
    crew = _clean(crew, "crew", 200)
    order = WorkOrder(
        title=_clean(title, "title", 200, required=True),
        crew=crew,
        status="assigned" if crew else "new",
        notes=_clean(notes, "notes", 5000),
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
        raise DecisionError(f"work order {order.id} is {order.status}: it takes no more sites")
    present = {link.site_id for link in order.sites}
    position = max((link.position for link in order.sites), default=0)
    for site in sites:
        if site.id in present:
            continue
        site = lock_site(session, site.id)  # two orders (or an order and a decision) at once
        if site.status not in SCHEDULABLE:
            raise DecisionError(
                f"site {site.public_id} is {site.status}: only {', '.join(SCHEDULABLE)} sites"
            )
        other = active_order_of(session, site)
        if other is not None:
            raise DecisionError(f"site {site.public_id} is in work order {other.id} already")
        position += 1
        session.add(WorkOrderSite(work_order_id=order.id, site_id=site.id, position=position))
        if site.status != "scheduled":
            decide(session, site, user, "schedule", reason=f"work order {order.id}")
        _event(session, order, user, "site_added", site=str(site.public_id))
        present.add(site.id)
    session.flush()
    session.refresh(order)


def remove_site(session: Session, order: WorkOrder, user: User, site: DamageSite) -> None:
    if order.status not in WORK_ORDER_ACTIVE:
        raise DecisionError(f"work order {order.id} is {order.status}: its sites stay")
    link = session.get(WorkOrderSite, (order.id, site.id))
    if link is None:
        raise DecisionError(f"site {site.public_id} is not in work order {order.id}", 404)
    session.delete(link)
    if site.status == "scheduled":
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
        raise DecisionError(f"work order {order.id} is {order.status} and cannot change")
    if title is not None:
        order.title = _clean(title, "title", 200, required=True)  # type: ignore[assignment]
    if notes is not None:
        order.notes = _clean(notes, "notes", 5000)
    if crew is not None and _clean(crew, "crew", 200) != order.crew:
        order.crew = _clean(crew, "crew", 200)
        _event(session, order, user, "crew", crew=order.crew)
        if order.crew and order.status == "new" and status in (None, "new"):
            status = "assigned"
    if status is not None and status != order.status:
        if status not in WORK_ORDER_TRANSITIONS:
            raise DecisionError(
                f"status must be one of {', '.join(WORK_ORDER_TRANSITIONS)}, got {status!r}", 422
            )
        if status not in WORK_ORDER_TRANSITIONS[order.status]:
            raise DecisionError(f"a work order that is {order.status} cannot become {status}")
        previous, order.status = order.status, status
        _event(session, order, user, "status", previous=previous, status=status)
        follow = {
            "done": ("repair", "work order {} done"),
            "cancelled": ("unschedule", "work order {} cancelled"),
        }
        if status in follow:
            action, reason = follow[status]
            for link in order.sites:
                if link.site.status == "scheduled":
                    decide(session, link.site, user, action, reason=reason.format(order.id))
    session.flush()
    return order


def order_sites(order: WorkOrder) -> list[DamageSite]:
    return [link.site for link in order.sites]
