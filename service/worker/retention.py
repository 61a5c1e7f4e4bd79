"""Retention (GDPR storage limitation): images (and their copies among the corrections for training), and
the contact details and photos of citizen reports (Open311), are deleted after a configured number of days.

Only the image goes: the frame row (time, position, status), its observations, the sites and every
decision stay, so the map, rankings and the audit trail survive. Run nightly by the workers
(``enforce_retention`` periodic task) and on demand with ``python -m service retention``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.db.open311 import delete_old_contacts, delete_old_media, key_in_use
from service.db.store import ImageStore
from service.db.tables import Frame

log = logging.getLogger(__name__)


def prune_corrections(sessions: sessionmaker[Session], folder: Path | None) -> int:
    """Delete the corrections (``{split}/images/{sha256}.jpg`` and its label) of frames whose image is
    gone by retention, or that no longer exist: the training copies follow the images' retention."""
    if folder is None or not folder.is_dir():
        return 0
    images = {p.stem: p for p in folder.glob("*/images/*.jpg")}
    keys, deleted = sorted(images), 0
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        with sessions() as session:
            kept = set(
                session.scalars(
                    select(Frame.sha256).where(Frame.sha256.in_(chunk), Frame.image_deleted_at.is_(None))
                )
            )
        for sha in chunk:
            if sha not in kept:
                image = images[sha]
                image.unlink(missing_ok=True)
                (image.parent.parent / "labels" / f"{sha}.txt").unlink(missing_ok=True)
                deleted += 1
    if deleted:
        log.info("retention: %d corrections of deleted images removed", deleted)
    return deleted


def enforce_retention(
    sessions: sessionmaker[Session],
    store: ImageStore,
    days: int,
    now: datetime | None = None,
    batch: int = 500,
    corrections: Path | None = None,
) -> int:
    """Delete the images of frames captured or received (the earlier) more than ``days`` ago, and their
    copies in the ``corrections`` folder; the contact details and photos of citizen reports made before
    then (the reports stay)."""
    if days <= 0:
        return 0
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    with sessions() as session, session.begin():
        contacts = delete_old_contacts(session, cutoff)
    if contacts:
        log.info(
            "retention: contact details of %d citizen reports older than %d days deleted", contacts, days
        )
    photos = 0
    while True:
        with sessions() as session, session.begin():
            n = delete_old_media(session, store, cutoff, batch)
        photos += n
        if n < batch:
            break
    if photos:
        log.info("retention: photos of %d citizen reports older than %d days deleted", photos, days)
    deleted = 0
    while True:
        with sessions() as session, session.begin():
            frames = session.scalars(
                select(Frame)
                .where(
                    Frame.image_key.is_not(None),
                    # The earlier of capture and upload time: a camera clock set in the future must
                    # not keep an image for ever.
                    func.least(func.coalesce(Frame.captured_at, Frame.created_at), Frame.created_at) < cutoff,
                )
                .order_by(Frame.id)
                .limit(batch)
                .with_for_update(skip_locked=True)
            ).all()
            for frame in frames:
                key = frame.image_key or ""
                frame.image_key, frame.image_deleted_at = None, datetime.now(UTC)
                session.flush()
                # Only delete a file no other (younger) frame, nor a citizen's photo, still points at.
                if not key_in_use(session, key):
                    store.delete(key)
            deleted += len(frames)
        if len(frames) < batch:
            log.info("retention: %d images older than %d days deleted", deleted, days)
            prune_corrections(sessions, corrections)
            return deleted
