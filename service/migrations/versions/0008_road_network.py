"""road network: sections, imports, importance overrides, each frame's section/footprint/quality, sites' sections

Revision ID: 0008
Revises: 0007

- ``road_section`` replaces ``road_segment``: the network cut at junctions and into sections of at most
  50 m (configurable), each with a stable id ``{way_id}:{ordinal}``, street name, the names it lies between,
  function class, one-way, surface and importance. Existing segments are copied as sections
  ``segment{id}:0`` (importance from the input); ``road_segment`` stays as a read-only view of the sections,
  so older readers of (name, importance, geom) keep working.
- ``road_import``: one row per import; ``road_importance_override``: staff's importance per section id.
- ``frame_road``: the section a frame was taken on, the stretch of it the photo shows and the footprint.
- ``frame_quality``: the capture-quality verdict (usable, reasons, image statistics).
- ``site_survey``: the section each damage site lies on, and its sightings from usable/unusable frames.
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "road_section",
        sa.Column("id", sa.String(length=100), primary_key=True),
        sa.Column("way_id", sa.String(length=80), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=True),
        sa.Column("highway", sa.String(length=50), nullable=True),
        sa.Column("oneway", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("surface", sa.String(length=50), nullable=True),
        sa.Column("importance", sa.Float(), nullable=False),
        sa.Column("importance_source", sa.String(length=50), nullable=False),
        sa.Column("from_name", sa.String(length=300), nullable=True),
        sa.Column("to_name", sa.String(length=300), nullable=True),
        sa.Column("length_m", sa.Float(), nullable=False),
        sa.Column("geom", Geometry("LINESTRING", srid=4326, spatial_index=False), nullable=False),
    )
    op.create_index("ix_road_section_geom", "road_section", ["geom"], postgresql_using="gist")
    op.create_index("ix_road_section_name", "road_section", ["name"])
    op.execute(
        "INSERT INTO road_section (id, way_id, ordinal, name, importance, importance_source, length_m, geom) "
        "SELECT 'segment' || id || ':' || '0', 'segment' || id, 0, name, importance, 'input', "
        "ST_Length(geom::geography), geom FROM road_segment"
    )
    op.drop_index("ix_road_segment_geom", table_name="road_segment")
    op.drop_table("road_segment")
    op.execute(
        # No window function here: a plain view keeps the sections' GiST index usable through it.
        "CREATE VIEW road_segment AS SELECT hashtext(id) AS id, name, importance, geom FROM road_section"
    )
    op.create_table(
        "road_import",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("n_ways", sa.Integer(), nullable=False),
        sa.Column("n_sections", sa.Integer(), nullable=False),
        sa.Column("length_km", sa.Float(), nullable=False),
        sa.Column("max_section_m", sa.Float(), nullable=False),
        sa.Column("importance_version", sa.String(length=50), nullable=False),
        sa.Column("sites_attached", sa.Integer(), nullable=False),
        sa.Column("frames_attached", sa.Integer(), nullable=False),
    )
    op.create_table(
        "road_importance_override",
        sa.Column("section_id", sa.String(length=100), primary_key=True),
        sa.Column("importance", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("set_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("importance >= 0 AND importance <= 1", name="road_importance_range"),
    )
    op.create_table(
        "frame_road",
        sa.Column(
            "frame_id", sa.BigInteger(), sa.ForeignKey("frame.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("section_id", sa.String(length=100), nullable=True),
        sa.Column("distance_m", sa.Float(), nullable=True),
        sa.Column("seen_from_m", sa.Float(), nullable=True),
        sa.Column("seen_to_m", sa.Float(), nullable=True),
        sa.Column("footprint", Geometry("POLYGON", srid=4326, spatial_index=False), nullable=True),
    )
    op.create_index("ix_frame_road_section", "frame_road", ["section_id"])
    op.create_index("ix_frame_road_footprint", "frame_road", ["footprint"], postgresql_using="gist")
    op.create_table(
        "frame_quality",
        sa.Column(
            "frame_id", sa.BigInteger(), sa.ForeignKey("frame.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("usable", sa.Boolean(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("version", sa.String(length=50), nullable=False),
    )
    op.create_table(
        "site_survey",
        sa.Column(
            "site_id",
            sa.BigInteger(),
            sa.ForeignKey("damage_site.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("section_id", sa.String(length=100), nullable=True),
        sa.Column("section_distance_m", sa.Float(), nullable=True),
        sa.Column("usable_sightings", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("unusable_sightings", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_index("ix_site_survey_section", "site_survey", ["section_id"])


def downgrade() -> None:
    op.drop_index("ix_site_survey_section", table_name="site_survey")
    op.drop_table("site_survey")
    op.drop_table("frame_quality")
    op.drop_index("ix_frame_road_footprint", table_name="frame_road")
    op.drop_index("ix_frame_road_section", table_name="frame_road")
    op.drop_table("frame_road")
    op.drop_table("road_importance_override")
    op.drop_table("road_import")
    op.execute("DROP VIEW road_segment")
    op.create_table(
        "road_segment",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=300), nullable=True),
        sa.Column("importance", sa.Float(), nullable=False),
        sa.Column("geom", Geometry("LINESTRING", srid=4326, spatial_index=False), nullable=False),
    )
    op.create_index("ix_road_segment_geom", "road_segment", ["geom"], postgresql_using="gist")
    op.execute(
        "INSERT INTO road_segment (name, importance, geom) SELECT name, importance, geom FROM road_section"
    )
    op.drop_index("ix_road_section_name", table_name="road_section")
    op.drop_index("ix_road_section_geom", table_name="road_section")
    op.drop_table("road_section")
