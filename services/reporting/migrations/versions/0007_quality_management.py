"""complaint_handling, improvements, review_approvals: service quality management (reporting.review_tables)

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "complaint_handling",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("ticket_id", sa.Text(), nullable=False),
        sa.Column("marked", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text()),
        sa.Column("note", sa.Text()),
        sa.Column("improvement_id", sa.Text()),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "ticket_id"),
    )
    op.create_table(
        "improvements",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("improvement_id", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("trigger_kind", sa.Text(), nullable=False),
        sa.Column("trigger_ref", sa.Text(), nullable=False),
        sa.Column("kpi", JSONB(), nullable=False),
        sa.Column("target_value", sa.Float(), nullable=False),
        sa.Column("comparison", sa.Text(), nullable=False),
        sa.Column("baseline_period", JSONB(), nullable=False),
        sa.Column("baseline_value", sa.Float()),
        sa.Column("after_period", JSONB()),
        sa.Column("after_value", sa.Float()),
        sa.Column("owner", sa.Text()),
        sa.Column("due", sa.Date()),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("history", JSONB(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "improvement_id"),
        sa.UniqueConstraint("tenant_id", "trigger_kind", "trigger_ref", name="improvements_one_per_trigger"),
    )
    op.create_table(
        "review_approvals",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("period_start", TZ, nullable=False),
        sa.Column("customer", sa.Text(), nullable=False),
        sa.Column("period_end", TZ, nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("approved_by", sa.Text(), nullable=False),
        sa.Column("approved_at", TZ, nullable=False),
        sa.Column("comment", sa.Text()),
        sa.Column("content", JSONB(), nullable=False),
        sa.Column("content_sha256", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "period_start", "customer"),
    )


def downgrade() -> None:
    op.drop_table("review_approvals")
    op.drop_table("improvements")
    op.drop_table("complaint_handling")
