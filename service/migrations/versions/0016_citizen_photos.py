"""citizen photos: the anonymized photo of an Open311 report

Revision ID: 0016
Revises: 0015

``citizen_report.media_key``: the sha256 of the report's anonymized photo (a JPEG without metadata) in the
image store, the folder of the frames' anonymized copies (the citizen's original is never stored);
``media_width`` and ``media_height`` its size. Retention deletes the file with the report's contact details
and sets ``media_deleted_at`` (the key is cleared then).
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("citizen_report", sa.Column("media_key", sa.String(length=64), nullable=True))
    op.add_column("citizen_report", sa.Column("media_width", sa.Integer(), nullable=True))
    op.add_column("citizen_report", sa.Column("media_height", sa.Integer(), nullable=True))
    op.add_column("citizen_report", sa.Column("media_deleted_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_citizen_report_media_key",
        "citizen_report",
        ["media_key"],
        postgresql_where=sa.text("media_key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_citizen_report_media_key", table_name="citizen_report")
    op.drop_column("citizen_report", "media_deleted_at")
    op.drop_column("citizen_report", "media_height")
    op.drop_column("citizen_report", "media_width")
    op.drop_column("citizen_report", "media_key")
