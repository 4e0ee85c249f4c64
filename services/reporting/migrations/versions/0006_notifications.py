"""notification_policies and notifications: versioned notification policies, the notification outbox and log;
ticket_facts.assignment_group for the notification filters

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("ticket_facts", sa.Column("assignment_group", sa.Text(), nullable=True))
    op.create_table(
        "notification_policies",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "version"),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("ladder_key", sa.Text(), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Text(), nullable=False),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("recipients", postgresql.JSONB(), nullable=False),
        sa.Column("ticket_id", sa.Text(), nullable=True),
        sa.Column("policy_id", sa.Text(), nullable=True),
        sa.Column("metric", sa.Text(), nullable=True),
        sa.Column("cycle", sa.Integer(), nullable=True),
        sa.Column("slo_id", sa.Text(), nullable=True),
        sa.Column("facts", postgresql.JSONB(), nullable=False),
        sa.Column("event_at", TZ, nullable=False),
        sa.Column("due_at", TZ, nullable=False),
        sa.Column("next_attempt_at", TZ, nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("sent_at", TZ, nullable=True),
        sa.Column("acked_at", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "idempotency_key", name="notifications_once"),
    )
    op.create_index(
        "notifications_due",
        "notifications",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('pending', 'retrying')"),
    )
    op.create_index("notifications_by_ticket", "notifications", ["tenant_id", "ticket_id", "created_at"], unique=False)
    op.create_index("notifications_by_ladder", "notifications", ["tenant_id", "ladder_key"], unique=False)


def downgrade() -> None:
    op.drop_index("notifications_by_ladder", table_name="notifications")
    op.drop_index("notifications_by_ticket", table_name="notifications")
    op.drop_index("notifications_due", table_name="notifications")
    op.drop_table("notifications")
    op.drop_table("notification_policies")
    op.drop_column("ticket_facts", "assignment_group")
