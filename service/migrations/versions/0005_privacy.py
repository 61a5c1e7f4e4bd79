"""privacy: anonymization and retention bookkeeping on frames, per-vehicle horizon

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("frame", sa.Column("anonymized_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("frame", sa.Column("blurred_regions", sa.Integer(), nullable=True))
    op.add_column("frame", sa.Column("image_deleted_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("vehicle", sa.Column("privacy_horizon", sa.Float(), nullable=True))
    op.create_index("ix_frame_captured_at", "frame", ["captured_at"])


def downgrade() -> None:
    op.drop_index("ix_frame_captured_at", table_name="frame")
    op.drop_column("vehicle", "privacy_horizon")
    op.drop_column("frame", "image_deleted_at")
    op.drop_column("frame", "blurred_regions")
    op.drop_column("frame", "anonymized_at")
