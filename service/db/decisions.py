"""Staff decisions on damage sites.

Every change of a site's status or class goes through ``decide``, which stores a ``Decision`` with the
user, time, reason, previous and new state, and the model and ranking versions behind the proposal.
Sites are never deleted: a false detection is rejected (with a reason), and stays rejected, so the
model's next sighting of it is absorbed instead of proposed again (see service.db.sites).

Work orders (``service.db.work_orders``) change their sites' status through ``decide`` too.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.tables import DamageSite, Decision, User
from service.domain.classes import CLASSES
from service.domain.statuses import SiteStatus
from service.errors import Conflict, InvalidInput, NotFound, ServiceError

# action -> (statuses it applies to, resulting status; None keeps the status, but "open" becomes
# "confirmed": a person who sets the class has decided that the damage is there).
ACTIONS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "confirm": ((SiteStatus.OPEN, SiteStatus.REJECTED), SiteStatus.CONFIRMED),
    "reject": ((SiteStatus.OPEN, SiteStatus.CONFIRMED), SiteStatus.REJECTED),
    "reclassify": ((SiteStatus.OPEN, SiteStatus.CONFIRMED, SiteStatus.SCHEDULED), None),
    "schedule": ((SiteStatus.OPEN, SiteStatus.CONFIRMED), SiteStatus.SCHEDULED),
    "unschedule": ((SiteStatus.SCHEDULED,), SiteStatus.CONFIRMED),
    "repair": ((SiteStatus.OPEN, SiteStatus.CONFIRMED, SiteStatus.SCHEDULED), SiteStatus.REPAIRED),
}
REASON_REQUIRED = ("reject",)
MAX_REASON = 2000


class DecisionError(ServiceError):
    """A decision or work-order change that was refused; the web app shows it as a notice."""


class DecisionConflict(DecisionError, Conflict):
    """The site's or order's current state does not allow the change."""


class DecisionInvalid(DecisionError, InvalidInput):
    """The change itself is malformed (unknown action or class, missing reason, text too long)."""


class DecisionNotFound(DecisionError, NotFound):
    """The site or the link to change does not exist."""


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
        raise DecisionNotFound(f"no site {site_id}")
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
        raise DecisionInvalid(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    reason = clean_text(reason, "reason", MAX_REASON)
    if action in REASON_REQUIRED and not reason:
        raise DecisionInvalid(f"{action} needs a reason")
    sources, target = ACTIONS[action]
    if site.status not in sources:
        raise DecisionConflict(
            f"cannot {action} a site that is {site.status} (allowed from: {', '.join(sources)})"
        )
    previous_status, previous_class = site.status, site.class_name
    if action == "reclassify":
        if new_class not in CLASSES:
            raise DecisionInvalid(f"class must be one of {', '.join(CLASSES)}, got {new_class!r}")
        if new_class == site.class_name:
            raise DecisionInvalid(f"the site is {new_class} already")
        site.class_name = new_class
        target = SiteStatus.CONFIRMED if site.status == SiteStatus.OPEN else site.status
    new_status = target if target is not None else site.status
    site.status = new_status
    decision = Decision(
        site_id=site.id,
        user_name=user.username,
        action=action,
        reason=reason,
        previous_status=previous_status,
        new_status=new_status,
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


def clean_text(value: str | None, name: str, limit: int, required: bool = False) -> str | None:
    """``value`` stripped (None when empty), checked for length, presence and NUL characters."""
    value = (value or "").strip() or None
    if required and not value:
        raise DecisionInvalid(f"{name} is required")
    if value and len(value) > limit:
        raise DecisionInvalid(f"{name} must have at most {limit} characters")
    if value and "\x00" in value:  # PostgreSQL text cannot hold NUL
        raise DecisionInvalid(f"{name} must not contain NUL characters")
    return value
