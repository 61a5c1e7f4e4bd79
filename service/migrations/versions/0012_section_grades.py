"""section grades: condition grade 1-5 per road section with its inputs and history

Revision ID: 0012
Revises: 0009

``section_grade``: one row per computed grade that differed from the one before; ``current`` marks the
section's grade today (a partial index finds it), the others are its history. ``inputs`` holds the
components (extent, value and sites per class group), the surveyed area and share, the passes and the
reason when there is no grade (insufficient data). See service/domain/grades.py.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "section_grade",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("section_id", sa.String(length=100), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        # when the inputs were last looked at (a regrade that changed nothing moves only this)
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("grade", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("colour_class", sa.String(length=10), nullable=True),
        sa.Column("config_version", sa.String(length=80), nullable=False),
        sa.Column("surveyed_share", sa.Float(), nullable=False),
        sa.Column("passes", sa.BigInteger(), nullable=False),
        sa.Column("last_pass", sa.DateTime(timezone=True), nullable=True),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.CheckConstraint("grade IS NULL OR (grade >= 1.0 AND grade <= 5.0)", name="section_grade_range"),
    )
    op.create_index(
        "ix_section_grade_current", "section_grade", ["section_id"], postgresql_where=sa.text("current")
    )
    op.create_index("ix_section_grade_section", "section_grade", ["section_id", "computed_at"])


def downgrade() -> None:
    op.drop_table("section_grade")
