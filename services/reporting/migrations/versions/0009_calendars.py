"""calendars: the business calendars the sla-engine announces on sla.calendars.v1 (reporting.calendars)

Revision ID: 0009
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "calendars",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("calendar_id", sa.Text(), nullable=False),
        sa.Column("bundle_version", sa.Integer(), nullable=False),
        sa.Column("definition", JSONB(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("received_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "calendar_id", "bundle_version"),
    )


def downgrade() -> None:
    op.drop_table("calendars")
