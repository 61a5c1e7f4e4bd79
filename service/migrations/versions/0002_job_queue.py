"""procrastinate's job queue schema, at the version pinned in pyproject.toml

Revision ID: 0002
Revises: 0001

Upgrading procrastinate means adding a migration with its SQL migration files for that step.
"""

from alembic import op
from procrastinate.schema import SchemaManager

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(SchemaManager.get_schema())


def downgrade() -> None:
    op.execute(
        "DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers, procrastinate_jobs, procrastinate_workers CASCADE"
    )
