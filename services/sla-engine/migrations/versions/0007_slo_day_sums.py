"""SLO day sums: each series' per-minute rollups summed per UTC day, so a long window is summed from days

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slo_ratio_days",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("sli", sa.Text(), nullable=False),
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("good", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("last_data", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "service", "sli", "day"),
    )
    op.create_table(
        "slo_availability_days",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("up_seconds", sa.BigInteger(), nullable=False),
        sa.Column("degraded_seconds", sa.BigInteger(), nullable=False),
        sa.Column("down_seconds", sa.BigInteger(), nullable=False),
        sa.Column("last_data", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "service", "day"),
    )
    # The days of the minutes already stored.
    op.execute("""
        INSERT INTO slo_ratio_days (tenant_id, service, sli, day, good, total, last_data)
        SELECT tenant_id, service, sli, date_trunc('day', minute, 'UTC'), sum(good), sum(total),
               max(minute) FILTER (WHERE total > 0)
        FROM slo_ratio_minutes GROUP BY tenant_id, service, sli, date_trunc('day', minute, 'UTC')""")
    op.execute("""
        INSERT INTO slo_availability_days (tenant_id, service, day, up_seconds, degraded_seconds, down_seconds,
                                           last_data)
        SELECT tenant_id, service, date_trunc('day', minute, 'UTC'), sum(up_seconds), sum(degraded_seconds),
               sum(down_seconds), max(minute) FILTER (WHERE up_seconds + degraded_seconds + down_seconds > 0)
        FROM slo_availability_minutes GROUP BY tenant_id, service, date_trunc('day', minute, 'UTC')""")


def downgrade() -> None:
    op.drop_table("slo_availability_days")
    op.drop_table("slo_ratio_days")
