"""api_keys.scopes: what each key may do (ingest, read, config, admin); keys from before scopes keep them all

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("scopes", sa.Text(), nullable=False, server_default="ingest read config admin"))


def downgrade() -> None:
    op.drop_column("api_keys", "scopes")
