"""review_freezes: the service review pack as the period close froze it, with its hash (reporting.reviews)

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "review_freezes",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("period_start", TZ, nullable=False),
        sa.Column("customer", sa.Text(), nullable=False),
        sa.Column("period_end", TZ, nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("content", JSONB(), nullable=False),
        sa.Column("content_sha256", sa.Text(), nullable=False),
        sa.Column("frozen_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "period_start", "customer"),
    )


def downgrade() -> None:
    op.drop_table("review_freezes")
