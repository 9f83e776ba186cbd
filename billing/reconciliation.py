"""Reconciliation: prove that every cent of each source total landed in some bucket.

Per provider, billing account and invoice month, the source's own total (computed by the source,
independently of the grouped rows) must equal attributed + shared + absorbed + unattributed +
provider_rounding. The comparison is at full precision and must hold to the cent: the difference
must round (half-up) to 0.00, so half a cent or more stops the run.

Once the invoices are priced, ``add_invoiced`` puts beside the buckets what the invoices pass
through from each account, so that the rounding they add is explicit:
invoiced = attributed + shared + credits_withheld + invoice_rounding.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Iterable, Sequence

from .allocation import COSTS, Share
from .config import Config
from .errors import ReconciliationError
from .money import ZERO, quantize, round_to_total
from .pricing import withheld_credit_types
from .records import TAX, Attributed, Month, ReconciliationRow, SourceTotal

COLUMN_OF_KIND = {"community": "attributed", "shared": "shared", "absorbed": "absorbed",
                  "unattributed": "unattributed", "rounding": "provider_rounding"}


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


def add_invoiced(rows: Sequence[ReconciliationRow], attributed: Iterable[Attributed], shares: Iterable[Share],
                 config: Config, month: Month) -> tuple[ReconciliationRow, ...]:
    """``rows`` with ``invoiced`` and ``credits_withheld`` filled in.

    Each community's direct cost (less the credits its contract withholds) is rounded once per
    currency, as its invoice rounds it, and each part of each shared pool is what its shares add
    up to; each amount is then allocated back to the accounts its rows came from, in whole minor
    units, by largest remainder over their exact amounts (``money.round_to_total``, accounts in
    sorted order). A community invoiced in another currency counts in the account's currency.
    """
    withheld_types = {c.id: withheld_credit_types(c, month) for c in config.communities}
    exact: dict[tuple[str, ...], dict[tuple[str, str, str, str], Decimal]] = {}
    withheld: dict[tuple[str, str, str, str], Decimal] = {}
    for item in attributed:
        row, bucket = item.row, item.bucket
        key = (row.provider, row.billing_account, row.invoice_month, row.currency)
        if bucket.kind == "community":
            kept = -sum((a for kind, a in row.credits if kind in withheld_types[bucket.name]), ZERO)
            withheld[key] = withheld.get(key, ZERO) + kept
            group = ("community", bucket.name, row.currency)
            amount = row.net + kept
        elif bucket.kind == "shared":
            group = ("shared", bucket.name, TAX if row.charge_type == TAX else COSTS, row.currency)
            amount = row.net
        else:
            continue
        per_account = exact.setdefault(group, {})
        per_account[key] = per_account.get(key, ZERO) + amount
    shared: dict[tuple[str, ...], Decimal] = {}
    for share in shares:
        group = ("shared", share.pool, share.part, share.currency)
        shared[group] = shared.get(group, ZERO) + share.amount

    invoiced: dict[tuple[str, str, str, str], Decimal] = {}
    for group, per_account in sorted(exact.items()):
        currency, keys = group[-1], sorted(per_account)
        total = shared.get(group, quantize(sum(per_account.values(), ZERO), currency))
        for key, amount in zip(keys, round_to_total([per_account[k] for k in keys], currency, total)):
            invoiced[key] = invoiced.get(key, ZERO) + amount
    return tuple(r._replace(invoiced=invoiced.get(k, ZERO), credits_withheld=withheld.get(k, ZERO))
                 for r in rows for k in [(r.provider, r.billing_account, r.invoice_month, r.currency)])


def check(rows: Iterable[ReconciliationRow]) -> None:
    """Raise ``ReconciliationError`` naming every account whose difference does not round to zero."""
    broken = [r for r in rows if quantize(r.difference, r.currency) != 0]
    if broken:
        raise ReconciliationError("reconciliation failed: " + "; ".join(
            f"{r.provider} billing account {r.billing_account} {r.invoice_month}: source total "
            f"{r.source_total} {r.currency}, buckets add up to {r.source_total - r.difference}, "
            f"difference {r.difference}" for r in broken))
