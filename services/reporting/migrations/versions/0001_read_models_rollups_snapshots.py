"""read models rollups snapshots

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_id"),
    )
    op.create_index(op.f("ix_api_keys_tenant_id"), "api_keys", ["tenant_id"], unique=False)
    op.create_table(
        "clock_daily",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("customer", sa.Text(), nullable=False),
        sa.Column("agreement", sa.Text(), nullable=False),
        sa.Column("policy_id", sa.Text(), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("calendar", sa.Text(), nullable=False),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("priority", sa.Text(), nullable=False),
        sa.Column("met", sa.BigInteger(), nullable=False),
        sa.Column("breached", sa.BigInteger(), nullable=False),
        sa.Column("elapsed_sum", sa.BigInteger(), nullable=False),
        sa.Column("over_target_sum", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id",
            "day",
            "service",
            "customer",
            "agreement",
            "policy_id",
            "policy_version",
            "calendar",
            "metric",
            "priority",
        ),
    )
    op.create_table(
        "clock_daily_service",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("agreement", sa.Text(), nullable=False),
        sa.Column("policy_id", sa.Text(), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("calendar", sa.Text(), nullable=False),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("priority", sa.Text(), nullable=False),
        sa.Column("met", sa.BigInteger(), nullable=False),
        sa.Column("breached", sa.BigInteger(), nullable=False),
        sa.Column("elapsed_sum", sa.BigInteger(), nullable=False),
        sa.Column("over_target_sum", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id", "day", "service", "agreement", "policy_id", "policy_version", "calendar", "metric", "priority"
        ),
    )
    op.create_table(
        "clock_outcomes",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("ticket_id", sa.Text(), nullable=False),
        sa.Column("policy_id", sa.Text(), nullable=False),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("agreement", sa.Text(), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("breached", sa.Boolean(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("customer", sa.Text(), nullable=False),
        sa.Column("priority", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("calendar", sa.Text(), nullable=False),
        sa.Column("target_seconds", sa.Integer(), nullable=False),
        sa.Column("elapsed_seconds", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("breached_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_transition", sa.Text(), nullable=False),
        sa.Column("last_event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_event_id", sa.Text(), nullable=False),
        sa.Column("recalculations", sa.Integer(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "ticket_id", "policy_id", "metric", "cycle"),
    )
    op.create_index(
        "clock_outcomes_breached_by_stop",
        "clock_outcomes",
        ["tenant_id", "stopped_at"],
        unique=False,
        postgresql_include=[
            "ticket_id",
            "policy_id",
            "policy_version",
            "agreement",
            "metric",
            "cycle",
            "priority",
            "service",
            "customer",
            "target_seconds",
            "elapsed_seconds",
            "breached_at",
        ],
        postgresql_where=sa.text("state = 'breached'"),
    )
    op.create_index(
        "clock_outcomes_recalculated",
        "clock_outcomes",
        ["tenant_id", "stopped_at"],
        unique=False,
        postgresql_where=sa.text("recalculations > 0"),
    )
    op.create_index(
        "clock_outcomes_by_stop",
        "clock_outcomes",
        ["tenant_id", "stopped_at"],
        unique=False,
        postgresql_include=[
            "state",
            "agreement",
            "metric",
            "priority",
            "service",
            "customer",
            "elapsed_seconds",
            "target_seconds",
        ],
    )
    op.create_index(
        "clock_outcomes_by_ticket_breached",
        "clock_outcomes",
        ["tenant_id", "ticket_id"],
        unique=False,
        postgresql_where=sa.text("breached"),
    )
    op.create_index(
        "clock_outcomes_open",
        "clock_outcomes",
        ["tenant_id", "due_at"],
        unique=False,
        postgresql_where=sa.text("state IN ('running', 'paused')"),
    )
    op.create_table(
        "event_stats",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("first_event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("out_of_order", sa.BigInteger(), nullable=False),
        sa.Column("after_close", sa.BigInteger(), nullable=False),
        sa.Column("recalculations", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "event_type", "hour"),
    )
    op.create_table(
        "feedback",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("ticket_id", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("customer", sa.Text(), nullable=True),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("scale", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "source", "event_id"),
    )
    op.create_index("feedback_by_ticket", "feedback", ["tenant_id", "ticket_id"], unique=False)
    op.create_index("feedback_by_time", "feedback", ["tenant_id", "answered_at"], unique=False)
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "tenant_id", "source", "event_id"),
    )
    op.create_table(
        "late_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("amendment_ids", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "late_changes_pending",
        "late_changes",
        ["tenant_id", "period_start"],
        unique=False,
        postgresql_where=sa.text("handled_at IS NULL"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column(
            "headers", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "outbox_unpublished", "outbox", ["id"], unique=False, postgresql_where=sa.text("published_at IS NULL")
    )
    op.create_table(
        "period_closes",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "period_start"),
    )
    op.create_table(
        "report_snapshots",
        sa.Column("report_id", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scope_key", sa.Text(), nullable=False),
        sa.Column("scope", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("amends", sa.Text(), nullable=True),
        sa.Column("content", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("lineage", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("content_sha256", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("report_id"),
        sa.UniqueConstraint("tenant_id", "period_start", "scope_key", "revision", name="report_snapshots_revision"),
    )
    op.create_table(
        "reporting_config",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("config", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    op.create_table(
        "slo_alerts",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("slo_id", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=True),
        sa.Column("alert", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("burn_rate", sa.Float(), nullable=True),
        sa.Column("windows", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "source", "event_id"),
    )
    op.create_index("slo_alerts_by_time", "slo_alerts", ["tenant_id", "at"], unique=False)
    op.create_table(
        "slo_status",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("slo_id", sa.Text(), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sli_value", sa.Float(), nullable=True),
        sa.Column("objective", sa.Float(), nullable=False),
        sa.Column("good", sa.Float(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("error_budget_total", sa.Float(), nullable=False),
        sa.Column("error_budget_remaining", sa.Float(), nullable=False),
        sa.Column("burn_rates", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "slo_id", "evaluated_at"),
    )
    op.create_table(
        "tenants_seen",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("first_event_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    op.create_table(
        "ticket_daily",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("customer", sa.Text(), nullable=False),
        sa.Column("priority", sa.Text(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("resolved", sa.BigInteger(), nullable=False),
        sa.Column("reopened", sa.BigInteger(), nullable=False),
        sa.Column("cancelled", sa.BigInteger(), nullable=False),
        sa.Column("open_delta", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "day", "service", "customer", "priority"),
    )
    op.create_table(
        "ticket_events",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("ticket_id", sa.Text(), nullable=False),
        sa.Column("sequence", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("priority", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("customer", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "ticket_id", "sequence"),
    )
    op.create_table(
        "ticket_facts",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("ticket_id", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("priority", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("customer", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("last_event_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "ticket_id"),
    )
    op.create_table(
        "ticket_transitions",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("ticket_id", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("open_delta", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("customer", sa.Text(), nullable=False),
        sa.Column("ticket_kind", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "ticket_id", "position"),
    )
    op.create_index("ticket_transitions_by_time", "ticket_transitions", ["tenant_id", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ticket_transitions_by_time", table_name="ticket_transitions")
    op.drop_table("ticket_transitions")
    op.drop_table("ticket_facts")
    op.drop_table("ticket_events")
    op.drop_table("ticket_daily")
    op.drop_table("tenants_seen")
    op.drop_table("slo_status")
    op.drop_index("slo_alerts_by_time", table_name="slo_alerts")
    op.drop_table("slo_alerts")
    op.drop_table("reporting_config")
    op.drop_table("report_snapshots")
    op.drop_table("period_closes")
    op.drop_index("outbox_unpublished", table_name="outbox", postgresql_where=sa.text("published_at IS NULL"))
    op.drop_table("outbox")
    op.drop_index("late_changes_pending", table_name="late_changes", postgresql_where=sa.text("handled_at IS NULL"))
    op.drop_table("late_changes")
    op.drop_table("inbox")
    op.drop_index("feedback_by_time", table_name="feedback")
    op.drop_index("feedback_by_ticket", table_name="feedback")
    op.drop_table("feedback")
    op.drop_table("event_stats")
    op.drop_index(
        "clock_outcomes_open", table_name="clock_outcomes", postgresql_where=sa.text("state IN ('running', 'paused')")
    )
    op.drop_index(
        "clock_outcomes_by_ticket_breached", table_name="clock_outcomes", postgresql_where=sa.text("breached")
    )
    op.drop_index(
        "clock_outcomes_by_stop",
        table_name="clock_outcomes",
        postgresql_include=[
            "state",
            "agreement",
            "metric",
            "priority",
            "service",
            "customer",
            "elapsed_seconds",
            "target_seconds",
        ],
    )
    op.drop_index(
        "clock_outcomes_recalculated", table_name="clock_outcomes", postgresql_where=sa.text("recalculations > 0")
    )
    op.drop_index(
        "clock_outcomes_breached_by_stop", table_name="clock_outcomes", postgresql_where=sa.text("state = 'breached'")
    )
    op.drop_table("clock_outcomes")
    op.drop_table("clock_daily_service")
    op.drop_table("clock_daily")
    op.drop_index(op.f("ix_api_keys_tenant_id"), table_name="api_keys")
    op.drop_table("api_keys")
