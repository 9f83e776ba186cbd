"""Invoices to rows and back: what the ledger stores of an invoice is enough to print it again."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Mapping

from sqlalchemy import Connection, insert, select

from ..records import Invoice, InvoiceLine, Month
from .schema import invoice_lines, invoices


def insert_invoice(connection: Connection, invoice: Invoice, status: str, number: str | None, now: str,
                   pdf_sha256: str | None = None) -> int:
    """Insert ``invoice`` (or credit note) with its lines; its id."""
    invoice_id = connection.execute(insert(invoices).values(
        community_id=invoice.community_id, community_name=invoice.community_name, month=str(invoice.month),
        kind=invoice.kind, status=status, number=number, references_number=invoice.references or None,
        currency=invoice.currency,
        issue_date=invoice.issue_date.isoformat(), due_date=invoice.due_date.isoformat(),
        cloud_costs=invoice.cloud_costs, fees=invoice.fees, discounts=invoice.discounts, tax=invoice.tax,
        total=invoice.total, scope=json.dumps(list(invoice.scope)), notes=json.dumps(list(invoice.notes)),
        flags=json.dumps(list(invoice.flags)), prepaid_used=invoice.prepaid_used, pdf_sha256=pdf_sha256,
        created_at=now)).inserted_primary_key[0]
    if invoice.lines:
        connection.execute(insert(invoice_lines), [
            {"invoice_id": invoice_id, "position": n, "section": line.section, "description": line.description,
             "provider": line.provider, "service": line.service, "cost": line.cost, "credits": line.credits,
             "amount": line.amount, "taxable": line.taxable, "tax": line.tax}
            for n, line in enumerate(invoice.lines, start=1)])
    return invoice_id


def invoice_of(connection: Connection, row: Mapping[str, Any]) -> Invoice:
    """The ``Invoice`` a row of ``invoices`` (with its lines) records; a draft keeps its reference."""
    lines = connection.execute(select(invoice_lines).where(invoice_lines.c.invoice_id == row["id"])
                               .order_by(invoice_lines.c.position)).mappings().all()
    year, month = (int(part) for part in row["month"].split("-"))
    return Invoice(
        number=row["number"] or f"DRAFT-{year:04d}{month:02d}-{row['community_id']}",
        status=row["status"], community_id=row["community_id"], community_name=row["community_name"],
        month=Month(year, month), issue_date=dt.date.fromisoformat(row["issue_date"]),
        due_date=dt.date.fromisoformat(row["due_date"]), currency=row["currency"],
        lines=tuple(InvoiceLine(line["section"], line["description"], line["provider"], line["service"],
                                line["cost"], line["credits"], line["amount"], line["taxable"], line["tax"])
                    for line in lines),
        scope=tuple(json.loads(row["scope"])), notes=tuple(json.loads(row["notes"])),
        flags=tuple(json.loads(row["flags"])), kind=row["kind"], references=row["references_number"] or "",
        prepaid_used=row["prepaid_used"])


def month_documents(connection: Connection, month: Month, status: str | None = None,
                    kind: str | None = "invoice") -> list[Mapping[str, Any]]:
    """The rows of ``month``'s documents (of one status, of one kind), by community and age."""
    query = select(invoices).where(invoices.c.month == str(month))
    if kind is not None:
        query = query.where(invoices.c.kind == kind)
    if status is not None:
        query = query.where(invoices.c.status == status)
    return list(connection.execute(query.order_by(invoices.c.community_id, invoices.c.id)).mappings())
