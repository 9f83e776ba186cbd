"""Finalizing a month's drafts: each gets the next number of the organisation's one sequence,
never reused and without gaps, and the sha256 of its final PDF, in one transaction.

The transaction's first statement takes the sequence row for writing, so two finalizers on one
ledger run one after the other (PostgreSQL: a row lock; SQLite: one writer at a time, the other
waits). An invoice finalized before is left as it is (finalizing again is a no-op that says so).
"""

from __future__ import annotations

import json
from typing import Callable, NamedTuple, Sequence

from decimal import Decimal

from sqlalchemy import Engine, func, insert, select, update

from ..errors import DataError, LedgerError
from ..money import format_amount
from ..records import PROVISIONAL, Invoice, Month
from .connect import guarded, timestamp
from .documents import invoice_of, month_documents
from .schema import events, invoice_lines, invoices, months, sequences

SEQUENCE = "invoices"  # invoices and credit notes share it


class Finalized(NamedTuple):
    """An invoice as finalized; ``newly`` is False when it was finalized before (a no-op)."""

    invoice: Invoice
    pdf_sha256: str
    newly: bool


@guarded
def finalize(engine: Engine, month: Month, communities: Sequence[str] | None,
             number: Callable[[int, Invoice], str], render: Callable[[Invoice], str],
             command: str, config_sha256: str = "") -> tuple[Finalized, ...]:
    """Finalize the month's drafts (of ``communities``, or all): ``number(seq, draft)`` makes the
    number, ``render(final)`` writes the final PDF and returns its sha256. Raises before changing
    anything when the month was never run, is provisional, names a community it has no invoice
    for, or (``config_sha256``, of the config file now) was priced with another config."""
    return _finalize(engine, month, communities, number, render, command, config_sha256)


def _finalize(engine: Engine, month: Month, communities: Sequence[str] | None,
              number: Callable[[int, Invoice], str], render: Callable[[Invoice], str],
              command: str, config_sha256: str = "") -> tuple[Finalized, ...]:
    now = timestamp()
    with engine.begin() as connection:
        connection.execute(update(sequences).where(sequences.c.name == SEQUENCE)
                           .values(last_value=sequences.c.last_value))  # the write lock, first
        recorded = connection.execute(select(months).where(months.c.month == str(month))).mappings().first()
        if recorded is None:
            raise LedgerError(f"{command}: {month} has never been run; run `billing run --month {month}` first")
        drafts = month_documents(connection, month, "draft")
        if recorded["provisional"]:
            flags = [flag for row in drafts for flag in json.loads(row["flags"]) if flag.startswith(PROVISIONAL)]
            why = flags[0].split(": ", 1)[-1].split(";")[0] if flags else "its data is not final, e.g. AWS Estimated"
            raise DataError(f"{command}: {month} is provisional ({why}); finalize refuses it: run the month again "
                            "once its data is final")
        finals = month_documents(connection, month, "finalized")
        known = {row["community_id"] for row in drafts + finals}
        unknown = sorted(set(communities or ()) - known)
        if unknown:
            raise LedgerError(f"{command}: {month} has no invoice for {', '.join(unknown)} "
                              f"(it has: {', '.join(sorted(known)) or 'none'})")
        wanted = set(communities) if communities else known
        done = [Finalized(invoice_of(connection, row), row["pdf_sha256"], False)
                for row in finals if row["community_id"] in wanted]
        todo = [row for row in drafts if row["community_id"] in wanted]
        priced_with = recorded["config_sha256"]
        if todo and config_sha256 and priced_with and priced_with != config_sha256:
            raise DataError(f"{command}: {month}'s drafts were priced with another version of the config (sha256 "
                            f"{priced_with[:12]}…, now {config_sha256[:12]}…): a contract, fee or rule may have "
                            f"changed since; run `billing run --month {month}` again to price them with this config, "
                            "review them, then finalize")
        if todo:
            used = _prepaid_used(connection)
            for row in todo:
                now_used = used.get(row["community_id"], Decimal(0))
                if row["prepaid_used"] is not None and row["prepaid_used"] != now_used:
                    raise DataError(f"{command}: {row['community_id']}'s {month} draft was priced when its prepaid "
                                    f"funds had {format_amount(row['prepaid_used'], row['currency'])} drawn, and "
                                    f"finalized invoices have drawn {format_amount(now_used, row['currency'])} since; "
                                    "run the month again first")
            (last,) = connection.execute(select(sequences.c.last_value)
                                         .where(sequences.c.name == SEQUENCE)).one()
            for offset, row in enumerate(todo, start=1):
                draft = invoice_of(connection, row)
                final = draft._replace(number=number(last + offset, draft), status="finalized")
                sha256 = render(final)
                connection.execute(update(invoices).where(invoices.c.id == row["id"])
                                   .values(status="finalized", number=final.number, pdf_sha256=sha256))
                connection.execute(insert(events).values(
                    invoice_id=row["id"], month=str(month), community_id=final.community_id, at=now,
                    command=command, change="finalized", detail=f"{final.number}, total {final.total} "
                                                                f"{final.currency}, pdf sha256 {sha256}"))
                done.append(Finalized(final, sha256, True))
            connection.execute(update(sequences).where(sequences.c.name == SEQUENCE)
                               .values(last_value=last + len(todo)))
    return tuple(sorted(done, key=lambda f: f.invoice.community_id))


@guarded
def finalized(engine: Engine, month: Month) -> tuple[tuple[Invoice, str], ...]:
    """The month's documents that never change, with the sha256 of their PDFs: finalized and void
    invoices, and credit notes."""
    with engine.connect() as connection:
        return tuple((invoice_of(connection, row), row["pdf_sha256"])
                     for row in month_documents(connection, month, kind=None) if row["status"] != "draft")


@guarded
def month_invoices(engine: Engine, month: Month) -> tuple[Invoice, ...]:
    """Every document of the month the ledger holds (drafts, finalized and void invoices, credit
    notes), by community and age."""
    with engine.connect() as connection:
        return tuple(invoice_of(connection, row) for row in month_documents(connection, month, kind=None))


def _prepaid_used(connection) -> dict[str, Decimal]:
    """Per community, what its final documents drew from prepaid funds (a credit note gives back
    what its voided invoice drew)."""
    query = (select(invoices.c.community_id, func.sum(invoice_lines.c.amount))
             .join(invoice_lines, invoice_lines.c.invoice_id == invoices.c.id)
             .where(invoice_lines.c.section == "prepaid", invoices.c.status != "draft")
             .group_by(invoices.c.community_id))
    return {community: -amount for community, amount in connection.execute(query)}


@guarded
def prepaid_used(engine: Engine) -> dict[str, Decimal]:
    """Per community, what finalized invoices drew from its prepaid funds."""
    with engine.connect() as connection:
        return _prepaid_used(connection)
