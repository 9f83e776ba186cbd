"""The first ledger: months, invoices and their lines, events, number sequences, adjustments.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

AMOUNT = sa.Numeric(38, 9)


def upgrade() -> None:
    op.create_table(
        "months",
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("config_sha256", sa.String(64), nullable=False),
        sa.Column("package_version", sa.String(40), nullable=False),
        sa.Column("source_totals", sa.Text, nullable=False),
        sa.Column("provisional", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.Column("updated_by", sa.String(80), nullable=False),
    )
    op.create_table(
        "invoices",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("community_id", sa.String(64), nullable=False),
        sa.Column("community_name", sa.Text, nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("number", sa.String(64), nullable=True, unique=True),
        sa.Column("references_number", sa.String(64), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("issue_date", sa.String(10), nullable=False),
        sa.Column("due_date", sa.String(10), nullable=False),
        sa.Column("cloud_costs", AMOUNT, nullable=False),
        sa.Column("fees", AMOUNT, nullable=False),
        sa.Column("discounts", AMOUNT, nullable=False),
        sa.Column("tax", AMOUNT, nullable=False),
        sa.Column("total", AMOUNT, nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("notes", sa.Text, nullable=False),
        sa.Column("flags", sa.Text, nullable=False),
        sa.Column("prepaid_used", AMOUNT, nullable=True),
        sa.Column("pdf_sha256", sa.String(64), nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "invoice_lines",
        sa.Column("invoice_id", sa.Integer, sa.ForeignKey("invoices.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("section", sa.String(16), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("service", sa.Text, nullable=False),
        sa.Column("cost", AMOUNT, nullable=False),
        sa.Column("credits", AMOUNT, nullable=False),
        sa.Column("amount", AMOUNT, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("invoice_id", sa.Integer, sa.ForeignKey("invoices.id", ondelete="SET NULL"), nullable=True),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("community_id", sa.String(64), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("command", sa.String(80), nullable=False),
        sa.Column("change", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    table = op.create_table(
        "sequences",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("last_value", sa.Integer, nullable=False),
    )
    op.bulk_insert(table, [{"name": "invoices", "last_value": 0}])  # invoices and credit notes
    op.create_table(
        "adjustments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("community_id", sa.String(64), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("invoice_number", sa.String(64), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", AMOUNT, nullable=False),
        sa.Column("recorded_at", sa.String(32), nullable=False),
        sa.Column("carried_by", sa.Integer, sa.ForeignKey("invoices.id", ondelete="SET NULL"), nullable=True),
    )


def downgrade() -> None:
    for table in ("adjustments", "sequences", "events", "invoice_lines", "invoices", "months"):
        op.drop_table(table)
