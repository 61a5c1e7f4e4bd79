"""drives: association per drive segment (tracks, the drive's GPS offset and its support)

Revision ID: 0007
Revises: 0006

- ``drive``: one vehicle's frames grouped by time gaps, associated together; the GPS offset that
  registered it against the map (east/north metres), how many tracks agreed on it (``support``), and
  whether it was registered (``reference`` 'map') or kept its own reference ('own').
- ``drive_frame``: each located frame belongs to exactly one drive once it is associated (the primary
  key makes a second association of the same frame impossible).
- ``track``: one defect followed across a drive's consecutive frames, and the site it formed or joined.
- ``track_observation``: the observations (detections) of each track.
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drive",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("vehicle_id", sa.Integer(), sa.ForeignKey("vehicle.id"), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("offset_e_m", sa.Float(), nullable=False, server_default="0"),
        sa.Column("offset_n_m", sa.Float(), nullable=False, server_default="0"),
        sa.Column("drift_m", sa.Float(), nullable=True),
        sa.Column("support", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("candidates", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("reference", sa.String(length=10), nullable=False, server_default="own"),
        sa.Column("n_frames", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("n_tracks", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("algorithm", sa.String(length=50), nullable=False, server_default=""),
        sa.Column(
            "associated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.CheckConstraint("reference IN ('map', 'own')", name="drive_reference"),
    )
    op.create_index("ix_drive_vehicle_time", "drive", ["vehicle_id", "started_at"])
    op.create_table(
        "drive_frame",
        sa.Column(
            "frame_id", sa.BigInteger(), sa.ForeignKey("frame.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("drive_id", sa.BigInteger(), sa.ForeignKey("drive.id", ondelete="CASCADE"), nullable=False),
    )
    op.create_index("ix_drive_frame_drive", "drive_frame", ["drive_id"])
    op.create_table(
        "track",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("drive_id", sa.BigInteger(), sa.ForeignKey("drive.id", ondelete="CASCADE"), nullable=False),
        sa.Column("site_id", sa.BigInteger(), sa.ForeignKey("damage_site.id"), nullable=True),
        sa.Column("class_name", sa.String(length=10), nullable=False),
        sa.Column("position", Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
        sa.Column("sightings", sa.Integer(), nullable=False),
        sa.Column("n_observations", sa.Integer(), nullable=False),
        sa.Column("size_m", sa.Float(), nullable=True),
        sa.Column("max_confidence", sa.Float(), nullable=False),
        sa.Column("match_m", sa.Float(), nullable=True),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_track_drive", "track", ["drive_id"])
    op.create_index("ix_track_site", "track", ["site_id"])
    op.create_table(
        "track_observation",
        sa.Column(
            "observation_id",
            sa.BigInteger(),
            sa.ForeignKey("observation.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("track_id", sa.BigInteger(), sa.ForeignKey("track.id", ondelete="CASCADE"), nullable=False),
    )
    op.create_index("ix_track_observation_track", "track_observation", ["track_id"])


def downgrade() -> None:
    op.drop_index("ix_track_observation_track", table_name="track_observation")
    op.drop_table("track_observation")
    op.drop_index("ix_track_site", table_name="track")
    op.drop_index("ix_track_drive", table_name="track")
    op.drop_table("track")
    op.drop_index("ix_drive_frame_drive", table_name="drive_frame")
    op.drop_table("drive_frame")
    op.drop_index("ix_drive_vehicle_time", table_name="drive")
    op.drop_table("drive")
