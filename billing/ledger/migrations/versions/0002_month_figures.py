"""What each run of a month found, for the next month's guards to compare with, and the month's
own events (a run forced before the data settled, findings accepted with --allow, deliveries).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

AMOUNT = sa.Numeric(38, 9)


def upgrade() -> None:
    op.create_table(
        "month_figures",
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("subject", sa.String(200), primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("amount", AMOUNT, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_table(
        "month_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("command", sa.String(80), nullable=False),
        sa.Column("change", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("month_events")
    op.drop_table("month_figures")
