"""site tile cells (low-zoom vector tiles of a large city)

Revision ID: 0015
Revises: 0014

``site_tile_cell``: for each zoom up to ``service.db.tiles.CELL_MAX_ZOOM``, one row per grid cell (16 x 16
per Web Mercator tile) and site status and class: how many sites, the sums of their Mercator x and y (in
world units 0..1, for the cell's centroid) and their highest priority. ``site_tile_cell_state`` holds when
the cells were last built and the damage_site change counter seen then. Derived data only: rebuilt from
``damage_site`` by ``service.db.tiles.refresh_cells`` (the tile route does it when they are stale).
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "site_tile_cell",
        sa.Column("zoom", sa.SmallInteger(), primary_key=True),
        sa.Column("cx", sa.Integer(), primary_key=True),
        sa.Column("cy", sa.Integer(), primary_key=True),
        sa.Column("status", sa.String(length=20), primary_key=True),
        sa.Column("class_name", sa.String(length=10), primary_key=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("sum_mx", sa.Float(), nullable=False),
        sa.Column("sum_my", sa.Float(), nullable=False),
        sa.Column("max_priority", sa.Float(), nullable=False),
    )
    op.create_table(
        "site_tile_cell_state",
        sa.Column("id", sa.SmallInteger(), primary_key=True),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changes", sa.BigInteger(), nullable=False),
        sa.Column("sites", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name="site_tile_cell_state_one_row"),
    )


def downgrade() -> None:
    op.drop_table("site_tile_cell_state")
    op.drop_table("site_tile_cell")
