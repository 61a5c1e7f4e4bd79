"""labelstudio: frames sent to Label Studio for correction, and the annotations pulled back

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "labelstudio_task",
        sa.Column("frame_id", sa.BigInteger(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("strategy", sa.String(length=20), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("annotation_id", sa.BigInteger(), nullable=True),
        sa.Column("annotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pulled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("split", sa.String(length=10), nullable=True),
        sa.Column("n_boxes", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "strategy IN ('uncertain', 'rejected', 'random')", name="labelstudio_task_strategy"
        ),
        sa.ForeignKeyConstraint(["frame_id"], ["frame.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_version.id"]),
        sa.PrimaryKeyConstraint("frame_id"),
    )
    op.create_index("ux_labelstudio_task_task", "labelstudio_task", ["project_id", "task_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_labelstudio_task_task", table_name="labelstudio_task")
    op.drop_table("labelstudio_task")
