"""hardening: session version per staff user, audit log, stall count and failure time per frame, time source

Revision ID: 0009
Revises: 0008

- ``staff_user.session_version``: every login session carries the version it was made with; logout,
  deactivation and a password change raise it, so every older session of that user ends at once.
- ``audit_event``: who did what to which account (password changed or reset, deactivated, logout of all
  sessions) and frame actions by admins (a failed frame retried).
- ``frame.stall_count``: how often a worker died while processing the frame (the janitor counts; after
  ``ROADWATCH_MAX_FRAME_STALLS`` the frame is ``failed``); ``frame.failed_at``: when it failed for good
  (its upload is kept for inspection for ``ROADWATCH_FAILED_UPLOAD_KEEP_DAYS``).
- ``frame.time_source``: where the capture time came from (exif, metadata, upload: the time it arrived).
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "staff_user", sa.Column("session_version", sa.Integer(), nullable=False, server_default="0")
    )
    op.create_table(
        "audit_event",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("actor_id", sa.Integer(), sa.ForeignKey("staff_user.id"), nullable=True),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("target_user_id", sa.Integer(), sa.ForeignKey("staff_user.id"), nullable=True),
        sa.Column("frame_id", sa.BigInteger(), sa.ForeignKey("frame.id", ondelete="SET NULL"), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False, server_default="{}"),
    )
    op.create_index("ix_audit_event_at", "audit_event", ["at"])
    op.add_column("frame", sa.Column("stall_count", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("frame", sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("frame", sa.Column("time_source", sa.String(length=20), nullable=True))
    op.create_index("ix_frame_failed", "frame", ["failed_at"], postgresql_where=sa.text("status = 'failed'"))


def downgrade() -> None:
    op.drop_index("ix_frame_failed", table_name="frame")
    op.drop_column("frame", "time_source")
    op.drop_column("frame", "failed_at")
    op.drop_column("frame", "stall_count")
    op.drop_index("ix_audit_event_at", table_name="audit_event")
    op.drop_table("audit_event")
    op.drop_column("staff_user", "session_version")
