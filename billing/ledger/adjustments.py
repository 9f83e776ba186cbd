"""Adjustments in the ledger: differences found for finalized invoices, and which later invoice
carries each, so that each is carried once.

An adjustment is open while no invoice carries it, or while a draft of the month being run
carries it (a draft changes on every run); once the invoice carrying it is finalized, it is done.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Mapping

from sqlalchemy import Engine, and_, delete, insert, or_, select

from ..adjustments import Adjustment
from ..records import Month
from .connect import guarded, timestamp
from .schema import adjustments, invoices


def _adjustment(row) -> Adjustment:
    year, month = (int(part) for part in row["month"].split("-"))
    return Adjustment(row["id"], row["community_id"], row["month"], Month(year, month).label, row["invoice_number"],
                      row["description"], row["currency"], row["amount"])


@guarded
def record_adjustments(engine: Engine, month: Month, found: Mapping[str, tuple[str, str, Mapping[str, Decimal]]],
                       command: str) -> tuple[Adjustment, ...]:
    """Record what each finalized invoice of ``month`` would charge now, less what it did
    (``found``: community -> (invoice number, currency, difference per line)), less what later
    invoices already carried; returns the month's open adjustments."""
    now = timestamp()
    carrier_status = select(invoices.c.status).where(invoices.c.id == adjustments.c.carried_by).scalar_subquery()
    with engine.begin() as connection:
        for community, (number, currency, differences) in sorted(found.items()):
            mine = and_(adjustments.c.community_id == community, adjustments.c.month == str(month))
            done: dict[str, Decimal] = {}
            for row in connection.execute(select(adjustments).where(
                    mine, adjustments.c.carried_by.is_not(None), carrier_status != "draft")).mappings():
                done[row["description"]] = done.get(row["description"], Decimal(0)) + row["amount"]
            connection.execute(delete(adjustments).where(mine, or_(adjustments.c.carried_by.is_(None),
                                                                  carrier_status == "draft")))
            for description in sorted(set(differences) | set(done)):
                amount = differences.get(description, Decimal(0)) - done.get(description, Decimal(0))
                if amount:
                    connection.execute(insert(adjustments).values(
                        community_id=community, month=str(month), invoice_number=number, description=description,
                        currency=currency, amount=amount, recorded_at=now, carried_by=None))
        rows = connection.execute(select(adjustments).where(
            adjustments.c.month == str(month), adjustments.c.carried_by.is_(None))
            .order_by(adjustments.c.community_id, adjustments.c.id)).mappings().all()
    return tuple(_adjustment(row) for row in rows)


@guarded
def open_adjustments(engine: Engine, month: Month) -> tuple[Adjustment, ...]:
    """Adjustments of months before ``month`` that ``month``'s drafts are to carry: carried by
    no invoice yet, or by a draft of ``month`` itself."""
    carrier = select(invoices.c.status, invoices.c.month).where(invoices.c.id == adjustments.c.carried_by)
    with engine.connect() as connection:
        rows = connection.execute(select(adjustments).where(
            adjustments.c.month < str(month),
            or_(adjustments.c.carried_by.is_(None),
                and_(carrier.with_only_columns(invoices.c.status).scalar_subquery() == "draft",
                     carrier.with_only_columns(invoices.c.month).scalar_subquery() == str(month))))
            .order_by(adjustments.c.community_id, adjustments.c.month, adjustments.c.id)).mappings().all()
    return tuple(_adjustment(row) for row in rows)


@guarded
def found_adjustments(engine: Engine, month: Month) -> tuple[Adjustment, ...]:
    """The adjustments found for ``month``'s finalized invoices that no invoice carries yet."""
    with engine.connect() as connection:
        rows = connection.execute(select(adjustments).where(
            adjustments.c.month == str(month), adjustments.c.carried_by.is_(None))
            .order_by(adjustments.c.community_id, adjustments.c.id)).mappings().all()
    return tuple(_adjustment(row) for row in rows)
