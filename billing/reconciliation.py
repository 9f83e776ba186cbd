"""Reconciliation: prove that every cent of each source total landed in some bucket.

Per provider, billing account and invoice month, the source's own total (computed by the source,
independently of the grouped rows) must equal attributed + shared + absorbed + unattributed.
The comparison is at full precision and must hold to the cent: the difference must round (half-up)
to 0.00, so half a cent or more stops the run.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Iterable

from .errors import ReconciliationError
from .money import ZERO, quantize
from .records import Attributed, ReconciliationRow, SourceTotal

COLUMN_OF_KIND = {"community": "attributed", "shared": "shared", "absorbed": "absorbed",
                  "unattributed": "unattributed"}


def reconcile(totals: Iterable[SourceTotal], attributed: Iterable[Attributed]) -> tuple[ReconciliationRow, ...]:
    """One row per (provider, billing account, month, currency) seen in the totals or the rows."""
    table: dict[tuple[str, str, str, str], dict[str, Decimal]] = {}

    def entry(key: tuple[str, str, str, str]) -> dict[str, Decimal]:
        return table.setdefault(key, {"source_total": ZERO, **{c: ZERO for c in COLUMN_OF_KIND.values()}})

    for total in totals:
        entry((total.provider, total.billing_account, total.invoice_month, total.currency))["source_total"] += total.total
    for item in attributed:
        row = item.row
        entry((row.provider, row.billing_account, row.invoice_month, row.currency))[
            COLUMN_OF_KIND[item.bucket.kind]] += row.net
    return tuple(ReconciliationRow(*key, **amounts) for key, amounts in sorted(table.items()))


def check(rows: Iterable[ReconciliationRow]) -> None:
    """Raise ``ReconciliationError`` naming every account whose difference does not round to zero."""
    broken = [r for r in rows if quantize(r.difference, r.currency) != 0]
    if broken:
        raise ReconciliationError("reconciliation failed: " + "; ".join(
            f"{r.provider} billing account {r.billing_account} {r.invoice_month}: source total "
            f"{r.source_total} {r.currency}, buckets add up to {r.source_total - r.difference}, "
            f"difference {r.difference}" for r in broken))
