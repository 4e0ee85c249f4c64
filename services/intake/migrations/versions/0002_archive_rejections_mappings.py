"""Archive of canonical events, rejected events, per-tenant webhook mappings.

`received_events.payload` becomes `raw` (bytes as received) beside `canonical` (the event as published,
what a replay re-publishes); existing rows keep their payload in both, since before this revision intake
took only complete CloudEvents. Both become nullable: the archive retention clears them while the row
stays as dedup memory.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("received_events", "payload", new_column_name="raw", nullable=True)
    op.add_column("received_events", sa.Column("canonical", sa.LargeBinary))
    op.execute("UPDATE received_events SET canonical = raw")
    op.create_index("received_events_by_event_time", "received_events", ["tenant_id", "event_time"])
    op.create_index("received_events_received_at", "received_events", ["received_at"])
    op.create_table(
        "rejected_events",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("tenant_id", sa.Text),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text),
        sa.Column("raw", sa.LargeBinary),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("rejected_events_by_tenant", "rejected_events", ["tenant_id", "id"])
    op.create_index("rejected_events_received_at", "rejected_events", ["received_at"])
    op.create_table(
        "webhook_mappings",
        sa.Column("tenant_id", sa.Text, primary_key=True),
        sa.Column("system", sa.Text, primary_key=True),
        sa.Column("override", JSONB, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("webhook_mappings")
    op.drop_table("rejected_events")
    op.drop_index("received_events_received_at", "received_events")
    op.drop_index("received_events_by_event_time", "received_events")
    # Rows whose archive was already cleared get an empty payload: 0001 requires one.
    op.execute("UPDATE received_events SET raw = coalesce(raw, canonical, ''::bytea)")
    op.drop_column("received_events", "canonical")
    op.alter_column("received_events", "raw", new_column_name="payload", nullable=False)
