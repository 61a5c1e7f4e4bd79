"""section coverage: each section's passes and last passes, kept as frames are recorded

Revision ID: 0014
Revises: 0013

``section_pass``: one row per section, vehicle and day (a pass): its frames, unusable frames, the times of
its last frame, last usable frame and last usable frame that saw a stretch of the section, and the union of
the stretches its usable frames saw (metres from the section's start). ``section_coverage``: per section,
the last pass and the last usable pass of all time. Both are written in the frame's transaction
(service/db/survey.py) and can be rebuilt from the frames (``python -m service roads rebuild-coverage``);
the upgrade fills them from the frames recorded so far. A statement trigger keeps ``section_coverage`` in
step when passes are deleted (a vehicle and its frames removed, a section removed by an import).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# Keep in step with service/db/survey.py (REBUILD_SQL): the backfill is the same statement.
BACKFILL = [
    """
    INSERT INTO section_pass (section_id, vehicle_id, day, frames, unusable_frames, last_at, last_usable_at,
                              last_seen_at, seen)
    SELECT fr.section_id, f.vehicle_id, (f.captured_at AT TIME ZONE 'UTC')::date,
           count(*), count(*) FILTER (WHERE q.usable IS false), max(f.captured_at),
           max(f.captured_at) FILTER (WHERE COALESCE(q.usable, true)),
           max(f.captured_at) FILTER (WHERE COALESCE(q.usable, true) AND fr.seen_from_m IS NOT NULL
                                      AND fr.seen_to_m IS NOT NULL),
           COALESCE(range_agg(numrange(LEAST(fr.seen_from_m, fr.seen_to_m)::numeric,
                                       GREATEST(fr.seen_from_m, fr.seen_to_m)::numeric, '[]'))
                    FILTER (WHERE COALESCE(q.usable, true) AND fr.seen_from_m IS NOT NULL
                            AND fr.seen_to_m IS NOT NULL), '{}')
    FROM frame_road fr
    JOIN frame f ON f.id = fr.frame_id
    JOIN road_section s ON s.id = fr.section_id
    LEFT JOIN frame_quality q ON q.frame_id = fr.frame_id
    WHERE f.captured_at IS NOT NULL
    GROUP BY 1, 2, 3
    """,
    """
    INSERT INTO section_coverage (section_id, last_at, last_usable_at)
    SELECT section_id, max(last_at), max(last_usable_at) FROM section_pass GROUP BY section_id
    """,
]

PASSES_DELETED = """
CREATE FUNCTION section_coverage_after_pass_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH touched AS (SELECT DISTINCT section_id FROM deleted_passes),
    left_over AS (
        SELECT t.section_id, max(p.last_at) AS last_at, max(p.last_usable_at) AS last_usable_at
        FROM touched t LEFT JOIN section_pass p ON p.section_id = t.section_id
        GROUP BY t.section_id
    ), gone AS (
        DELETE FROM section_coverage c USING left_over l
        WHERE c.section_id = l.section_id AND l.last_at IS NULL
    )
    UPDATE section_coverage c SET last_at = l.last_at, last_usable_at = l.last_usable_at, updated_at = now()
    FROM left_over l
    WHERE c.section_id = l.section_id AND l.last_at IS NOT NULL
      AND (c.last_at, c.last_usable_at) IS DISTINCT FROM (l.last_at, l.last_usable_at);
    RETURN NULL;
END $$;
CREATE TRIGGER section_pass_deleted AFTER DELETE ON section_pass
    REFERENCING OLD TABLE AS deleted_passes FOR EACH STATEMENT
    EXECUTE FUNCTION section_coverage_after_pass_delete();
"""


def upgrade() -> None:
    op.create_table(
        "section_pass",
        sa.Column(
            "section_id",
            sa.String(length=100),
            sa.ForeignKey("road_section.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "vehicle_id", sa.Integer(), sa.ForeignKey("vehicle.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("unusable_frames", sa.Integer(), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_usable_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seen", postgresql.NUMMULTIRANGE(), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("section_id", "day", "vehicle_id"),
    )
    op.create_index("ix_section_pass_vehicle", "section_pass", ["vehicle_id"])
    op.create_table(
        "section_coverage",
        sa.Column(
            "section_id",
            sa.String(length=100),
            sa.ForeignKey("road_section.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_usable_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_section_coverage_updated", "section_coverage", ["updated_at"])
    for sql in BACKFILL:
        op.execute(sql)
    op.execute(PASSES_DELETED)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS section_pass_deleted ON section_pass")
    op.execute("DROP FUNCTION IF EXISTS section_coverage_after_pass_delete()")
    op.drop_table("section_coverage")
    op.drop_table("section_pass")
