"""site verification: what routine drives say about a site since it was repaired or last seen

Revision ID: 0013
Revises: 0010

``site_verification``: one row per site that a verification pass looked at: ``awaiting_drive`` or
``repair_confirmed`` (repaired, then not seen on k covering passes), ``reappeared`` (seen again after the
repair), ``not_seen_again`` (open, not seen on its last k covering passes: staff decide) or ``still_there``;
with the number of covering passes since the reference time and when it was checked
(service/domain/history.py, service/db/history.py).
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0010"
branch_labels = None
depends_on = None

STATES = ("awaiting_drive", "repair_confirmed", "reappeared", "not_seen_again", "still_there")


def upgrade() -> None:
    op.create_table(
        "site_verification",
        sa.Column(
            "site_id", sa.BigInteger(), sa.ForeignKey("damage_site.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("state", sa.String(length=30), nullable=False),
        sa.Column("passes_since", sa.Integer(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"state IN {STATES}", name="site_verification_state"),
    )
    op.create_index("ix_site_verification_state", "site_verification", ["state"])


def downgrade() -> None:
    op.drop_table("site_verification")
