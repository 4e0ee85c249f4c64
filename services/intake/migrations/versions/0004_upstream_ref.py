"""received_events.upstream_ref: `<system>:<upstream id>` of a ticket snapshot, to find a ticket's last snapshot

A webhook that leaves fields out (a Jira update without `fields.status`, a Jira Server `comment_created`
without `issue`) takes them from the last canonical snapshot intake archived for the same upstream ticket.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("received_events", sa.Column("upstream_ref", sa.Text(), nullable=True))
    op.execute(
        "UPDATE received_events SET upstream_ref = doc #>> '{data,attributes,upstream_system}' || ':' "
        "|| (doc #>> '{data,attributes,upstream_id}') "
        "FROM (SELECT tenant_id AS t, source AS s, event_id AS e, convert_from(canonical, 'UTF8')::jsonb AS doc "
        "      FROM received_events WHERE type = 'itsm.ticket.v1' AND canonical IS NOT NULL) AS archived "
        "WHERE tenant_id = archived.t AND source = archived.s AND event_id = archived.e "
        "AND doc #>> '{data,attributes,upstream_id}' IS NOT NULL"
    )
    op.create_index(
        "received_events_by_upstream_ref",
        "received_events",
        ["tenant_id", "upstream_ref", "event_time"],
        postgresql_where=sa.text("upstream_ref IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("received_events_by_upstream_ref", table_name="received_events")
    op.drop_column("received_events", "upstream_ref")
