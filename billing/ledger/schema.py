"""The ledger's tables: SQLAlchemy Core objects, the one source of truth of the schema.

Alembic migrations (``migrations/versions``) create and change them; a change here needs a new
migration. Amounts are ``NUMERIC(38, 9)`` in every database (exact decimals, never floats).
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, ForeignKey, Integer, MetaData, Numeric, String, Table, Text

AMOUNT = Numeric(38, 9, asdecimal=True)

metadata = MetaData()

months = Table(
    "months", metadata,
    Column("month", String(7), primary_key=True),               # YYYY-MM
    Column("config_sha256", String(64), nullable=False),
    Column("package_version", String(40), nullable=False),
    Column("source_totals", Text, nullable=False),              # JSON: per provider, account: total, currency
    Column("provisional", Boolean, nullable=False),
    Column("updated_at", String(32), nullable=False),           # ISO 8601, UTC
    Column("updated_by", String(80), nullable=False),           # the command
)

invoices = Table(
    "invoices", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("community_id", String(64), nullable=False),
    Column("community_name", Text, nullable=False),
    Column("month", String(7), nullable=False),
    Column("kind", String(16), nullable=False),                 # invoice | credit_note
    Column("status", String(16), nullable=False),               # draft | finalized | void
    Column("number", String(64), nullable=True, unique=True),   # a final number, once finalized
    Column("references_number", String(64), nullable=True),     # a credit note's voided invoice
    Column("currency", String(3), nullable=False),
    Column("issue_date", String(10), nullable=False),
    Column("due_date", String(10), nullable=False),
    Column("cloud_costs", AMOUNT, nullable=False),
    Column("fees", AMOUNT, nullable=False),
    Column("discounts", AMOUNT, nullable=False),
    Column("tax", AMOUNT, nullable=False),
    Column("total", AMOUNT, nullable=False),
    Column("scope", Text, nullable=False),                     # JSON lists of the printed sentences
    Column("notes", Text, nullable=False),
    Column("flags", Text, nullable=False),
    Column("prepaid_used", AMOUNT, nullable=True),                # drawn before, when priced
    Column("pdf_sha256", String(64), nullable=True),
    Column("created_at", String(32), nullable=False),
)

invoice_lines = Table(
    "invoice_lines", metadata,
    Column("invoice_id", Integer, ForeignKey("invoices.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("section", String(16), nullable=False),
    Column("description", Text, nullable=False),
    Column("provider", String(16), nullable=False),
    Column("service", Text, nullable=False),
    Column("cost", AMOUNT, nullable=False),
    Column("credits", AMOUNT, nullable=False),
    Column("amount", AMOUNT, nullable=False),
    Column("taxable", AMOUNT, nullable=True),                   # its part of the tax base (0003; NULL before)
    Column("tax", AMOUNT, nullable=True),                       # its part of the tax (0003; NULL before)
)

events = Table(
    "events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("invoice_id", Integer, ForeignKey("invoices.id", ondelete="SET NULL"), nullable=True),
    Column("month", String(7), nullable=False),
    Column("community_id", String(64), nullable=False),
    Column("at", String(32), nullable=False),
    Column("command", String(80), nullable=False),
    Column("change", String(32), nullable=False),               # drafted | redrafted | finalized | voided ...
    Column("detail", Text, nullable=False),
)

sequences = Table(
    "sequences", metadata,
    Column("name", String(64), primary_key=True),
    Column("last_value", Integer, nullable=False),
)

adjustments = Table(
    "adjustments", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("community_id", String(64), nullable=False),
    Column("month", String(7), nullable=False),                 # of the finalized invoice it adjusts
    Column("invoice_number", String(64), nullable=False),
    Column("description", Text, nullable=False),                # the line it adjusts
    Column("currency", String(3), nullable=False),
    Column("amount", AMOUNT, nullable=False),
    Column("recorded_at", String(32), nullable=False),
    Column("carried_by", Integer, ForeignKey("invoices.id", ondelete="SET NULL"), nullable=True),
)

month_figures = Table(
    "month_figures", metadata,
    Column("month", String(7), primary_key=True),
    Column("subject", String(200), primary_key=True),            # rule:<target>#<n> | community:<id> | source | unattributed
    Column("currency", String(3), primary_key=True),
    Column("amount", AMOUNT, nullable=False),                    # net cost, full precision
    Column("rows", Integer, nullable=False),
    Column("detail", Text, nullable=False),                      # what a person reads (a rule's conditions)
)

month_events = Table(
    "month_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("month", String(7), nullable=False),
    Column("at", String(32), nullable=False),
    Column("command", String(80), nullable=False),
    Column("change", String(32), nullable=False),               # forced | allowed | delivered | delivery-failed
    Column("detail", Text, nullable=False),
)
