"""Service quality management's own rows (migrations 0007, 0010): the complaint log's handling, the continual
improvement register, the service reviews the period close froze and their approvals. Written by people through
the API or by the period close, never by events; same metadata as the read models (reporting.tables)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from reporting.tables import TZ, metadata

# How a complaint (an answer under the configured score, or one a person marked) is being handled.
complaint_handling = sa.Table(
    "complaint_handling",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("ticket_id", sa.Text, primary_key=True),
    sa.Column("marked", sa.Boolean, nullable=False, server_default=sa.false()),  # a complaint whatever the score
    sa.Column("status", sa.Text, nullable=False),  # open | acknowledged | in_progress | resolved | rejected
    sa.Column("owner", sa.Text),
    sa.Column("note", sa.Text),
    sa.Column("improvement_id", sa.Text),
    sa.Column("updated_at", TZ, nullable=False),
)

# ITIL's continual improvement register: each entry's trigger, KPI (a quality target's definition), baseline
# and after-values measured from the data, never typed in.
improvements = sa.Table(
    "improvements",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("improvement_id", sa.Text, primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("trigger_kind", sa.Text, nullable=False),
    sa.Column("trigger_ref", sa.Text, nullable=False),
    sa.Column("kpi", JSONB, nullable=False),
    sa.Column("target_value", sa.Float, nullable=False),
    sa.Column("comparison", sa.Text, nullable=False),
    sa.Column("baseline_period", JSONB, nullable=False),  # {start, end, label}
    sa.Column("baseline_value", sa.Float),
    sa.Column("after_period", JSONB),
    sa.Column("after_value", sa.Float),
    sa.Column("owner", sa.Text),
    sa.Column("due", sa.Date),
    sa.Column("status", sa.Text, nullable=False),  # proposed | open | in_progress | done | cancelled
    sa.Column("history", JSONB, nullable=False),  # [{at, status, note}]
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
    # A closed period proposes an entry per missed target once, however often the close runs.
    sa.UniqueConstraint("tenant_id", "trigger_kind", "trigger_ref", name="improvements_one_per_trigger"),
)

# An approved service review: who, when, the comment, and the pack exactly as approved with its hash.
review_approvals = sa.Table(
    "review_approvals",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("period_start", TZ, primary_key=True),
    sa.Column("customer", sa.Text, primary_key=True),  # "*" for the whole tenant
    sa.Column("period_end", TZ, nullable=False),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("approved_by", sa.Text, nullable=False),
    sa.Column("approved_at", TZ, nullable=False),
    sa.Column("comment", sa.Text),
    sa.Column("content", JSONB, nullable=False),
    sa.Column("content_sha256", sa.Text, nullable=False),
)

# The service review pack as the period close froze it (the whole tenant, "*", and each customer the tenant
# publishes reports for): later reads of the closed period serve it, and an approval approves it, by its hash.
review_freezes = sa.Table(
    "review_freezes",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("period_start", TZ, primary_key=True),
    sa.Column("customer", sa.Text, primary_key=True),  # "*" for the whole tenant
    sa.Column("period_end", TZ, nullable=False),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("content", JSONB, nullable=False),
    sa.Column("content_sha256", sa.Text, nullable=False),
    sa.Column("frozen_at", TZ, nullable=False),
)
