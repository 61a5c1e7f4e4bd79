"""frame: the drive's GPS offset estimated at each frame

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("frame", sa.Column("gps_offset_e_m", sa.Float(), nullable=True))
    op.add_column("frame", sa.Column("gps_offset_n_m", sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column("frame", "gps_offset_n_m")
    op.drop_column("frame", "gps_offset_e_m")
