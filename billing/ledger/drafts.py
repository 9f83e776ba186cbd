"""Recording a month's draft invoices: what ``billing run`` computed, replacing the month's
earlier drafts (a draft may change on every run; it has no final number), in one transaction."""

from __future__ import annotations

import datetime as dt
import json
from typing import NamedTuple, Sequence

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import DBAPIError

from ..records import Invoice, Month
from .connect import unreachable
from .schema import events, invoice_lines, invoices, months


class Fingerprint(NamedTuple):
    """What a month's invoices were computed from.

    Attributes:
        source_totals: per provider, billing account and currency, the source's total, as text.
        config_sha256: sha256 of the config file's bytes.
        package_version: the version of billing that computed them.
        provisional: the data was not final (e.g. AWS Estimated).
    """

    source_totals: tuple[tuple[str, str, str, str], ...]
    config_sha256: str
    package_version: str
    provisional: bool


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def record_drafts(engine: Engine, month: Month, drafts: Sequence[Invoice], fingerprint: Fingerprint,
                  command: str) -> None:
    """Replace the month's drafts by ``drafts`` and record the month's fingerprint."""
    try:
        _record(engine, month, drafts, fingerprint, command)
    except DBAPIError as error:
        raise unreachable(command, engine.url.render_as_string(hide_password=True), error) from None


def _record(engine: Engine, month: Month, drafts: Sequence[Invoice], fingerprint: Fingerprint, command: str) -> None:
    now, key = _now(), str(month)
    with engine.begin() as connection:
        earlier = {community: invoice_id for invoice_id, community in connection.execute(
            select(invoices.c.id, invoices.c.community_id).where(
                invoices.c.month == key, invoices.c.status == "draft", invoices.c.kind == "invoice"))}
        if earlier:
            connection.execute(update(events).where(events.c.invoice_id.in_(earlier.values())).values(invoice_id=None))
            connection.execute(delete(invoice_lines).where(invoice_lines.c.invoice_id.in_(earlier.values())))
            connection.execute(delete(invoices).where(invoices.c.id.in_(earlier.values())))
        for draft in drafts:
            invoice_id = connection.execute(insert(invoices).values(
                community_id=draft.community_id, month=key, kind="invoice", status="draft", number=None,
                references_number=None, currency=draft.currency, issue_date=draft.issue_date.isoformat(),
                due_date=draft.due_date.isoformat(), cloud_costs=draft.cloud_costs, fees=draft.fees,
                discounts=draft.discounts, tax=draft.tax, total=draft.total, pdf_sha256=None,
                created_at=now)).inserted_primary_key[0]
            if draft.lines:
                connection.execute(insert(invoice_lines), [
                    {"invoice_id": invoice_id, "position": n, "section": line.section,
                     "description": line.description, "provider": line.provider, "service": line.service,
                     "cost": line.cost, "credits": line.credits, "amount": line.amount}
                    for n, line in enumerate(draft.lines, start=1)])
            change = "redrafted" if draft.community_id in earlier else "drafted"
            connection.execute(insert(events).values(
                invoice_id=invoice_id, month=key, community_id=draft.community_id, at=now, command=command,
                change=change, detail=f"total {draft.total} {draft.currency}"))
        row = {"config_sha256": fingerprint.config_sha256, "package_version": fingerprint.package_version,
               "source_totals": json.dumps([list(t) for t in fingerprint.source_totals]),
               "provisional": fingerprint.provisional, "updated_at": now, "updated_by": command}
        if connection.execute(select(months.c.month).where(months.c.month == key)).first():
            connection.execute(update(months).where(months.c.month == key).values(**row))
        else:
            connection.execute(insert(months).values(month=key, **row))
