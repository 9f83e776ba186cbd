"""Voiding a finalized invoice: its number stays used, and a credit note with the next number of
the same sequence, referencing it, cancels it; the community's invoice for that month can then be
drafted and finalized again. One transaction, which first takes the sequence for writing."""

from __future__ import annotations

import datetime as dt
from typing import Callable, NamedTuple

from sqlalchemy import Engine, insert, select, update

from ..errors import LedgerError
from ..records import Invoice
from .connect import guarded, timestamp
from .documents import insert_invoice, invoice_of
from .finalize import SEQUENCE
from .schema import events, invoices, sequences


class Voided(NamedTuple):
    """A voided invoice and the credit note that cancels it, with the sha256 of its PDF."""

    invoice: Invoice
    credit_note: Invoice
    credit_note_sha256: str


def credit_note_for(invoice: Invoice, number: str, reason: str, issued: dt.date) -> Invoice:
    """The credit note cancelling ``invoice``: its lines and totals negated, issued on ``issued``
    (the day it is made, never before the invoice's own issue date: an accounting period already
    closed is not written into), which is also its due date (a credit note asks for no payment)."""
    issued = max(issued, invoice.issue_date)
    lines = tuple(line._replace(cost=-line.cost, credits=-line.credits, amount=-line.amount,
                                taxable=None if line.taxable is None else -line.taxable,
                                tax=None if line.tax is None else -line.tax) for line in invoice.lines)
    return invoice._replace(
        number=number, status="finalized", kind="credit_note", references=invoice.number, lines=lines,
        issue_date=issued, due_date=issued,
        notes=(f"This credit note cancels invoice {invoice.number} of {invoice.month.label} in full: {reason}",),
        flags=())


@guarded
def void(engine: Engine, number: str, reason: str, next_number: Callable[[int, Invoice], str],
         render: Callable[[Invoice], str], command: str, today: dt.date) -> Voided:
    """Void the finalized invoice ``number``; ``render(credit_note)`` writes the credit note's PDF
    and returns its sha256. The credit note is issued ``today``."""
    now = timestamp()
    with engine.begin() as connection:
        connection.execute(update(sequences).where(sequences.c.name == SEQUENCE)
                           .values(last_value=sequences.c.last_value))  # the write lock, first
        row = connection.execute(select(invoices).where(invoices.c.number == number)).mappings().first()
        if row is None:
            raise LedgerError(f"{command}: no invoice is numbered {number!r} (`billing status` lists the numbers; a "
                              "draft has none and needs no voiding: it changes with every run)")
        if row["kind"] == "credit_note":
            raise LedgerError(f"{command}: {number} is a credit note; a credit note cannot be voided")
        if row["status"] == "void":
            note = connection.execute(select(invoices.c.number).where(invoices.c.references_number == number)).scalar()
            raise LedgerError(f"{command}: {number} is void already (cancelled by credit note {note})")
        invoice = invoice_of(connection, row)
        (last,) = connection.execute(select(sequences.c.last_value).where(sequences.c.name == SEQUENCE)).one()
        credit_note = credit_note_for(invoice, next_number(last + 1, invoice), reason, today)
        sha256 = render(credit_note)
        connection.execute(update(invoices).where(invoices.c.id == row["id"]).values(status="void"))
        note_id = insert_invoice(connection, credit_note, "finalized", credit_note.number, now, sha256)
        connection.execute(update(sequences).where(sequences.c.name == SEQUENCE).values(last_value=last + 1))
        for invoice_id, change, detail in ((row["id"], "voided", f"by {credit_note.number}: {reason}"),
                                           (note_id, "credit note", f"cancels {number}, pdf sha256 {sha256}")):
            connection.execute(insert(events).values(
                invoice_id=invoice_id, month=str(invoice.month), community_id=invoice.community_id, at=now,
                command=command, change=change, detail=detail))
    return Voided(invoice._replace(status="void"), credit_note, sha256)


@guarded
def month_of(engine: Engine, number: str) -> str | None:
    """The month (``YYYY-MM``) of the document numbered ``number``, or ``None``."""
    with engine.connect() as connection:
        return connection.execute(select(invoices.c.month).where(invoices.c.number == number)).scalar()
