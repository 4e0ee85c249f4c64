"""threshold SLIs: raw measurement samples, kept for backfilling thresholds added later

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slo_samples",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("sli", sa.Text(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Numeric(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "source", "event_id"),
    )
    op.create_index("slo_samples_by_series", "slo_samples", ["tenant_id", "service", "sli", "time"], unique=False)
    op.create_index("slo_samples_by_time", "slo_samples", ["time"], unique=False)


def downgrade() -> None:
    op.drop_index("slo_samples_by_time", table_name="slo_samples")
    op.drop_index("slo_samples_by_series", table_name="slo_samples")
    op.drop_table("slo_samples")
