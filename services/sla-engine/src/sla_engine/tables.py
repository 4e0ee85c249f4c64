"""The sla-engine's tables: versioned configuration, ticket timelines, clocks, emitted transitions, timers, SLIs."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from slm_shared.auth import define_api_key_table
from slm_shared.inbox import define_inbox_table
from slm_shared.outbox import define_outbox_table
from slm_shared.set_aside import define_set_aside_table

metadata = sa.MetaData()

config_versions = sa.Table(
    "config_versions",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("bundle", JSONB, nullable=False),
    sa.Column("source_text", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# The ticket timeline: every snapshot as received (arrival breaks event-time ties, DESIGN 4).
ticket_events = sa.Table(
    "ticket_events",
    metadata,
    sa.Column("arrival", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("ticket_id", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("snapshot", JSONB, nullable=False),
    sa.UniqueConstraint("tenant_id", "source", "event_id", name="ticket_events_dedup"),
    sa.Index("ticket_events_by_ticket", "tenant_id", "ticket_id", "event_time"),
)

# The configuration version each ticket is evaluated with: pinned at its first snapshot, moved only by an
# explicit recalculation, so applying a bundle never silently rewrites history.
ticket_versions = sa.Table(
    "ticket_versions",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("ticket_id", sa.Text, primary_key=True),
    sa.Column("config_version", sa.Integer, nullable=False),
    sa.Column("first_event_at", sa.DateTime(timezone=True), nullable=False),
)

# The current state of every clock, for reads and metrics; the timeline stays the source of truth.
clocks = sa.Table(
    "clocks",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("ticket_id", sa.Text, primary_key=True),
    sa.Column("policy_id", sa.Text, primary_key=True),
    sa.Column("metric", sa.Text, primary_key=True),
    sa.Column("cycle", sa.Integer, primary_key=True),
    sa.Column("policy_version", sa.Integer, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("breached", sa.Boolean, nullable=False),
    sa.Column("due_at", sa.DateTime(timezone=True)),
    sa.Column("clock", JSONB, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# What was already published, so a re-evaluation emits only what is new and retracts what a late event undid.
emitted_transitions = sa.Table(
    "emitted_transitions",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("ticket_id", sa.Text, primary_key=True),
    sa.Column("policy_id", sa.Text, primary_key=True),
    sa.Column("metric", sa.Text, primary_key=True),
    sa.Column("cycle", sa.Integer, primary_key=True),
    sa.Column("transition", sa.Text, primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("threshold", sa.Integer, primary_key=True, server_default="0"),
    sa.Column("emitted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# How many `sla.clock.v1` events each cycle has published: the next one carries the count plus one as its
# `sequence`. Never deleted with the cycle, so a cycle a late event voids and another restores keeps counting up.
cycle_sequences = sa.Table(
    "cycle_sequences",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("ticket_id", sa.Text, primary_key=True),
    sa.Column("policy_id", sa.Text, primary_key=True),
    sa.Column("metric", sa.Text, primary_key=True),
    sa.Column("cycle", sa.Integer, primary_key=True),
    sa.Column("sequence", sa.Integer, nullable=False),
)

# One durable timer per ticket, the per-ticket due queue the reconcile loop works from: the earliest warning or
# breach instant of its running clocks, or the instant a new snapshot arrived (`transition` "events", with the
# `traceparent` of the newest one so its reconciliation continues that trace). `mark` is new on every write
# (the sequence `timer_marks`): a reconciliation clears or moves a timer only if it still bears the mark read
# before the timeline, so the consumer marks tickets due without waiting for the rounds holding them.
timer_marks = sa.Sequence("timer_marks", metadata=metadata)
timers = sa.Table(
    "timers",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("ticket_id", sa.Text, primary_key=True),
    sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("transition", sa.Text, nullable=False),
    sa.Column("traceparent", sa.Text),
    sa.Column("mark", sa.BigInteger, timer_marks, nullable=False, server_default=timer_marks.next_value()),
    sa.Index("timers_by_due", "due_at"),
)

# Service SLOs (docs/slo.md): the availability state timeline and maintenance windows as received, the
# per-minute integer rollups every SLO window is computed from, and what each SLO last published.
slo_state_changes = sa.Table(
    "slo_state_changes",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("source", sa.Text, primary_key=True),
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("service", sa.Text, nullable=False),
    sa.Column("component", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Index("slo_state_changes_by_service", "tenant_id", "service", "at"),
)

slo_maintenance = sa.Table(
    "slo_maintenance",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("service", sa.Text, primary_key=True),
    sa.Column("window_id", sa.Text, primary_key=True),
    sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
)

slo_availability_minutes = sa.Table(
    "slo_availability_minutes",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("service", sa.Text, primary_key=True),
    sa.Column("minute", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("up_seconds", sa.Integer, nullable=False),
    sa.Column("degraded_seconds", sa.Integer, nullable=False),
    sa.Column("down_seconds", sa.Integer, nullable=False),
    sa.Column("maintenance_seconds", sa.Integer, nullable=False),
)

slo_ratio_minutes = sa.Table(
    "slo_ratio_minutes",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("service", sa.Text, primary_key=True),
    sa.Column("sli", sa.Text, primary_key=True),
    sa.Column("minute", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("good", sa.BigInteger, nullable=False),
    sa.Column("total", sa.BigInteger, nullable=False),
)

# The minutes above summed per UTC day (`date_trunc('day', minute, 'UTC')`), written in the transaction that
# writes the minutes, so a long window's older part is summed from days (docs/slo.md "Evaluation pass").
# `last_data`: the day's last minute with any data.
slo_ratio_days = sa.Table(
    "slo_ratio_days",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("service", sa.Text, primary_key=True),
    sa.Column("sli", sa.Text, primary_key=True),
    sa.Column("day", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("good", sa.BigInteger, nullable=False),
    sa.Column("total", sa.BigInteger, nullable=False),
    sa.Column("last_data", sa.DateTime(timezone=True)),
)

slo_availability_days = sa.Table(
    "slo_availability_days",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("service", sa.Text, primary_key=True),
    sa.Column("day", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("up_seconds", sa.BigInteger, nullable=False),
    sa.Column("degraded_seconds", sa.BigInteger, nullable=False),
    sa.Column("down_seconds", sa.BigInteger, nullable=False),
    sa.Column("last_data", sa.DateTime(timezone=True)),
)

# Raw `itsm.measurement.v1` samples (docs/slo.md "Threshold samples"): kept `slo_sample_retention_days` so a
# threshold added or changed later is backfilled from them. `value` is exact (numeric, never float).
slo_samples = sa.Table(
    "slo_samples",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("source", sa.Text, primary_key=True),
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("service", sa.Text, nullable=False),
    sa.Column("sli", sa.Text, nullable=False),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("value", sa.Numeric, nullable=False),
    sa.Index("slo_samples_by_series", "tenant_id", "service", "sli", "time"),
    sa.Index("slo_samples_by_time", "time"),
)

# The alerts firing and the last published status per SLO, so fire/resolve go out once and status coalesces.
slo_evaluations = sa.Table(
    "slo_evaluations",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("slo_id", sa.Text, primary_key=True),
    sa.Column("firing", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("status", JSONB),
    sa.Column("published_at", sa.DateTime(timezone=True)),
)

inbox = define_inbox_table(metadata)
outbox = define_outbox_table(metadata)
api_keys = define_api_key_table(metadata)
set_aside = define_set_aside_table(metadata)
