"""What the ledger holds: months and their documents, for ``billing status``."""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import Engine, select

from .connect import guarded
from .schema import invoices, months


class Document(NamedTuple):
    """One invoice or credit note as the ledger has it.

    Attributes:
        month, community_id: what it bills.
        kind: ``invoice`` or ``credit_note``; status: ``draft``, ``finalized`` or ``void``.
        number: its final number (``None`` for a draft).
        currency, total: what it charges.
        provisional: the month's data was not final when it was computed.
    """

    month: str
    community_id: str
    kind: str
    status: str
    number: str | None
    currency: str
    total: Decimal
    provisional: bool


@guarded
def status(engine: Engine, month: str | None = None) -> tuple[Document, ...]:
    """Every document of ``month`` (or of every month), by month, community and id."""
    query = (select(invoices.c.month, invoices.c.community_id, invoices.c.kind, invoices.c.status,
                    invoices.c.number, invoices.c.currency, invoices.c.total, months.c.provisional)
             .join(months, months.c.month == invoices.c.month, isouter=True)
             .order_by(invoices.c.month, invoices.c.community_id, invoices.c.id))
    if month is not None:
        query = query.where(invoices.c.month == month)
    with engine.connect() as connection:
        return tuple(Document(*row[:7], bool(row[7])) for row in connection.execute(query))
