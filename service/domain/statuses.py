"""Every status the service stores, as ``StrEnum``s (their values are what the database holds; the
CHECK constraints of the migrations list the same values in the same order).

A frame is ``queued`` until the worker has processed it (``done``), could not locate it
(``no_location``) or gave up on it (``failed``). A site is proposed by the model (``open``) until staff
``confirm``, ``reject``, ``schedule`` or ``repair`` it. A work order is ``new`` until a crew is
``assigned``, ``in_progress``, ``done`` or ``cancelled``.
"""

from __future__ import annotations

from enum import StrEnum


class FrameStatus(StrEnum):
    QUEUED = "queued"
    DONE = "done"
    FAILED = "failed"
    NO_LOCATION = "no_location"


class SiteStatus(StrEnum):
    OPEN = "open"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    SCHEDULED = "scheduled"
    REPAIRED = "repaired"


class WorkOrderStatus(StrEnum):
    NEW = "new"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANCELLED = "cancelled"


class Role(StrEnum):
    VIEWER = "viewer"
    REVIEWER = "reviewer"
    ADMIN = "admin"


class PushStrategy(StrEnum):
    """Which frames ``labelstudio push`` sends for correction."""

    UNCERTAIN = "uncertain"
    REJECTED = "rejected"
    RANDOM = "random"


def values(enum: type[StrEnum]) -> tuple[str, ...]:
    """The stored values in declaration order: ('open', 'confirmed', ...)."""
    return tuple(member.value for member in enum)


# Sites that still need someone: what a fresh list shows.
SITE_NEEDS_ACTION = (SiteStatus.OPEN, SiteStatus.CONFIRMED, SiteStatus.SCHEDULED)
# Rejected sites take new sightings too, so a false detection staff rejected is not proposed again;
# a repaired site does not: damage seen there again is new damage.
SITE_ASSOCIABLE = (SiteStatus.OPEN, SiteStatus.CONFIRMED, SiteStatus.SCHEDULED, SiteStatus.REJECTED)
SITE_SCHEDULABLE = (SiteStatus.OPEN, SiteStatus.CONFIRMED, SiteStatus.SCHEDULED)
WORK_ORDER_ACTIVE = (WorkOrderStatus.NEW, WorkOrderStatus.ASSIGNED, WorkOrderStatus.IN_PROGRESS)
WORK_ORDER_TRANSITIONS: dict[str, tuple[WorkOrderStatus, ...]] = {
    WorkOrderStatus.NEW: (
        WorkOrderStatus.ASSIGNED,
        WorkOrderStatus.IN_PROGRESS,
        WorkOrderStatus.DONE,
        WorkOrderStatus.CANCELLED,
    ),
    WorkOrderStatus.ASSIGNED: (
        WorkOrderStatus.NEW,
        WorkOrderStatus.IN_PROGRESS,
        WorkOrderStatus.DONE,
        WorkOrderStatus.CANCELLED,
    ),
    WorkOrderStatus.IN_PROGRESS: (WorkOrderStatus.ASSIGNED, WorkOrderStatus.DONE, WorkOrderStatus.CANCELLED),
    WorkOrderStatus.DONE: (),
    WorkOrderStatus.CANCELLED: (),
}

FRAME_STATUSES = values(FrameStatus)
SITE_STATUSES = values(SiteStatus)
WORK_ORDER_STATUSES = values(WorkOrderStatus)
ROLES = values(Role)
PUSH_STRATEGIES = values(PushStrategy)


class UploadStatus(StrEnum):
    """What ``POST /api/v1/batches`` answers per image."""

    QUEUED = "queued"
    NO_LOCATION = "no_location"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
