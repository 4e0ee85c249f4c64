"""clock_outcomes.last_sequence: the engine's per-cycle sequence of the winning event

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("clock_outcomes", sa.Column("last_sequence", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("clock_outcomes", "last_sequence")
