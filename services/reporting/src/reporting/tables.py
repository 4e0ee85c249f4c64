"""Reporting's read models, built only from events (reporting never reads another service's database)."""

from __future__ import annotations

import sqlalchemy as sa

from slm_shared.auth import define_api_key_table
from slm_shared.inbox import define_inbox_table
from slm_shared.outbox import define_outbox_table

metadata = sa.MetaData()

# One row per clock cycle: the latest transition by event time wins, `recalculated` replaces.
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
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("due_at", sa.DateTime(timezone=True)),
    sa.Column("breached_at", sa.DateTime(timezone=True)),
    sa.Column("stopped_at", sa.DateTime(timezone=True)),
    sa.Column("last_transition", sa.Text, nullable=False),
    sa.Column("last_event_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_event_id", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("clock_outcomes_by_stop", "tenant_id", "stopped_at"),
)

inbox = define_inbox_table(metadata)
outbox = define_outbox_table(metadata)
api_keys = define_api_key_table(metadata)
