"""dashboard_sessions: server-side dashboard sign-ins, stored by the SHA-256 of their id (reporting.sessions)

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dashboard_sessions",
        sa.Column("session_hash", sa.Text(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("session_hash"),
    )
    op.create_index("dashboard_sessions_by_key", "dashboard_sessions", ["key_id"], unique=False)
    op.create_index("dashboard_sessions_by_expiry", "dashboard_sessions", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index("dashboard_sessions_by_expiry", table_name="dashboard_sessions")
    op.drop_index("dashboard_sessions_by_key", table_name="dashboard_sessions")
    op.drop_table("dashboard_sessions")
