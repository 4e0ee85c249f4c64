"""Reporting's read models, built only from events (reporting never reads another service's database).

Raw read models (one row per clock cycle, ticket snapshot, survey answer, SLO evaluation, alert) answer the
lists and the percentiles; daily rollups keyed by UTC day answer the counts, so a month of a million tickets is
a few thousand rollup rows plus the raw rows of the partial days at the period's edges.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from slm_shared.auth import define_api_key_table
from slm_shared.inbox import define_inbox_table
from slm_shared.outbox import define_outbox_table
from slm_shared.set_aside import define_set_aside_table

metadata = sa.MetaData()
TZ = sa.DateTime(timezone=True)

# One row per clock cycle: the event with the highest engine `sequence` wins (`domain.outcomes.wins`).
clock_outcomes = sa.Table(
    "clock_outcomes",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("ticket_id", sa.Text, primary_key=True),
    sa.Column("policy_id", sa.Text, primary_key=True),
    sa.Column("metric", sa.Text, primary_key=True),
    sa.Column("cycle", sa.Integer, primary_key=True),
    sa.Column("agreement", sa.Text, nullable=False),
    sa.Column("policy_version", sa.Integer, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("breached", sa.Boolean, nullable=False),
    sa.Column("service", sa.Text, nullable=False),
    sa.Column("customer", sa.Text, nullable=False),
    sa.Column("priority", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("calendar", sa.Text, nullable=False),
    sa.Column("target_seconds", sa.Integer, nullable=False),
    sa.Column("elapsed_seconds", sa.Integer, nullable=False),
    sa.Column("started_at", TZ),
    sa.Column("due_at", TZ),
    sa.Column("breached_at", TZ),
    sa.Column("stopped_at", TZ),
    sa.Column("last_transition", sa.Text, nullable=False),
    sa.Column("last_event_time", TZ, nullable=False),
    sa.Column("last_event_id", sa.Text, nullable=False),
    sa.Column("last_sequence", sa.Integer),  # None: the winning event came from an engine without sequences
    sa.Column("recalculations", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
    # Covering index: counted cycles of a period and their times without touching the heap.
    sa.Index(
        "clock_outcomes_by_stop",
        "tenant_id",
        "stopped_at",
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
    ),
    # The breach list of a period as an index-only scan: breached cycles are few, their row is copied here.
    sa.Index(
        "clock_outcomes_breached_by_stop",
        "tenant_id",
        "stopped_at",
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
    ),
    sa.Index("clock_outcomes_recalculated", "tenant_id", "stopped_at", postgresql_where=sa.text("recalculations > 0")),
    sa.Index("clock_outcomes_open", "tenant_id", "due_at", postgresql_where=sa.text("state IN ('running', 'paused')")),
    sa.Index("clock_outcomes_by_ticket_breached", "tenant_id", "ticket_id", postgresql_where=sa.text("breached")),
)

# Met/breached cycles per UTC day of stopped_at and every dimension the report groups or filters by.
clock_daily = sa.Table(
    "clock_daily",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("service", sa.Text, primary_key=True),
    sa.Column("customer", sa.Text, primary_key=True),
    sa.Column("agreement", sa.Text, primary_key=True),
    sa.Column("policy_id", sa.Text, primary_key=True),
    sa.Column("policy_version", sa.Integer, primary_key=True),
    sa.Column("calendar", sa.Text, primary_key=True),
    sa.Column("metric", sa.Text, primary_key=True),
    sa.Column("priority", sa.Text, primary_key=True),
    sa.Column("met", sa.BigInteger, nullable=False),
    sa.Column("breached", sa.BigInteger, nullable=False),
    sa.Column("elapsed_sum", sa.BigInteger, nullable=False),
    sa.Column("over_target_sum", sa.BigInteger, nullable=False),
)

# The same without the customer: what a tenant-wide or per-service report reads (40 customers, 40x fewer rows).
clock_daily_service = sa.Table(
    "clock_daily_service",
    metadata,
    *(
        sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
        for c in clock_daily.columns
        if c.name != "customer"
    ),
)

# Every ticket snapshot (the timeline), so volumes are a pure function of it whatever the arrival order.
ticket_events = sa.Table(
    "ticket_events",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("ticket_id", sa.Text, primary_key=True),
    sa.Column("sequence", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("event_time", TZ, nullable=False),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("priority", sa.Text, nullable=False),
    sa.Column("service", sa.Text, nullable=False),
    sa.Column("customer", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
)

# The latest snapshot of each ticket (the customer of a survey answer comes from here).
ticket_facts = sa.Table(
    "ticket_facts",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("ticket_id", sa.Text, primary_key=True),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("priority", sa.Text, nullable=False),
    sa.Column("service", sa.Text, nullable=False),
    sa.Column("customer", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("last_event_time", TZ, nullable=False),
    sa.Column("assignment_group", sa.Text),  # of the latest snapshot: what notification filters match
)

# The volume transitions the timeline implies (created, resolved, reopened, cancelled) and their rollup.
ticket_transitions = sa.Table(
    "ticket_transitions",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("ticket_id", sa.Text, primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("at", TZ, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("open_delta", sa.Integer, nullable=False),
    sa.Column("priority", sa.Text, nullable=False),
    sa.Column("service", sa.Text, nullable=False),
    sa.Column("customer", sa.Text, nullable=False),
    sa.Column("ticket_kind", sa.Text, nullable=False),
    sa.Index("ticket_transitions_by_time", "tenant_id", "at"),
)

ticket_daily = sa.Table(
    "ticket_daily",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("service", sa.Text, primary_key=True),
    sa.Column("customer", sa.Text, primary_key=True),
    sa.Column("priority", sa.Text, primary_key=True),
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Column("resolved", sa.BigInteger, nullable=False),
    sa.Column("reopened", sa.BigInteger, nullable=False),
    sa.Column("cancelled", sa.BigInteger, nullable=False),
    sa.Column("open_delta", sa.BigInteger, nullable=False),
)

# Survey answers (itsm.feedback.v1); `customer` is filled from the ticket when it is known.
feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("source", sa.Text, primary_key=True),
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("ticket_id", sa.Text, nullable=False),
    sa.Column("service", sa.Text, nullable=False),
    sa.Column("customer", sa.Text),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("scale", sa.Integer, nullable=False),
    sa.Column("comment", sa.Text),
    sa.Column("answered_at", TZ, nullable=False),
    sa.Index("feedback_by_time", "tenant_id", "answered_at"),
    sa.Index("feedback_by_ticket", "tenant_id", "ticket_id"),
)

slo_status = sa.Table(
    "slo_status",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("slo_id", sa.Text, primary_key=True),
    sa.Column("evaluated_at", TZ, primary_key=True),
    sa.Column("service", sa.Text, nullable=False),
    sa.Column("window_start", TZ, nullable=False),
    sa.Column("window_end", TZ, nullable=False),
    sa.Column("sli_value", sa.Float),
    sa.Column("objective", sa.Float, nullable=False),
    sa.Column("good", sa.Float, nullable=False),
    sa.Column("total", sa.Float, nullable=False),
    sa.Column("error_budget_total", sa.Float, nullable=False),
    sa.Column("error_budget_remaining", sa.Float, nullable=False),
    sa.Column("burn_rates", JSONB, nullable=False),
    sa.Column("event_id", sa.Text, nullable=False),
)

slo_alerts = sa.Table(
    "slo_alerts",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("source", sa.Text, primary_key=True),
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("slo_id", sa.Text, nullable=False),
    sa.Column("service", sa.Text),
    sa.Column("alert", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("burn_rate", sa.Float),
    sa.Column("windows", JSONB),
    sa.Column("at", TZ, nullable=False),
    sa.Index("slo_alerts_by_time", "tenant_id", "at"),
)

# Per event type and UTC hour of event time: counts and ranges for the report's data notes.
event_stats = sa.Table(
    "event_stats",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("event_type", sa.Text, primary_key=True),
    sa.Column("hour", TZ, primary_key=True),
    sa.Column("events", sa.BigInteger, nullable=False),
    sa.Column("first_event_time", TZ, nullable=False),
    sa.Column("last_event_time", TZ, nullable=False),
    sa.Column("first_received_at", TZ, nullable=False),
    sa.Column("last_received_at", TZ, nullable=False),
    sa.Column("out_of_order", sa.BigInteger, nullable=False),
    sa.Column("after_close", sa.BigInteger, nullable=False),
    sa.Column("recalculations", sa.BigInteger, nullable=False),
)

tenants_seen = sa.Table(
    "tenants_seen",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("first_event_time", TZ, nullable=False),
)

reporting_config = sa.Table(
    "reporting_config",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("config", JSONB, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
)

# A closed period of a tenant: its snapshots are frozen; later changes inside it become amendments.
period_closes = sa.Table(
    "period_closes",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("period_start", TZ, primary_key=True),
    sa.Column("period_end", TZ, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("timezone", sa.Text, nullable=False),
    sa.Column("closed_at", TZ, nullable=False),
)

report_snapshots = sa.Table(
    "report_snapshots",
    metadata,
    sa.Column("report_id", sa.Text, primary_key=True),
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("period_start", TZ, nullable=False),
    sa.Column("period_end", TZ, nullable=False),
    sa.Column("scope_key", sa.Text, nullable=False),
    sa.Column("scope", JSONB, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("amends", sa.Text),
    sa.Column("content", JSONB, nullable=False),
    sa.Column("lineage", JSONB, nullable=False),
    sa.Column("content_sha256", sa.Text, nullable=False),
    sa.Column("created_at", TZ, nullable=False),
    sa.UniqueConstraint("tenant_id", "period_start", "scope_key", "revision", name="report_snapshots_revision"),
)

# Changes inside a closed period, waiting for (or recorded in) an amendment.
late_changes = sa.Table(
    "late_changes",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("period_start", TZ, nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("subject", sa.Text),
    sa.Column("received_at", TZ, nullable=False),
    sa.Column("handled_at", TZ),
    sa.Column("amendment_ids", JSONB),
    sa.Index("late_changes_pending", "tenant_id", "period_start", postgresql_where=sa.text("handled_at IS NULL")),
)

# The business calendars the sla-engine announces (sla.calendars.v1), one row per calendar and bundle version:
# a clock pinned to a version is brought forward with that version's working hours (reporting.calendars).
calendars = sa.Table(
    "calendars",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("calendar_id", sa.Text, primary_key=True),
    sa.Column("bundle_version", sa.Integer, primary_key=True),
    sa.Column("definition", JSONB, nullable=False),  # the sla.calendar.v1 data as received
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("received_at", TZ, nullable=False),
)

inbox = define_inbox_table(metadata)
outbox = define_outbox_table(metadata)
api_keys = define_api_key_table(metadata)
set_aside = define_set_aside_table(metadata)

# Dashboard sign-ins (reporting.sessions): the browser holds a random id, only its SHA-256 is stored. The key
# that signed in is kept so its revocation ends the session; a row is deleted on logout or once expired.
dashboard_sessions = sa.Table(
    "dashboard_sessions",
    metadata,
    sa.Column("session_hash", sa.Text, primary_key=True),
    sa.Column("key_id", sa.Text, nullable=False),
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("last_seen_at", TZ, nullable=False),
    sa.Column("expires_at", TZ, nullable=False),
    sa.Index("dashboard_sessions_by_key", "key_id"),
    sa.Index("dashboard_sessions_by_expiry", "expires_at"),
)

# Notification policies (reporting.notifications.policies): every apply a new version; channel secrets inside `document`
# are Fernet ciphertexts, never plaintext.
notification_policies = sa.Table(
    "notification_policies",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("document", JSONB, nullable=False),
    sa.Column("created_at", TZ, nullable=False),
)

# The notification outbox and delivery log: one row per (clock cycle or alert episode, trigger, rule, level),
# written in the transaction of the read-model change that made it due; `idempotency_key` unique per tenant, so
# a redelivered or replayed event never plans one twice. The delivery loop claims due rows with SKIP LOCKED.
notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("idempotency_key", sa.Text, nullable=False),
    sa.Column("ladder_key", sa.Text, nullable=False),
    sa.Column("policy_version", sa.Integer, nullable=False),
    sa.Column("rule_id", sa.Text, nullable=False),
    sa.Column("trigger", sa.Text, nullable=False),
    sa.Column("level", sa.Integer, nullable=False),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("recipients", JSONB, nullable=False),
    sa.Column("ticket_id", sa.Text),
    sa.Column("policy_id", sa.Text),
    sa.Column("metric", sa.Text),
    sa.Column("cycle", sa.Integer),
    sa.Column("slo_id", sa.Text),
    sa.Column("facts", JSONB, nullable=False),  # the event's data, for the message
    sa.Column("event_at", TZ, nullable=False),
    sa.Column("due_at", TZ, nullable=False),
    sa.Column("next_attempt_at", TZ, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # pending | retrying | sent | suppressed | dead
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("reason", sa.Text),
    sa.Column("sent_at", TZ),
    sa.Column("acked_at", TZ),
    sa.Column("created_at", TZ, nullable=False),
    sa.UniqueConstraint("tenant_id", "idempotency_key", name="notifications_once"),
    sa.Index("notifications_due", "next_attempt_at", postgresql_where=sa.text("status IN ('pending', 'retrying')")),
    sa.Index("notifications_by_ticket", "tenant_id", "ticket_id", "created_at"),
    sa.Index("notifications_by_ladder", "tenant_id", "ladder_key"),
)
