"""Intake's tables: the dedup ledger (which doubles as the raw-event archive), keys, outbox."""

from __future__ import annotations

import sqlalchemy as sa

from slm_shared.auth import define_api_key_table
from slm_shared.outbox import define_outbox_table

metadata = sa.MetaData()

received_events = sa.Table(
    "received_events",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("source", sa.Text, primary_key=True),
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
)
sa.Index("received_events_by_tenant_time", received_events.c.tenant_id, received_events.c.received_at)

api_keys = define_api_key_table(metadata)
outbox = define_outbox_table(metadata)
