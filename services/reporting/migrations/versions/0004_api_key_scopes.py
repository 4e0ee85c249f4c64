"""api_keys.scopes: what each key may do (ingest, read, config, admin); keys from before scopes keep them all

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
    op.add_column("api_keys", sa.Column("scopes", sa.Text(), nullable=False, server_default="ingest read config admin"))


def downgrade() -> None:
    op.drop_column("api_keys", "scopes")
