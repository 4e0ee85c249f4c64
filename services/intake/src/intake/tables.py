"""Intake's tables: the dedup ledger and raw-event archive, rejected events, mappings, keys, outbox."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from slm_shared.auth import define_api_key_table
from slm_shared.outbox import define_outbox_table
from slm_shared.set_aside import define_set_aside_table

metadata = sa.MetaData()

# One row per accepted (tenant, source, id): the dedup ledger. `raw` (bytes as received) and `canonical`
# (the event as published) are the archive; both are cleared after the archive retention, the row itself
# (the dedup memory) is deleted after the longer dedup retention.
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
    sa.Column("raw", sa.LargeBinary),
    sa.Column("canonical", sa.LargeBinary),
    # `<system>:<upstream id>` of a ticket snapshot from a webhook or an import: finds a ticket's last snapshot.
    sa.Column("upstream_ref", sa.Text),
)
sa.Index("received_events_by_tenant_time", received_events.c.tenant_id, received_events.c.received_at)
sa.Index("received_events_by_event_time", received_events.c.tenant_id, received_events.c.event_time)
sa.Index("received_events_received_at", received_events.c.received_at)
sa.Index(
    "received_events_by_upstream_ref",
    received_events.c.tenant_id,
    received_events.c.upstream_ref,
    received_events.c.event_time,
    postgresql_where=received_events.c.upstream_ref.is_not(None),
)

rejected_events = sa.Table(
    "rejected_events",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("tenant_id", sa.Text),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("code", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("event_id", sa.Text),
    sa.Column("raw", sa.LargeBinary),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)
sa.Index("rejected_events_by_tenant", rejected_events.c.tenant_id, rejected_events.c.id)
sa.Index("rejected_events_received_at", rejected_events.c.received_at)

webhook_mappings = sa.Table(
    "webhook_mappings",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("system", sa.Text, primary_key=True),
    sa.Column("override", JSONB, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

api_keys = define_api_key_table(metadata)
outbox = define_outbox_table(metadata)
set_aside = define_set_aside_table(metadata)

# A tenant's webhook secrets per upstream system, encrypted (intake.webhook_secrets). The active one has
# `valid_until` null; a rotated one stays valid until its `valid_until` (the grace period), a revoked one is
# deleted.
webhook_secrets = sa.Table(
    "webhook_secrets",
    metadata,
    sa.Column("secret_id", sa.Text, primary_key=True),
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("system", sa.Text, nullable=False),
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("valid_until", sa.DateTime(timezone=True)),
)
sa.Index("webhook_secrets_by_tenant_system", webhook_secrets.c.tenant_id, webhook_secrets.c.system)

# Signed deliveries already taken (a digest of their signature), refused if they come again; purged after
# the replay retention.
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("system", sa.Text, primary_key=True),
    sa.Column("delivery", sa.Text, primary_key=True),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("webhook_deliveries_received_at", webhook_deliveries.c.received_at)
