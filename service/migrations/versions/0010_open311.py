"""open311: citizen reports (Open311 GeoReport v2), per-client API keys, views for the OGC API

Revision ID: 0010
Revises: 0012

- ``open311_client``: a client of the Open311 endpoint (the city's citizen portal) with the sha256 of its
  API key (the key itself is shown once by ``python -m service open311 key add NAME``).
- ``citizen_report``: one service request: service code, description, position (given or found from the
  address), the site it attached to or created, the client that sent it. ``citizen_report_contact``: the
  reporter's contact details (personal data), apart so that nothing public ever reads them and they can be
  deleted on their own.
- ``damage_site.citizen_reports`` (how many reports attached to it) and ``damage_site.citizen_reported``
  (the site was created from a report, not by the model).
- Views the OGC API publishes (``service/api/ogc.py``): ``ogc_work_order`` (each work order with its sites
  as one MultiPoint) and ``ogc_road_section`` (each section with its current condition grade and coverage).

Numbered 0010 but revising 0012: 0010 was reserved for this migration while 0012 landed first; the chain
stays linear (0009 -> 0012 -> 0010).
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0010"
down_revision = "0012"
branch_labels = None
depends_on = None

WORK_ORDER_VIEW = """
CREATE VIEW ogc_work_order AS
SELECT wo.id, wo.title, wo.crew, wo.status, wo.created_at, wo.updated_at,
       count(ds.id)::integer AS n_sites,
       ST_Multi(ST_Collect(ds.position))::geometry(MultiPoint, 4326) AS geom
FROM work_order wo
LEFT JOIN work_order_site wos ON wos.work_order_id = wo.id
LEFT JOIN damage_site ds ON ds.id = wos.site_id
GROUP BY wo.id
"""
ROAD_SECTION_VIEW = """
CREATE VIEW ogc_road_section AS
SELECT rs.id, rs.name, rs.highway, rs.surface, rs.importance, rs.from_name, rs.to_name, rs.length_m,
       g.grade, g.status AS grade_status, g.colour_class, g.surveyed_share, g.passes, g.last_pass,
       g.computed_at AS graded_at, rs.geom
FROM road_section rs
LEFT JOIN section_grade g ON g.section_id = rs.id AND g.current
"""


def upgrade() -> None:
    op.create_table(
        "open311_client",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=200), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(length=64), nullable=False, unique=True),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.add_column(
        "damage_site", sa.Column("citizen_reports", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column(
        "damage_site", sa.Column("citizen_reported", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.create_table(
        "citizen_report",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("client_id", sa.Integer(), sa.ForeignKey("open311_client.id"), nullable=False),
        sa.Column("service_code", sa.String(length=30), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("address_string", sa.String(length=500), nullable=True),
        sa.Column("media_url", sa.String(length=2000), nullable=True),
        sa.Column("position", Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
        sa.Column("site_id", sa.BigInteger(), sa.ForeignKey("damage_site.id"), nullable=False),
        sa.Column("created_site", sa.Boolean(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_citizen_report_site", "citizen_report", ["site_id"])
    op.create_index("ix_citizen_report_requested", "citizen_report", ["requested_at"])
    op.create_table(
        "citizen_report_contact",
        sa.Column(
            "report_id",
            sa.BigInteger(),
            sa.ForeignKey("citizen_report.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("first_name", sa.String(length=200), nullable=True),
        sa.Column("last_name", sa.String(length=200), nullable=True),
        sa.Column("phone", sa.String(length=50), nullable=True),
        sa.Column("device_id", sa.String(length=200), nullable=True),
        sa.Column("account_id", sa.String(length=200), nullable=True),
    )
    op.execute(WORK_ORDER_VIEW)
    op.execute(ROAD_SECTION_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW ogc_road_section")
    op.execute("DROP VIEW ogc_work_order")
    op.drop_table("citizen_report_contact")
    op.drop_table("citizen_report")
    op.drop_column("damage_site", "citizen_reported")
    op.drop_column("damage_site", "citizen_reports")
    op.drop_table("open311_client")
