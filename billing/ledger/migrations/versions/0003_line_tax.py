"""Each invoice line's part in the tax base and its part of the tax, as priced, so that what is
imported into an accounting system never depends on a later config.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

AMOUNT = sa.Numeric(38, 9)


def upgrade() -> None:
    with op.batch_alter_table("invoice_lines") as table:  # SQLite alters tables by copying them
        table.add_column(sa.Column("taxable", AMOUNT, nullable=True))
        table.add_column(sa.Column("tax", AMOUNT, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("invoice_lines") as table:
        table.drop_column("tax")
        table.drop_column("taxable")
