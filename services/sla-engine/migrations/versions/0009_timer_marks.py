"""timers: a mark, new on every write, so a reconciliation only clears the due mark it read (optimistic)

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE timer_marks")
    op.add_column(
        "timers", sa.Column("mark", sa.BigInteger(), nullable=False, server_default=sa.text("nextval('timer_marks')"))
    )


def downgrade() -> None:
    op.drop_column("timers", "mark")
    op.execute("DROP SEQUENCE timer_marks")
