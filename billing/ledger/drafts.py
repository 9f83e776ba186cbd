"""Recording a month's draft invoices: what ``billing run`` computed, replacing the month's
earlier drafts (a draft may change on every run; it has no final number), in one transaction."""

from __future__ import annotations

import json
from typing import Mapping, NamedTuple, Sequence

from sqlalchemy import Engine, delete, insert, select, update

from ..records import Invoice, Month
from .connect import guarded, timestamp
from .documents import insert_invoice, invoice_of, month_documents
from .schema import adjustments, events, invoice_lines, invoices, months


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



@guarded
def record_drafts(engine: Engine, month: Month, drafts: Sequence[Invoice], fingerprint: Fingerprint,
                  command: str, carried: Mapping[str, Sequence[int]] | None = None) -> tuple[Invoice, ...]:
    """Replace the month's drafts by ``drafts`` and record the month's fingerprint; ``carried``
    gives, per community, the adjustments its draft carries.

    A community whose invoice for the month is finalized keeps it: its draft is not recorded, and
    the finalized invoices are returned, as the ledger has them, to be written as they are.
    """
    return _record(engine, month, drafts, fingerprint, command, carried or {})


def _record(engine: Engine, month: Month, drafts: Sequence[Invoice], fingerprint: Fingerprint,
            command: str, carried: Mapping[str, Sequence[int]]) -> tuple[Invoice, ...]:
    now, key = timestamp(), str(month)
    with engine.begin() as connection:
        final = [invoice_of(connection, row) for row in month_documents(connection, month, "finalized")]
        kept = {invoice.community_id for invoice in final}
        earlier = {row["community_id"]: row["id"] for row in month_documents(connection, month, "draft")}
        if earlier:
            connection.execute(update(events).where(events.c.invoice_id.in_(earlier.values())).values(invoice_id=None))
            connection.execute(delete(invoice_lines).where(invoice_lines.c.invoice_id.in_(earlier.values())))
            connection.execute(delete(invoices).where(invoices.c.id.in_(earlier.values())))
        for draft in drafts:
            if draft.community_id in kept or draft.status != "draft" or draft.kind != "invoice":
                continue  # a finalized invoice stays; void invoices and credit notes are not drafts
            invoice_id = insert_invoice(connection, draft, "draft", None, now)
            if carried.get(draft.community_id):
                connection.execute(update(adjustments).where(adjustments.c.id.in_(carried[draft.community_id]))
                                   .values(carried_by=invoice_id))
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
    return tuple(final)
