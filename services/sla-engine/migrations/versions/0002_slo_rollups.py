"""service SLOs: availability timeline, maintenance windows, per-minute rollups, SLO evaluations

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slo_state_changes",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("component", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "source", "event_id"),
    )
    op.create_index("slo_state_changes_by_service", "slo_state_changes", ["tenant_id", "service", "at"], unique=False)
    op.create_table(
        "slo_maintenance",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("window_id", sa.Text(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "service", "window_id"),
    )
    op.create_table(
        "slo_availability_minutes",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("up_seconds", sa.Integer(), nullable=False),
        sa.Column("degraded_seconds", sa.Integer(), nullable=False),
        sa.Column("down_seconds", sa.Integer(), nullable=False),
        sa.Column("maintenance_seconds", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "service", "minute"),
    )
    op.create_table(
        "slo_ratio_minutes",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("sli", sa.Text(), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("good", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "service", "sli", "minute"),
    )
    op.create_table(
        "slo_evaluations",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("slo_id", sa.Text(), nullable=False),
        sa.Column(
            "firing", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False
        ),
        sa.Column("status", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "slo_id"),
    )


def downgrade() -> None:
    op.drop_table("slo_evaluations")
    op.drop_table("slo_ratio_minutes")
    op.drop_table("slo_availability_minutes")
    op.drop_table("slo_maintenance")
    op.drop_index("slo_state_changes_by_service", table_name="slo_state_changes")
    op.drop_table("slo_state_changes")
